"""Same article: identical normalised text, else a near-duplicate found by MinHash.

A text's word shingles are hashed (text.shingle_hashes) and signed with MinHash; an LSH index over the open
window's signatures yields candidates, and a candidate is verified by the estimated containment of the shorter
text in the longer (wire copies get cut). The :class:`Clusterer` (cluster.py) holds the window's articles and
indexes; this is its same-article level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .lsh import Signature, signature
from .text import shingle_hashes

if TYPE_CHECKING:
    from datetime import datetime

    from .cluster import ClusterSettings, Features
    from .lsh import MinHashIndex
    from .storyindex import _Article

_NO_HASHES = np.zeros(0, dtype=np.uint32)

SIGNAL_HASH = "text-hash"
SIGNAL_NEAR = "near-duplicate"


def containment_of(jaccard: float, size: float, other_size: float) -> float:
    """The share of the smaller of two shingle sets found in the other, from their Jaccard similarity and sizes."""
    shared = jaccard * (size + other_size) / (1.0 + jaccard)
    return min(1.0, shared / max(1.0, min(size, other_size)))


class SameArticle:
    """The same-article level of the engine, over the open window the engine keeps."""

    settings: ClusterSettings
    index: MinHashIndex  # near-duplicate candidates, open window only
    by_hash: dict[str, int]  # content hash -> first open article with it
    articles: dict[int, _Article]
    _permutations: np.ndarray

    def _open(self, when: datetime) -> bool:
        """Whether an article of ``when`` is still in the engine's window (the engine says)."""
        raise NotImplementedError

    def _shingle_signature(self, body_words: list[str]) -> tuple[Signature | None, int]:
        """The MinHash of a body's word shingles (None when it has too few of them) and how many it has."""
        s = self.settings
        hashes = shingle_hashes(body_words, s.shingle_size) if len(body_words) >= s.min_shingles else _NO_HASHES
        minhash = None
        if len(hashes) >= s.min_shingles:
            minhash = Signature(signature(hashes, self._permutations))
        return minhash, len(hashes)

    def find_duplicate(self, feats: Features) -> tuple[int, str, float] | None:
        """The open-window article this one copies, with the signal and score that said so."""
        original = self.by_hash.get(feats.content_hash)
        if original is not None and original in self.articles:
            return original, SIGNAL_HASH, 1.0
        if feats.minhash is None:
            return None
        best: tuple[int, str, float] | None = None
        keys = [key for key in self.index.query(feats.signature, self.settings.lsh_max_candidates)
                if key in self.articles and self._open(self.articles[key].when)]
        # Shingles that many texts of the window hold (a shared sign-off) count neither as shared nor in a
        # text's size: in a short text they alone would pass the containment threshold.
        jaccards, own_share, shares = self.index.plain_jaccards(feats.signature, keys)
        size = feats.shingle_count * own_share
        for key, jaccard, share in zip(keys, jaccards, shares, strict=True):
            score = containment_of(jaccard, size, self.articles[key].shingle_count * share)
            if score >= self.settings.duplicate_containment and (best is None or score > best[2]):
                best = (key, SIGNAL_NEAR, round(score, 4))
        return best
