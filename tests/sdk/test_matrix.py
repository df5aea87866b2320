"""Every official client SDK against every provider protocol: 6 x 6 pairs through busbar.

Per pair: a text answer with usage; a tool call whose arguments the SDK parses; a second turn
carrying the tool result (the tool-call id minted on one side must pair up on the other); an
upstream 400 and 429 surfacing as the SDK's own error classes, the 429 with its Retry-After.
And per pair, what reached the provider: its protocol's path and its own auth carrier.
"""

import json

import pytest

import adapters
from conftest import CLIENT_KEY, EGRESS, PROVIDER_KEY, RESULTS

PATHS = {
    "openai": "/v1/chat/completions",
    "responses": "/v1/responses",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/up-gemini:generateContent",
    "cohere": "/v2/chat",
    "bedrock": "/model/up-bedrock/converse",
}


def check_carrier(sdk, egress, sent):
    h = sent["headers"]
    assert sent["path"] == PATHS[egress], sent["path"]
    if egress == "anthropic":
        assert h["x-api-key"] == PROVIDER_KEY
        # Passthrough keeps the SDK's own version; a translated request carries the provider's.
        if sdk != "anthropic":
            assert h["anthropic-version"] == "2023-06-01"
    elif egress == "gemini":
        assert h["x-goog-api-key"] == PROVIDER_KEY
    elif egress == "bedrock":
        # Signed with SigV4; the mock re-signed it with the same secret to accept it.
        assert h["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDBUSBARMOCK/")
        assert "/us-east-1/bedrock/aws4_request" in h["authorization"]
    else:
        assert h["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert all(CLIENT_KEY not in v for v in h.values()), "client key leaked upstream"


@pytest.mark.parametrize("egress", EGRESS)
@pytest.mark.parametrize("sdk", adapters.ALL, ids=lambda a: a.name)
def test_pair(sdk, egress, matrix, mock):
    key = (sdk.name, egress)
    RESULTS[key] = "started"
    client = sdk(matrix.url, CLIENT_KEY)
    model = f"via-{egress}"

    mock.clear()
    text, tokens_in, tokens_out = client.text(model, "alpha beta gamma")
    assert text.startswith("alpha beta gamma"), text
    assert tokens_in > 0 and tokens_out > 0, (tokens_in, tokens_out)
    sent = mock.requests()[-1]
    check_carrier(sdk.name, egress, sent)
    assert "alpha beta gamma" in sent["body"]

    name, args, state = client.tool_call(model)
    assert (name, args) == ("get_weather", {"city": "mock"})
    answer = client.tool_result(model, state, "18C and sunny")
    assert answer == "The tool said: 18C and sunny", answer
    upstream = json.loads(mock.requests()[-1]["body"])
    assert "18C and sunny" in json.dumps(upstream), "the tool result reached the provider"

    err = client.error_class(400)
    with pytest.raises(err) as e400:
        client.text(model, "please fail: mock-status=400")
    if sdk.name in ("gemini",):
        assert e400.value.code == 400
    if sdk.name == "bedrock":
        assert e400.value.response["Error"]["Code"] == "ValidationException"
        assert e400.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    with pytest.raises(client.error_class(429)) as e429:
        client.text(model, "please fail: mock-status=429 mock-retry-after=7")
    if sdk.name == "gemini":
        assert e429.value.code == 429
    if sdk.name == "bedrock":
        assert e429.value.response["Error"]["Code"] == "ThrottlingException"
    assert client.retry_after(e429.value) == "7"
    RESULTS[key] = "ok"
