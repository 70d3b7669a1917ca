"""Each backend class satisfies the `Ledger` protocol in full, with the protocol's parameters.

isinstance on opened ledgers is test_contract.py's first test; here the classes themselves are
compared with the protocol, without a database, so a member added to one backend and not the
others (or to the protocol and not a backend) fails at once.
"""

from __future__ import annotations

import inspect

import pytest

from passersby.stream.ledger import LeasedLedger, Ledger, PgLedger, SqliteLedger

BACKENDS = [SqliteLedger, PgLedger, LeasedLedger]
METHODS = sorted(n for n, v in vars(Ledger).items()
                 if callable(v) and (not n.startswith("_") or n in ("__enter__", "__exit__", "__len__")))
ATTRIBUTES = sorted(Ledger.__annotations__)


def _public_methods(cls: type) -> set[str]:
    return {n for n, v in inspect.getmembers(cls) if not n.startswith("_") and callable(v)}


def test_the_protocol_names_the_whole_interface():
    assert METHODS == ["__enter__", "__exit__", "__len__", "anchor", "check", "claim", "close", "contains_near",
                       "copy_in", "export", "integrity_check", "latest", "recent", "rng_states", "rows_for_copy",
                       "stats"]
    assert ATTRIBUTES == ["channel", "dim", "where"]
    # What all three backends offer is the protocol; what only some offer stays theirs.
    common = set.intersection(*(_public_methods(c) for c in BACKENDS))
    assert common == {m for m in METHODS if not m.startswith("_")}


@pytest.mark.parametrize("cls", BACKENDS, ids=lambda c: c.__name__)
def test_each_backend_has_every_method_with_the_protocols_parameters(cls):
    for name in METHODS:
        want, got = inspect.signature(getattr(Ledger, name)), inspect.signature(getattr(cls, name))
        assert [(p.name, p.kind, p.default) for p in got.parameters.values()] == [
            (p.name, p.kind, p.default) for p in want.parameters.values()], f"{cls.__name__}.{name}{got}"


@pytest.mark.parametrize("cls", BACKENDS, ids=lambda c: c.__name__)
def test_an_instance_is_a_ledger(cls):
    # A bare instance with the attributes its constructor sets: isinstance checks members only.
    led = cls.__new__(cls)
    led.where, led.dim, led.channel = "x", 8, "main"
    assert isinstance(led, Ledger)
    del led.channel
    assert not isinstance(led, Ledger)  # the check is real: a missing member fails it
