"""The wire format of the kiosk's `/ws/<screen>` WebSocket: one binary message per frame.

Server -> client, one binary message per frame::

    [4 bytes: N, uint32 big-endian][N bytes: UTF-8 JSON header][JPEG bytes]

The header is ``{"screen": str, "index": int, "width": int, "height": int, "key": {...}}``
(`key` is the frame's identity from stream/walker.py). Keeping header and picture in one
message means they can never be paired wrongly, and the whole message is built once per frame
and shared by every client.

Client -> server: any message (the page sends the text "ack") after it has drawn a frame. The
server sends the next frame only after that ack, always the newest one, so a slow client skips
frames and never builds a queue.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import cv2
import numpy as np

from passersby.stream.frames import Frame

_LEN = struct.Struct(">I")


def frame_header(frame: Frame) -> dict[str, Any]:
    """The JSON header sent with `frame` (see the module docstring)."""
    h, w = frame.image.shape[:2]
    return {"screen": frame.screen, "index": frame.index, "width": w, "height": h, "key": frame.key}


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 RGB image, at full size.

    Example:
        >>> encode_jpeg(np.zeros((8, 8, 3), np.uint8))[:2]
        b'\\xff\\xd8'
    """
    # OpenCV encodes BGR; a view with reversed channels costs one copy inside imencode.
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} image as JPEG")
    return buf.tobytes()


def encode_frame_message(frame: Frame, quality: int = 90) -> bytes:
    """The binary WebSocket message for `frame`: length-prefixed JSON header, then JPEG.

    Args:
        frame: the frame to send.
        quality: JPEG quality, 1..100.

    Example:
        >>> msg = encode_frame_message(Frame("a", 3, np.zeros((8, 8, 3), np.uint8)))
        >>> decode_frame_message(msg)[0]["index"]
        3
    """
    # default=str: a key is meant to be JSON-able, but a stray numpy scalar must not stop the show.
    header = json.dumps(frame_header(frame), separators=(",", ":"), default=str).encode()
    return _LEN.pack(len(header)) + header + encode_jpeg(frame.image, quality)


def decode_frame_message(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a frame message into (header dict, JPEG bytes); ValueError if malformed."""
    if len(data) < _LEN.size:
        raise ValueError(f"frame message too short: {len(data)} bytes")
    (n,) = _LEN.unpack_from(data)
    if _LEN.size + n > len(data):
        raise ValueError(f"frame message header length {n} exceeds the message ({len(data)} bytes)")
    header = json.loads(data[_LEN.size:_LEN.size + n])
    return header, bytes(data[_LEN.size + n:])
