"""The near-duplicate candidate index: datasketch's banding over numpy arrays."""

import subprocess
import sys

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


def _sharing_a_sentence(count: int, seed: int = 5) -> np.ndarray:
    """Signatures of short texts ending in one shared sentence: half their values come from it."""
    signatures = _signatures(count, seed)
    shared = _signatures(1, seed + 1)[0]
    mask = np.random.default_rng(seed).random((count, NUM_PERM)) < 0.5
    signatures[mask] = np.broadcast_to(shared, signatures.shape)[mask]
    return signatures


@pytest.mark.parametrize("buffer_size", [64, 2048])
def test_band_values_most_texts_share_are_boilerplate_and_make_no_candidates(buffer_size):
    stored, unrelated = _sharing_a_sentence(3001)[:3000], _sharing_a_sentence(3001)[3000]
    index = MinHashIndex(0.3, NUM_PERM, buffer_size=buffer_size)
    for key, row in enumerate(stored):
        index.insert(key, row)
    assert len(index.query(unrelated)) < 20  # every text shares the sentence: that is no sign of a copy
    loose = MinHashIndex(0.3, NUM_PERM, buffer_size=buffer_size, frequent_min=10**6)  # counting it, as before
    loose.build(range(3000), stored)
    assert len(loose.query(unrelated)) > 300
    copy = _near(stored[1234], 0.7, seed=3)
    assert index.query(copy)[0] == 1234  # a copy shares its other bands: found, first


def test_candidates_come_most_shared_bands_first_and_at_most_limit():
    stored = _signatures(200)
    index = MinHashIndex(0.3, NUM_PERM)
    index.build(range(200), stored)
    query = stored[7].copy()
    index.insert(500, _near(stored[7], 0.6, seed=1))
    assert index.query(query, limit=1) == [7]
    assert index.query(query)[:2] == [7, 500]
    assert index.jaccards(query, [7, 500])[0] == 1.0 and 0.4 < index.jaccards(query, [7, 500])[1] < 0.8


@pytest.mark.parametrize("count", [1, 8, 5000])
def test_signature_is_datasketchs(count):
    from aggregator.lsh import signature

    hashes = np.random.default_rng(count).integers(0, 2**32, size=count, dtype=np.uint64).astype(np.uint32)
    permutations = MinHash(num_perm=NUM_PERM, seed=3, scheme="affine32").permutations
    reference = MinHash(num_perm=NUM_PERM, permutations=permutations, hashfunc=lambda v: v, scheme="affine32")
    reference.update_batch(hashes)
    assert (signature(hashes, permutations) == reference.hashvalues).all()


def test_values_many_signatures_hold_at_a_position_count_for_no_similarity():
    from aggregator.lsh import signature

    permutations = MinHash(num_perm=NUM_PERM, seed=3, scheme="affine32").permutations
    rng = np.random.default_rng(5)
    sign_off = rng.integers(0, 2**32, size=4, dtype=np.uint64).astype(np.uint32)  # four shingles every text ends with

    def text(size: int) -> np.ndarray:
        own = rng.integers(0, 2**32, size=size, dtype=np.uint64).astype(np.uint32)
        return signature(np.concatenate([own, sign_off]), permutations)

    index = MinHashIndex(0.3, NUM_PERM, frequent_min=20, frequent_share=0.01)
    for key in range(200):
        index.insert(key, text(10))
    query = text(10)
    plain, own_share, shares = index.plain_jaccards(query, [0, 1, 2])
    raw = index.jaccards(query, [0, 1, 2])
    assert min(raw) > 0.1  # the sign-off alone makes them look alike...
    assert max(plain) < 0.05  # ...and nothing else does
    assert 0.5 < own_share < 0.85 and all(0.5 < share < 0.85 for share in shares)  # 10 of 14 shingles are plain
    copy = index.signatures[7]
    assert index.plain_jaccards(copy, [7])[0] == [1.0]
    for key in range(200):
        index.remove(key)
    assert not index._value_counts.any()  # removing gives the counts back


@pytest.mark.parametrize("num_perm", [32, 128, 256])
def test_permutations_and_banding_are_datasketchs(num_perm):
    """Neither needs datasketch at run time (it imports scipy), yet both give what it gives."""
    from aggregator.lsh import banding, permutations

    for seed in (1, 3, 42):
        expected = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
        assert np.array_equal(permutations(num_perm, seed), expected)
    for threshold in (0.1, 0.2, 0.3, 0.45, 0.5, 0.6, 0.75, 0.8, 0.9):
        reference = MinHashLSH(threshold=threshold, num_perm=num_perm)
        assert banding(threshold, num_perm) == (reference.b, reference.r)


def test_engine_does_not_import_datasketch():
    code = ("import sys; from datetime import datetime; from aggregator.cluster import Clusterer; "
            "Clusterer().features('t', 'word ' * 300, datetime(2026, 1, 1)); "
            "print('datasketch' in sys.modules, 'scipy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
