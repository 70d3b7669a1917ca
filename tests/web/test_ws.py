"""The /ws/<screen> frame stream: JPEG that decodes right, acks as backpressure, shared encodes."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import cv2
import numpy as np
import pytest

import passersby.web.bridge as bridge_module
from passersby.stream.frames import Frame, FrameHub
from passersby.web import KioskServer
from passersby.web.protocol import decode_frame_message, encode_frame_message
from .synthetic import HEIGHT, WIDTH, colour


async def receive_frame(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> tuple[dict, np.ndarray]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.BINARY, msg
    header, jpeg = decode_frame_message(msg.data)
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None, "the JPEG does not decode"
    return header, bgr[:, :, ::-1]


def run(coro):
    """asyncio.run in a thread of its own: Playwright's sync API may own this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(coro, 20)).result()


def test_frames_decode_to_the_published_size_and_colour(show):
    async def go():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(show.server.url + "ws/right") as ws:
                seen = []
                for _ in range(5):
                    header, rgb = await receive_frame(ws)
                    seen.append(header["index"])
                    assert rgb.shape == (HEIGHT, WIDTH, 3)
                    assert (header["screen"], header["width"], header["height"]) == ("right", WIDTH, HEIGHT)
                    assert header["key"] == {"frame": header["index"], "walk": "right"}
                    mean = rgb.reshape(-1, 3).mean(0)
                    assert np.abs(mean - colour("right", header["index"])).max() < 6, (mean, header)
                    await ws.send_str("ack")
                assert seen == sorted(set(seen))

    run(go())


def test_a_client_that_never_acks_gets_one_frame(show):
    async def go():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(show.server.url + "ws/left") as ws:
                first, _ = await receive_frame(ws)
                with pytest.raises(asyncio.TimeoutError):
                    await ws.receive(timeout=0.5)  # ~15 frames published meanwhile, none sent
                await ws.send_str("ack")
                newest, _ = await receive_frame(ws)
                assert newest["index"] > first["index"] + 5  # it skipped to the newest

    run(go())


def test_frame_streams_are_capped_and_a_closed_one_frees_its_place(show, monkeypatch):
    import passersby.web.app as app_module

    monkeypatch.setattr(app_module, "MAX_SOCKETS", 3)

    async def go():
        async with aiohttp.ClientSession() as session:
            open_ = [await session.ws_connect(show.server.url + f"ws/{s}") for s in ("left", "right", "left")]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(show.server.url + "ws/right")
            assert refused.value.status == 503
            assert show.server.turned_away.streams == 1  # counted for /metrics (issue 22)
            await open_.pop().close()
            for _ in range(50):  # the server notices the close
                try:
                    ws = await session.ws_connect(show.server.url + "ws/right")
                    break
                except aiohttp.WSServerHandshakeError:
                    await asyncio.sleep(0.05)
            await receive_frame(ws)
            for w in [*open_, ws]:
                await w.close()

    run(go())


def test_each_frame_is_encoded_once_for_all_clients(monkeypatch):
    calls = []

    def counting(frame, quality):
        calls.append(frame.index)
        return encode_frame_message(frame, quality)

    monkeypatch.setattr(bridge_module, "encode_frame_message", counting)
    hub = FrameHub(["a"])
    hub.publish(Frame("a", 7, np.full((8, 16, 3), 90, np.uint8)))  # a paused engine: one frame

    async def go(url):
        async with aiohttp.ClientSession() as session:
            sockets = [await session.ws_connect(url + "ws/a") for _ in range(3)]
            messages = [await ws.receive(timeout=5) for ws in sockets]
            for ws in sockets:
                await ws.close()
        return messages

    with KioskServer(hub, port=0) as server:
        messages = run(go(server.url))
    assert len({m.data for m in messages}) == 1
    assert decode_frame_message(messages[0].data)[0]["index"] == 7
    assert calls == [7]


def test_stop_closes_sockets_and_unsubscribes():
    hub = FrameHub(["a"])
    hub.publish(Frame("a", 0, np.zeros((8, 8, 3), np.uint8)))
    server = KioskServer(hub, port=0).start()
    closed = threading.Event()

    async def go():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(server.url + "ws/a") as ws:
                await receive_frame(ws)
                await ws.send_str("ack")
                await asyncio.get_running_loop().run_in_executor(None, server.stop)
                msg = await ws.receive(timeout=5)
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
                closed.set()

    run(go())
    assert closed.is_set() and not server.running
    assert hub._subscribers == []
    hub.publish(Frame("a", 1, np.zeros((8, 8, 3), np.uint8)))  # the publisher never notices


def test_publishing_costs_the_engine_almost_nothing(monkeypatch):
    """The engine's thread hands a frame over and goes on: it never waits for the server's loop
    (here stuck in a callback) and never encodes. (Its cost in time: benchmarks/stream.py, the
    live stream with the web sink beside the same stream with none.)"""
    calls = []
    monkeypatch.setattr(bridge_module, "encode_frame_message", lambda f, q: calls.append(f) or b"")
    hub = FrameHub(["a"])
    image = np.zeros((256, 256, 3), np.uint8)
    with KioskServer(hub, port=0) as server:
        (bridge,) = [callback.__self__ for callback in hub._subscribers]
        stuck, release = threading.Event(), threading.Event()
        server._loop.call_soon_threadsafe(lambda: (stuck.set(), release.wait(30)))
        assert stuck.wait(10)
        try:
            publisher = threading.Thread(target=lambda: [hub.publish(Frame("a", i, image)) for i in range(500)])
            publisher.start()
            publisher.join(10)
            assert not publisher.is_alive(), "publish waited for the server's event loop"
            assert bridge.latest("a") is None  # handed over, not yet taken: the loop was stuck all along
        finally:
            release.set()
        deadline = time.monotonic() + 10
        while (bridge.latest("a") or (0, Frame("a", -1, image)))[1].index != 499 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bridge.latest("a")[1].index == 499  # the loop took them all once free, the newest last
    assert calls == []  # no client, no JPEG
