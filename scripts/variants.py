"""Variants of the labelled sets, built in memory (nothing is written), for scripts/eval_variants.py and
scripts/cluster_errors.py.

A setting fitted to one file's quirks (its arrival order, its burstiness) shows up as a score that holds on the
file and drops on a variant of it. The variants:

- gn: googlenews-t as published (stemmed, stop-worded headlines in MStream's stream order, no times);
- gn-shuf1..3: the same rows shuffled (three seeds): no burst of one story in the arrival order;
- gn-rev: the stream reversed;
- gn-time: fake times: each story starts at a random moment of a month, its articles follow within hours
  (exponential, mean four hours), the stream is in time order and carries the times;
- gn-burst: that same order without the times (the engine must judge recency by arrival);
- gn-slow: other fake times (another seed, a week, articles following within a day: mean twelve hours), so
  that a rule about time is not fitted to one way of faking them;
- gn-outlets: the rows as a dump of twenty made-up outlets' feeds, one outlet after the other (each row's
  outlet drawn at random, the first ones most often; stream order within each): arrival order follows the news
  within an outlet only, and every story comes back with each outlet;
- gn-small, gn-small-shuf: at most ten articles of each googlenews-t story (a seeded sample), in stream order and
  shuffled: news whose stories are a few articles each, where a rule that pays on gn's stories of a hundred
  articles (a low bar for a busy story, folding fragments) may cost precision;
- synd: syndication-dev as published (full texts with real-looking times over two days);
- synd-untimed: its rows shuffled, without times;
- samekind: the syndication-dev stories that share a subject with another one (markets, crime, football,
  holidays, celebrities, Ebola, politics, year-in-review pieces, the AirAsia crash as one story), without
  times, each subject's articles arriving together: different events of one kind, told in full texts;
- twins: harder: two events of one kind from each long syndication-dev article (its halves, the second with
  other names and figures; see ``twins``), each told by several outlets, untimed;
- twins-subject: the same twins, but the second event keeps the two names the article uses most: two events of
  one subject (two arrests of one celebrity, two storms over one city), told apart only by the other names and
  the figures;
- twins-told, twins-told-subject: the twins and the twins of one subject as news has them: each event told by
  two or three outlets in their own words (disjoint parts of its paragraphs, as in kinds: nothing for the
  near-duplicate check), the second headed in its own words where renaming left the headline alike; what must be
  joined and what must stay apart in one set (see ``twins``);
- kinds: real events of one kind, each told by independent outlets: the syndication-dev pages grouped by the
  kind of event they report (``KINDS``), each page one event told by two or three articles made of disjoint
  parts of its paragraphs (not copies: nothing for the near-duplicate check), headed by the page's headline, the
  headline with a word dropped, or the page's first sentence (as an outlet that heads the event in its own words);
  untimed, each kind's articles arriving together (see ``kinds``);
- synd-titles: its headlines alone (raw, as outlets write them), shuffled, untimed;
- synd-parts: the other way round: each syndication-dev story's articles tell one event from different parts of
  the text (disjoint, interleaved paragraphs, the headline kept), shuffled, untimed: what must not split.
- synd-ledes: raw headlines in other words: each syndication-dev story as its headline and the first sentences
  of its first two paragraphs, cut to headline length, shuffled, untimed (see ``ledes``);
- gn-tagged, titles-tagged, ledes-tagged: gn, synd-titles and synd-ledes with their headlines tagged as
  aggregators show them: most with an outlet's name ("Headline - Reuters", "Headline | Fox News"), some with a
  format prefix or suffix ("VIDEO: ", "LIVE: ", "UPDATE 2-", "– video", "(VIDEO)"); no source, as in a dump
  replayed without one or an aggregator's feed (see ``tagged``);
- feeds: real feed headlines from ../corpus/feeds (outlets, blogs, three languages), labelled by hand into stories
  (``FEED_STORIES``), shuffled, untimed: mostly what must stay apart.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from operator import itemgetter
from pathlib import Path

HEADLINES, FULL_TEXTS = "googlenews-t.jsonl", "syndication-dev.jsonl"

# syndication-dev stories (page names) that share a subject with another: different events of one kind
SUBJECTS = {
    "markets": ["247wallst.com1", "247wallst.com2", "reuters.com1", "fool.com1", "theglobeandmail.com2",
                "huffingtonpost.com1", "bloomberg.com1"],
    "crime": ["foxnews.com2", "pe.com1", "mlive.com1", "oregonlive.com2", "nydailynews.com1", "wired.com2",
              "thedailybeast.com2"],
    "football": ["al.com1", "dallasnews.com2", "mlive.com2", "dailycaller.com2"],
    "holidays": ["elle.com2", "bhg.com2", "dailycaller.com1", "dallasnews.com1", "foxbusiness.com2",
                 "theatlanticcities.com2", "self.com2", "mashable.com1", "mashable.com2"],
    "celebrities": ["ok.co.uk1", "vanityfair.com1", "graziadaily.co.uk1", "glamour.com1", "self.com1",
                    "thedebrief.co.uk1", "thedebrief.co.uk2", "teenvogue.com2"],
    "ebola": ["reuters.com4", "uproxx.com1"],
    "politics": ["nj.com1", "usnews.com1", "pewresearch.org1", "businessweek.com2"],
    "year-in-review": ["flavorwire.com1", "flavorwire.com2", "avclub.com1", "cleveland.com1", "cleveland.com2",
                       "sitepoint.com1", "theatlantic.com2"],
    "airasia": ["reuters.com2", "reuters.com3", "telegraph.co.uk1", "theglobeandmail.com1"],
}
ONE_STORY = {"airasia"}

# Pages of syndication-dev grouped by the kind of event they report, each page one event, the groups made by
# reading each page's headline and text: different events of one kind, where possible of one subject (two
# governors, two Ebola scares, three Taylor Swift items, two Monday market reports, two crimes in court).
KINDS = {
    "crime": ["foxnews.com2", "pe.com1", "oregonlive.com2", "nydailynews.com1", "mlive.com1"],
    "markets": ["247wallst.com1", "247wallst.com2", "reuters.com1", "huffingtonpost.com1"],
    "economy-outlook": ["theglobeandmail.com2", "pewresearch.org2", "bloomberg.com1"],
    "air-travel": ["mashable.com2", "reuters.com2"],
    "celebrity-couples": ["ok.co.uk1", "vanityfair.com1", "graziadaily.co.uk2"],
    "taylor-swift": ["self.com1", "thedebrief.co.uk1", "thedebrief.co.uk2"],
    "football": ["al.com1", "mlive.com2", "dallasnews.com2"],
    "ebola": ["reuters.com4", "uproxx.com1"],
    "governors": ["nj.com1", "businessweek.com2"],
    "obama-policy": ["pewresearch.org1", "usnews.com1"],
    "year-2014-culture": ["flavorwire.com1", "flavorwire.com2", "theatlantic.com2"],
    "books-and-film": ["nypost.com1", "foxnews.com1"],
}  # one event covered by several outlets: one story, whatever the page


def untimed(rows: list[dict]) -> list[dict]:
    return [{**row, "published": None} for row in rows]


def shuffled(rows: list[dict], seed: int) -> list[dict]:
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows


def capped(rows: list[dict], most: int = 10, seed: int = 1) -> list[dict]:
    """At most ``most`` rows of each story (a seeded sample), in their order."""
    rng = random.Random(seed)
    by_story: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_story[str(row["story"])].append(row["id"])
    kept = {row_id for ids in by_story.values() for row_id in rng.sample(ids, min(most, len(ids)))}
    return [row for row in rows if row["id"] in kept]


def _most_often_first(count: int) -> list[float]:
    """Weights drawing the first of ``count`` outlets most often (the k-th one 1/k as often), as news has them."""
    return [1 / (rank + 1) for rank in range(count)]


def by_outlet(rows: list[dict], seed: int = 1, outlets: int = 20) -> list[dict]:
    """The rows as a dump of several outlets' feeds, one outlet after the other: each row given one of
    ``outlets`` made-up outlets (the first ones most often), their order kept within each. Arrival order then
    follows the news only within an outlet, and a story comes back with every outlet."""
    rng = random.Random(seed)
    weights = _most_often_first(outlets)
    keyed = [(rng.choices(range(outlets), weights)[0], index, row) for index, row in enumerate(rows)]
    keyed.sort(key=itemgetter(0, 1))
    return [row for _, _, row in keyed]


def fake_times(rows: list[dict], seed: int = 1, days: int = 30, mean_hours: float = 4.0) -> list[dict]:
    """Rows with made-up times: stories start over ``days`` days, their articles follow within hours; time order."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 1)
    begins: dict[str, datetime] = {}
    timed = []
    for row in rows:
        begin = begins.setdefault(row["story"], start + timedelta(seconds=rng.uniform(0, days * 86400)))
        when = begin + timedelta(hours=min(rng.expovariate(1 / mean_hours), 48.0))
        timed.append({**row, "published": when.isoformat()})
    timed.sort(key=lambda r: r["published"])
    return timed


def same_kind(rows: list[dict], seed: int = 1) -> list[dict]:
    """Stories that share a subject with another, untimed, each subject's articles arriving together."""
    rng = random.Random(seed)
    out = []
    for subject, stories in SUBJECTS.items():
        picked = [dict(row, published=None) for row in rows if row["story"] in stories]
        rng.shuffle(picked)
        if subject in ONE_STORY:
            picked = [dict(row, story=subject) for row in picked]
        out.extend(picked)
    return out


_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'’-]+")
_NUMBER = re.compile(r"\d+")


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]


def _renamed(text: str, names: dict[str, str], rng: random.Random, figures: dict[str, str] | None = None) -> str:
    """``text`` with the capitalised words of ``names`` swapped, and each number but zeros for another of as many
    digits (the same one wherever it recurs, when ``figures`` keeps them: one event gives its figures alike in every
    telling)."""
    text = re.sub(r"\b[A-Z][\w'’-]+", lambda m: names.get(m.group(0), m.group(0)), text)

    def other(number: str) -> str:
        if not number.strip("0"):  # the zeros of "38,000": another round figure has them too
            return number
        if figures is None:
            return str(rng.randrange(10 ** (len(number) - 1), 10 ** len(number)))
        if number not in figures:
            figures[number] = str(rng.randrange(10 ** (len(number) - 1), 10 ** len(number)))
        return figures[number]

    return _NUMBER.sub(lambda m: other(m.group(0)), text)


def _copy(title: str, pars: list[str], rng: random.Random) -> tuple[str, str]:
    """A wire copy: maybe a headline word dropped, the tail cut, a dateline."""
    words = title.split()
    if len(words) > 4 and rng.random() < 0.5:
        del words[rng.randrange(len(words))]
    keep = max(1, int(len(pars) * rng.uniform(0.6, 1.0)))
    return " ".join(words), rng.choice(["", "LONDON (Reuters) - ", "NEW YORK -- "]) + "\n\n".join(pars[:keep])


def twins(rows: list[dict], seed: int = 1, min_words: int = 300, keep: int = 0, told: str = "copies") -> list[dict]:
    """Two events of one kind from each long article, untimed: its first half of paragraphs as one event, its
    second half with every capitalised name swapped for another article's (but its ``keep`` most used names: the
    subject both events share) and every number changed as the other, the pair's articles arriving together.
    Each event is told (``told``) by the original and one to three wire copies ("copies"), or by two or three
    outlets in their own words ("parts": disjoint parts of its paragraphs under the headlines :func:`kinds`
    gives, nothing for the near-duplicate check).

    The two events share the subject's words and none of their names, places or figures (two earthquakes, two
    arrests): what tells them apart is the evidence of the event.
    """
    rng = random.Random(seed)
    bases = [r for r in rows if r["id"].endswith("-0") and len((r["text"] or "").split()) >= min_words]
    lower = {w for r in bases for w in re.findall(r"\b[a-z][\w'’-]+", r["text"])}
    # proper names: capitalised mid-sentence and never written in lower case
    pool = sorted({m.group(0) for r in bases for m in _NAME.finditer(r["text"]) if m.group(0).lower() not in lower})
    out = []
    for base in bases:
        pars = _paragraphs(base["text"])
        if len(pars) < (4 if told == "copies" else 8):
            continue
        half = len(pars) // 2
        counts = Counter(m.group(0) for m in _NAME.finditer(base["text"]) if m.group(0) in pool)
        own = set(counts)
        others = [name for name in pool if name not in own]
        if not others:
            continue
        subject = {name for name, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:keep]}
        names = {name: rng.choice(others) for name in sorted(own - subject)}
        figures: dict[str, str] | None = {} if told == "parts" else None
        second_title = _renamed(base["title"], names, rng, figures)  # before its paragraphs: the seed's draws
        second = [_renamed(p, names, rng, figures) for p in pars[half:]]
        events = [(base["title"], pars[:half], f"{base['story']}/a"), (second_title, second, f"{base['story']}/b")]
        block = []
        for title, event_pars, story in events:
            if told == "parts":
                # two events are seldom headed alike: where no name of the headline changed, the second is
                # headed in its own words, by its text's first sentence
                if story.endswith("/b") and title == base["title"]:
                    title = _lede_headline("\n\n".join(event_pars))
                block.extend(_told_in_parts(title, event_pars, story))
                continue
            block.append({"id": f"{story}-0", "title": title, "text": "\n\n".join(event_pars), "published": None,
                          "source": "Origin", "url": None, "story": story})
            for k in range(1, rng.randint(1, 3) + 1):
                copy_title, copy_text = _copy(title, event_pars, rng)
                block.append({"id": f"{story}-{k}", "title": copy_title, "text": copy_text, "published": None,
                              "source": f"Outlet {k}", "url": None, "story": story})
        rng.shuffle(block)
        out.extend(block)
    return out


def parts(rows: list[dict], seed: int = 1) -> list[dict]:
    """Each story's articles with disjoint parts of the original's paragraphs (the k-th of n articles gets every
    n-th paragraph from the k-th on), untimed, shuffled: one event in other words and other details."""
    by_story: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_story[row["story"]].append(row)
    out = []
    for members in by_story.values():
        pars = _paragraphs(members[0]["text"] or "")
        for k, row in enumerate(members):
            text = "\n\n".join(pars[k :: len(members)]) or (row["text"] or "")
            out.append({**row, "text": text, "published": None})
    return shuffled(out, seed)


_DATELINE = re.compile(r"^[A-Z][A-Z .,]+(?:\([A-Za-z]+\))?\s*(?:-|—|--)\s*")


def _lede_headline(text: str, most: int = 12, least: int = 6) -> str:
    """An outlet's own headline for a text: its first sentence (dateline dropped; at least ``least`` words, so
    "U.S." ends none), cut to ``most`` words."""
    words = _DATELINE.sub("", text.strip()).split()[:most]
    end = next((i + 1 for i, word in enumerate(words) if i + 1 >= least and word.endswith((".", "!", "?"))), most)
    return " ".join(words[:end]).rstrip(".,;:")


def kinds(rows: list[dict], seed: int = 1) -> list[dict]:
    """Real events of one kind (``KINDS``), each told by two or three outlets in their own words, untimed.

    Each page's paragraphs are dealt out to its articles (the k-th of n gets every n-th from the k-th on), so
    the articles of one event share its names and subject but no sentence; the first keeps the page's
    headline, the second drops its last word, the third is headed by the page's first sentence (an outlet's
    own headline for the event). Each kind's articles arrive together, shuffled.
    """
    rng = random.Random(seed)
    originals = {row["story"]: row for row in rows if row["id"].endswith("-0")}
    out = []
    for pages in KINDS.values():
        block = []
        for page in pages:
            base = originals.get(page)
            pars = _paragraphs(base["text"] or "") if base else []
            if len(pars) >= 4:
                block.extend(_told_in_parts(base["title"], pars, page))
        rng.shuffle(block)
        out.extend(block)
    return out


def _told_in_parts(title: str, pars: list[str], story: str) -> list[dict]:
    """One event told by two or three outlets (three from six paragraphs up) in their own words: the k-th of n
    articles gets every n-th paragraph from the k-th on; the first keeps the headline, the second drops its last
    word, the third is headed by the text's first sentence."""
    count = 3 if len(pars) >= 6 else 2
    told = []
    for k in range(count):
        if k == 0:
            heading = title
        elif k == 1:
            words = title.split()
            heading = " ".join(words[:-1] if len(words) > 4 else words)  # an outlet cuts its tail
        else:
            heading = _lede_headline("\n\n".join(pars))
        told.append({"id": f"{story}/{k}", "title": heading, "text": "\n\n".join(pars[k::count]),
                     "published": None, "source": f"Outlet {k}", "url": None, "story": story})
    return told


def ledes(rows: list[dict], seed: int = 1, max_words: int = 20) -> list[dict]:
    """Raw headlines worded by different hands: each syndication-dev story told by its original headline and by
    the first sentence of its first two paragraphs (cut to ``max_words`` words, as a headline is), untimed,
    shuffled. Real, unstemmed wording (inflections, stop words, names), other words for one event."""
    out = []
    for row in rows:
        if not row["id"].endswith("-0"):
            continue
        out.append({**row, "text": None, "published": None})
        for k, par in enumerate(_paragraphs(row["text"] or "")[:2], 1):
            sentence = re.split(r"(?<=[.!?])\s+", par)[0]
            out.append({**row, "id": f"{row['id']}-lede{k}", "title": " ".join(sentence.split()[:max_words]),
                        "text": None, "published": None})
    return shuffled(out, seed)


# Real feed headlines (../corpus/feeds), labelled by hand: (feed file, its entries told by one story). Every other
# entry of these feeds is a story of its own. The feeds mix outlets, years and languages (English, Portuguese,
# German), author and format tags ("| Cas Mudde", "– video"), and events of one kind (API releases, polls,
# awards): mostly a test of what must stay apart, with a few stories of several headlines.
FEED_STORIES: dict[str, list[list[int]]] = {
    "rss-parser/guardian.rss": [[0, 1, 14, 18, 19, 27, 29, 51], [28, 32], [16, 17]],  # State of the Union, ...
    "node-feedparser/tpm.atom": [[5, 6, 10, 14, 16, 17, 19], [2, 12]],  # Virginia election; Menendez trial
    "rss-parser/encoding.rss": [[0, 18], [33, 37], [12, 15], [25, 31]],
    "rss-parser/uolNoticias.rss": [[8, 9], [0, 12]],
    "rss-parser/customfields.rss": [[6, 7], [12, 13]],
    "rss-parser/many-links.rss": [[6, 24]],
    "rss-parser/feedburner.atom": [],
    "rss-parser/heise.atom": [],
    "rss-parser/rss-1.rss": [],
    "rss-parser/reddit.rss": [],
    "node-feedparser/illegally-nested.xml": [],
}


def feed_headlines(feeds: Path, seed: int = 1) -> list[dict]:
    """The hand-labelled real feed headlines (FEED_STORIES), untimed, shuffled; empty without the feeds."""
    import feedparser

    out = []
    for name, groups in FEED_STORIES.items():
        path = feeds / name
        if not path.exists():
            continue
        story_of = {index: f"{name}#{group[0]}" for group in groups for index in group}
        for index, entry in enumerate(feedparser.parse(str(path)).entries):
            title = " ".join((entry.get("title") or "").split())
            if title:
                out.append({"id": f"{name}#{index}", "title": title, "text": None, "published": None,
                            "source": None, "url": None, "story": story_of.get(index, f"{name}#{index}")})
    return shuffled(out, seed)


# Outlets as aggregators show them, each with its own way of tagging its headlines ("Headline - Reuters",
# "Headline | Fox News", "Headline : NPR"), most prolific first.
OUTLETS = [("Reuters", " - "), ("Fox News", " | "), ("The Guardian", " | "), ("CNN", " - "), ("BBC News", " - "),
           ("Bloomberg", " - "), ("The New York Times", " - "), ("Yahoo News", " - "), ("NBC News", " - "),
           ("Business Insider", " - "), ("Daily Mail Online", " | "), ("The Washington Post", " - "),
           ("CNBC", " - "), ("Forbes", " - "), ("USA TODAY", " - "), ("Los Angeles Times", " - "),
           ("HuffPost", " | "), ("NPR", " : "), ("Al Jazeera English", " - "), ("The Independent", " | "),
           ("ABC News", " - "), ("Variety", " – "), ("TechCrunch", " – "), ("ESPN", " - "), ("Politico", " - "),
           ("news.com.au", " - "), ("FOX 5 DC", " - "), ("9News", " - "), ("theguardian.com", " | "),
           ("WRAL.com", " - "), ("The Sydney Morning Herald", " - "), ("Press Trust of India", " - ")]
# Format tags: a prefix or a suffix saying what the item is, not what it tells.
FORMAT_PREFIXES = ["VIDEO: ", "WATCH: ", "LIVE: ", "BREAKING: ", "UPDATE 2-", "Opinion: ", "EXCLUSIVE: "]
FORMAT_SUFFIXES = [" – video", " (VIDEO)", " - live updates", " – in pictures", " | Opinion", " - The Latest"]


def tagged(rows: list[dict], seed: int = 1, tag_share: float = 0.7, format_share: float = 0.15) -> list[dict]:
    """The same rows with their headlines tagged as aggregators show them: each from an outlet drawn at random
    (the first ones most often), tagged with its name most of the time, some with a format prefix or suffix.
    Stories, order and times kept; no source (as in a dump replayed without one, or an aggregator's feed,
    whose source is the aggregator): the tags must be told from the headlines alone."""
    rng = random.Random(seed)
    weights = _most_often_first(len(OUTLETS))
    out = []
    for row in rows:
        outlet, separator = rng.choices(OUTLETS, weights)[0]
        title = row["title"]
        if rng.random() < format_share:
            if rng.random() < 0.5:
                title = rng.choice(FORMAT_PREFIXES) + title
            else:
                title += rng.choice(FORMAT_SUFFIXES)
        if rng.random() < tag_share:
            title += separator + outlet
        out.append({**row, "title": title, "source": None})
    return out


def load(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def variants(bench: Path) -> dict[str, list[dict]]:
    sets: dict[str, list[dict]] = {}
    if (bench / HEADLINES).exists():
        gn = load(bench / HEADLINES)
        sets["gn"] = gn
        for seed in (1, 2, 3):
            sets[f"gn-shuf{seed}"] = shuffled(gn, seed)
        sets["gn-rev"] = gn[::-1]
        sets["gn-time"] = fake_times(gn)
        sets["gn-burst"] = untimed(sets["gn-time"])
        sets["gn-slow"] = fake_times(gn, seed=2, days=7, mean_hours=12.0)
        sets["gn-tagged"] = tagged(gn)
        sets["gn-outlets"] = by_outlet(gn)
        sets["gn-small"] = capped(gn)
        sets["gn-small-shuf"] = shuffled(sets["gn-small"], 1)
    if (bench / FULL_TEXTS).exists():
        synd = load(bench / FULL_TEXTS)
        sets["synd"] = synd
        sets["synd-untimed"] = untimed(shuffled(synd, 1))
        sets["samekind"] = same_kind(synd)
        sets["twins"] = twins(synd)
        sets["twins-subject"] = twins(synd, keep=2)
        sets["twins-told"] = twins(synd, told="parts")
        sets["twins-told-subject"] = twins(synd, keep=2, told="parts")
        sets["synd-parts"] = parts(synd)
        sets["kinds"] = kinds(synd)
        sets["synd-titles"] = [{**row, "text": None} for row in sets["synd-untimed"]]
        sets["synd-ledes"] = ledes(synd)
        sets["titles-tagged"] = tagged(sets["synd-titles"])
        sets["ledes-tagged"] = tagged(sets["synd-ledes"])
    feeds = feed_headlines(bench.parent / "corpus" / "feeds")
    if feeds:
        sets["feeds"] = feeds
    return sets
