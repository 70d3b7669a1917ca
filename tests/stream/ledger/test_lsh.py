"""The near-search index itself: multi-probe keys start with the query's own bucket, find near points."""

from __future__ import annotations

import numpy as np

from passersby.stream.ledger import LshParams, bucket_keys, make_rotations, probe_keys

from .helpers import D, at_distance


def test_probe_keys_start_with_the_own_bucket_and_catch_near_points():
    params = LshParams()
    rot = make_rotations(params, D, np.random.default_rng(0)).astype(np.float64)
    rng = np.random.default_rng(1)
    z = rng.standard_normal((100, D))
    own = bucket_keys(rot, z)
    found = 0
    for zi, ki in zip(z, own):
        pk = probe_keys(rot, zi, params.probes)
        assert pk.shape == (params.tables, params.probes + 1)
        assert (pk[:, 0] == ki).all() and all(len(set(row)) == params.probes for row in pk[:, 1:])
        near = bucket_keys(rot, at_distance(zi, 3.0, rng)[None])[0]
        found += any(near[t] in pk[t] for t in range(params.tables))
    assert found == 100
    assert (0 <= own).all() and (own < params.buckets_per_table).all()
