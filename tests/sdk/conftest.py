"""Fixtures for the SDK conformance tests: the official OpenAI SDK, through the real busbar
binary, to the bench mock provider, all on loopback with free ports.

Every test runs once per I/O driver (io_uring and epoll). busbar is stopped with SIGTERM at
the end and must exit 0.
"""

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import tempfile
import threading
import urllib.request

import openai
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUSBAR = os.environ.get("BUSBAR_BIN", str(ROOT / "target/release/busbar"))
BENCH = os.environ.get("BUSBAR_BENCH_BIN", str(ROOT / "target/release/busbar-bench"))

PROVIDER_KEY = "sk-sdk-provider-secret"
CLIENT_KEY = "bb-sdk-client-key"


def _start(args, marker, env=None):
    """Starts a process and waits for its readiness line; returns (process, port, stderr lines)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    err_lines = []
    threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True).start()
    for line in proc.stdout:
        if marker in line:
            addr = line.split(marker, 1)[1].split()[0]
            threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
            return proc, int(addr.rsplit(":", 1)[1]), err_lines
    proc.wait()
    raise RuntimeError(f"{args[0]} exited ({proc.returncode}) before `{marker}`: {''.join(err_lines)}")


@contextlib.contextmanager
def running_busbar(config, *args, env=None):
    """busbar with this config text and these arguments (the provider and client keys in its
    environment, plus `env`), until the block ends; then SIGTERM, and it must exit 0.
    Yields (port, stdout lines read up to readiness, e.g. the admin address)."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(config)
        path = f.name
    full = dict(os.environ, SDKTEST_PROVIDER_KEY=PROVIDER_KEY, SDKTEST_CLIENT_KEY=CLIENT_KEY)
    full.pop("AWS_SESSION_TOKEN", None)
    full.update(env or {})
    proc = subprocess.Popen([BUSBAR, "--config", path, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full)
    err, seen = [], []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
    port = None
    for line in proc.stdout:
        seen.append(line)
        if "listening on " in line:
            port = int(line.split("listening on ", 1)[1].split()[0].rsplit(":", 1)[1])
            break
    if port is None:
        proc.wait()
        os.unlink(path)
        raise RuntimeError(f"busbar exited ({proc.returncode}) before listening: {''.join(err)}")
    threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
    try:
        yield port, seen
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        os.unlink(path)
    assert code == 0, f"busbar exited {code} after SIGTERM: {''.join(err)}"


def admin_address(seen):
    """The admin listener's address from busbar's readiness lines."""
    return next(line.split("admin on ", 1)[1].split()[0] for line in seen if "admin on " in line)


class Mock:
    """The bench mock provider and what it recorded."""

    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}"

    def requests(self):
        with urllib.request.urlopen(self.url + "/_mock/requests") as r:
            return json.load(r)

    def clear(self):
        urllib.request.urlopen(urllib.request.Request(self.url + "/_mock/requests", method="DELETE")).close()


@pytest.fixture(scope="session")
def mock():
    env = dict(os.environ, BUSBAR_MOCK_AWS_SECRET="mock-secret")
    proc, port, _ = _start([BENCH, "mock", "--listen", "127.0.0.1:0", "--tokens", "8"], "listening on ", env)
    yield Mock(port)
    proc.terminate()
    proc.wait()


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


CONFIG = """
listen = "127.0.0.1:0"
shards = 2
[breaker]
enabled = false
[upstream]
connect_timeout_ms = 2000
[providers.up]
protocol = "openai"
base_url = "{mock}/v1"
api_key_env = "SDKTEST_PROVIDER_KEY"
[providers.gone]
protocol = "openai"
base_url = "http://127.0.0.1:{dead}/v1"
[providers.builtin]
protocol = "openai"
mock = {{ ttft_ms = 0, token_gap_ms = 0, tokens = 8 }}
[models.gpt-test]
provider = "up"
upstream = "mock-model"
[models.unreachable]
provider = "gone"
[models.local-mock]
provider = "builtin"
[pools.fast]
members = [{{ model = "gpt-test", weight = 1 }}]
[[keys]]
name = "sdk"
key_env = "SDKTEST_CLIENT_KEY"
"""


class Gateway:
    def __init__(self, port, driver):
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.driver = driver

    def client(self, key=CLIENT_KEY):
        return openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=0, timeout=30)

    def async_client(self):
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)


@pytest.fixture(scope="session", params=["io_uring", "epoll"])
def gateway(request, mock):
    driver = request.param
    config = CONFIG.format(mock=mock.url, dead=_closed_port())
    ledger = tempfile.mkdtemp(prefix="busbar-ledger-")
    with running_busbar(config, "--driver", driver, "--admin-listen", "127.0.0.1:0", "--ledger", ledger) as (port, _):
        yield Gateway(port, driver)


@pytest.fixture
def client(gateway):
    return gateway.client()


# The six protocols as egress: one provider each, all answered by the bench mock, which speaks
# each protocol natively. A client of any SDK reaches any of them by model name `via-<protocol>`.
EGRESS = ["openai", "responses", "anthropic", "gemini", "cohere", "bedrock"]
AWS_KEY_ID = "AKIDBUSBARMOCK"
AWS_SECRET = "mock-secret"

MATRIX_CONFIG = """
listen = "127.0.0.1:0"
shards = 2
# These tests ask every model for errors on purpose (401, 429 with Retry-After, ...) and check
# that each reaches the SDK as its own class: no lane may open under them.
[breaker]
enabled = false
[providers.p-openai]
protocol = "openai"
base_url = "{mock}/v1"
api_key_env = "SDKTEST_PROVIDER_KEY"
[providers.p-responses]
protocol = "responses"
base_url = "{mock}/v1"
api_key_env = "SDKTEST_PROVIDER_KEY"
[providers.p-anthropic]
protocol = "anthropic"
base_url = "{mock}/v1"
api_key_env = "SDKTEST_PROVIDER_KEY"
[providers.p-gemini]
protocol = "gemini"
base_url = "{mock}/v1beta"
api_key_env = "SDKTEST_PROVIDER_KEY"
[providers.p-cohere]
protocol = "cohere"
base_url = "{mock}/v2"
api_key_env = "SDKTEST_PROVIDER_KEY"
[providers.p-bedrock]
protocol = "bedrock"
base_url = "{mock}"
auth = "sigv4"
region = "us-east-1"
{models}
[models.strict-anthropic]
provider = "p-anthropic"
upstream = "up-anthropic"
strict = true
[[keys]]
name = "sdk"
key_env = "SDKTEST_CLIENT_KEY"
"""


def _models():
    return "".join(
        f'[models.via-{p}]\nprovider = "p-{p}"\nupstream = "up-{p}"\nmax_output_tokens = 1024\n' for p in EGRESS
    )


class MatrixGateway:
    def __init__(self, port):
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def matrix(mock):
    config = MATRIX_CONFIG.format(mock=mock.url, models=_models())
    ledger = tempfile.mkdtemp(prefix="busbar-ledger-")
    aws = {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET}
    with running_busbar(config, "--admin-listen", "127.0.0.1:0", "--ledger", ledger, env=aws) as (port, _):
        yield MatrixGateway(port)


# ingress -> egress -> "ok" or the first failure, printed as a 6 x 6 table at the end.
RESULTS = {}


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    ingress = ["openai", "responses", "anthropic", "gemini", "cohere", "bedrock"]
    w = 11
    tr = terminalreporter
    tr.write_sep("=", "SDK x egress matrix (rows: client SDK, columns: provider protocol)")
    tr.write_line(" " * w + "".join(e.ljust(w) for e in EGRESS))
    for i in ingress:
        cells = [("ok" if RESULTS.get((i, e)) == "ok" else ("FAIL" if (i, e) in RESULTS else "-")).ljust(w) for e in EGRESS]
        tr.write_line(i.ljust(w) + "".join(cells))
    for (i, e), v in sorted(RESULTS.items()):
        if v != "ok":
            tr.write_line(f"  {i} -> {e}: {v}")
