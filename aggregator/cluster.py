"""Dedup and cluster stage: same article (exact and near-duplicate) and same story (other outlets' coverage).

The engine is pure and in memory: it decides where an article belongs and keeps the indexes of the open
window; the pipeline stores the decision and the engine is rebuilt from stored rows on start.

- Same article (neardup.py): identical normalised text, else MinHash over word shingles with an LSH index; a
  candidate is verified by the estimated containment of the shorter text in the longer (wire copies get cut).
- Same story: TF-IDF vectors of title and lead compared with the open stories' centroids, candidates found
  through an inverted index over their terms, within the story window; stories whose centroids converge merge
  (not two stories that meet through one word), and a few-article fragment folds into a big active story at a
  lower bar.
- Recency ("the story is still receiving articles") is judged by time when articles carry real times, by
  arrival order when they do not (a file replayed without dates).
- The index of the open window (centroids, postings, document frequencies) and its upkeep as articles arrive,
  stories merge, the window moves on and a restart reloads it are in storyindex.py.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING

import numpy as np

from .evidence import EventRule, evidence, headline_names
from .explain import Explanations, Signal
from .lsh import MinHashIndex, permutations
from .neardup import SIGNAL_HASH, SIGNAL_NEAR, SameArticle
from .storyindex import StoredArticle, StoryIndex, _Story
from .text import content_hash, edge_segment, headline, terms, words
from .vectors import vector_dot, vector_norm

if TYPE_CHECKING:
    from .lsh import Signature

__all__ = ["SIGNAL_HASH", "SIGNAL_NEAR", "SIGNAL_NEW", "SIGNAL_STORY", "ClusterSettings", "Clusterer", "Decision",
           "Features", "Signal", "StoredArticle"]

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
    # Near-duplicate candidates stay few however many texts share a sentence: a band value held by more than
    # lsh_frequent_share of the window's texts (and more than lsh_frequent_min) is boilerplate and left out,
    # and at most lsh_max_candidates candidates, those sharing the most bands, are verified.
    lsh_frequent_share: float = 0.01
    lsh_frequent_min: int = 100
    lsh_max_candidates: int = 50
    # Same story. An article joins the open story whose TF-IDF centroid is closest, when the cosine reaches
    # story_threshold and they share story_min_shared_terms content words (one shared word, "storm", is a topic,
    # not an event). News is bursty: a story that got an article lately is in the current news cycle, and an
    # article that already shares two words with it needs less lexical evidence (active_story_threshold, a third
    # of the cold threshold) than one matching a story nobody wrote about lately.
    story_threshold: float = 0.3  # cosine between an article and a story centroid
    active_story_threshold: float = 0.1  # the same, for a story that is still receiving articles
    # "Lately" is judged by time when articles carry it: an article within active_time of the newest one (a news
    # cycle is a few hours). A stream without real times (every article stamped alike, or microseconds apart, as
    # when a file without dates is replayed) falls back on arrival order: an article among the last
    # active_arrivals arrivals, about as many as a busy set of feeds brings in a few hours. The stream counts as
    # untimed while its last active_arrivals arrivals span less than time_resolution. Measured by
    # scripts/eval_variants.py, the count is not a fitted value: 100 or 1,000 arrivals move no variant by more than
    # 0.02 (googlenews-t in its order, reversed, shuffled, in fake-time order); without arrival recency, every
    # ordered variant loses 0.07-0.09 and a shuffled one 0.03, only the hand-labelled feed headlines gain 0.014.
    active_time: timedelta = timedelta(hours=6)
    active_arrivals: int = 300
    time_resolution: timedelta = timedelta(minutes=1)
    # ... provided the words it shares with the story carry this share of the article's own IDF weight: a long
    # text always shares a few words with any big story by chance, a short one shares its key words or none.
    active_min_coverage: float = 0.3
    story_min_shared_terms: int = 2
    # Two open stories whose centroids converge (cosine >= merge_threshold once the article joined one of them)
    # are one story told twice: they are merged. Centroids average many headlines, so a cosine between two of
    # them is steadier than one between an article and a centroid; the bar sits between the two thresholds above.
    merge_threshold: float = 0.25
    # ... unless both stories have more than fragment_articles articles and one word they share makes more than
    # merge_word_share of their centroids' dot product: two stories of one subject converge through its word
    # ("google": its glasses and its street maps; "black": Black Friday and a film), two tellings of one event
    # through several. Measured by scripts/eval_variants.py and scripts/cluster_errors.py: googlenews-t 0.851 ->
    # 0.857 (precision lost to stories mixing two events: 1,354 -> 1,206 articles; recall lost: +21), every
    # googlenews-t variant up or level (shuffled +0.000-0.008, reversed +0.014, fake times +0.001-0.012), the
    # other sets unchanged (their stories converge through several words, or are too small). 0.75 or 0.9 gain
    # about as much but for the fake times of gn-time (-0.002, -0.001); 0.7 and 0.6 also block tellings of one
    # event (gn-time -0.004, -0.007).
    merge_word_share: float = 0.8
    # Fragments: the first reports of an event are often worded unlike the coverage that follows, and leave a
    # few-article story beside the big one. A story of at most fragment_articles articles (the joining one
    # included) converging with an active story of at least fragment_host articles is folded into it at the
    # lower fragment_merge_threshold: half the bar, since a short story's centroid rests on a headline or
    # three and cannot reach the cosine that two full centroids reach; a host of ten articles is an event
    # many outlets cover, not a chance match. Measured by scripts/eval_variants.py: +0.02-0.03 on googlenews-t in
    # every order that keeps stories together (as published, reversed, fake times, with or without them), -0.005 on
    # a shuffled stream and on the feed headlines: kept, since arrivals follow the news.
    fragment_articles: int = 3
    fragment_host: int = 10
    fragment_merge_threshold: float = 0.12
    # Words of the body that count towards the story vector. Measured by scripts/eval_variants.py, 120 instead
    # of 60 keeps more twin events of one kind apart (BCubed F1 0.862 -> 0.923) and holds every other variant,
    # but with 100,000 articles indexed it cuts the full texts clustered a second from 589 to 220-430 (bigger
    # centroids to compare): the speed goal (500/s) keeps 60.
    lead_words: int = 60
    # Event evidence (aggregator/evidence.py): the names and figures of an article's first evidence_words words.
    # Two events of one kind (two earthquakes, two arrests) share the words of their kind, and the lexical cosine
    # alone joins them. When an article and a story both name at least evidence_min_terms names and figures, and
    # less than evidence_min_share of the article's (by IDF weight) are names or words of the story, they tell
    # different events and the article does not join (nor do two such stories converge), unless every name and
    # figure of its headline is a word of the story and its body shares at least one name with it: another part
    # of the same event. Measured by scripts/eval_variants.py (untimed full texts): over 200 words instead of
    # the 60 of the lead, with headings left out and that escape needing a shared name, twin events of one kind
    # 0.889 -> 0.946; one event told from disjoint parts of its text 0.987 -> 0.975 and real events of one kind
    # told by several outlets 0.938 -> 0.931 (list pages whose parts name nothing in common); the others hold.
    # The names of an article's headline are its subject, which two such events may share (two arrests of one
    # celebrity): the names its body gives besides must pass the share too (evidence.EventRule.judged_names).
    # The share is 0.15, not 0.1, since twin events told by several outlets in their own words (not wire copies)
    # were measured (three seeds each: twin events of one subject 0.802 / 0.804 / 0.828 -> 0.827 / 0.806 / 0.832,
    # keeping three names +0.009-0.010, with no name in common +0.004 / -0.003 / +0.016, copies of one subject's
    # twins +0.011-0.019, real events of one kind +0.007 / +0.006 / +0.013); one event told from disjoint parts of
    # its text pays for it (0.975 / 0.972 / 0.965 -> 0.969 / 0.971 / 0.956). 0.125 gains less, 0.175 and 0.2 split
    # more of that one event.
    # Headline-only articles carry no evidence (a headline capitalises every word): headline streams unaffected.
    # Spotting names is one pass over those words, once per article (about 0.1 ms, less than 60 words cost before).
    evidence_min_terms: int = 3
    evidence_min_share: float = 0.15
    evidence_words: int = 200
    title_weight: float = 2.0
    # A segment after a separator ending tag_headlines different headlines is an outlet's tag, whatever it looks
    # like (text.headline); at most tag_candidates segments are counted at once. Measured by
    # scripts/eval_variants.py on googlenews-t with outlet and format tags and no source (gn-tagged): 0.842
    # untouched, 0.848 with the tags text.headline tells by their look, 0.851 with this rule too (0.851 untagged).
    tag_headlines: int = 3
    tag_candidates: int = 20000
    window: timedelta = timedelta(days=3)
    # News about one event clusters in time: when articles carry real times, a cosine with a story (and between
    # two converging stories) is halved for every time_half_life between the article and the story's span (zero:
    # off). Untimed streams are unaffected. A day, measured by scripts/eval_variants.py: googlenews-t with fake
    # times 0.870 -> 0.890 (two other ways of faking them: +0.024, and 0.8942 for 12 h, 0.8906 for 48 h),
    # syndication-dev with its times 0.994 -> 1.0.
    time_half_life: timedelta = timedelta(days=1)
    # Candidate retrieval stays bounded however many stories are open: each term's posting is scanned from the
    # most recently updated story back, at most max_posting entries, and at most max_candidates stories are scored.
    # A story is found through its distinctive words, whose postings are short; an everyday word's posting holds
    # every open story, and scanning more of it finds old stories that share one word with the article.
    # Measured with 100,000 articles indexed (scripts/tune_clusters.py --speed): scanning 200 entries in all
    # instead of 1,000, 20 candidates instead of 40 and 25 stories a term for converging ones instead of 200
    # raises BCubed F1 on googlenews-t from 0.844 to 0.850 and the speed from 1,900 to 4,000 headlines/s.
    max_posting: int = 50
    # ... and at most max_scan posting entries in all, heaviest terms first: a long text's commonest words (whose
    # postings are all full) then cost nothing once its distinctive ones found their stories.
    max_scan: int = 200
    max_candidates: int = 20
    query_terms: int = 32  # an article's heaviest terms used to find candidates (all of them score)
    merge_terms: int = 10  # a story's heaviest terms used to find stories converging with it
    merge_candidates: int = 20
    merge_posting: int = 25  # stories scanned per term when looking for converging ones, latest first
    # Optional semantic signal (aggregator.semantic, the 'semantic' extra; off by default). For a headline without
    # a body, the cosine with a story becomes the TF-IDF cosine mixed with the cosine of the headline's sentence
    # embedding and the story's headline embeddings (semantic_weight of it), and the story thresholds apply to the
    # mix. The embedding cosine counts from semantic_floor up: about the 99th percentile between headlines of
    # different stories (0.31 on googlenews-t, 0.32 on syndication-dev), below which it says nothing. Measured by
    # scripts/eval_variants.py (headlines: googlenews-t 0.852 -> 0.861, shuffled 0.776 -> 0.799); full texts are
    # left to the words and names of their leads: embedding them joined twin events (0.889 -> 0.846 headline
    # only, 0.887 with 60 words of lead) and gained nothing elsewhere, at ten times the encoding cost.
    semantic: bool = False
    semantic_weight: float = 0.3
    semantic_floor: float = 0.3

    @property
    def scheme(self) -> str:
        """Identifies how stored signatures were made; signatures of another scheme are recomputed."""
        return (f"datasketch-affine32;num_perm={self.num_perm};seed={self.seed};"
                f"shingle=w{self.shingle_size};hash=crc32-poly;cjk=bigram")


@dataclass
class Features:
    """What the engine knows of one article."""

    title: str
    source: str
    when: datetime
    content_hash: str
    terms: Counter  # term -> weighted count (title counted title_weight times)
    minhash: Signature | None
    shingle_count: int
    evidence: frozenset[str] = frozenset()  # names and figures of its first words (evidence.py): none for a headline
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)  # sentence embedding (semantic)
    # (engine arrival clock, weights): the TF-IDF weights as of that clock, reused while nothing was added
    cached_weights: tuple[int, dict[str, float]] | None = field(default=None, repr=False, compare=False)

    def signature_bytes(self) -> bytes | None:
        return self.minhash.hashvalues.astype("<u4").tobytes() if self.minhash is not None else None

    @property
    def signature(self) -> np.ndarray | None:
        return self.minhash.hashvalues if self.minhash is not None else None


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


def _word_share(vector: dict[str, float], weights: dict[str, float], other: dict[str, float]) -> float:
    """The share of the dot product of ``vector`` plus ``weights`` (a story with an article joining it) with
    ``other`` that the heaviest of their shared words makes (1.0 when they share none)."""
    # the keys intersected in C, as vector_dot does: a blocked pair of big stories is checked again with every
    # article either of them gets, and a Python loop over a full-text centroid halved the full texts clustered a
    # second with 100,000 articles indexed
    parts = {term: vector[term] * other[term] for term in vector.keys() & other.keys()}
    for term in weights.keys() & other.keys():
        parts[term] = parts.get(term, 0.0) + weights[term] * other[term]
    total = math.fsum(parts.values())  # exact: the same share whatever the order of the terms
    return max(parts.values()) / total if total > 0 else 1.0


class Clusterer(StoryIndex, SameArticle, Explanations):
    def __init__(self, settings: ClusterSettings | None = None):
        self.settings = settings or ClusterSettings()
        s = self.settings
        # near-duplicate candidates, open window only
        self.index = MinHashIndex(s.lsh_threshold, s.num_perm, frequent_share=s.lsh_frequent_share,
                                  frequent_min=s.lsh_frequent_min)
        self._permutations = permutations(s.num_perm, s.seed)
        self._init_index(s.active_arrivals)
        self.semantic = None  # the stories' sentence embeddings, when the semantic signal is on
        if s.semantic:
            from .semantic import StoryVectors, check_available

            check_available()
            self.semantic = StoryVectors()
        self.events = EventRule(s.evidence_min_terms, s.evidence_min_share, self._idf)
        # segments ending headlines (text.edge_segment) -> (distinct headlines they ended, the last of them): one
        # that ends tag_headlines different headlines is an outlet's tag ("news.com.au", "FOX 5 DC")
        self._segments: dict[str, tuple[int, str]] = {}
        self.tags: set[str] = set()

    # ---- features -------------------------------------------------------------------------------------------

    def features(self, title: str, text: str, when: datetime, source: str = "") -> Features:
        s = self.settings
        body_words = words(text) if text and text.strip() != title.strip() else []
        minhash, shingle_count = self._shingle_signature(body_words)
        self._learn_tag(title)
        title = headline(title, source, self.tags)  # its words, not the outlet's or the format's tags (text.headline)
        return Features(
            title=title,
            source=source,
            when=when,
            content_hash=content_hash(title, text, body_words),
            terms=self._terms(title, body_words),
            minhash=minhash,
            shingle_count=shingle_count,
            evidence=evidence(text, s.evidence_words) if body_words else frozenset(),
            vector=self._embedding(title) if s.semantic and not body_words else None,
        )

    def _learn_tag(self, title: str) -> None:
        """Count the segment ending ``title``; one that ended enough different headlines becomes a tag."""
        found = edge_segment(title)
        if found is None:
            return
        key, rest = found
        count, last = self._segments.get(key, (0, ""))
        if rest == last or key in self.tags:
            return
        if count + 1 >= self.settings.tag_headlines:
            self.tags.add(key)
            self._segments.pop(key, None)
            return
        segments = self._segments
        segments.pop(key, None)  # put back last: the dict runs from the segment seen longest ago to the latest
        if len(segments) >= self.settings.tag_candidates:
            segments = self._pruned_segments()
        segments[key] = (count + 1, rest)

    def _pruned_segments(self) -> dict[str, tuple[int, str]]:
        """The candidate segments, bounded: the ones seen once go, then, if the ones seen twice still fill three
        quarters of the room, those seen longest ago (a daemon sees new segments for ever; a tag recurs)."""
        room = self.settings.tag_candidates * 3 // 4
        kept = [(k, v) for k, v in self._segments.items() if v[0] > 1]
        self._segments = dict(kept[max(0, len(kept) - room):])
        return self._segments

    @staticmethod
    def _embedding(title: str) -> np.ndarray:
        from .semantic import shared_encoder

        return shared_encoder().vector(title)

    def prepare(self, articles: Iterable[tuple[str, str]]) -> None:
        """Embed the headlines of a batch of (title, text) at once (the semantic signal's batches), so that
        :meth:`features` finds them cached; nothing when the signal is off."""
        if self.settings.semantic:
            from .semantic import shared_encoder

            # as features() decides: a text that only repeats the headline is no body
            shared_encoder().encode([title for title, text in articles
                                     if not text or not text.strip() or text.strip() == title.strip()])

    def _terms(self, title: str, body_words: list[str]) -> Counter:
        vector: Counter = Counter()
        for term in terms(title):
            vector[term] += self.settings.title_weight
        if body_words:
            for term in terms(" ".join(body_words[: self.settings.lead_words])):
                vector[term] += 1.0
        return vector

    def _idf(self, term: str) -> float:
        return math.log((self.documents + 1) / (self.df.get(term, 0) + 1)) + 1.0

    def weights(self, feats: Features) -> dict[str, float]:
        """TF-IDF weights of an article's terms (log-scaled term frequency).

        The IDF is the one of the moment the article arrives, and stays in the story centroids: a word that
        was rare when a story began keeps marking that story even after its own coverage made it common.
        """
        if feats.cached_weights is None or feats.cached_weights[0] != self.seq:
            feats.cached_weights = (self.seq, self._weights_of(feats.terms))
        return feats.cached_weights[1]

    def _weights_of(self, article_terms: Counter) -> dict[str, float]:
        # _idf written out: a method call a term is a third of the cost of a full text's weights
        documents, get, log = self.documents + 1, self.df.get, math.log
        return {t: (1.0 + log(c) if c >= 1 else c) * (log(documents / (get(t, 0) + 1)) + 1.0)
                for t, c in article_terms.items()}

    # ---- same article: see neardup.SameArticle -------------------------------------------------------------

    # ---- same story -----------------------------------------------------------------------------------------

    def _open(self, when: datetime) -> bool:
        return self.clock - when <= self.settings.window

    def _in_window(self, story: _Story, when: datetime) -> bool:
        window = self.settings.window
        return abs(when - story.last) <= window or abs(when - story.first) <= window

    def timed(self) -> bool:
        """Whether articles carry real times: the latest arrivals spread over more than the time resolution."""
        recent = self._recent_clock
        return bool(recent) and self.clock - recent[0] >= self.settings.time_resolution

    def _active(self, story: _Story) -> bool:
        s = self.settings
        if self.timed():
            return self.clock - story.last <= s.active_time
        return self.seq - story.last_seq < s.active_arrivals

    def _recent_stories(self, term: str, limit: int):
        """Stories using ``term``, most recently updated first, at most ``limit`` of them."""
        posting = self.postings.get(term)
        if not posting:
            return ()
        return islice(reversed(posting), limit) if len(posting) > limit else reversed(posting)

    def story_scores(self, weights: dict[str, float], when: datetime) -> list[tuple[float, int, int, float]]:
        """(cosine, shared terms, story id, coverage) for open stories sharing terms with the article, best first.

        Coverage is the share of the article's weight on terms the story uses.

        Candidates come from the postings of the article's heaviest terms, each scanned from the most recently
        updated story back (bounded however many stories are open); the best of them are scored exactly.
        """
        s = self.settings
        norm = vector_norm(weights)
        total = sum(weights.values()) or 1.0
        partial: dict[int, float] = {}
        get = partial.get
        postings = self.postings
        budget = s.max_scan
        for term, weight in sorted(weights.items(), key=itemgetter(1), reverse=True)[: s.query_terms]:
            posting = postings.get(term)
            if not posting:
                continue
            limit = min(s.max_posting, budget)
            budget -= min(limit, len(posting))
            for story_id, vector in islice(reversed(posting.items()), limit):
                partial[story_id] = get(story_id, 0.0) + weight * vector[term]
            if budget <= 0:
                break
        scored = []
        decay = self._decay_of(when)
        for story_id in heapq.nlargest(s.max_candidates, partial, key=partial.__getitem__):
            story = self.stories[story_id]
            if not self._in_window(story, when):
                continue
            vector = story.vector
            # the article's terms in their own order (a set's would change with the hash seed, and a sum with it)
            dot = covered = 0.0
            shared = 0
            lookup = vector.get
            for term, weight in weights.items():
                value = lookup(term)
                if value is not None:
                    dot += weight * value
                    covered += weight
                    shared += 1
            cosine = dot / (norm * story.norm)
            if decay is not None:
                cosine *= decay(story.first, story.last)
            scored.append((cosine, shared, story_id, covered / total))
        scored.sort(reverse=True)
        return scored

    def _decay_of(self, when: datetime):
        """The factor a cosine with a story spanning (first, last) takes for ``when``'s time apart from it (see
        settings); None when time says nothing (untimed stream, or the rule off)."""
        half_life = self.settings.time_half_life.total_seconds()
        if half_life <= 0 or not self.timed():
            return None

        def decay(first: datetime, last: datetime) -> float:
            gap = (first - when).total_seconds() if when < first else max(0.0, (when - last).total_seconds())
            return 0.5 ** (gap / half_life)

        return decay

    def _threshold(self, story: _Story, coverage: float) -> float:
        s = self.settings
        if coverage >= s.active_min_coverage and self._active(story):
            return s.active_story_threshold
        return s.story_threshold

    def _tells_other_event(self, feats: Features, story: _Story) -> bool:
        """Whether the article tells another event than ``story`` by its names and figures (evidence.EventRule)."""
        return self.events.tells_other_event(feats.evidence, feats.title, story.evidence, story.vector)

    def _converging(self, story_id: int, weights: dict[str, float], when: datetime,
                    names: frozenset[str] = frozenset(), heading: frozenset[str] = frozenset()
                    ) -> tuple[float, int] | None:
        """The open story whose centroid comes closest to ``story_id``'s once the article joined it, if close enough
        (the article naming ``names``, and ``heading`` in its headline: see evidence.EventRule.stories_apart).

        Stories told twice (the first reports worded unlike the later ones) meet once enough articles fill
        both centroids; only stories sharing the joined story's heaviest terms are compared, a bounded few.
        """
        s = self.settings
        story = self.stories[story_id]
        vector = story.vector
        dot_self = sum(w * vector.get(t, 0.0) for t, w in weights.items())
        norm = math.sqrt(story.norm * story.norm + 2 * dot_self + sum(w * w for w in weights.values())) or 1.0

        def joined(term: str) -> float:
            return vector.get(term, 0.0) + weights.get(term, 0.0)

        top = heapq.nlargest(s.merge_terms, dict.fromkeys([*story.top, *weights]), key=joined)  # ties: in order
        found: Counter = Counter()
        for term in top:
            for other in self._recent_stories(term, s.merge_posting):
                if other != story_id:
                    found[other] += 1
        best: tuple[float, int] | None = None
        timed = self._decay_of(when) is not None
        first, last = min(story.first, when), max(story.last, when)
        for other_id, _ in found.most_common(s.merge_candidates):
            other = self.stories[other_id]
            if not self._in_window(other, when):
                continue
            dot = self.centroid_dot(story_id, other_id) + vector_dot(weights, other.vector)
            cosine = dot / (norm * other.norm)
            if timed:  # two stories' spans: apart by the gap between them, if any
                cosine *= 0.5 ** (max(0.0, (other.first - last).total_seconds(), (first - other.last).total_seconds())
                                  / s.time_half_life.total_seconds())
            small, big = sorted((story.articles + 1, other.articles))
            bar = s.merge_threshold
            if small <= s.fragment_articles and big >= s.fragment_host and self._active(other):
                bar = s.fragment_merge_threshold
            if cosine >= bar and (best is None or cosine > best[0]):
                if self._stories_apart(story, names, other, heading):
                    continue
                if small > s.fragment_articles and _word_share(vector, weights, other.vector) > s.merge_word_share:
                    continue  # two stories of one subject, told apart by everything but its word
                best = (cosine, other_id)
        return best

    def _stories_apart(self, story: _Story, names: frozenset[str], other: _Story, heading: frozenset[str]) -> bool:
        """Whether two stories (the first with an article naming ``names`` and ``heading`` in its headline
        joining it) tell different events."""
        return self.events.stories_apart(story.evidence | names, story.vector, other.evidence, other.vector, heading)

    def _with_semantic(self, cosine: float, feats: Features, story_id: int) -> float:
        """The TF-IDF cosine blended with the embedding cosine (unchanged for a story without vectors)."""
        from .semantic import blend

        similarity = self.semantic.similarity(feats.vector, story_id)
        return cosine if similarity is None else blend(cosine, similarity, self.settings.semantic_weight,
                                                         self.settings.semantic_floor)

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
        weights = self.weights(feats)
        best: tuple[float, float, int] | None = None  # (cosine over its threshold, cosine, story id)
        scored = self.story_scores(weights, feats.when)
        named = self.events.named(feats.evidence)  # else no story is told apart by names
        for score, shared, story_id, coverage in scored:
            story = self.stories[story_id]
            threshold = self._threshold(story, coverage)
            if self.semantic is not None:
                score = self._with_semantic(score, feats, story_id)
            if shared >= s.story_min_shared_terms and score >= threshold:
                if named and self._tells_other_event(feats, story):
                    continue
                if best is None or score / threshold > best[0]:
                    best = (score / threshold, score, story_id)
        if best is not None:
            _, score, story_id = best
            decision.story_id, decision.story_signal, decision.story_score = story_id, SIGNAL_STORY, round(score, 4)
            heading = headline_names(feats.title) if feats.evidence else frozenset()
            converging = self._converging(story_id, weights, feats.when, feats.evidence, heading)
            if converging is not None:
                decision.merge_story_ids = [converging[1]]
        return decision
