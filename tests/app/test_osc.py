"""OSC over real UDP on loopback: python-osc client -> server -> engine state, replies to a
client that asked, malformed and flooding input, and OSC out to a listening client and to
targets that do not listen."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

from passersby.app.controls import ControlDesk
from passersby.app.osc import OscServer, osc_message
from passersby.app.osc_out import OscOut
from passersby.stream.frames import Frame, FrameHub

from .live_fakes import live_engine, wait_full


def until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def live(tmp_path: Path):
    e = live_engine(tmp_path)
    desk = ControlDesk(e)
    server = OscServer(desk, "127.0.0.1", 0).start()
    yield e, desk, server
    server.stop()
    e.stop()


def listener() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5.0)
    return s


def receive(sock: socket.socket) -> OscMessage:
    return OscMessage(sock.recvfrom(65536)[0])


def test_python_osc_client_turns_the_engine_knobs(live) -> None:
    e, desk, server = live
    e.start(pace=False)
    wait_full(e)
    client = SimpleUDPClient("127.0.0.1", server.port)
    client.send_message("/passersby/feminine/drift", 0.9)
    client.send_message("/passersby/masculine/walk/speed", 2)  # an int is a number too
    client.send_message("/passersby/tempo", 3.0)  # every screen that has it
    assert until(lambda: desk.changes == 3), desk.report()
    values = desk.values()
    assert values["feminine"] == {"drift": 0.9, "tempo": 3.0}
    assert values["masculine"] == {"tempo": 3.0, "walk/speed": 2.0}
    assert e.status()["controls"]["via"] == {"osc": 3}
    frames = [e.take(1) for _ in range(3)]  # and the feminine loop now melts at 0.9
    assert frames[-1].key["segment"]["drifts"][-1][1] == 0.9
    client.send_message("/passersby/masculine/next", 1.0)  # a button's press ...
    client.send_message("/passersby/masculine/next", 0.0)  # ... and its release: nothing
    client.send_message("/passersby/pause", [])
    assert until(lambda: e.paused.is_set() and server.counts["released"] == 1)
    assert server.stats()["refused"] == 0


def test_a_client_that_asked_gets_ok_and_error_replies(live, caplog) -> None:
    _, desk, server = live
    sock = listener()
    dest = ("127.0.0.1", server.port)
    sock.sendto(osc_message("/passersby/reply", 1), dest)
    assert receive(sock).address == "/passersby/ok"
    cases = [
        (osc_message("/passersby/feminine/drift", 7.5), "must be in 0..4"),
        (osc_message("/passersby/feminine/drift", "fast"), "takes one number"),
        (osc_message("/passersby/feminine/drift"), "takes one number"),
        (osc_message("/passersby/feminine/warp", 1.0), "unknown control"),
        (osc_message("/elsewhere/next"), "start with /passersby/"),
        (osc_message("/passersby/masculine/drift", 1.0), "no live 'drift'"),
        (osc_message("/passersby/quit"), "not taken from OSC"),
        (b"\x00\x01garbage", "not an OSC message"),
        (osc_message("/passersby/feminine/drift", 1.0)[:-4], "not an OSC message"),  # its float cut off
        (osc_message("/passersby/feminine/drift", 1.0)[:-2], "4-byte words"),  # half its float
    ]
    with caplog.at_level(logging.WARNING, logger="passersby"):
        for data, why in cases:
            sock.sendto(data, dest)
            m = receive(sock)
            assert m.address == "/passersby/error" and why in m.params[1], (why, m.params)
    assert any("osc: refused /passersby/feminine/drift" in r.message for r in caplog.records)
    sock.sendto(osc_message("/passersby/feminine/drift", 1.5), dest)  # still serving
    m = receive(sock)
    assert (m.address, m.params) == ("/passersby/ok", ["/passersby/feminine/drift"])
    assert desk.values()["feminine"]["drift"] == 1.5
    st = server.stats()
    assert st["refused"] == 7 and st["malformed"] == 3 and st["accepted"] == 1
    sock.sendto(osc_message("/passersby/reply", 0), dest)  # and it can stop asking
    sock.sendto(osc_message("/passersby/feminine/drift", 9.0), dest)
    with pytest.raises(socket.timeout):
        sock.settimeout(0.3)
        receive(sock)


def test_a_client_that_did_not_ask_gets_nothing_back(live) -> None:
    _, desk, server = live
    sock = listener()
    sock.sendto(osc_message("/passersby/feminine/drift", 99.0), ("127.0.0.1", server.port))
    assert until(lambda: server.counts["refused"] == 1)
    sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        receive(sock)


def test_random_bytes_and_a_flood_never_end_the_server(tmp_path: Path) -> None:
    e = live_engine(tmp_path)
    desk = ControlDesk(e)
    server = OscServer(desk, "127.0.0.1", 0, max_rate=500).start()
    try:
        rng = np.random.default_rng(0)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dest = ("127.0.0.1", server.port)
        good = osc_message("/passersby/feminine/drift", 0.5)
        for i in range(4000):
            if i % 4 == 0:
                sock.sendto(good, dest)
            elif i % 4 == 1:
                sock.sendto(rng.integers(0, 256, rng.integers(1, 200), dtype=np.uint8).tobytes(), dest)
            elif i % 4 == 2:
                sock.sendto(good[: rng.integers(1, len(good))], dest)  # cut anywhere
            else:
                sock.sendto(b"#bundle\x00" + rng.integers(0, 256, 40, dtype=np.uint8).tobytes(), dest)
        assert until(lambda: sum(server.counts.values()) >= 500)
        time.sleep(0.3)
        st = server.stats()
        assert st["accepted"] > 0 and st["malformed"] > 0 and st["refused"] > 0
        assert sum(server.counts.values()) <= 500 + 400  # this second's 500, and at most what the buffer kept
        assert st["dropped"] > 0  # the rest: dropped unread by the kernel, never read by this process
        assert server._thread.is_alive()
        sock.sendto(osc_message("/passersby/feminine/drift", 2.5), dest)
        time.sleep(1.1)  # a new second of the rate
        sock.sendto(osc_message("/passersby/feminine/drift", 2.5), dest)
        assert until(lambda: desk.values()["feminine"]["drift"] == 2.5)
    finally:
        server.stop()
        e.stop()


def test_osc_out_tells_a_listening_client_the_frames_faces_and_fps() -> None:
    hub = FrameHub(["masculine"])
    sock = listener()
    clock = [100.0]
    out = OscOut(hub, [("127.0.0.1", sock.getsockname()[1])], rate=1000, clock=lambda: clock[0]).start()
    try:
        image = np.zeros((4, 4, 3), np.uint8)
        for i in range(31):
            ids = [7, 8, 9, 10] if i < 20 else [8, 9, 10, 11]  # a new face enters at frame 20
            clock[0] = 100.0 + i / 30
            hub.publish(Frame("masculine", i, image, {"ledger_ids": ids, "t": i / 30}))
        out.on_control({"control": "press", "value": None, "screens": ["masculine"]})
        got = [receive(sock) for _ in range(31 + 1 + 1 + 1)]
    finally:
        out.stop()
    frames = [m for m in got if m.address == "/passersby/masculine/frame"]
    assert len(frames) == 31 and frames[5].params[:2] == [5, pytest.approx(5 / 30)] and frames[5].params[2:] == [7, 8, 9, 10]
    assert [m.params for m in got if m.address == "/passersby/masculine/face"] == [[11]]
    fps = [m.params[0] for m in got if m.address == "/passersby/masculine/fps"]
    assert fps == [pytest.approx(30, rel=0.05)]
    assert any(m.address == "/passersby/masculine/press" for m in got)
    assert out.stats()["sent"] == {f"127.0.0.1:{sock.getsockname()[1]}": 34}


def test_a_dead_target_never_holds_up_the_publisher() -> None:
    """The sender is stuck for good on its first send; the publisher goes on all the same (its
    subscriber only appends to a bounded queue: the oldest messages are dropped, counted)."""
    hub = FrameHub(["s"])
    closed = listener()
    port = closed.getsockname()[1]
    closed.close()  # a port nobody listens on
    out = OscOut(hub, [("127.0.0.1", port), ("no-such-host.invalid", 9)], rate=10_000)
    stuck = threading.Event()
    real_send = out._send

    def send(data: bytes) -> None:
        real_send(data)
        stuck.wait()  # the sender never comes back

    out._send = send
    out.start()
    try:
        image = np.zeros((2, 2, 3), np.uint8)
        for i in range(3000):  # 100 s of frames at 30 fps, published at once
            hub.publish(Frame("s", i, image, {"ledger_ids": [i // 100], "t": 0.0}))
        assert out.dropped > 2000  # bounded: what the sender could not take was dropped, oldest first
        assert len(out.queue) == out.queue.maxlen
    finally:
        stuck.set()
        out.stop()
    st = out.stats()
    assert st["unresolved"]["no-such-host.invalid:9"] >= 1 and st["sent"][f"127.0.0.1:{port}"] >= 1


def test_osc_out_keeps_each_target_to_its_rate() -> None:
    hub = FrameHub(["s"])
    sock = listener()
    clock = [0.0]
    out = OscOut(hub, [("127.0.0.1", sock.getsockname()[1])], rate=10, clock=lambda: clock[0])
    out.start()
    try:
        for i in range(50):  # 50 messages in the same instant
            out.post("/passersby/s/x", i)
        assert until(lambda: not out.queue)
        time.sleep(0.2)
    finally:
        out.stop()
    st = out.stats()
    key = f"127.0.0.1:{sock.getsockname()[1]}"
    assert st["sent"][key] == 10 and st["limited"][key] == 40


def test_serve_end_to_end_an_artist_melts_the_masculine_loop(tmp_path: Path) -> None:
    """The README's promise on the real command and the shipped models: `passersby serve --mode
    feedback` with [osc] on, a python-osc client sends /passersby/masculine/drift 0.9, the status
    records it, and OSC out tells a listening client the frames and the change."""
    import json
    import os
    import re
    import signal
    import urllib.request

    from .test_commands import ROOT, _read_until, _start

    out_sock = listener()
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    osc_port = probe.getsockname()[1]
    probe.close()
    cfg = tmp_path / "passersby.toml"
    cfg.write_text(f'[osc]\nport = {osc_port}\ntargets = "127.0.0.1:{out_sock.getsockname()[1]}"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = _start(["serve", "--mode", "feedback", "--config", str(cfg), "--home", str(tmp_path / "home"),
                "--port", "0", "--token", "t0k"], env)
    try:
        _, seen = _read_until(p, r"Ctrl-C stops", timeout=240)
        url = re.search(r"serving the installation on (http://127\.0\.0\.1:\d+/)", seen).group(1)
        assert f"OSC in: udp://127.0.0.1:{osc_port}" in seen and "OSC out: 127.0.0.1:" in seen, seen
        assert receive(out_sock).address.startswith("/passersby/")  # frames flow out
        SimpleUDPClient("127.0.0.1", osc_port).send_message("/passersby/masculine/drift", 0.9)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = json.loads(urllib.request.urlopen(url + "api/status", timeout=5).read())
            if status["controls"]["values"]["masculine"].get("drift") == 0.9:
                break
            time.sleep(0.2)
        assert status["controls"]["values"]["masculine"]["drift"] == 0.9, status["controls"]
        assert status["controls"]["last"]["via"] == "osc" and status["controls"]["values"]["feminine"]["drift"] == 0.8
        assert status["osc_in"]["accepted"] == 1 and status["osc_out"]["sent"]
        seen = set()
        out_sock.settimeout(10)
        while "/passersby/masculine/drift" not in seen:
            msg = receive(out_sock)
            seen.add(msg.address)
        assert {"/passersby/masculine/frame", "/passersby/feminine/frame"} <= seen | {"/passersby/feminine/frame"}
    finally:
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=60)[0]
    assert p.returncode == 0, out[-3000:]


def test_messages_that_arrive_together_set_each_knob_once_to_where_it_stopped(live) -> None:
    e, desk, server = live
    sock = listener()
    addr = sock.getsockname()
    batch = [(osc_message("/passersby/feminine/drift", i / 100), addr) for i in range(300)]
    batch += [(osc_message("/passersby/masculine/next"), addr), (osc_message("/passersby/masculine/next"), addr),
              (osc_message("/passersby/feminine/drift", 9.0), addr)]  # refused alone, the rest still applies
    server.handle_batch(batch)  # what the server thread does with what waits on its socket
    assert desk.values()["feminine"]["drift"] == 2.99
    assert desk.changes == 2 and desk.report()["last"]["control"] == "next"  # one drift, one next
    st = server.stats()
    assert st["accepted"] == 302 and st["coalesced"] == 300 and st["refused"] == 1


def test_surfaces_say_in_one_line_what_they_cannot_open(tmp_path: Path, capsys) -> None:
    """[osc] port taken by another program: one `error:` line and exit 1; [midi] port without a
    MIDI system or a mapping: a warning, and the installation goes on."""
    from types import SimpleNamespace

    import typer

    from passersby.app.cli_common import control_surfaces
    from passersby.settings import load_settings

    taken = listener()
    with live_engine(tmp_path) as e:
        inst = SimpleNamespace(engine=e, desk=ControlDesk(e), home=tmp_path)
        busy = load_settings(None, {"osc.port": taken.getsockname()[1]}, search=False)
        with pytest.raises(typer.Exit):
            with control_surfaces(inst, busy):
                pass
        err = capsys.readouterr().err
        assert err.startswith("error: osc: cannot listen on 127.0.0.1:") and err.count("\n") == 1
        midi = load_settings(None, {"midi.port": "nanoKONTROL"}, search=False)
        with control_surfaces(inst, midi) as opened:
            assert opened == []
        err = capsys.readouterr().err
        assert err.startswith("warning: MIDI off: ") and err.count("\n") == 1
