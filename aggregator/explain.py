"""Explanation: the signals between two articles, each with its score and the threshold it met or missed, in
words a person reads (the ``explain`` command and the API's comparison)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .evidence import listed
from .neardup import SIGNAL_HASH, containment_of
from .vectors import vector_dot, vector_norm

if TYPE_CHECKING:
    from .cluster import ClusterSettings, Features
    from .evidence import EventRule
    from .lsh import MinHashIndex


# How each signal reads to a person: a plain name, and the kind of value it measures (which gives its unit and
# whether the threshold is a floor or, for a time gap, a ceiling).
_SIGNAL_TEXT = {
    SIGNAL_HASH: ("identical text (normalised)", "yes-no"),
    "minhash-jaccard": ("word-sequence overlap (MinHash Jaccard)", "ratio"),
    "containment": ("share of the shorter text in the longer", "percent"),
    "minhash": ("near-duplicate check (MinHash)", "skipped"),
    "term-cosine": ("title and lead similarity, quiet story", "ratio"),
    "term-cosine-active-story": ("title and lead similarity, active story", "ratio"),
    "shared-terms": ("content words in common", "words"),
    "shared-evidence": ("names and figures of A in B", "names"),
    "hours-apart": ("time apart", "hours"),
    "semantic-cosine": ("headline meaning (sentence embeddings)", "ratio"),
}


@dataclass
class Signal:
    name: str
    score: float
    threshold: float | None
    decided: bool
    detail: str = ""  # what the score counts, in words ("haiti, 7.1")

    @property
    def label(self) -> str:
        """The signal's name in plain words."""
        return _SIGNAL_TEXT.get(self.name, (self.name, ""))[0]

    @property
    def _kind(self) -> str:
        return _SIGNAL_TEXT.get(self.name, ("", "ratio"))[1]

    def _format(self, value: float) -> str:
        kind = self._kind
        if kind == "yes-no":
            return "yes" if value >= 1.0 else "no"
        if kind == "percent":
            return f"{value * 100:.0f} %"
        if kind == "words":
            return f"{value:.0f} word" + ("" if value == 1 else "s")
        if kind == "hours":
            return f"{value:.1f} h"
        if kind == "skipped":
            return "-"
        if kind == "names":
            return f"{value * 100:.0f} %"
        return f"{value:.2f}"

    @property
    def value_text(self) -> str:
        """The score with its unit: "0.42", "64 %", "5 words", "5.2 h", "yes"; then its detail, if any."""
        text = self._format(self.score)
        return f"{text} ({self.detail})" if self.detail else text

    @property
    def threshold_text(self) -> str:
        """What the score must reach ("at least 0.30"), or not exceed for a time gap ("at most 72 h")."""
        if self.threshold is None:
            return "-"
        if self._kind == "yes-no":
            return "yes"
        if self._kind == "hours":
            return f"at most {self.threshold:g} h"
        return f"at least {self._format(self.threshold)}"

    @property
    def verdict(self) -> str:
        if self.threshold is None:
            return {"skipped": "not run: too little text", "names": "not run: too few names"}.get(self._kind, "-")
        return "met" if self.decided else "missed"

    def describe(self) -> str:
        """One line: "time apart: 5.2 h (met: at most 72 h)"."""
        if self.threshold is None:
            if self._kind == "skipped":
                return f"{self.label}: {self.verdict}"
            if self._kind == "names":
                return f"{self.label}: {self.value_text} ({self.verdict})"
            return f"{self.label}: {self.value_text}"
        return f"{self.label}: {self.value_text} ({self.verdict} threshold: {self.threshold_text})"


class Explanations:
    """How the engine (cluster.Clusterer) explains a comparison of two articles, by the rules it decides with."""

    settings: ClusterSettings
    index: MinHashIndex
    events: EventRule

    def weights(self, feats: Features) -> dict[str, float]:
        """An article's TF-IDF weights (the engine's)."""
        raise NotImplementedError

    def _evidence_signal(self, a: Features, b: Features, wb: dict[str, float]) -> Signal:
        """How much of A's names and figures B's names and words use too, as when A meets B's story (no
        threshold when either names too few for the rule to judge)."""
        share, detail, decided, judged = self.events.compared(a.evidence, b.evidence, a.title, wb)
        return Signal("shared-evidence", share, self.settings.evidence_min_share if judged else None, decided,
                      detail)

    def compare(self, a: Features, b: Features) -> list[Signal]:
        """Each signal between two articles, with its score and the threshold it met or missed."""
        s = self.settings
        signals = [Signal(SIGNAL_HASH, float(a.content_hash == b.content_hash), 1.0, a.content_hash == b.content_hash)]
        if a.minhash is not None and b.minhash is not None:
            jaccard = a.minhash.jaccard(b.minhash)
            # as find_duplicate measures it: without the values that many texts of the window hold
            plain, own_share, (share,) = self.index.plain_similarities(a.signature, b.signature[None, :])
            containment = containment_of(plain[0], a.shingle_count * own_share, b.shingle_count * share)
            signals.append(Signal("minhash-jaccard", jaccard, s.lsh_threshold, jaccard >= s.lsh_threshold))
            signals.append(Signal("containment", containment, s.duplicate_containment,
                                  containment >= s.duplicate_containment))
        else:
            signals.append(Signal("minhash", 0.0, None, False))
        wa, wb = self.weights(a), self.weights(b)
        cosine = vector_dot(wa, wb) / (vector_norm(wa) * vector_norm(wb))
        shared = set(wa) & set(wb)
        signals.append(Signal("term-cosine", cosine, s.story_threshold, cosine >= s.story_threshold))
        signals.append(Signal("term-cosine-active-story", cosine, s.active_story_threshold,
                              cosine >= s.active_story_threshold))
        signals.append(Signal("shared-terms", float(len(shared)), float(s.story_min_shared_terms),
                              len(shared) >= s.story_min_shared_terms,
                              listed(sorted(shared, key=lambda t: (-wa[t] * wb[t], t)))))
        signals.append(self._evidence_signal(a, b, wb))
        if a.vector is not None and b.vector is not None:  # the semantic signal, on and both headlines alone
            similarity = float(a.vector @ b.vector)
            signals.append(Signal("semantic-cosine", similarity, s.semantic_floor, similarity >= s.semantic_floor))
        gap = abs((a.when - b.when).total_seconds()) / 3600
        window = s.window.total_seconds() / 3600
        signals.append(Signal("hours-apart", gap, window, gap <= window))
        return signals
