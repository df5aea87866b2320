"""The official SDKs against busbar's own TLS listener with mTLS: HTTP/1.1 and HTTP/2 (httpx
with h2, the SDKs' own HTTP client), whole and streamed answers; a client without a
certificate, or with one from another CA, gets no answer at all (the SDK's connection error).

The test makes its own CA and certificates (cryptography) on every run.
"""

import datetime
import ipaddress
import ssl
import tempfile

import anthropic
import httpx
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import CLIENT_KEY, running_busbar

try:  # the HTTP package the installed Anthropic SDK takes its client from
    import httpx2

    import anthropic._base_client as _ab

    ANTHROPIC_HTTP = httpx2 if getattr(_ab, "httpx2", None) is httpx2 else httpx
except ImportError:
    ANTHROPIC_HTTP = httpx

CONFIG = """
listen = "127.0.0.1:0"
shards = 2
[tls]
cert = "{d}/server.pem"
key = "{d}/server.key"
client_ca = "{d}/clients-ca.pem"
[providers.p-openai]
protocol = "openai"
base_url = "{mock}/v1"
api_key_env = "SDKTEST_PROVIDER_KEY"
[providers.p-anthropic]
protocol = "anthropic"
base_url = "{mock}/v1"
api_key_env = "SDKTEST_PROVIDER_KEY"
[models.gpt-tls]
provider = "p-openai"
upstream = "mock-model"
[models.claude-tls]
provider = "p-anthropic"
upstream = "mock-model"
max_output_tokens = 1024
[[keys]]
name = "sdk"
key_env = "SDKTEST_CLIENT_KEY"
"""


class Ca:
    def __init__(self, name):
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .sign(self.key, hashes.SHA256())
        )

    def pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, path_stem, common_name, server):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            b = b.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        else:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        with open(path_stem + ".pem", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM) + self.pem())
        with open(path_stem + ".key", "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
        return path_stem + ".pem", path_stem + ".key"


@pytest.fixture(scope="module", params=["io_uring", "epoll"])
def tls_gateway(request, mock):
    d = tempfile.mkdtemp(prefix="busbar-tls-")
    ca = Ca("operator CA")
    rogue = Ca("someone else's CA")
    ca.issue(f"{d}/server", "localhost", server=True)
    with open(f"{d}/clients-ca.pem", "wb") as f:
        f.write(ca.pem())
    with open(f"{d}/ca.pem", "wb") as f:
        f.write(ca.pem())
    good = ca.issue(f"{d}/good", "team-a", server=False)
    bad = rogue.issue(f"{d}/bad", "intruder", server=False)
    config = CONFIG.format(d=d, mock=mock.url)
    with running_busbar(config, "--driver", request.param, "--admin-listen", "off", "--ledger", "off") as (port, _):
        yield {"port": port, "ca": f"{d}/ca.pem", "good": good, "bad": bad}


def http_client(g, identity, http2, versions, module=httpx):
    """An HTTP client of the package the SDK uses (httpx, or for newer Anthropic SDKs its
    successor httpx2), trusting the test CA, with a client certificate when given."""
    ctx = ssl.create_default_context(cafile=g["ca"])
    if identity:
        ctx.load_cert_chain(*identity)
    return module.Client(
        verify=ctx,
        http2=http2,
        event_hooks={"response": [lambda r: versions.append(r.http_version)]},
    )


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2"])
def test_sdks_with_a_client_certificate_are_served(tls_gateway, http2):
    g = tls_gateway
    versions = []
    base = f"https://localhost:{g['port']}"
    oa = openai.OpenAI(
        base_url=base + "/v1",
        api_key=CLIENT_KEY,
        max_retries=0,
        http_client=http_client(g, g["good"], http2, versions),
    )
    r = oa.chat.completions.create(model="gpt-tls", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content
    assert r.usage.completion_tokens > 0
    chunks = list(
        oa.chat.completions.create(
            model="gpt-tls", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and text == r.choices[0].message.content
    an = anthropic.Anthropic(
        base_url=base,
        api_key=CLIENT_KEY,
        max_retries=0,
        http_client=http_client(g, g["good"], http2, versions, ANTHROPIC_HTTP),
    )
    m = an.messages.create(model="claude-tls", max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text
    with an.messages.stream(model="claude-tls", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
        streamed = "".join(s.text_stream)
    assert streamed == m.content[0].text
    want = "HTTP/2" if http2 else "HTTP/1.1"
    assert versions and all(v == want for v in versions), versions


@pytest.mark.parametrize("who", ["no certificate", "rogue certificate"])
def test_a_client_without_the_operators_certificate_gets_no_answer(tls_gateway, who):
    g = tls_gateway
    identity = None if who == "no certificate" else g["bad"]
    for http2 in (False, True):
        oa = openai.OpenAI(
            base_url=f"https://localhost:{g['port']}/v1",
            api_key=CLIENT_KEY,
            max_retries=0,
            timeout=10,
            http_client=http_client(g, identity, http2, []),
        )
        with pytest.raises(openai.APIConnectionError):
            oa.chat.completions.create(model="gpt-tls", messages=[{"role": "user", "content": "hi"}])
