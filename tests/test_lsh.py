"""The near-duplicate candidate index: datasketch's banding over numpy arrays."""

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from aggregator.lsh import MinHashIndex

NUM_PERM = 128


def _signatures(count: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, size=(count, NUM_PERM), dtype=np.uint64).astype(np.uint32)


def _near(signature: np.ndarray, jaccard: float, seed: int) -> np.ndarray:
    """A copy of ``signature`` with about 1 - ``jaccard`` of its values changed."""
    rng = np.random.default_rng(seed)
    copy = signature.copy()
    changed = rng.random(NUM_PERM) > jaccard
    copy[changed] = rng.integers(0, 2**32, size=int(changed.sum()), dtype=np.uint64).astype(np.uint32)
    return copy


@pytest.mark.parametrize("buffer_size", [4, 2048])
def test_candidates_are_the_ones_datasketch_finds(buffer_size):
    stored = _signatures(300)
    queries = [_near(stored[i % 300], j, i) for i, j in enumerate(np.linspace(0.05, 1.0, 120))]
    index = MinHashIndex(0.3, NUM_PERM, buffer_size=buffer_size)
    reference = MinHashLSH(threshold=0.3, num_perm=NUM_PERM)
    assert (index.bands, index.rows) == (reference.b, reference.r)
    for key, row in enumerate(stored):
        index.insert(key, row)
        reference.insert(key, MinHash(num_perm=NUM_PERM, hashvalues=row, scheme="affine32"))
    for query in queries:
        expected = set(reference.query(MinHash(num_perm=NUM_PERM, hashvalues=query, scheme="affine32")))
        assert set(index.query(query)) == expected


def test_bulk_build_equals_inserting_one_by_one():
    stored = _signatures(500, seed=2)
    one_by_one = MinHashIndex(0.3, NUM_PERM, buffer_size=64)
    for key, row in enumerate(stored):
        one_by_one.insert(key + 1000, row)
    built = MinHashIndex(0.3, NUM_PERM)
    built.build(range(1000, 1500), stored)
    for i in range(0, 500, 7):
        query = _near(stored[i], 0.6, i)
        assert sorted(built.query(query)) == sorted(one_by_one.query(query))
        assert 1000 + i in built.query(query)
        assert built.jaccard(query, 1000 + i) == one_by_one.jaccard(query, 1000 + i)


def test_removed_signatures_are_not_returned_and_their_memory_is_given_back():
    index = MinHashIndex(0.3, NUM_PERM, buffer_size=16)
    stored = _signatures(400, seed=3)
    for key, row in enumerate(stored):
        index.insert(key, row)
    for key in range(300):
        index.remove(key)
        assert key not in index.query(stored[key])
    assert index.rebuilds >= 1
    assert len(index) == 100
    # what the arrays hold never exceeds twice the live entries (plus one buffer)
    assert index.entries() <= 2 * 100 * index.bands + 16 * index.bands
    assert all(key in index.query(stored[key]) for key in range(300, 400))


def test_reinserting_a_key_replaces_its_signature():
    index = MinHashIndex(0.3, NUM_PERM)
    first, second = _signatures(2, seed=4)
    index.insert(7, first)
    index.insert(7, second)
    assert index.query(second) == [7]
    assert index.jaccard(second, 7) == 1.0
    assert len(index) == 1
