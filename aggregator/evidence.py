"""Event evidence: the names and figures that tell one event from another of the same kind.

Two earthquakes, two arrests of one celebrity, share the words of their kind; a lexical similarity joins them.
What differs is the place, the people, the dates and the numbers. This module spots those in running text
(once per article) and judges, from the names an article and a story name, whether they tell different events.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from .text import STOPWORDS, fold, stem

# A name: a capitalised word written after a word or a comma and one space, so never the first word of a
# sentence, a line or a quote (capitalised whatever it is). A figure: digits, maybe with a decimal point, at
# least two characters ("7.1", "2010", "33"; a lone digit is too common to tell events apart).
_NAME = re.compile(r"(?<=[^\W_] |, )[A-ZÀ-ÖØ-Þ][^\W_]*(?:['’][^\W_]+)*")
_NUMBER = re.compile(r"\d+(?:\.\d+)*")
_CAPITALISED = re.compile(r"(?<![^\W_])[A-ZÀ-ÖØ-Þ][^\W_]*(?:['’][^\W_]+)*")


def evidence(text: str) -> frozenset[str]:
    """What names an event in ``text``: its proper names and its figures, as terms (lower-cased, stemmed).

    Those are the capitalised words that do not start a sentence and the numbers. Only running text says which
    capitals are names: a headline capitalises every word, and so does a heading or a headline repeated in the
    text (a line most of whose words are capitalised gives no names); and a word the text also writes in lower
    case is a common word, capitalised by a title or for emphasis ("Decoration Ideas", "the decoration").
    """
    lines = text.splitlines() if "\n" in text else [text]
    running = "\n".join(line for line in lines if not _title_case(line))
    lower = {m.group(0) for m in _LOWER.finditer(text)}
    names = (m for m in _NAME.finditer(running) if m.group(0).lower() not in lower)
    return _names_and_figures(names, text)


_LOWER = re.compile(r"(?<![^\W_])[a-zß-öø-ÿ][^\W_]*")
_WORDS = re.compile(r"[^\W\d_]+")


def _title_case(line: str, least: int = 4, share: float = 0.6) -> bool:
    """Whether ``line`` is written like a headline: at least ``least`` words, most of them capitalised."""
    found = _WORDS.findall(line)
    if len(found) < least:
        return False
    return sum(word[0].isupper() for word in found) >= share * len(found)


def headline_names(title: str) -> frozenset[str]:
    """The words of a headline that may name its event, as terms: every capitalised word (a headline capitalises
    its first word, or all of them) and its numbers."""
    return _names_and_figures(_CAPITALISED.finditer(title), title)


def _names_and_figures(names, text: str) -> frozenset[str]:
    found = {stem(fold(m.group(0)).replace("’", "'")) for m in names}
    found.update(n for n in _NUMBER.findall(text) if len(n) > 1)
    return frozenset(t for t in found if len(t) > 1 and t not in STOPWORDS)


@dataclass(frozen=True)
class EventRule:
    """When an article (or a story) and a story tell different events: both name at least ``min_terms`` names
    and figures, and less than ``min_share`` of the article's (by IDF weight) are words of the story.

    ``idf`` weighs a term by its rarity in the open window: a rare name says more about the event than a common
    one.
    """

    min_terms: int
    min_share: float
    idf: Callable[[str], float]

    def named(self, names: Collection[str]) -> bool:
        """Whether ``names`` are enough to tell an event by."""
        return len(names) >= self.min_terms

    def share(self, names: Iterable[str], words: Mapping | Collection[str], other_names: Collection[str] = ()) -> float:
        """The share of ``names``' IDF weight found among ``words`` or ``other_names`` (1.0 when there are none)."""
        total = shared = 0.0
        for name in names:
            weight = self.idf(name)
            total += weight
            if name in words or name in other_names:
                shared += weight
        return shared / total if total else 1.0

    def other_event(self, names: Collection[str], story_names: Collection[str], story_words: Mapping) -> bool:
        """Whether an article (or story) naming ``names`` tells another event than a story naming ``story_names``
        whose titles and leads use ``story_words``."""
        if not (self.named(story_names) and self.named(names)):
            return False
        return self.share(names, story_words, story_names) < self.min_share

    def tells_other_event(self, names: Collection[str], title: str, story_names: Collection[str],
                          story_words: Mapping) -> bool:
        """Whether an article tells another event than the story by its names and figures, unless it is the
        story's own event told from another angle: its headline's names all words of the story, and its body
        sharing at least one name with it (a headline alone does not vouch for a body naming nothing in common:
        two events of one kind are often headed alike)."""
        if not self.other_event(names, story_names, story_words):
            return False
        return not _same_headline(title, names, story_names, story_words)

    def stories_apart(self, names: Collection[str], words: Mapping, other_names: Collection[str],
                      other_words: Mapping) -> bool:
        """Whether two stories (names and words of each) tell different events: the smaller one's names are
        looked up in the bigger one's words."""
        if not self.named(other_names):
            return False
        if len(names) > len(other_names):
            return self.other_event(other_names, names, words)
        return self.other_event(names, other_names, other_words)

    def compared(self, names: Collection[str], other_names: Collection[str], title: str,
                 other_words: Mapping) -> tuple[float, str, bool] | None:
        """How much of an article's names another article's words use: (share, the shared names rarest first,
        whether they may be one event); None when either names too few to tell."""
        if not (self.named(names) and self.named(other_names)):
            return None
        shared = sorted((n for n in names if n in other_words or n in other_names), key=self.idf, reverse=True)
        detail = ", ".join(shared[:6]) + (", ..." if len(shared) > 6 else "") if shared else "none"
        share = self.share(names, other_words, other_names)
        return share, detail, share >= self.min_share or _same_headline(title, names, other_names, other_words)


def _same_headline(title: str, names: Collection[str], story_names: Collection[str], story_words: Mapping) -> bool:
    """Whether an article heads the story's own event: every name of its headline is a word of the story, and
    its body names at least one of the story's names or words."""
    return own_headline(title, story_words) and any(n in story_words or n in story_names for n in names)


def own_headline(title: str, words: Mapping | Collection[str]) -> bool:
    """Whether ``words`` (a story's, an article's) hold every name and figure of the headline."""
    return all(name in words for name in headline_names(title))
