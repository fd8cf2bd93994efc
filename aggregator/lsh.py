"""Dedup stage, candidate index: which stored signatures may be near-duplicates of a new one (MinHash LSH).

The signatures and the banding are datasketch's ("affine32" MinHash; a signature's first b*r values cut into b
bands of r rows, with (b, r) chosen as ``datasketch.MinHashLSH`` chooses them for the threshold, false positives
and negatives weighed alike); two signatures are candidates when any band is equal. The tests check both against
datasketch itself, which is not imported at run time: it brings scipy, a second of CPU for every process that
loads the engine, for one integral. Only the storage differs. ``MinHashLSH`` keeps a Python set per band value;
measured on this machine with 50,000 signatures of 128 values at threshold 0.3 (37 bands of 3), that is
12 KB and 107 µs per signature: 600 MB and 5.3 s to rebuild, and memory it never gives back after remove().
Here each band value is hashed to 64 bits and kept in one sorted numpy array beside the id it belongs to
(16 bytes a band, about 600 bytes a signature besides the signature's own 512), so the index of 100,000
articles takes about a hundred megabytes, is built in one sort on start-up, and is rewritten without the
removed entries once they outnumber the live ones.

A band value that a large share of the indexed texts hold comes from a sentence they share (boilerplate,
a sign-off), not from copying: queries leave it out, so short texts ending alike do not all become each
other's candidates. The same holds for a single value of a signature: a value that many signatures hold at
one position is the least hash of a shingle they share, so the index counts each (position, value) pair, in a
fixed array of counters addressed by its hash, and :meth:`MinHashIndex.plain_jaccards` leaves those values out
of the similarity it estimates.

New signatures go to a small buffer, each of its band values also kept in a dict (the ids holding it) that
queries look up; a full buffer is merged into the sorted array in linear time.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np

_OFFSET = np.uint64(0xCBF29CE484222325)  # FNV-1a over 32-bit values
_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)
# Counters of (position, value) pairs: 4 MiB. 100,000 signatures of 128 values put about 12 in a counter, far
# below what is frequent (more than max(frequent_min, frequent_share of the signatures)), so a shared counter
# does not make a value look frequent.
_VALUE_COUNTER_BITS = 20


_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
_SIGNATURE_SLICE = 4096  # shingles permuted at once: a (slice x num_perm) matrix, 2 MB at 128 permutations


def signature(hashes: np.ndarray, permutations: np.ndarray) -> np.ndarray:
    """The MinHash values of shingles already hashed to 32 bits, as datasketch's ``MinHash.update_batch`` with
    the identity hash function and the "affine32" scheme computes them (its MurmurHash3 finaliser, then
    ``a * h + b`` modulo 2**32 for each permutation), without its Python call per value."""
    a, b = permutations
    values = np.full(len(a), np.iinfo(np.uint32).max, dtype=np.uint32)
    s1, m1, s2, m2, s3 = _FMIX32
    b = b[:, None]
    for start in range(0, len(hashes), _SIGNATURE_SLICE):
        mixed = np.asarray(hashes[start : start + _SIGNATURE_SLICE], dtype=np.uint32)
        mixed = mixed ^ (mixed >> s1)
        mixed *= m1
        mixed ^= mixed >> s2
        mixed *= m2
        mixed ^= mixed >> s3
        # a row a permutation: each minimum runs along contiguous memory, and in place (one temporary)
        permuted = np.multiply.outer(a, mixed)
        permuted += b
        np.minimum(values, permuted.min(axis=1), out=values)
    return values


class Signature:
    """A text's MinHash values (what datasketch's ``MinHash`` holds as ``hashvalues``)."""

    __slots__ = ("hashvalues",)

    def __init__(self, hashvalues: np.ndarray):
        self.hashvalues = hashvalues

    def jaccard(self, other: Signature) -> float:
        """The estimated Jaccard similarity of the two shingle sets: the share of equal values."""
        return float(np.count_nonzero(self.hashvalues == other.hashvalues)) / len(self.hashvalues)

    def __getstate__(self):
        return self.hashvalues

    def __setstate__(self, hashvalues: np.ndarray) -> None:
        self.hashvalues = hashvalues


def permutations(num_perm: int, seed: int) -> np.ndarray:
    """datasketch's "affine32" permutations for ``seed``: rows a (odd) and b of ``h -> a * h + b mod 2**32``."""
    generator = np.random.RandomState(seed)
    a = generator.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = generator.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return np.array([a, b])


@functools.cache
def banding(threshold: float, num_perm: int) -> tuple[int, int]:
    """The (bands, rows per band) that datasketch's ``MinHashLSH`` picks for a Jaccard threshold: the least sum
    of the false-positive and false-negative probability mass (its integrals, by Simpson's rule here)."""
    best, best_error = (0, 0), float("inf")
    below, above = np.linspace(0.0, threshold, _STEPS + 1), np.linspace(threshold, 1.0, _STEPS + 1)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            positive = _simpson(1 - (1 - below**rows) ** bands, threshold)
            negative = _simpson((1 - above**rows) ** bands, 1.0 - threshold)
            if positive + negative < best_error:
                best, best_error = (bands, rows), positive + negative
    return best


_STEPS = 200  # even: Simpson's rule; the chosen (b, r) equals datasketch's for every threshold the tests try


def _simpson(values: np.ndarray, width: float) -> float:
    step = width / (len(values) - 1)
    return float(step / 3 * (values[0] + values[-1] + 4 * values[1:-1:2].sum() + 2 * values[2:-1:2].sum()))


class MinHashIndex:
    """Signatures by id, and the ids whose signature shares a band with a query."""

    def __init__(self, threshold: float, num_perm: int, buffer_size: int = 2048, frequent_share: float = 0.01,
                 frequent_min: int = 100):
        self.num_perm = num_perm
        # a band value held by more than max(frequent_min, frequent_share of the signatures) is boilerplate
        self.frequent_share = frequent_share
        self.frequent_min = frequent_min
        self.bands, self.rows = banding(threshold, num_perm)
        self.signatures: dict[int, np.ndarray] = {}  # id -> uint32 values, for verification
        self._keys = np.empty(0, dtype=np.uint64)  # every band hash of the merged signatures, sorted
        self._ids = np.empty(0, dtype=np.int64)  # the id each of those belongs to
        self._buffer = np.empty((buffer_size, self.bands), dtype=np.uint64)
        self._buffer_ids = np.empty(buffer_size, dtype=np.int64)
        self._buffered = 0
        self._held: dict[int, list[int]] = {}  # band hash -> ids of the buffered signatures holding it
        self._stale = 0  # entries in the arrays whose id was removed
        self.rebuilds = 0
        self._value_counts = np.zeros(1 << _VALUE_COUNTER_BITS, dtype=np.int32)  # live signatures per pair
        self._position_keys = np.arange(1, num_perm + 1, dtype=np.uint64) * _MIX

    def __len__(self) -> int:
        return len(self.signatures)

    def __contains__(self, key: int) -> bool:
        return key in self.signatures

    # ---- hashing ----------------------------------------------------------------------------------------

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(n, bands) 64-bit hashes of each band of each row of ``signatures`` (n, num_perm)."""
        n = signatures.shape[0]
        values = signatures[:, : self.bands * self.rows].astype(np.uint64).reshape(n, self.bands, self.rows)
        keys = np.full((n, self.bands), _OFFSET, dtype=np.uint64)
        for row in range(self.rows):
            keys = (keys ^ values[:, :, row]) * _PRIME
        # the band's number is mixed in, so equal values in two different bands do not meet
        keys ^= (np.arange(1, self.bands + 1, dtype=np.uint64) * _MIX)[None, :]
        keys = (keys ^ (keys >> np.uint64(29))) * _PRIME
        return keys

    def _value_counters(self, signatures: np.ndarray) -> np.ndarray:
        """(n, num_perm) counter of each (position, value) pair of each row of ``signatures``."""
        keys = (signatures.astype(np.uint64) ^ self._position_keys[None, :]) * _PRIME
        keys = (keys ^ (keys >> np.uint64(29))) * _MIX
        return (keys >> np.uint64(64 - _VALUE_COUNTER_BITS)).astype(np.intp)

    # ---- updates ----------------------------------------------------------------------------------------

    def insert(self, key: int, signature: np.ndarray) -> None:
        signature = np.asarray(signature, dtype=np.uint32)
        if key in self.signatures:
            self.remove(key)
        self.signatures[key] = signature
        np.add.at(self._value_counts, self._value_counters(signature[None, :])[0], 1)
        band_keys = self.band_keys(signature[None, :])[0]
        self._buffer[self._buffered] = band_keys
        self._buffer_ids[self._buffered] = key
        self._buffered += 1
        held = self._held
        for band_key in band_keys.tolist():
            ids = held.get(band_key)
            if ids is None:
                held[band_key] = [key]
            else:
                ids.append(key)
        if self._buffered == len(self._buffer_ids):
            self._merge_buffer()

    def build(self, keys: Iterable[int], signatures: np.ndarray) -> None:
        """Replace the index with ``signatures`` (n, num_perm), one row per key: one sort, however many."""
        ids = np.fromiter(keys, dtype=np.int64)
        signatures = np.asarray(signatures, dtype=np.uint32).reshape(len(ids), self.num_perm)
        self.signatures = dict(zip(ids.tolist(), signatures, strict=True))
        counts = np.zeros(len(self._value_counts), dtype=np.int64)
        for start in range(0, len(ids), _SIGNATURE_SLICE):  # in slices: 64-bit temporaries of 100,000 rows are large
            counts += np.bincount(self._value_counters(signatures[start : start + _SIGNATURE_SLICE]).ravel(),
                                  minlength=len(counts))
        self._value_counts = counts.astype(np.int32)
        band_keys = self.band_keys(signatures).ravel()
        order = np.argsort(band_keys, kind="stable")
        self._keys = band_keys[order]
        self._ids = np.repeat(ids, self.bands)[order]
        self._buffered = 0
        self._held = {}
        self._stale = 0

    def remove(self, key: int) -> None:
        signature = self.signatures.pop(key, None)
        if signature is None:
            return
        np.subtract.at(self._value_counts, self._value_counters(signature[None, :])[0], 1)
        self._stale += self.bands
        if self._stale > len(self._keys) - self._stale + self._buffered * self.bands:
            self._rebuild()

    def _merge_buffer(self) -> None:
        count = self._buffered
        keys = self._buffer[:count].ravel()
        ids = np.repeat(self._buffer_ids[:count], self.bands)
        order = np.argsort(keys, kind="stable")
        keys, ids = keys[order], ids[order]
        at = np.searchsorted(self._keys, keys, side="right")
        self._keys = np.insert(self._keys, at, keys)
        self._ids = np.insert(self._ids, at, ids)
        self._buffered = 0
        self._held = {}

    def _rebuild(self) -> None:
        """Rewrite the arrays with the live signatures only, so removed ones give their memory back."""
        keys = list(self.signatures)
        matrix = np.stack([self.signatures[k] for k in keys]) if keys else np.empty((0, self.num_perm), np.uint32)
        self.build(keys, matrix)
        self.rebuilds += 1

    # ---- queries ----------------------------------------------------------------------------------------

    def frequent(self) -> int:
        """Entries above which a band value is boilerplate, not a sign of a copy (see :meth:`query`)."""
        return max(self.frequent_min, int(self.frequent_share * len(self.signatures)))

    def query(self, signature: np.ndarray, limit: int | None = None) -> list[int]:
        """Live ids sharing at least one band with ``signature``, those sharing the most bands first; at most
        ``limit`` of them.

        A band value that more than :meth:`frequent` stored signatures hold is left out: texts share it because
        they share a sentence (a sign-off, a byline, "More on this story as it develops."), and counting it
        would make nearly every short text a candidate of every other, a quadratic cost. A copy shares its
        other bands too.
        """
        wanted = self.band_keys(np.asarray(signature, dtype=np.uint32)[None, :])[0]
        counts = np.zeros(self.bands, dtype=np.int64)
        if len(self._keys):
            low = np.searchsorted(self._keys, wanted, side="left")
            high = np.searchsorted(self._keys, wanted, side="right")
            counts += high - low
        buffered = None
        if self._buffered:  # a dict lookup a band: cheaper than comparing the whole buffer
            held = self._held
            buffered = [held.get(band_key, ()) for band_key in wanted.tolist()]
            counts += np.fromiter(map(len, buffered), dtype=np.int64, count=self.bands)
        kept = (counts > 0) & (counts <= self.frequent())
        if not kept.any():
            return []
        parts = []
        if len(self._keys):
            parts.extend(self._ids[start:end] for start, end in zip(low[kept].tolist(), high[kept].tolist(),
                                                                     strict=True) if end > start)
        if buffered is not None:
            parts.append(np.array([key for keep, ids in zip(kept.tolist(), buffered, strict=True) if keep
                                   for key in ids], dtype=np.int64))
        ids, shared = np.unique(np.concatenate(parts), return_counts=True)
        order = np.argsort(-shared, kind="stable")  # most shared bands first, then the lower id
        live = self.signatures
        found = [key for key in ids[order].tolist() if key in live]
        return found if limit is None else found[:limit]

    def jaccard(self, signature: np.ndarray, key: int) -> float:
        """Estimated Jaccard similarity of ``signature`` and the stored signature of ``key``."""
        return float(np.count_nonzero(self.signatures[key] == signature)) / self.num_perm

    def jaccards(self, signature: np.ndarray, keys: list[int]) -> list[float]:
        """:meth:`jaccard` of each of ``keys``, in one vectorised comparison."""
        if not keys:
            return []
        stored = np.stack([self.signatures[key] for key in keys])
        return (np.count_nonzero(stored == signature, axis=1) / self.num_perm).tolist()

    def plain_jaccards(self, signature: np.ndarray, keys: list[int]) -> tuple[list[float], float, list[float]]:
        """Estimated Jaccard similarity of ``signature`` and each of ``keys`` over the shingles that few texts of
        the index hold, and the share of each text made of such shingles: (similarities, the share of
        ``signature``'s text, the share of each of ``keys``'s).

        A MinHash position counts for the similarity of two texts when the least of their two values there is
        the least hash of a shingle of either text, uniformly drawn from the union of their shingles. A value
        that more than :meth:`frequent` signatures hold at that position is a shared sentence's (boilerplate);
        leaving those positions out draws from the union without such shingles. A text's own share of such
        values is the share of its shingles that are boilerplate.
        """
        if not keys:
            return [], 1.0, []
        return self.plain_similarities(signature, np.stack([self.signatures[key] for key in keys]))

    def plain_similarities(self, signature: np.ndarray, stored: np.ndarray) -> tuple[list[float], float, list[float]]:
        """:meth:`plain_jaccards` of ``signature`` and each row of ``stored`` (signatures indexed or not)."""
        signature = np.asarray(signature, dtype=np.uint32)
        stored = np.asarray(stored, dtype=np.uint32).reshape(-1, self.num_perm)
        limit = self.frequent()
        plain = self._value_counts[self._value_counters(signature[None, :])[0]] <= limit
        plain_stored = self._value_counts[self._value_counters(stored)] <= limit
        counted = np.where(signature[None, :] <= stored, plain[None, :], plain_stored)
        positions = counted.sum(axis=1)
        equal = np.count_nonzero((stored == signature) & counted, axis=1)
        similarities = np.where(positions > 0, equal / np.maximum(positions, 1), 0.0)
        return similarities.tolist(), float(plain.mean()), plain_stored.mean(axis=1).tolist()

    def entries(self) -> int:
        """Band entries held in the arrays, stale ones included (memory use)."""
        return len(self._keys) + self._buffered * self.bands
