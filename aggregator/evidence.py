"""Event evidence: the names and figures that tell one event from another of the same kind.

Two earthquakes, two arrests of one celebrity, share the words of their kind; a lexical similarity joins them.
What differs is the place, the people, the dates and the numbers. This module spots those in running text
(once per article) and judges, from the names an article and a story name, whether they tell different events.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from .text import STOPWORDS, WORD, fold, stem, terms

# A name: a capitalised word written after a word or a comma, so never the first word of a sentence, a line or
# a quote (capitalised whatever it is). A figure: digits, maybe with a decimal point, at least two characters
# ("7.1", "2010", "33"; a lone digit is too common to tell events apart), written with thousands separated by
# commas ("12,000": the figure 12000, not "12" and "000", which every round thousand would share) or with a
# decimal comma ("7,1": 7.1, as most of Europe writes it). Measured by scripts/eval_variants.py (untimed full
# texts, three seeds): the mean of 18 twin, kind and part variants 0.8816 -> 0.8787, lost where one event's
# tellings had shared "000" by chance (recall); kept, since a shared "000" says nothing of an event.
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_CAPITALISED = re.compile(r"(?<![^\W_])[A-ZÀ-ÖØ-Þ][^\W_]*(?:['’][^\W_]+)*")


def evidence(text: str, words: int | None = None) -> frozenset[str]:
    """What names an event in ``text`` (its first ``words`` words, if given): its proper names and its figures,
    as terms (lower-cased, stemmed); see :func:`spotted`."""
    return frozenset(spotted(lead(text, words) if words else text))


def spotted(text: str) -> dict[str, str]:
    """The proper names and figures of ``text``: term -> the word as first written ("preval" -> "Preval").

    Those are the capitalised words that do not start a sentence and the numbers. Only running text says which
    capitals are names: a headline capitalises every word, and so does a heading or a headline repeated in the
    text (a line most of whose words are capitalised gives no names); and a word the text also writes in lower
    case is a common word, capitalised by a title or for emphasis ("Decoration Ideas", "the decoration").
    """
    if _capitalises_nouns(text):
        return _names_and_figures((), text)
    lower: set[str] = set()
    names: list[str] = []
    for line in text.splitlines() if "\n" in text else (text,):
        tokens = line.split()
        found = []
        letters = capitals = 0
        after_word = False  # the previous token ends in a letter, a digit or a comma: no sentence starts here
        for token in tokens:
            first = token[0]
            if first.isupper():
                letters += 1
                capitals += 1
                if after_word:
                    found.append(token)
            elif first.isalpha():
                letters += 1
                lower.add(token.rstrip(_TRAILING))
            last = token[-1]
            after_word = last.isalnum() or last == ","
        if not _TITLE_WORDS[0] <= letters < _TITLE_WORDS[1] or capitals < _TITLE_SHARE * letters:
            names.extend(found)  # else a heading, or a headline repeated: capitalised whatever its words are
    found = [match.group(0) for token in names if (match := _WORD_AT.match(token))]
    return _names_and_figures([name for name in found if name.lower() not in lower], text)


# German capitalises every noun: there a capital marks no name ("Hochwasser", "Menschen", "Ufer"), and names
# spotted by it would be the nouns of each telling, which two tellings of one event share too few of. A text is
# German by its function words (lower-case, and German only: "und", "nicht", "das"; not "der" and "dem", which
# Danish and Norwegian write too), over 5 % of its words; only its figures are its evidence. Measured: 7 to 18 %
# of the words of German news (syndication-dev's vogue.de pages, tests/test_cluster_languages.py), at most 0.5 %
# of the English pages' first 200 words, none of a Danish paragraph.
_GERMAN_WORDS = frozenset(
    "das und nicht ist eine einer eines mit von auf für sich auch wird werden sind wurde wurden nach aus zum zur "
    "bei über im".split())
_GERMAN_SHARE = 0.05


def _capitalises_nouns(text: str) -> bool:
    tokens = text.split()
    return bool(tokens) and sum(token in _GERMAN_WORDS for token in tokens) > _GERMAN_SHARE * len(tokens)


# A heading: 4 to 29 words, at least 60 % of them capitalised.
_TITLE_WORDS = (4, 30)
_TITLE_SHARE = 0.6
_TRAILING = ".,;:!?)]}\"'’”…"
_WORD_AT = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def lead(text: str, count: int) -> str:
    """The first ``count`` words of ``text`` as written (its line breaks kept)."""
    parts = text.split(None, count)
    return text[: len(text) - len(parts[-1])] if len(parts) > count else text


@lru_cache(maxsize=4096)  # asked for each story an article is judged against
def headline_names(title: str) -> frozenset[str]:
    """The words of a headline that may name its event, as terms: every capitalised word (a headline capitalises
    its first word, or all of them) and its numbers."""
    return frozenset(_names_and_figures((m.group(0) for m in _CAPITALISED.finditer(title)), title))


@lru_cache(maxsize=1 << 16)
def _term(name: str) -> str:
    return stem(fold(name).replace("’", "'"))


def _names_and_figures(names: Iterable[str], text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in names:
        found.setdefault(_term(name), name)
    for written in _NUMBER.findall(text):
        for figure, shown in _figures(written):
            if len(figure) > 1:
                found.setdefault(figure, shown)
    return {term: name for term, name in found.items() if len(term) > 1 and term not in STOPWORDS}


def _figures(written: str) -> list[tuple[str, str]]:
    """The figures of a number as written, each as (term, as written): "12,000" -> 12000, "1,500.25" ->
    1500.25, "7,1" -> 7.1; "2,3,4" (a list) -> each of its numbers."""
    if "," not in written:
        return [(written, written)]
    if _THOUSANDS.fullmatch(written):
        return [(written.replace(",", ""), written)]
    if written.count(",") == 1:
        return [(written.replace(",", "."), written)]
    return [(part, part) for part in written.split(",")]


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
        weights = [(self.idf(name), name in words or name in other_names) for name in names]
        # names is often a set, in an order that changes with the hash seed: exact sums give one answer
        total = math.fsum([weight for weight, _ in weights])
        shared = math.fsum([weight for weight, found in weights if found])
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
        if not (self.named(story_names) and self.named(names)):
            return False
        if self.judged_share(names, title, story_words, story_names)[0] >= self.min_share:
            return False
        return not _same_headline(title, names, story_names, story_words)

    def judged_names(self, names: Collection[str], title: str, words: Mapping | Collection[str],
                     other_names: Collection[str] = ()) -> Collection[str]:
        """The names an article is judged by against a story (see :meth:`judged_share`)."""
        return self.judged_share(names, title, words, other_names)[1]

    def judged_share(self, names: Collection[str], title: str, words: Mapping | Collection[str],
                     other_names: Collection[str] = ()) -> tuple[float, Collection[str]]:
        """(share, names) an article is judged by against a story using ``words`` and naming ``other_names``:
        all its names, or the names its body gives besides its headline's when at least ``min_terms`` remain
        and a lower share of them is the story's (see :meth:`share`).

        A headline names the subject ("Bieber arrested again"), which two events of one kind may share (two
        arrests of one celebrity, two storms over one city); the event is in the places, people and figures the
        body names besides. Measured by scripts/eval_variants.py: twin events of one kind that keep their
        subject's two names 0.869 -> 0.882 (one name 0.912 -> 0.927, three 0.859 -> 0.885; another seed alike),
        twins with no name in common 0.948 -> 0.951, one event told from disjoint parts and real events of one
        kind unchanged. Headline streams carry no evidence.
        """
        share = self.share(names, words, other_names)
        heading = headline_names(title)
        rest = [name for name in names if name not in heading]
        if self.min_terms <= len(rest) < len(names):
            rest_share = self.share(rest, words, other_names)
            if rest_share < share:
                return rest_share, rest
        return share, names

    def stories_apart(self, names: Collection[str], words: Mapping, other_names: Collection[str],
                      other_words: Mapping, heading: Collection[str] = frozenset()) -> bool:
        """Whether two stories (names and words of each) tell different events: the smaller one's names are
        looked up in the bigger one's words, with every name and without those of ``heading`` (the headline of
        the article that brought them together), as an article is judged (:meth:`judged_share`).

        Two stories of one subject ("Bieber arrested", "Bieber charged") converge once an article joins one of
        them: its headline's names are the subject, and the stories' other names tell their events apart.
        Measured by scripts/eval_variants.py: twin events of one subject told by several outlets in their own
        words 0.789 -> 0.802 (two other seeds: +0.026, +0.024; keeping three names: +0.003-0.007), with no
        name in common 0.837 -> 0.841 (-0.004, +0.001), one event told from disjoint parts 0.975 (-0.002 on
        another seed), the rest unchanged.
        """
        if self._apart(names, words, other_names, other_words):
            return True
        rest = [name for name in names if name not in heading]
        other_rest = [name for name in other_names if name not in heading]
        if len(rest) == len(names) and len(other_rest) == len(other_names):
            return False
        return self._apart(rest, words, other_rest, other_words)

    def _apart(self, names: Collection[str], words: Mapping, other_names: Collection[str],
               other_words: Mapping) -> bool:
        if not self.named(other_names):
            return False
        if len(names) > len(other_names):
            return self.other_event(other_names, names, words)
        return self.other_event(names, other_names, other_words)

    def compared(self, names: Collection[str], other_names: Collection[str], title: str,
                 other_words: Mapping) -> tuple[float, str, bool, bool]:
        """How much of an article's names another article's names and words use: (share, the shared names
        rarest first, whether they may be one event, whether both name enough names for the rule to judge)."""
        share, judged_names = self.judged_share(names, title, other_words, other_names) if names else (0.0, names)
        shared = sorted((n for n in judged_names if n in other_words or n in other_names), key=self.idf,
                        reverse=True)
        judged = self.named(names) and self.named(other_names)
        same = share >= self.min_share or _same_headline(title, names, other_names, other_words)
        return share, listed(shared), same or not judged, judged


def _same_headline(title: str, names: Collection[str], story_names: Collection[str], story_words: Mapping) -> bool:
    """Whether an article heads the story's own event: every name of its headline is a word of the story, and
    its body names at least one of the story's names or words."""
    return own_headline(title, story_words) and any(n in story_words or n in story_names for n in names)


def listed(items: list[str], most: int = 6) -> str:
    """``items`` for a person: the first ``most``, then "..." for the rest; "none" for none."""
    return ", ".join(items[:most]) + (", ..." if len(items) > most else "") if items else "none"


def own_headline(title: str, words: Mapping | Collection[str]) -> bool:
    """Whether ``words`` (a story's, an article's) hold every name and figure of the headline."""
    return all(name in words for name in headline_names(title))


# ---- what a story is made of (for people) -------------------------------------------------------------------

@dataclass
class Shared:
    """A name or word several articles of a story use."""

    term: str
    shown: str  # as first written ("Port", "Preval", "7.0"; a content word as its term)
    articles: int  # how many of the story's articles use it


@dataclass
class Makeup:
    """Why a story's articles are together: the names and figures, and the content words, that several of them
    use, and how far apart in time they came."""

    names: list[Shared]
    words: list[Shared]
    first: datetime | None
    last: datetime | None
    articles: int
    shared_names: dict[int, list[str]] = field(default_factory=dict)  # article id -> names another one uses too

    @property
    def hours(self) -> float:
        """Hours between the first article and the last."""
        return (self.last - self.first).total_seconds() / 3600 if self.first and self.last else 0.0


def story_makeup(articles: Iterable[tuple[int, str, str, datetime, Iterable[str]]], words: int = 200,
                 limit: int = 12) -> Makeup:
    """What a story is made of, from its articles as (id, title, text, time, content terms of title and lead):
    the names (spotted in the first ``words`` words of each text) and the content words used by at least two of
    them, most used first (``limit`` of each), and each article's names that another one uses too."""
    named: dict[int, dict[str, str]] = {}
    name_counts: Counter = Counter()
    word_counts: Counter = Counter()
    shown: dict[str, str] = {}
    written: dict[str, str] = {}  # content term -> the word as articles write it ("U.K", "summits", "record")
    seen: set[str] = set()
    times = []
    for article_id, title, text, when, article_terms in articles:
        times.append(when)
        opening = lead(text, words) if text else ""
        names = spotted(opening) if text and text.strip() != title.strip() else {}
        named[article_id] = names
        name_counts.update(names.keys())
        for term, name in names.items():
            shown.setdefault(term, name)
        # each term once, in the article's order: a set's order (the hash seed's) would break ties among the
        # words shown differently in every process
        # (a lone digit is a term, but as the names leave it out, it says nothing of the story to a reader)
        word_counts.update(term for term in dict.fromkeys(article_terms) if term not in names and len(term) > 1)
        for word in WORD.findall(f"{title}\n{opening}"):
            if word in seen:  # its terms are written already: the first spelling stays
                continue
            seen.add(word)
            for term in terms(word):  # the term the engine made of it ("U.K." -> "uk", "summits" -> "summit")
                # the first spelling, unless a later one is in lower case: a common word capitalised by a title
                # or a sentence's start ("Record") is shown as running text writes it ("record")
                if term not in written or (word.islower() and not written[term].islower()):
                    written[term] = word
    common = {term for term, count in name_counts.items() if count >= 2}
    return Makeup(
        names=[Shared(t, shown[t], c) for t, c in name_counts.most_common() if c >= 2][:limit],
        words=[Shared(t, written.get(t, t), c) for t, c in word_counts.most_common() if c >= 2][:limit],
        first=min(times, default=None), last=max(times, default=None), articles=len(times),
        # the most used first, then as the article names them (its names before its figures): sorted by the
        # terms, figures came first ("100", "15") and filled the eight places
        shared_names={aid: [names[t] for t in sorted((t for t in names if t in common),
                                                     key=lambda t: -name_counts[t])][:8]
                      for aid, names in named.items()},
    )
