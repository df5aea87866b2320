"""The status page on the admin listener (`GET /`), rendered by headless Chromium (Debian's
`chromium`): the DOM after its script ran shows the live numbers of `/stats` (requests per
lane, breaker states, pools, top keys by spend) and follows them as they change; the
screenshot shows each lane's breaker state in its colour.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import urllib.request

import pytest
from PIL import Image

from conftest import admin_address, running_busbar

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

CONFIG = """
listen = "127.0.0.1:0"
shards = 2
[admin]
token_env = "STATUS_ADMIN_TOKEN"
[breaker]
consecutive_failures = 1
cooldown_ms = 600000
max_cooldown_ms = 600000
[providers.up]
protocol = "openai"
base_url = "{mock}/v1"
[providers.gone]
protocol = "openai"
base_url = "http://127.0.0.1:{dead}/v1"
[models.good]
provider = "up"
upstream = "mock-model"
input_price = 3.0
output_price = 15.0
[models.down]
provider = "gone"
[pools.main]
members = [{{ model = "good", weight = 3 }}, {{ model = "down", weight = 1 }}]
"""

TOKEN = "status-admin-token"


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def admin_call(admin, method, path, body=None):
    req = urllib.request.Request(
        f"http://{admin}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def chat(port, key, model):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps({"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def chromium(url, *what):
    """Runs headless Chromium on `url` long enough for the page's script to fetch and render."""
    profile = tempfile.mkdtemp(prefix="busbar-chromium-")
    try:
        out = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--window-size=1280,1100",
                "--virtual-time-budget=5000",
                *what,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def cell(dom, row_attr, row_value, field):
    """The text of the `data-field` cell in the row `data-<row_attr>="<row_value>"`."""
    row = re.search(rf'<tr data-{row_attr}="{re.escape(row_value)}">(.*?)</tr>', dom, re.S)
    assert row, f"no row {row_attr}={row_value} in the rendered page"
    m = re.search(rf'<td[^>]*data-field="{field}"[^>]*>(.*?)</td>', row.group(1), re.S)
    assert m, f"no {field} cell in row {row_value}"
    return re.sub(r"<[^>]+>", "", m.group(1)).strip()


def colour_share(png, rgb, tolerance=12):
    img = Image.open(png).convert("RGB")
    px = img.get_flattened_data() if hasattr(img, "get_flattened_data") else img.getdata()
    hits = sum(1 for p in px if all(abs(a - b) <= tolerance for a, b in zip(p, rgb)))
    return hits / (img.width * img.height)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is installed by tests/run")
def test_the_status_page_renders_the_live_numbers(mock):
    config = CONFIG.format(mock=mock.url, dead=closed_port())
    env = {"STATUS_ADMIN_TOKEN": TOKEN}
    ledger = tempfile.mkdtemp(prefix="busbar-ledger-")
    with running_busbar(config, "--admin-listen", "127.0.0.1:0", "--ledger", ledger, env=env) as (port, seen):
        admin = admin_address(seen)
        key = admin_call(admin, "POST", "/admin/keys", {"name": "team-a", "environment": "prod"})["secret"]
        for _ in range(7):
            assert chat(port, key, "good") == 200
        # `down` is a closed port: its first failure opens its breaker (on that shard, then
        # everywhere).
        assert chat(port, key, "down") >= 500
        stats = admin_call(admin, "GET", "/stats")
        lanes = {l["lane"]: l for l in stats["lanes"]}
        assert lanes["good"]["requests"] == 7
        assert lanes["down"]["state"] == "open"

        page = f"http://{admin}/#token={TOKEN}"
        dom = chromium(page, "--dump-dom")
        assert 'data-ready="1"' in dom, "the page's script did not render /stats"
        assert cell(dom, "lane", "good", "requests") == "7"
        assert cell(dom, "lane", "good", "state") == "closed"
        assert cell(dom, "lane", "down", "state") == "open"
        assert cell(dom, "lane", "down", "failures") == str(lanes["down"]["failures"])
        assert cell(dom, "pool", "main", "requests") == "0"
        spend = [k for k in stats["top_keys"] if k["key"] == "team-a"][0]["spend_usd"]
        assert spend > 0
        assert cell(dom, "key", "team-a", "spend") == f"{spend:.6f}"

        # Live: more traffic, and the page shows it on its next load.
        for _ in range(3):
            assert chat(port, key, "main") == 200
        dom = chromium(page, "--dump-dom")
        assert cell(dom, "lane", "good", "requests") == "10"
        assert cell(dom, "pool", "main", "requests") == "3"

        # Without the token the page asks for it and shows no numbers.
        dom = chromium(f"http://{admin}/", "--dump-dom")
        assert "needs its token" in dom
        assert 'data-ready="1"' not in dom

        shot = tempfile.mktemp(suffix=".png")
        chromium(page, f"--screenshot={shot}")
        try:
            # The closed lane's green badge and the open lane's red one are drawn.
            assert colour_share(shot, (0x1A, 0x7F, 0x37)) > 0.0002, "no closed (green) badge in the screenshot"
            assert colour_share(shot, (0xCF, 0x22, 0x2E)) > 0.0002, "no open (red) badge in the screenshot"
        finally:
            os.unlink(shot)
