"""The kiosk's HTTP API and pages: status, token-checked controls, 404s, no 500s."""

from __future__ import annotations

import json

import numpy as np
import pytest

from webtest import request
from passersby.stream.frames import FrameHub
from passersby.web import KioskServer, control_url
from .synthetic import SCREENS




def post_control(show, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    status, raw, _ = request(show.server.url + "api/control", body, headers, "POST")
    return status, json.loads(raw)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_status_is_the_hub_status_plus_screens(show):
    status, raw, headers = request(show.server.url + "api/status")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    body = json.loads(raw)
    assert body["screens"] == SCREENS
    assert body["model"] == "synthetic" and body["ledger_size"] == 1234


def test_urls_and_token(show):
    server = show.server
    assert server.url == f"http://127.0.0.1:{server.port}/" and server.port > 0
    assert control_url(server) == server.control_url == f"{server.url}?token=test-token-123"
    assert server.screen_url("left") == f"{server.url}screen/left"
    generated = KioskServer(show.hub, port=0)
    assert len(generated.token) >= 16 and generated.token != KioskServer(show.hub).token


@pytest.mark.parametrize("headers, expected", [
    ({}, 401),
    ({"Authorization": "Bearer wrong"}, 403),
    ({"X-Passersby-Token": "wrong"}, 403),
    ({"Authorization": "Bearer t\u00e9st"}, 403),  # non-ASCII must not break compare_digest
    ({"Authorization": "Basic dGVzdA=="}, 401),
])
def test_control_refuses_missing_or_wrong_tokens(fresh, headers, expected):
    status, body = post_control(fresh, b'{"action": "next"}', headers)
    assert status == expected and "error" in body
    assert fresh.controls.actions == []


@pytest.mark.parametrize("headers", [bearer("test-token-123"), {"X-Passersby-Token": "test-token-123"}])
def test_control_with_the_token_reaches_the_controls(fresh, headers):
    status, body = post_control(fresh, b'{"action": "pause"}', headers)
    assert (status, body) == (200, {"ok": True, "action": "pause"})
    assert fresh.controls.actions == ["pause"]


@pytest.mark.parametrize("body", [
    b"", b"not json", b"\xff\xfe", b"[1, 2]", b"null", b'{"action": 3}', b'{"action": "explode"}',
    b'{"nothing": "here"}', b"[" * 5000 + b"]" * 5000,
    b'{"action": "exactingness"}', b'{"action": "exactingness", "value": 1.5}',
    b'{"action": "exactingness", "value": "high"}', b'{"action": "next", "value": 1}',
    b'{"action": "press", "screen": 3}', b'{"action": "press", "screen": "nowhere"}',
    b'{"action": "pause", "screen": "left"}',
])
def test_control_rejects_bad_bodies_with_400(fresh, body):
    status, reply = post_control(fresh, body, bearer("test-token-123"))
    assert status == 400 and "error" in reply
    assert fresh.controls.actions == []


def test_a_press_or_next_may_name_its_screen(fresh):
    status, body = post_control(fresh, b'{"action": "press", "screen": "right"}', bearer("test-token-123"))
    assert (status, body) == (200, {"ok": True, "action": "press", "screen": "right"})
    status, body = post_control(fresh, b'{"action": "next", "screen": "left"}', bearer("test-token-123"))
    assert status == 200 and fresh.controls.actions == ["press@right", "next@left"]


def test_exactingness_takes_a_value_in_0_1(fresh):
    status, body = post_control(fresh, b'{"action": "exactingness", "value": 0.25}', bearer("test-token-123"))
    assert (status, body) == (200, {"ok": True, "action": "exactingness", "value": 0.25})
    assert fresh.controls.actions == ["exactingness=0.25"]


def test_control_without_hub_controls_is_403():
    hub = FrameHub(["a"])  # no controls
    with KioskServer(hub, port=0, token="t") as server:
        status, raw, _ = request(server.url + "api/control", b'{"action": "next"}', bearer("t"), "POST")
    assert status == 403 and "no control" in json.loads(raw)["error"]


def test_wrong_methods_are_405(show):
    assert request(show.server.url + "api/control")[0] == 405
    assert request(show.server.url + "api/status", b"{}", method="POST")[0] == 405


def test_pages_and_404s(show):
    url = show.server.url
    status, raw, headers = request(url)
    assert status == 200 and b"/static/overview.js" in raw
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    status, raw, _ = request(url + "screen/left")
    assert status == 200 and b'"screen": "left"' in raw
    status, raw, _ = request(url + "screen/nobody")
    assert status == 404 and b"notfound.js" in raw
    assert request(url + "no/such/page")[0] == 404
    assert request(url + "ws/nobody")[0] == 404
    for asset in ("kiosk.css", "stream.js", "overview.js", "screen.js", "notfound.js"):
        assert request(url + "static/" + asset)[0] == 200, asset


def test_page_config_says_whether_the_token_is_right(show):
    def config(query: str) -> dict:
        raw = request(show.server.url + "screen/left" + query)[1].decode()
        return json.loads(raw.split('type="application/json">', 1)[1].split("</script>", 1)[0])

    assert config("")["controls"] == "missing"
    assert config("?token=nope")["controls"] == "wrong"
    assert config("?token=test-token-123")["controls"] == "ok"


def test_screen_names_cannot_inject_markup():
    hub = FrameHub(["</script><b>x", "{{config}}"])
    with KioskServer(hub, port=0) as server:
        raw = request(server.url + "screen/%3C%2Fscript%3E%3Cb%3Ex")[1].decode()
        assert "</script><b>" not in raw and "\\u003c/script\\u003e" in raw
        assert request(server.url + "screen/%7B%7Bconfig%7D%7D")[0] == 200


def test_failing_or_odd_status_is_not_a_500():
    def broken() -> dict:
        raise RuntimeError("engine busy")

    with KioskServer(FrameHub(["a"], status=broken), port=0) as server:
        status, raw, _ = request(server.url + "api/status")
        assert status == 503 and "engine busy" in json.loads(raw)["error"]
    odd = {"fps": np.float32(29.5), "shape": np.array([2, 3]), "when": object()}
    with KioskServer(FrameHub(["a"], status=lambda: odd), port=0) as server:
        body = json.loads(request(server.url + "api/status")[1])
        assert body["fps"] == 29.5 and body["shape"] == [2, 3] and body["screens"] == ["a"]


def test_start_stop_restart_and_errors(show):
    server = KioskServer(FrameHub(["a"]), port=0)
    with pytest.raises(OSError, match="cannot listen"):
        KioskServer(show.hub, port=show.server.port).start()
    with pytest.raises(ValueError, match="jpeg_quality"):
        KioskServer(show.hub, jpeg_quality=0)
    server.start()
    with pytest.raises(RuntimeError, match="already running"):
        server.start()
    server.stop()
    assert not server.running
    server.stop()  # twice is fine
    with server:
        assert request(server.url + "api/status")[0] == 200
    assert not server.running


def post_capture(server, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    status, raw, _ = request(server.url + "api/capture", body, headers, "POST")
    return status, json.loads(raw)


def test_capture_needs_the_token_and_a_known_screen(fresh):
    fresh.captured.clear()
    assert post_capture(fresh.server, b'{"screen": "left"}')[0] == 401
    assert post_capture(fresh.server, b'{"screen": "left"}', bearer("wrong"))[0] == 403
    status, body = post_capture(fresh.server, b'{"screen": "middle"}', bearer("test-token-123"))
    assert status == 400 and "unknown screen 'middle'" in body["error"]
    assert post_capture(fresh.server, b"not json", bearer("test-token-123"))[0] == 400
    assert fresh.captured == []
    status, body = post_capture(fresh.server, b'{"screen": "right"}', bearer("test-token-123"))
    assert status == 200 and body["ok"] and body["id"].startswith("cap-right-")
    assert [s for s, _ in fresh.captured] == ["right"]


def test_capture_without_a_capturer_is_501_and_errors_are_409():
    hub = FrameHub(["a"])
    server = KioskServer(hub, port=0, token="t").start()
    try:
        assert post_capture(server, b'{"screen": "a"}', bearer("t"))[0] == 501
    finally:
        server.stop()

    def refuse(screen):
        raise ValueError(f"screen {screen!r} has shown nothing yet")

    server = KioskServer(hub, port=0, token="t", capture=refuse).start()
    try:
        status, body = post_capture(server, b'{"screen": "a"}', bearer("t"))
        assert status == 409 and "shown nothing yet" in body["error"]
    finally:
        server.stop()


def _raw(server, data: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as c:
        c.sendall(data)
        return c.recv(4096)


def test_foreign_hosts_and_origins_are_refused(show):
    """Issue 11: DNS rebinding could read /api/status; the WebSocket took any Origin."""
    url = show.server.url
    assert request(url + "api/status", headers={"Host": "evil.example:80"})[0] == 403
    assert request(url + "api/status", headers={"Host": f"localhost:{show.server.port}"})[0] == 200
    status, _, _ = request(url + "api/control", b'{"action": "pause"}',
                           {**bearer("test-token-123"), "Origin": "http://evil.example"}, "POST")
    assert status == 403
    ws = (f"GET /ws/left HTTP/1.1\r\nHost: 127.0.0.1:{show.server.port}\r\nUpgrade: websocket\r\n"
          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
    assert _raw(show.server, (ws + "Origin: http://evil.example\r\n\r\n").encode()).startswith(b"HTTP/1.1 403")
    assert _raw(show.server, (ws + f"Origin: http://127.0.0.1:{show.server.port}\r\n\r\n").encode()).startswith(b"HTTP/1.1 101")


def test_malformed_requests_get_400_and_one_log_line(show, caplog):
    """Issue 11: a 9 KB path, a 70 KB header or bad chunking printed full tracebacks."""
    import logging

    with caplog.at_level(logging.WARNING, logger="aiohttp.server"):
        for data in (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 70000 + b"\r\n\r\n",
                     b"POST /api/control HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
            assert _raw(show.server, data).startswith(b"HTTP/1.0 400")
        import time

        time.sleep(0.2)
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(records) == 3 and all(r.levelname == "WARNING" and r.exc_info is None for r in records)
    assert all("\n" not in r.getMessage() and "bad request refused" in r.getMessage() for r in records)


def test_slow_headers_are_cut_off(monkeypatch):
    """Issue 11: 300 slowloris connections (a header byte now and then) were all kept open."""
    import socket
    import time

    import passersby.web.threaded as threaded

    monkeypatch.setattr(threaded, "HEAD_DEADLINE_S", 0.5)
    server = KioskServer(FrameHub(["a"]), port=0, token="t").start()
    try:
        slow = []
        for _ in range(50):
            c = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            c.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            slow.append(c)
        assert request(server.url + "api/status")[0] == 200  # a normal client is served meanwhile
        time.sleep(1.0)
        closed = 0
        for c in slow:
            c.settimeout(0.3)
            try:
                c.sendall(b"a")
                closed += c.recv(1) == b""  # the server closed it
            except TimeoutError:  # still open, waiting for the rest of the header
                pass
            except OSError:  # reset by the server
                closed += 1
            c.close()
        assert closed == 50
        assert request(server.url + "api/status")[0] == 200
    finally:
        server.stop()


def _get_on(c, path: str = "/api/status") -> None:
    """One full request on an open connection, its response read to the end (Content-Length)."""
    c.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += c.recv(4096)
    head, body = buf.split(b"\r\n\r\n", 1)
    length = int(next(l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")))
    while len(body) < length:
        body += c.recv(4096)


def test_idle_or_slow_later_requests_on_a_kept_alive_connection_are_cut_off(monkeypatch):
    """The first request's headers had a deadline, later ones on the same connection did not:
    aiohttp's keep-alive default is an hour, so one quick request and then a trickle (or
    silence) held a connection for an hour, and 1,024 of them the server's file descriptors."""
    import socket
    import time

    import passersby.web.threaded as threaded

    monkeypatch.setattr(threaded, "KEEPALIVE_S", 0.5)
    server = KioskServer(FrameHub(["a"]), port=0, token="t").start()
    try:
        slow, idle = [], []
        for i in range(40):
            c = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            _get_on(c)
            if i % 2:
                c.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # then a trickle
                slow.append(c)
            else:
                idle.append(c)  # then nothing
        busy = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:  # a page polling its status: kept alive throughout
            _get_on(busy)
            for c in slow:
                try:
                    c.sendall(b"a")
                except OSError:  # already cut off
                    pass
            time.sleep(0.2)
        _get_on(busy)
        closed = 0
        for c in slow + idle:
            c.settimeout(0.3)
            try:
                c.sendall(b"a")
                closed += c.recv(1) == b""  # the server closed it
            except TimeoutError:  # still open
                pass
            except OSError:  # reset by the server
                closed += 1
            c.close()
        busy.close()
        assert closed == 40
    finally:
        server.stop()


def test_connections_beyond_the_cap_are_turned_away_until_others_close(monkeypatch):
    """A client opening connections without end used up the process's file descriptors."""
    import socket
    import time

    import passersby.web.threaded as threaded

    monkeypatch.setattr(threaded, "MAX_CONNECTIONS", 20)
    server = KioskServer(FrameHub(["a"]), port=0, token="t").start()
    try:
        flood = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(20)]
        for c in flood:  # each asks once and keeps its connection (keep-alive): places in use
            c.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert c.recv(12).startswith(b"HTTP/1.1 200")
        time.sleep(0.2)  # the server has taken them
        extra = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        try:
            extra.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert extra.recv(1) == b""  # closed unanswered
        except OSError:  # or reset
            pass
        extra.close()
        for c in flood:
            c.close()
        time.sleep(0.2)
        assert request(server.url + "api/status")[0] == 200  # the places are free again
        again = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(19)]
        assert request(server.url + "api/status")[0] == 200  # the 20th place: served
        for c in again:
            c.close()
    finally:
        server.stop()


def test_a_flood_of_silent_connections_cannot_lock_out_health(monkeypatch):
    """Issue 22: 300 idle local connections (connected, nothing sent) turned /api/health away for
    up to 10 s. At the cap a newcomer now takes the place of the oldest silent connection."""
    import socket

    import passersby.web.threaded as threaded

    monkeypatch.setattr(threaded, "MAX_CONNECTIONS", 20)
    server = KioskServer(FrameHub(["a"]), port=0, token="t").start()
    try:
        flood = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(30)]
        for _ in range(3):
            status, body, _ = request(server.url + "api/health")
            assert status in (200, 503) and b'"status"' in body  # answered, not reset
        evicted = 0
        for c in flood:  # the oldest silent ones were closed to make room (well before the 10 s deadline)
            c.settimeout(0.1)
            try:
                evicted += c.recv(1) == b""
            except (TimeoutError, socket.timeout):
                pass
            except OSError:
                evicted += 1
            c.close()
        # 10 beyond the cap, then the first request (it frees its place when answered)
        assert evicted >= 11 and server.turned_away.connections >= 11
    finally:
        server.stop()


def test_every_loopback_name_is_answered_on_a_loopback_server(show):
    """Issue 22: `Host: [::1]` (no port) got 403; a DNS-rebinding domain still does."""
    url, port = show.server.url, show.server.port
    for host in ("[::1]", f"[::1]:{port}", "localhost", "LOCALHOST.", "127.0.0.2", f"127.0.0.1:{port}",
                 "[::ffff:127.0.0.1]", "kiosk.localhost"):
        assert request(url + "api/status", headers={"Host": host})[0] == 200, host
    for host in ("evil.example", f"evil.example:{port}", "localhost:1", "127.0.0.1.evil.example", "[::2]"):
        assert request(url + "api/status", headers={"Host": host})[0] == 403, host


def test_connections_turned_away_are_counted_in_metrics_and_logged_once(monkeypatch, caplog):
    """Issue 22: connections closed at the caps left no trace anywhere."""
    import logging
    import socket
    import time

    import passersby.web.threaded as threaded

    monkeypatch.setattr(threaded, "MAX_CONNECTIONS", 3)
    hub = FrameHub(["a"], metrics=lambda: b"passersby_frames_shown_total 3.0\n")
    server = KioskServer(hub, port=0, token="t").start()
    try:
        with caplog.at_level(logging.WARNING, logger="passersby.web.threaded"):
            held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3)]
            extra = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(4)]
            deadline = time.monotonic() + 10
            while server.turned_away.connections < 4 and time.monotonic() < deadline:
                time.sleep(0.02)  # the server's loop takes them in its own time
            for c in held + extra:
                c.close()
            status, raw = None, b""
            while status != 200 and time.monotonic() < deadline:
                try:  # a place frees once the server's loop sees a close; until then this is turned away too
                    status, raw, _ = request(server.url + "metrics")
                except OSError:
                    time.sleep(0.02)
        assert status == 200, raw
        n = server.turned_away.connections  # 4, plus any /metrics request that came too early
        assert n >= 4 and f'passersby_web_turned_away_total{{cap="connections"}} {n}\n'.encode() in raw, raw
        assert b'passersby_web_turned_away_total{cap="streams"} 0\n' in raw
        assert raw.startswith(b"passersby_frames_shown_total 3.0\n")  # the engine's metrics are kept
        lines = [r.getMessage() for r in caplog.records if "turned away" in r.getMessage()]
        assert len(lines) == 1 and "kiosk server turned away 1 connection(s)" in lines[0], lines
    finally:
        server.stop()


def test_turned_away_is_logged_at_most_once_a_minute_saying_how_many_since(caplog):
    import logging

    from passersby.web.threaded import TurnedAway

    now = [0.0]
    t = TurnedAway("kiosk server", log_every_s=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="passersby.web.threaded"):
        for at, cap in ((0.0, "connections"), (1.0, "streams"), (59.0, "connections"), (61.0, "streams"),
                        (62.0, "connections")):
            now[0] = at
            t.count(cap)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "turned away 1 connection(s)" in lines[0] and "turned away 3 connection(s)" in lines[1], lines
    assert "(5 in all" not in lines[1] and "(4 in all: 2 with too many connections open, 2 with too many frame streams)" in lines[1]
    assert (t.connections, t.streams) == (3, 2)
    with pytest.raises(ValueError):
        t.count("sockets")


def test_health_and_metrics_need_no_token_and_say_failing_with_503():
    state = {"status": "ok", "reasons": []}
    hub = FrameHub(["a"], health=lambda: dict(state), metrics=lambda: b"passersby_frames_shown_total 3.0\n")
    server = KioskServer(hub, port=0, token="t").start()
    try:
        status, raw, _ = request(server.url + "api/health")
        assert status == 200 and json.loads(raw)["status"] == "ok"
        state.update(status="failing", reasons=["screen a has shown nothing for 5 s"])
        status, raw, _ = request(server.url + "api/health")
        assert status == 503 and json.loads(raw)["reasons"] == ["screen a has shown nothing for 5 s"]
        status, raw, headers = request(server.url + "metrics")
        assert status == 200 and raw.startswith(b"passersby_frames_shown_total") and "text/plain" in headers["Content-Type"]
    finally:
        server.stop()
    bare = KioskServer(FrameHub(["a"]), port=0, token="t").start()
    try:
        assert request(bare.url + "api/health")[0] == 503 and request(bare.url + "metrics")[0] == 404
    finally:
        bare.stop()
