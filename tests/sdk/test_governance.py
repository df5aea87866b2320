"""Governance as each official SDK sees it: a virtual key (made through busbar's admin API) that
is over its requests-per-minute limit, over its spend cap, or asks for a model outside its
allowance gets that SDK's own rate-limit or permission error, with the limit named."""

import json
import tempfile
import time
import urllib.request

import botocore.exceptions
import pytest
from google import genai

import adapters
from conftest import AWS_KEY_ID, AWS_SECRET, admin_address, running_busbar
from test_errors import EXPECTED, BEDROCK_CODES

CONFIG = """
listen = "127.0.0.1:0"
shards = 2
""" + "".join(
    f'[providers.p-{p}]\nprotocol = "{p}"\nbase_url = "{{mock}}{suffix}"\n{auth}\n'
    for p, suffix, auth in [
        ("openai", "/v1", 'api_key_env = "SDKTEST_PROVIDER_KEY"'),
        ("anthropic", "/v1", 'api_key_env = "SDKTEST_PROVIDER_KEY"'),
    ]
) + "".join(
    f'[models.via-{p}]\nprovider = "p-{p}"\nupstream = "up-{p}"\nmax_output_tokens = 1024\n'
    f"input_price = 1000\noutput_price = 1000\n"
    for p in ["openai", "anthropic"]
)


class Governed:
    def __init__(self, port, admin):
        self.url = f"http://127.0.0.1:{port}"
        self.admin = f"http://{admin}"

    def key(self, spec):
        req = urllib.request.Request(self.admin + "/admin/keys", data=json.dumps(spec).encode(), method="POST")
        with urllib.request.urlopen(req) as r:
            assert r.status == 201
            return json.load(r)["secret"]


@pytest.fixture(scope="module")
def governed(mock):
    aws = {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET}
    ledger = tempfile.mkdtemp(prefix="busbar-ledger-")
    with running_busbar(CONFIG.format(mock=mock.url), "--admin-listen", "127.0.0.1:0", "--ledger", ledger, env=aws) as (port, seen):
        yield Governed(port, admin_address(seen))


def assert_sdk_error(sdk, err, status, words):
    """`err` is the SDK's own class for `status`, and its message has `words`."""
    name = "openai" if sdk.name == "responses" else sdk.name
    if name in EXPECTED:
        assert type(err) is EXPECTED[name][status], f"{status}: {type(err).__name__}: {err}"
    elif name == "gemini":
        assert isinstance(err, genai.errors.ClientError) and err.code == status, repr(err)
    elif name == "bedrock":
        assert isinstance(err, botocore.exceptions.ClientError), repr(err)
        assert err.response["Error"]["Code"] == BEDROCK_CODES[status]
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert words in str(err), f"{words!r} not in {err}"


def early_in_a_minute(need=5):
    left = 60 - time.time() % 60
    if left < need:
        time.sleep(left + 0.05)


@pytest.mark.parametrize("sdk", adapters.ALL, ids=lambda a: a.name)
def test_a_key_over_its_rpm_gets_the_sdks_rate_limit_error(sdk, governed):
    secret = governed.key({"name": f"rpm-{sdk.name}", "limits": {"rpm": 1}})
    client = sdk(governed.url, secret)
    early_in_a_minute()
    text, _, _ = client.text("via-openai", "Hello")
    assert text
    with pytest.raises(Exception) as e:
        client.text("via-openai", "Hello again")
    assert_sdk_error(sdk, e.value, 429, "requests-per-minute limit")
    assert f"rpm-{sdk.name}" in str(e.value)


@pytest.mark.parametrize("sdk", adapters.ALL, ids=lambda a: a.name)
def test_a_key_over_its_spend_cap_gets_the_sdks_quota_error(sdk, governed):
    # At $1000 per million tokens, a request's worst case (its body's bytes as input, plus its
    # max output) is over $0.05 for every SDK's request; the cap is less than that.
    secret = governed.key({"name": f"cap-{sdk.name}", "limits": {"daily_usd": 0.01}})
    client = sdk(governed.url, secret)
    with pytest.raises(Exception) as e:
        client.text("via-anthropic", "Hello")
    assert_sdk_error(sdk, e.value, 429, "daily spend cap")


@pytest.mark.parametrize("sdk", adapters.ALL, ids=lambda a: a.name)
def test_a_model_outside_the_keys_allowance_is_the_sdks_permission_error(sdk, governed):
    secret = governed.key({"name": f"allow-{sdk.name}", "allowed": ["via-openai"]})
    client = sdk(governed.url, secret)
    text, _, _ = client.text("via-openai", "Hello")
    assert text
    with pytest.raises(Exception) as e:
        client.text("via-anthropic", "Hello")
    assert_sdk_error(sdk, e.value, 403, "may not use `via-anthropic`")
