"""Sparse term-weight vectors (term -> weight dicts): the engine's TF-IDF vectors and story centroids."""

from __future__ import annotations

import math


def vector_dot(a: dict[str, float], b: dict[str, float]) -> float:
    """The dot product of two sparse vectors."""
    if len(a) > len(b):
        a, b = b, a
    # two centroids share a small part of their terms: intersecting the keys (in C) first is several times
    # cheaper than looking every term of the smaller one up in the other. The intersection's order follows the
    # string hashes, which change from process to process: fsum's exact sum makes the result the same whatever
    # the order, so a decision near a threshold never depends on PYTHONHASHSEED.
    return math.fsum([a[t] * b[t] for t in a.keys() & b.keys()])


def vector_norm(vector: dict[str, float]) -> float:
    """The Euclidean length of a sparse vector; 1.0 for an empty one, so that dividing by it is safe."""
    return math.hypot(*vector.values()) or 1.0


