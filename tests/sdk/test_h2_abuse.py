"""HTTP/2 abuse against busbar's h2 server, with frames built by the `h2` / `hyperframe` /
`hpack` packages over h2c (prior knowledge): rapid reset (CVE-2023-44487), a CONTINUATION
flood, and a header list over the limit. Each is cut off (GOAWAY or RST_STREAM), and busbar
goes on serving other clients.
"""

import json
import socket
import urllib.request

import h2.config
import h2.connection
import h2.events
import hpack
import pytest
from hyperframe.frame import ContinuationFrame, HeadersFrame

from conftest import running_busbar

CONFIG = """
listen = "127.0.0.1:0"
shards = 1
[limits]
max_head_bytes = 16384
write_timeout_ms = 500
[http2]
cleartext = true
max_pending_resets = 32
[providers.builtin]
protocol = "openai"
mock = { tokens = 4 }
[models.mock]
provider = "builtin"
"""

BODY = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture(scope="module", params=["io_uring", "epoll"])
def h2c(request):
    with running_busbar(CONFIG, "--driver", request.param, "--admin-listen", "off", "--ledger", "off") as (port, _):
        yield port


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c


def request_headers(port, extra=()):
    return [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":scheme", "http"),
        (":authority", f"127.0.0.1:{port}"),
        ("content-type", "application/json"),
        *extra,
    ]


def events_until_closed(s, c, limit=1000):
    """Reads what busbar sends until it closes the connection (or `limit` reads)."""
    seen = []
    for _ in range(limit):
        try:
            data = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not data:
            break
        try:
            seen.extend(c.receive_data(data))
            s.sendall(c.data_to_send())
        except (h2.exceptions.ProtocolError, BrokenPipeError, ConnectionResetError):
            break
        if any(isinstance(e, h2.events.ConnectionTerminated) for e in seen):
            break
    return seen


def served(port):
    """An ordinary h2 request on a new connection gets its answer."""
    s, c = connect(port)
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, request_headers(port))
    c.send_data(sid, BODY, end_stream=True)
    s.sendall(c.data_to_send())
    status, body = None, b""
    while True:
        data = s.recv(65536)
        assert data, "closed before the answer"
        for e in c.receive_data(data):
            if isinstance(e, h2.events.ResponseReceived):
                status = dict(e.headers)[":status"]
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
                c.acknowledge_received_data(e.flow_controlled_length, sid)
            elif isinstance(e, h2.events.StreamEnded):
                s.close()
                return status, json.loads(body)
        s.sendall(c.data_to_send())


def test_an_ordinary_h2_client_is_served(h2c):
    status, body = served(h2c)
    assert status == "200"
    assert body["choices"][0]["message"]["content"]


def test_rapid_reset_is_cut_off_with_enhance_your_calm(h2c):
    s, c = connect(h2c)
    sent = 0
    try:
        for _ in range(2000):
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, request_headers(h2c))
            c.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
            s.sendall(c.data_to_send())
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    seen = events_until_closed(s, c)
    goaway = [e for e in seen if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway, f"no GOAWAY after {sent} reset streams: {seen[:5]}"
    assert goaway[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert sent < 2000 or goaway
    # Everyone else is still served.
    assert served(h2c)[0] == "200"


def test_a_continuation_flood_is_bounded(h2c):
    s, c = connect(h2c)
    sid = c.get_next_available_stream_id()
    enc = hpack.Encoder()
    first = HeadersFrame(sid)
    first.data = enc.encode(request_headers(h2c))
    first.flags.add("END_STREAM")  # and no END_HEADERS: CONTINUATION frames follow
    s.sendall(first.serialize())
    sent = 0
    cut = False
    try:
        # Up to 64 MiB of header block (the limit is 16 KiB); busbar must stop reading it.
        for i in range(4096):
            frame = ContinuationFrame(sid)
            frame.data = enc.encode([(f"x-flood-{i}", "v" * 16000)])
            s.sendall(frame.serialize())
            sent += len(frame.data)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        cut = True
    if not cut:
        seen = events_until_closed(s, c)
        assert any(isinstance(e, (h2.events.ConnectionTerminated, h2.events.StreamReset)) for e in seen), seen[:5]
    assert sent < 64 * 1024 * 1024
    assert served(h2c)[0] == "200"


def test_a_header_list_over_the_limit_is_refused(h2c):
    s, c = connect(h2c)
    sid = c.get_next_available_stream_id()
    big = [(f"x-big-{i}", "v" * 1000) for i in range(40)]  # 40 KB > 16 KiB
    c.send_headers(sid, request_headers(h2c, big), end_stream=True)
    s.sendall(c.data_to_send())
    seen = events_until_closed(s, c, limit=20)
    statuses = [dict(e.headers).get(":status") for e in seen if isinstance(e, h2.events.ResponseReceived)]
    refused = [e for e in seen if isinstance(e, (h2.events.StreamReset, h2.events.ConnectionTerminated))]
    assert statuses in (["431"], []) and (statuses or refused), seen[:5]
    assert served(h2c)[0] == "200"


def test_the_servers_settings_are_the_configured_limits(h2c):
    s, c = connect(h2c)
    seen = []
    while not any(isinstance(e, h2.events.RemoteSettingsChanged) for e in seen):
        data = s.recv(65536)
        assert data, "closed before SETTINGS"
        seen.extend(c.receive_data(data))
    settings = next(e for e in seen if isinstance(e, h2.events.RemoteSettingsChanged)).changed_settings
    got = {k: v.new_value for k, v in settings.items()}
    S = h2.settings.SettingCodes
    assert got[S.MAX_CONCURRENT_STREAMS] == 128
    assert got[S.INITIAL_WINDOW_SIZE] == 1024 * 1024
    assert got[S.MAX_FRAME_SIZE] == 16384
    assert got[S.MAX_HEADER_LIST_SIZE] == 16384  # limits.max_head_bytes
    s.close()


def test_a_client_that_grants_no_window_is_let_go(h2c):
    """A client whose stream window is 0 never takes a byte of the answer: busbar gives up after
    write_timeout_ms (the stream is reset) instead of holding the stream, its task and the
    connection for ever."""
    s = socket.create_connection(("127.0.0.1", h2c), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.local_settings = h2.settings.Settings(client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    c.initiate_connection()
    s.sendall(c.data_to_send())
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, request_headers(h2c))
    c.send_data(sid, BODY, end_stream=True)
    s.sendall(c.data_to_send())
    seen = []
    while not any(isinstance(e, h2.events.StreamReset) for e in seen):
        data = s.recv(65536)
        assert data, f"closed without a reset: {seen}"
        seen.extend(c.receive_data(data))
        s.sendall(c.data_to_send())
    assert not any(isinstance(e, h2.events.StreamEnded) for e in seen)
    s.close()
    assert served(h2c)[0] == "200"
