"""OSC in: a UDP server that turns Open Sound Control messages into control requests.

    /passersby/<screen>/drift f 0.9   ->  ControlDesk.apply("drift", 0.9, "<screen>", via="osc")
    /passersby/next                    ->  ControlDesk.apply("next", None, None, via="osc")

The address space is app/controls.CONTROLS under /passersby/ (docs/osc.md). Every message is
checked there: an unknown address, a wrong type or a value out of range is refused with a
warning line (the same kind of line at most once per `WARN_EVERY_S`, with the count of the
ones it stood for) and, for a client that asked with `/passersby/reply i 1`, an OSC reply
`/passersby/error ss` (address, why) to the address it sends from; accepted ones are answered
`/passersby/ok s` (address) then. Nothing a client sends ends the server.

A flood cannot slow the stream: the server reads at most `max_rate` datagrams a second, a tenth
of them in each tenth of a second (read in one burst a second, 1,000 datagrams held the interpreter
just when a change needed its frames rendered again), and then stops reading until the next tenth
(the kernel drops what overflows the socket's small buffer,
counted in /proc/net/udp: `dropped`); what it reads together is applied once per address, the
last value winning; and a control only swaps a value and drops frames rendered ahead
(stream/frame_queue.FrameQueue), it renders nothing itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from passersby.app.controls import Control, ControlDesk, ControlError, control, parse_address

log = logging.getLogger("passersby")

PREFIX = "/passersby/"
WARN_EVERY_S = 10.0  # one warning line per kind of refusal in this time
MAX_REPLY_CLIENTS = 64
BATCH = 512  # datagrams read together at most (then applied, the last value per address winning)
RATE_WINDOW_S = 0.1  # max_rate is spread over windows this long (max_rate x RATE_WINDOW_S in each)
RCVBUF = 256 * 1024  # the socket's receive buffer: a few hundred small datagrams
REPLIES_PER_S = 200  # per client: an answer to each message, but a flood gets no flood back


def osc_message(address: str, *args: Any) -> bytes:
    """The datagram of one OSC message; ints as i, floats as f, str as s, bools as T/F.

    Example:
        >>> osc_message("/passersby/next")[:16]
        b'/passersby/next\\x00'
    """
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


class WarnOnce:
    """Log a warning per kind at most once every `every` seconds, saying how many it stood for.

    Example:
        >>> w = WarnOnce(every=60.0); w("bad", "x"); w("bad", "y"); w.suppressed["bad"]
        1
    """

    def __init__(self, every: float = WARN_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self.last: dict[str, float] = {}
        self.suppressed: Counter[str] = Counter()

    def __call__(self, kind: str, message: str) -> None:
        now = self.clock()
        if now - self.last.get(kind, -1e18) < self.every:
            self.suppressed[kind] += 1
            return
        more = self.suppressed.pop(kind, 0)
        self.last[kind] = now
        log.warning("osc: %s%s", message, f" (and {more} more like it since the last line)" if more else "")


class OscServer:
    """Reads OSC datagrams on (host, port) in its own thread and applies them through `desk`.

    Args:
        desk: the installation's ControlDesk.
        host, port: where to listen (loopback by default; port 0 = any free port).
        max_rate: datagrams read per second at most; more are dropped unread (counted).
        clock: monotonic seconds (rate, warnings).

    Example:
        >>> server = OscServer(desk, "127.0.0.1", 9000).start()  # a built installation  # doctest: +SKIP
        >>> server.stats()["accepted"]  # a built installation  # doctest: +SKIP
        0
    """

    def __init__(self, desk: ControlDesk, host: str = "127.0.0.1", port: int = 9000, max_rate: int = 1000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.desk, self.host, self.max_rate, self.clock = desk, host, int(max_rate), clock
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        # Small: past max_rate the kernel drops what does not fit, and what waits is recent.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.sock.bind((host, port))
        self._inode = os.fstat(self.sock.fileno()).st_ino
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.counts: Counter[str] = Counter()  # accepted, refused, malformed, dropped (over max_rate)
        self.warn = WarnOnce(clock=clock)
        self.replies: dict[tuple, list[float]] = {}  # client address -> [window start, answers in it]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="passersby-osc", daemon=True)
        self._window = [0.0, 0]  # [start of this window (RATE_WINDOW_S), datagrams read in it]

    def start(self) -> "OscServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def stats(self) -> dict[str, Any]:
        return {"port": self.port, "dropped": self.dropped(),
                **{k: self.counts[k] for k in ("accepted", "coalesced", "refused", "malformed", "released")}}

    def _serve(self) -> None:
        while not self._stop.is_set():
            batch = self._read_batch()
            try:
                self.handle_batch(batch)
            except Exception as e:  # noqa: BLE001 - nothing a client sends may end the server
                self.counts["malformed"] += 1
                self.warn("error", f"a batch of messages could not be handled ({type(e).__name__}: {e})")

    def _read_batch(self) -> list[tuple[bytes, tuple]]:
        """The datagrams waiting now (at least one, or none after 0.2 s), at most BATCH. Past
        this tenth of a second's share of max_rate the server stops reading until the next: the kernel drops
        what overflows the socket's small buffer, so a flood costs this process nothing."""
        batch: list[tuple[bytes, tuple]] = []
        if self._spent():
            self.warn("flood", f"more than {self.max_rate} messages a second; the rest are dropped unread")
            self._stop.wait(max(0.001, self._window[0] + RATE_WINDOW_S - self.clock()))
            return batch
        self.sock.settimeout(0.2)
        while len(batch) < BATCH and not self._spent():
            try:
                data, addr = self.sock.recvfrom(65536)
            except (socket.timeout, BlockingIOError):
                break
            except OSError:
                break  # closed (stopping), or an ICMP error from a reply: nothing to read
            self._window[1] += 1
            batch.append((data, addr))
            self.sock.setblocking(False)  # the rest of what waits, without waiting
        return batch

    def _spent(self) -> bool:
        """Whether this window's share of max_rate (max_rate x RATE_WINDOW_S) has been read."""
        now = self.clock()
        if now - self._window[0] >= RATE_WINDOW_S:
            self._window = [now, 0]
        return self._window[1] >= max(1, round(self.max_rate * RATE_WINDOW_S))

    def dropped(self) -> int | None:
        """Datagrams the kernel dropped for this socket (its buffer full: a flood past
        max_rate), from /proc/net/udp; None where it cannot be read."""
        try:
            lines = Path("/proc/net/udp6" if self.sock.family == socket.AF_INET6 else "/proc/net/udp").read_text()
        except OSError:
            return None
        port = f":{self.port:04X}"
        for line in lines.splitlines()[1:]:
            f = line.split()
            if len(f) > 12 and f[1].endswith(port) and f[9] == str(self._inode):
                return int(f[-1])
        return None

    def handle_batch(self, batch: list[tuple[bytes, tuple]]) -> None:
        """Datagrams that arrived together: each checked, then applied with the last value per
        address winning (a knob moved 50 times in a millisecond is set once, to where it
        stopped; a button hit twice in one batch fires once)."""
        pending: dict[tuple[str, str | None], list[Any]] = {}  # (control, screen) -> [value, [(addr, address)]]
        for data, addr in batch:
            for address, args in self._messages(data, addr):
                req = self._check(address, args, addr)
                if req is None:
                    continue
                name, value, screen = req
                entry = pending.setdefault((name, screen), [value, []])
                entry[0] = value
                entry[1].append((addr, address))
        for (name, screen), (value, senders) in pending.items():
            try:
                self.desk.apply(name, value, screen, via="osc")
            except ControlError as e:
                self.counts["refused"] += len(senders)
                self.warn(f"refused {name}@{screen}", f"refused {senders[-1][1]} {value!r}: {e}")
                for addr, address in senders:
                    self._reply(addr, "/passersby/error", address, str(e))
                continue
            self.counts["accepted"] += len(senders)
            self.counts["coalesced"] += len(senders) - 1
            for addr, address in senders:
                self._reply(addr, "/passersby/ok", address)

    def handle_datagram(self, data: bytes, addr: tuple) -> None:
        """One datagram (a message or a bundle of them) from `addr`."""
        self.handle_batch([(data, addr)])

    def _messages(self, data: bytes, addr: tuple) -> list[tuple[str, list[Any]]]:
        """(address, arguments) of the messages in a datagram; [] (counted, answered) when it is not OSC."""
        try:
            if len(data) % 4:
                raise ParseError(f"{len(data)} bytes: OSC packets are whole 4-byte words")
            messages = [m.message for m in OscPacket(data).messages]
            if not data.startswith(b"#bundle") and not _complete(data):
                # python-osc reads arguments cut short as 0 (or half a float): refuse, do not guess
                raise ParseError("its arguments are shorter than its type tags say")
        except (ParseError, ValueError, IndexError, TypeError, UnicodeDecodeError) as e:
            self.counts["malformed"] += 1
            self.warn("malformed", f"not an OSC message from {addr[0]} ({e})")
            self._reply(addr, "/passersby/error", "", f"not an OSC message: {e}")
            return []
        return [(m.address, list(m.params)) for m in messages]

    def _check(self, address: str, args: list[Any], addr: tuple) -> tuple[str, Any, str | None] | None:
        """(control, value, screen) of a message, or None: a reply switch, a button's release, or
        refused (counted, a warning line, an error reply to a client that asked)."""
        if address in ("/passersby/reply", "/passersby/reply/"):
            self._set_reply(addr, args)
            return None
        try:
            if not address.startswith(PREFIX):
                raise ControlError(f"unknown address {address!r}: addresses start with {PREFIX} (docs/osc.md)")
            name, screen = parse_address(address[len(PREFIX):], self.desk.screens)
            c = control(name)
            value = _value(c, args, address)
            if value is RELEASE:
                self.counts["released"] += 1
                return None
            c.check(value)
        except ControlError as e:
            self.counts["refused"] += 1
            self.warn(f"refused {address[:80]}", f"refused {address} {args!r}: {e}")
            self._reply(addr, "/passersby/error", address, str(e))
            return None
        return name, value, screen

    def _set_reply(self, addr: tuple, args: list[Any]) -> None:
        on = not args or bool(args[0])
        if on and (addr in self.replies or len(self.replies) < MAX_REPLY_CLIENTS):
            self.replies[addr] = [self.clock(), 0]
            self._reply(addr, "/passersby/ok", "/passersby/reply")
        elif not on:
            self.replies.pop(addr, None)

    def _reply(self, addr: tuple, address: str, *args: Any) -> None:
        window = self.replies.get(addr)
        if window is None:
            return
        now = self.clock()
        if now - window[0] >= 1.0:
            window[0], window[1] = now, 0
        window[1] += 1
        if window[1] > REPLIES_PER_S:
            return
        try:
            self.sock.sendto(osc_message(address, *args), addr)
        except OSError:  # the client went away: forget it
            self.replies.pop(addr, None)


def _complete(data: bytes) -> bool:
    """Whether a message's numeric arguments fill the bytes its type tags ask for (python-osc
    reads a float cut short as 0, or as half a float). Messages with strings or blobs, and old
    ones without type tags, are left to python-osc's parser.

    Example:
        >>> d = osc_message("/a", 1.0, 2)
        >>> _complete(d), _complete(d[:-4])
        (True, False)
    """
    at = data.index(b"\0") + 4 & ~3  # the address, NUL-padded to a word
    if data[at:at + 1] != b",":
        return True
    end = data.index(b"\0", at)
    tags = data[at + 1:end].decode("ascii")
    if any(t in "sSb" for t in tags):
        return True
    need = sum(4 if t in "ifrmc" else 8 if t in "dht" else 0 for t in tags)
    return len(data) - (end + 4 & ~3) == need


RELEASE = object()  # a button's 0 (its release): nothing to do, no warning


def _value(c: Control, args: list[Any], address: str) -> Any:
    """The request's value from the message's arguments: a trigger takes none (or one number,
    as buttons send 1 on press and 0 on release: 0 is RELEASE, passed over quietly); a knob
    exactly one int or float."""
    if c.trigger:
        if not args:
            return None
        if len(args) == 1 and isinstance(args[0], (int, float)) and not isinstance(args[0], bool):
            return RELEASE if args[0] == 0 else None
        raise ControlError(f"{address} takes no argument (or one number, a button's 1), got {args!r}")
    if len(args) != 1 or isinstance(args[0], bool) or not isinstance(args[0], (int, float)):
        raise ControlError(f"{address} takes one number (f or i), got {args!r}")
    # OSC's f is a 32-bit float: 0.9 arrives as 0.8999999761...; its 7 digits are what was sent.
    return float(f"{args[0]:.7g}") if isinstance(args[0], float) else float(args[0])
