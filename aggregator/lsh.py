"""Dedup stage, candidate index: which stored signatures may be near-duplicates of a new one (MinHash LSH).

The banding is datasketch's: a signature's first b*r values cut into b bands of r rows, with (b, r) chosen by
``datasketch.MinHashLSH`` for the threshold (false positives and negatives weighed alike); two signatures are
candidates when any band is equal. Only the storage differs. ``MinHashLSH`` keeps a Python set per band value;
measured on this machine with 50,000 signatures of 128 values at threshold 0.3 (37 bands of 3), that is
12 KB and 107 µs per signature: 600 MB and 5.3 s to rebuild, and memory it never gives back after remove().
Here each band value is hashed to 64 bits and kept in one sorted numpy array beside the id it belongs to
(16 bytes a band, about 600 bytes a signature besides the signature's own 512), so the index of 100,000
articles takes about a hundred megabytes, is built in one sort on start-up, and is rewritten without the
removed entries once they outnumber the live ones.

A band value that a large share of the indexed texts hold comes from a sentence they share (boilerplate,
a sign-off), not from copying: queries leave it out, so short texts ending alike do not all become each
other's candidates.

New signatures go to a small buffer that queries scan with one vectorised comparison; a full buffer is merged
into the sorted array in linear time.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

_OFFSET = np.uint64(0xCBF29CE484222325)  # FNV-1a over 32-bit values
_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def banding(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's (bands, rows per band) for a Jaccard threshold."""
    from datasketch import MinHashLSH  # here, not at the top: it imports scipy, which only an index needs

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


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
        self._stale = 0  # entries in the arrays whose id was removed
        self.rebuilds = 0

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

    # ---- updates ----------------------------------------------------------------------------------------

    def insert(self, key: int, signature: np.ndarray) -> None:
        signature = np.asarray(signature, dtype=np.uint32)
        if key in self.signatures:
            self.remove(key)
        self.signatures[key] = signature
        self._buffer[self._buffered] = self.band_keys(signature[None, :])[0]
        self._buffer_ids[self._buffered] = key
        self._buffered += 1
        if self._buffered == len(self._buffer_ids):
            self._merge_buffer()

    def build(self, keys: Iterable[int], signatures: np.ndarray) -> None:
        """Replace the index with ``signatures`` (n, num_perm), one row per key: one sort, however many."""
        ids = np.fromiter(keys, dtype=np.int64)
        signatures = np.asarray(signatures, dtype=np.uint32).reshape(len(ids), self.num_perm)
        self.signatures = dict(zip(ids.tolist(), signatures, strict=True))
        band_keys = self.band_keys(signatures).ravel()
        order = np.argsort(band_keys, kind="stable")
        self._keys = band_keys[order]
        self._ids = np.repeat(ids, self.bands)[order]
        self._buffered = 0
        self._stale = 0

    def remove(self, key: int) -> None:
        if self.signatures.pop(key, None) is None:
            return
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
        matches = None
        if self._buffered:
            matches = self._buffer[: self._buffered] == wanted
            counts += matches.sum(axis=0)
        kept = (counts > 0) & (counts <= self.frequent())
        if not kept.any():
            return []
        parts = []
        if len(self._keys):
            parts.extend(self._ids[start:end] for start, end in zip(low[kept].tolist(), high[kept].tolist(),
                                                                     strict=True) if end > start)
        if matches is not None:
            hits = matches[:, kept].sum(axis=1)
            parts.append(np.repeat(self._buffer_ids[: self._buffered], hits))
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

    def entries(self) -> int:
        """Band entries held in the arrays, stale ones included (memory use)."""
        return len(self._keys) + self._buffered * self.bands
