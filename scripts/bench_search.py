#!/usr/bin/env python3
"""Benchmark full-text search: latency of search_stories over a database of N stored articles.

usage: python scripts/bench_search.py [--articles 100000] [--database URL [--reuse]] [--repeat 20]
                                      [--bench-dir ../shared/bench] [--synthetic] [--keep]

The database (a temporary SQLite file unless --database names an empty one) is filled in bulk, not through the
ingest path: stories and articles are inserted directly, the search index kept by the schema's own triggers
(SQLite) or generated column (PostgreSQL), as in production. Half the articles are headlines only, half carry a
full text. They are real news when --bench-dir holds the labelled sets (headlines from googlenews-t, full texts
from syndication-dev, copied again and again with every word but the everyday ones renamed in each copy, as
scripts/bench_cluster.py does), else a synthetic stream; articles of one labelled story (in one copy) form one
stored story. Then each query of a fixed mix (everyday words matching a large share of the articles, rarer
names, phrases, prefixes) runs --repeat times after a warm-up, one page of 20 stories with their snippets, and
the p50/p95 latency is reported per kind of query and overall.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_cluster import FULL_TEXTS, HEADLINES, Synthetic, everyday_words, renamed  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from aggregator.models import Article, Story  # noqa: E402
from aggregator.search import matching_story_ids, search_stories  # noqa: E402
from aggregator.store import open_database  # noqa: E402

START = datetime(2026, 10, 1)
SPAN = timedelta(days=60)
BATCH = 2000


# ---- the articles ---------------------------------------------------------------------------------------------

class RealArticles:
    """Labelled rows again and again, each copy's rarer words renamed; yields (title, text, source, story key)."""

    def __init__(self, bench_dir: Path):
        self.headlines = [json.loads(line) for line in (bench_dir / HEADLINES).open(encoding="utf-8")]
        self.full_texts = [json.loads(line) for line in (bench_dir / FULL_TEXTS).open(encoding="utf-8")]
        self.keep = everyday_words(self.headlines) | everyday_words(self.full_texts)

    def __call__(self, n: int):
        for i in range(n):
            rows = self.full_texts if i % 2 else self.headlines
            copy, index = divmod(i // 2, len(rows))
            row = rows[index]
            source = row["source"] or f"outlet{index % 60}"
            # a headline set's story (about 70 rows) is cut in eight, nearer the size of a day's story
            key = (i % 2, copy, row["story"], 0 if i % 2 else index % 8)
            yield renamed(row["title"], copy, self.keep), renamed(row["text"], copy, self.keep), source, key


class SyntheticArticles:
    def __init__(self):
        self.gen = Synthetic()

    def __call__(self, n: int):
        for i in range(n):
            title, body, _, source = self.gen.article(START, i % 2 == 1)
            yield title, body, source, i // 6


def fill(engine, articles, n: int) -> float:
    """Insert n articles and their stories in bulk; returns the seconds taken."""
    began = time.perf_counter()
    stories: dict = {}
    story_rows, article_rows = [], []

    def flush() -> None:
        with engine.begin() as connection:
            if story_rows:
                connection.execute(insert(Story.__table__), story_rows)
            if article_rows:
                connection.execute(insert(Article.__table__), article_rows)
        story_rows.clear()
        article_rows.clear()

    for i, (title, body, source, key) in enumerate(articles(n)):
        when = START + SPAN * (i / n)
        story_id = stories.get(key)
        if story_id is None:
            story_id = stories[key] = len(stories) + 1
            story_rows.append(dict(id=story_id, title=title, representative_id=i + 1, first_seen=when,
                                   last_updated=when + timedelta(hours=6), article_count=0, source_count=0,
                                   closed=False))
        article_rows.append(dict(
            id=i + 1, source_key=source, external_id=str(i), source=source, url=f"https://example.com/{i}",
            title=title, summary="", text=body or "", text_source="feed" if body else "title", published_at=when,
            fetched_at=when, content_hash=f"{i:032x}", shingle_count=0, story_id=story_id,
            story_signal="new-story", story_score=0.0,
        ))
        if len(article_rows) >= BATCH:
            flush()
    flush()
    with engine.begin() as connection:  # the counts the filters read
        connection.execute(text(
            "UPDATE story SET article_count = (SELECT count(*) FROM article WHERE story_id = story.id), "
            "source_count = (SELECT count(DISTINCT source) FROM article WHERE story_id = story.id)"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE article"))
            connection.execute(text("VACUUM ANALYZE story"))
    return time.perf_counter() - began


def title_words(engine) -> tuple[Counter, list[str]]:
    """Word counts and word pairs of a sample of the stored titles (words of letters only)."""
    words: Counter = Counter()
    pairs = []
    with engine.connect() as connection:
        for (title,) in connection.execute(text("SELECT title FROM article WHERE id % 7 = 0")):
            found = title.lower().split()
            words.update(w for w in found if w.isalpha() and len(w) > 2)
            pairs.extend(f"{a} {b}" for a, b in zip(found, found[1:], strict=False) if a.isalpha() and b.isalpha())
    return words, pairs


# ---- the queries ----------------------------------------------------------------------------------------------

def query_mix(words: Counter, pairs: list[str], seed: int = 3) -> list[tuple[str, str]]:
    """(kind, query): the commonest title words alone and in pairs, rarer ones, phrases from titles, prefixes."""
    rng = random.Random(seed)
    ranked = [w for w, _ in words.most_common()]
    common, middle, rare = ranked[:20], ranked[20:400], ranked[len(ranked) // 2:]
    mix = [("common word", w) for w in common[:5]]
    mix += [("two common words", f"{a} {b}") for a, b in zip(common[5:10], common[10:15], strict=True)]
    mix += [("mid-frequency word", w) for w in rng.sample(middle, 5)]
    mix += [("rare word", w) for w in rng.sample(rare, 5)]
    mix += [("common + rare", f"{a} {b}") for a, b in zip(rng.sample(common, 5), rng.sample(rare, 5), strict=True)]
    mix += [("title phrase", f'"{pair}"') for pair in rng.sample(pairs, 5)]
    mix += [("prefix", w[:4] + "*") for w in rng.sample([w for w in middle if len(w) > 5], 5)]
    mix += [("3-letter prefix", w[:3] + "*") for w in rng.sample(common, 5)]
    return mix


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(engine, mix: list[tuple[str, str]], repeat: int) -> tuple[dict, list[float]]:
    by_kind: dict[str, list[float]] = {}
    matches: dict[str, list[int]] = {}
    every: list[float] = []
    for kind, q in mix:
        search_stories(engine, q)  # warm-up
        matches.setdefault(kind, []).append(len(matching_story_ids(engine, q)))
        for _ in range(repeat):
            began = time.perf_counter()
            search_stories(engine, q, limit=20)
            elapsed = (time.perf_counter() - began) * 1000
            by_kind.setdefault(kind, []).append(elapsed)
            every.append(elapsed)
    return {kind: (values, matches[kind]) for kind, values in by_kind.items()}, every


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--database", help="an empty database to fill (default: a temporary SQLite file)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--bench-dir", type=Path, default=ROOT.parent / "shared" / "bench",
                        help="the labelled sets (default ../shared/bench beside the repository)")
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary SQLite file and print its path")
    parser.add_argument("--reuse", action="store_true", help="measure the articles --database holds already")
    args = parser.parse_args()

    real = not args.synthetic and (args.bench_dir / HEADLINES).exists() and (args.bench_dir / FULL_TEXTS).exists()
    articles = RealArticles(args.bench_dir) if real else SyntheticArticles()
    folder = tempfile.mkdtemp(prefix="bench-search-")
    url = args.database or f"sqlite:///{folder}/search.db"
    engine = open_database(url)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM article")).scalar()
    if stored and not args.reuse:
        sys.exit(f"bench_search: {url} already holds articles; give an empty database, or --reuse it")
    if stored:
        print(f"{stored:,} articles already stored on {engine.dialect.name}")
    else:
        seconds = fill(engine, articles, args.articles)
        print(f"{args.articles:,} articles ({'real news, renamed copies' if real else 'synthetic'}) on "
              f"{engine.dialect.name}, filled in {seconds:.1f} s ({args.articles / seconds:,.0f}/s, index included)")
    results, every = measure(engine, query_mix(*title_words(engine)), args.repeat)
    print(f"{'query kind':20} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  stories matched (of the best hits)")
    for kind, (values, matched) in results.items():
        print(f"{kind:20} {percentile(values, 0.5):8.1f} {percentile(values, 0.95):8.1f} {max(values):8.1f}  "
              f"{', '.join(str(m) for m in matched)}")
    print(f"{'all':20} {percentile(every, 0.5):8.1f} {percentile(every, 0.95):8.1f} {max(every):8.1f}  "
          f"({len(every)} searches, one page of 20 stories with snippets each; mean "
          f"{statistics.mean(every):.1f} ms)")
    engine.dispose()
    if args.keep and not args.database:
        print(f"database kept: {url}")
    elif not args.database:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
