"""Dedup and cluster stage: same article (exact and near-duplicate) and same story (other outlets' coverage).

The engine is pure and in memory: it decides where an article belongs and keeps the indexes of the open
window; the pipeline stores the decision and the engine is rebuilt from stored rows on start.

- Same article: identical normalised text, else MinHash over word shingles with an LSH index; a candidate is
  verified by the estimated containment of the shorter text in the longer (wire copies get cut).
- Same story: TF-IDF vectors of title and lead compared with the open stories' centroids, candidates found
  through an inverted index over their terms, within the story window.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from datasketch import MinHash, MinHashLSH

from .text import content_hash, shingles, terms, words

SIGNAL_HASH = "text-hash"
SIGNAL_NEAR = "near-duplicate"
SIGNAL_STORY = "story-similarity"
SIGNAL_NEW = "new-story"


@dataclass(frozen=True)
class ClusterSettings:
    num_perm: int = 128
    seed: int = 1
    shingle_size: int = 4
    min_shingles: int = 8  # texts with fewer shingles are too short for near-duplicate detection
    lsh_threshold: float = 0.3
    duplicate_containment: float = 0.5  # share of the shorter text found in the longer one
    story_threshold: float = 0.3  # cosine between an article and a story centroid
    story_min_shared_terms: int = 2
    lead_words: int = 60  # words of the body that count towards the story vector
    title_weight: float = 2.0
    window: timedelta = timedelta(days=3)
    max_posting: int = 5000  # terms in more open stories than this are too common to find candidates by

    @property
    def scheme(self) -> str:
        """Identifies how stored signatures were made; signatures of another scheme are recomputed."""
        return f"datasketch-affine32;num_perm={self.num_perm};seed={self.seed};shingle=w{self.shingle_size}"


@dataclass
class Features:
    """What the engine knows of one article."""

    title: str
    source: str
    when: datetime
    content_hash: str
    terms: Counter  # term -> weighted count (title counted title_weight times)
    minhash: MinHash | None
    shingle_count: int

    def signature_bytes(self) -> bytes | None:
        return self.minhash.hashvalues.astype("<u4").tobytes() if self.minhash is not None else None


@dataclass
class Decision:
    """Where an article belongs, and why."""

    duplicate_of: int | None = None
    duplicate_signal: str | None = None
    duplicate_score: float | None = None
    story_id: int | None = None  # None: a new story
    story_signal: str = SIGNAL_NEW
    story_score: float = 0.0
    merge_story_ids: list[int] = field(default_factory=list)  # open stories this article bridges


@dataclass
class _Story:
    vector: dict[str, float]
    norm: float
    first: datetime
    last: datetime
    articles: int = 0


@dataclass
class _Article:
    story_id: int
    when: datetime
    shingle_count: int
    content_hash: str


@dataclass
class Signal:
    name: str
    score: float
    threshold: float | None
    decided: bool

    def describe(self) -> str:
        if self.threshold is None:
            return f"{self.name}: {self.score:.3f}"
        verdict = "met" if self.decided else "missed"
        return f"{self.name}: {self.score:.3f} ({verdict} threshold {self.threshold:.2f})"


class Clusterer:
    def __init__(self, settings: ClusterSettings | None = None):
        self.settings = settings or ClusterSettings()
        s = self.settings
        self.lsh = MinHashLSH(threshold=s.lsh_threshold, num_perm=s.num_perm)
        self._permutations = MinHash(num_perm=s.num_perm, seed=s.seed).permutations
        self.articles: dict[int, _Article] = {}
        self.by_hash: dict[str, int] = {}
        self.minhashes: dict[int, MinHash] = {}
        self.stories: dict[int, _Story] = {}
        self.postings: dict[str, set[int]] = defaultdict(set)
        self.df: Counter = Counter()
        self.documents = 0
        self.clock = datetime.min  # the newest article time seen: the window ends here
        self.removed_from_lsh = 0

    # ---- features -------------------------------------------------------------------------------------------

    def features(self, title: str, text: str, when: datetime, source: str = "") -> Features:
        s = self.settings
        body_words = words(text) if text and text.strip() != title.strip() else []
        grams = shingles(body_words, s.shingle_size) if len(body_words) >= s.min_shingles else set()
        minhash = None
        if len(grams) >= s.min_shingles:
            minhash = MinHash(num_perm=s.num_perm, permutations=self._permutations, scheme="affine32")
            minhash.update_batch(grams)
        vector: Counter = Counter()
        for term in terms(title):
            vector[term] += s.title_weight
        if body_words:
            for term in terms(" ".join(body_words[: s.lead_words])):
                vector[term] += 1.0
        return Features(
            title=title,
            source=source,
            when=when,
            content_hash=content_hash(title, text),
            terms=vector,
            minhash=minhash,
            shingle_count=len(grams),
        )

    def signature_from_bytes(self, data: bytes) -> MinHash:
        values = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        return MinHash(num_perm=self.settings.num_perm, permutations=self._permutations, hashvalues=values,
                       scheme="affine32")

    def _idf(self, term: str) -> float:
        return math.log((self.documents + 1) / (self.df.get(term, 0) + 1)) + 1.0

    def weights(self, feats: Features) -> dict[str, float]:
        """TF-IDF weights of an article's terms (log-scaled term frequency)."""
        return {t: (1.0 + math.log(c)) * self._idf(t) if c >= 1 else c * self._idf(t) for t, c in feats.terms.items()}

    # ---- same article ---------------------------------------------------------------------------------------

    def _containment(self, a: Features, other_minhash: MinHash, other_size: int) -> float:
        jaccard = a.minhash.jaccard(other_minhash)
        shared = jaccard * (a.shingle_count + other_size) / (1.0 + jaccard)
        return min(1.0, shared / max(1, min(a.shingle_count, other_size)))

    def find_duplicate(self, feats: Features) -> tuple[int, str, float] | None:
        """The open-window article this one copies, with the signal and score that said so."""
        original = self.by_hash.get(feats.content_hash)
        if original is not None and original in self.articles:
            return original, SIGNAL_HASH, 1.0
        if feats.minhash is None:
            return None
        best: tuple[int, str, float] | None = None
        for key in self.lsh.query(feats.minhash):
            other = self.articles.get(key)
            if other is None or not self._open(other.when):
                continue
            score = self._containment(feats, self.minhashes[key], other.shingle_count)
            if score >= self.settings.duplicate_containment and (best is None or score > best[2]):
                best = (key, SIGNAL_NEAR, round(score, 4))
        return best

    # ---- same story -----------------------------------------------------------------------------------------

    def _open(self, when: datetime) -> bool:
        return self.clock - when <= self.settings.window

    def story_scores(self, weights: dict[str, float], when: datetime) -> list[tuple[float, int, int]]:
        """(cosine, shared terms, story id) for open stories sharing terms with the article, best first."""
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        dots: Counter = Counter()
        shared: Counter = Counter()
        for term, weight in weights.items():
            posting = self.postings.get(term)
            if not posting or len(posting) > self.settings.max_posting:
                continue
            for story_id in posting:
                story = self.stories[story_id]
                dots[story_id] += weight * story.vector[term]
                shared[story_id] += 1
        scored = []
        for story_id, dot in dots.items():
            story = self.stories[story_id]
            if abs(when - story.last) > self.settings.window and abs(when - story.first) > self.settings.window:
                continue
            scored.append((dot / (norm * story.norm), shared[story_id], story_id))
        scored.sort(reverse=True)
        return scored

    def decide(self, feats: Features) -> Decision:
        """Where ``feats`` belongs; changes nothing (see :meth:`add`)."""
        decision = Decision()
        duplicate = self.find_duplicate(feats)
        if duplicate is not None:
            decision.duplicate_of, decision.duplicate_signal, decision.duplicate_score = duplicate
            decision.story_id = self.articles[duplicate[0]].story_id
            decision.story_signal, decision.story_score = duplicate[1], duplicate[2]
            return decision
        s = self.settings
        matches = [
            (score, story_id)
            for score, shared, story_id in self.story_scores(self.weights(feats), feats.when)
            if score >= s.story_threshold and shared >= s.story_min_shared_terms
        ]
        if matches:
            score, story_id = matches[0]
            decision.story_id, decision.story_signal, decision.story_score = story_id, SIGNAL_STORY, round(score, 4)
            decision.merge_story_ids = [sid for sc, sid in matches[1:] if sc >= s.story_threshold * 1.5]
        return decision

    # ---- index upkeep ---------------------------------------------------------------------------------------

    def add(self, article_id: int, feats: Features, story_id: int) -> None:
        """Index an article that the store has put in ``story_id``."""
        if article_id in self.articles:
            return
        self.clock = max(self.clock, feats.when)
        self.articles[article_id] = _Article(story_id, feats.when, feats.shingle_count, feats.content_hash)
        self.by_hash.setdefault(feats.content_hash, article_id)
        if feats.minhash is not None:
            self.lsh.insert(article_id, feats.minhash, check_duplication=False)
            self.minhashes[article_id] = feats.minhash
        self.documents += 1
        self.df.update(feats.terms.keys())
        self._add_to_story(story_id, self.weights(feats), feats.when)

    def _add_to_story(self, story_id: int, weights: dict[str, float], when: datetime) -> None:
        story = self.stories.get(story_id)
        if story is None:
            story = self.stories[story_id] = _Story(vector={}, norm=0.0, first=when, last=when)
        for term, weight in weights.items():
            story.vector[term] = story.vector.get(term, 0.0) + weight
            self.postings[term].add(story_id)
        story.norm = math.sqrt(sum(w * w for w in story.vector.values())) or 1.0
        story.first, story.last = min(story.first, when), max(story.last, when)
        story.articles += 1

    def merge(self, into: int, other: int) -> None:
        """Fold story ``other`` into story ``into``."""
        source = self.stories.pop(other, None)
        if source is None:
            return
        for term in source.vector:
            self.postings[term].discard(other)
        self._add_to_story(into, source.vector, source.last)
        target = self.stories[into]
        target.first = min(target.first, source.first)
        target.articles += source.articles - 1
        for article in self.articles.values():
            if article.story_id == other:
                article.story_id = into

    def expire(self) -> list[int]:
        """Drop stories and articles that left the window; returns the closed story ids."""
        closed = [sid for sid, story in self.stories.items() if not self._open(story.last)]
        for story_id in closed:
            story = self.stories.pop(story_id)
            for term in story.vector:
                posting = self.postings.get(term)
                if posting is not None:
                    posting.discard(story_id)
                    if not posting:
                        del self.postings[term]
        stale = [aid for aid, art in self.articles.items() if not self._open(art.when)]
        for article_id in stale:
            article = self.articles.pop(article_id)
            if self.by_hash.get(article.content_hash) == article_id:
                del self.by_hash[article.content_hash]
            if self.minhashes.pop(article_id, None) is not None:
                self.lsh.remove(article_id)
                self.removed_from_lsh += 1
        return closed

    # ---- explanation ----------------------------------------------------------------------------------------

    def compare(self, a: Features, b: Features) -> list[Signal]:
        """Each signal between two articles, with its score and the threshold it met or missed."""
        s = self.settings
        signals = [Signal(SIGNAL_HASH, float(a.content_hash == b.content_hash), 1.0, a.content_hash == b.content_hash)]
        if a.minhash is not None and b.minhash is not None:
            containment = self._containment(a, b.minhash, b.shingle_count)
            signals.append(Signal("minhash-jaccard", a.minhash.jaccard(b.minhash), s.lsh_threshold,
                                  a.minhash.jaccard(b.minhash) >= s.lsh_threshold))
            signals.append(Signal("containment", containment, s.duplicate_containment,
                                  containment >= s.duplicate_containment))
        else:
            signals.append(Signal("minhash", 0.0, None, False))
        wa, wb = self.weights(a), self.weights(b)
        dot = sum(w * wb.get(t, 0.0) for t, w in wa.items())
        norm = (math.sqrt(sum(w * w for w in wa.values())) * math.sqrt(sum(w * w for w in wb.values()))) or 1.0
        cosine = dot / norm
        shared = sorted(set(wa) & set(wb), key=lambda t: -wa[t] * wb[t])
        signals.append(Signal("term-cosine", cosine, s.story_threshold, cosine >= s.story_threshold))
        signals.append(Signal("shared-terms", float(len(shared)), float(s.story_min_shared_terms),
                              len(shared) >= s.story_min_shared_terms))
        gap = abs((a.when - b.when).total_seconds()) / 3600
        window = s.window.total_seconds() / 3600
        signals.append(Signal("hours-apart", gap, window, gap <= window))
        return signals
