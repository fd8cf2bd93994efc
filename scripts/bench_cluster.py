#!/usr/bin/env python3
"""Benchmark the dedup and clustering stage: quality on labelled sets, speed and memory at scale, restart time.

usage: python scripts/bench_cluster.py [--sizes 10000 100000] [--bench-dir ../shared/bench]
                                       [--skip-quality] [--skip-speed] [--skip-restart]

- quality: `aggregator replay` on every labelled *.jsonl in --bench-dir (skipped when the folder is absent);
- speed: the engine alone (extraction excluded), one core, with N synthetic articles already indexed in the
  open window: headline-only and full-text articles per second;
- memory: resident set size of a process holding N indexed articles (each size in its own process);
- restart: time for the daemon's start-up path (Ingestor.reload) to rebuild the index from a database with N
  stored articles.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aggregator.cluster import Clusterer  # noqa: E402

START = datetime(2026, 11, 20)
SYLLABLES = "ba be bi bo bu da de di do du ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu ra re ri ro " \
            "ru sa se si so su ta te ti to tu va ve vi vo vu za ze zi zo zu".split()


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class Synthetic:
    """A stream of articles about many stories: Zipf-distributed background words plus each story's own terms."""

    def __init__(self, seed: int = 1, vocab: int = 40000):
        self.rng = random.Random(seed)
        self.words = vocabulary(vocab, self.rng)
        weights = [1 / (rank + 1) for rank in range(vocab)]
        total = sum(weights)
        self.cumulative = []
        acc = 0.0
        for w in weights:
            acc += w / total
            self.cumulative.append(acc)

    def background(self, n: int) -> list[str]:
        import bisect

        return [self.words[min(bisect.bisect(self.cumulative, self.rng.random()), len(self.words) - 1)]
                for _ in range(n)]

    def story_terms(self) -> list[str]:
        return self.rng.sample(self.words[2000:], 10)

    def article(self, index: int, total: int, full_text: bool) -> tuple[str, str, datetime, str]:
        rng = self.rng
        story = index // 6  # about six articles a story
        rng_story = random.Random(story)
        terms = rng_story.sample(self.words[2000:], 10)
        title_words = rng.sample(terms, 4) + self.background(rng.randint(3, 6))
        rng.shuffle(title_words)
        title = " ".join(title_words).capitalize()
        text = ""
        if full_text:
            body = self.background(rng.randint(150, 500))
            for _ in range(12):
                body.insert(rng.randrange(len(body)), rng.choice(terms))
            text = " ".join(body)
        when = START + timedelta(seconds=3 * 86400 * index / max(total, 1))
        return title, text, when, f"outlet{rng.randint(1, 60)}"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cluster_one(clusterer: Clusterer, article_id: int, article: tuple, next_story: int) -> int:
    """Put one article in its story the way the ingest path does; returns the next free story id."""
    title, text, when, source = article
    feats = clusterer.features(title, text, when, source)
    decision = clusterer.decide(feats)
    story = decision.story_id
    if story is None:
        story, next_story = next_story, next_story + 1
    for other in decision.merge_story_ids:
        clusterer.merge(story, other)
    clusterer.add(article_id, feats, story)
    return next_story


def index_articles(clusterer: Clusterer, gen: Synthetic, n: int, full_share: float = 0.5) -> int:
    next_story = 1
    for i in range(n):
        next_story = cluster_one(clusterer, i, gen.article(i, n, gen.rng.random() < full_share), next_story)
    return next_story


def measure_rate(clusterer: Clusterer, gen: Synthetic, start: int, count: int, full_text: bool, n: int,
                 next_story: int) -> float:
    articles = [gen.article(start + i, n, full_text) for i in range(count)]
    began = time.perf_counter()
    for offset, article in enumerate(articles):
        next_story = cluster_one(clusterer, start + offset, article, next_story)
    return count / (time.perf_counter() - began)


def speed_child(n: int) -> dict:
    """Runs in its own process so resident memory belongs to one size only."""
    gen = Synthetic()
    base = rss_mib()
    clusterer = Clusterer()
    began = time.perf_counter()
    next_story = index_articles(clusterer, gen, n)
    indexing = time.perf_counter() - began
    resident = rss_mib()
    headline_rate = measure_rate(clusterer, gen, n, 2000, False, n, next_story)
    full_rate = measure_rate(clusterer, gen, n + 2000, 500, True, n, next_story + 5000)
    return {"indexed": n, "index_seconds": round(indexing, 1), "rss_mib": round(resident, 1),
            "rss_growth_mib": round(resident - base, 1), "headline_per_s": round(headline_rate),
            "fulltext_per_s": round(full_rate)}


def restart_child(n: int) -> dict:
    """Fill a database with n articles through the production ingest path, then time a cold reload."""
    from aggregator.ingest import Incoming, Ingestor
    from aggregator.store import open_database, session_scope

    gen = Synthetic(seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_database(f"sqlite:///{tmp}/bench.db")
        ingestor = Ingestor(engine)
        began = time.perf_counter()
        for start in range(0, n, 1000):
            with session_scope(engine) as session:
                for i in range(start, min(n, start + 1000)):
                    title, text, when, source = gen.article(i, n, gen.rng.random() < 0.5)
                    ingestor.ingest(session, Incoming(source_key=source, external_id=str(i), source=source,
                                                      title=title, text=text, published=when, fetched_at=when))
        filling = time.perf_counter() - began
        cold = Ingestor(engine)
        began = time.perf_counter()
        loaded = cold.reload()
        seconds = time.perf_counter() - began
        engine.dispose()
    return {"stored": n, "fill_seconds": round(filling, 1), "reloaded": loaded, "restart_seconds": round(seconds, 2),
            "rss_after_reload_mib": round(rss_mib(), 1)}


def run_child(kind: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, f"--child-{kind}", str(n)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def quality(bench_dir: Path) -> None:
    from aggregator.replay import read_rows, replay, summary_lines

    files = sorted(bench_dir.glob("*.jsonl")) if bench_dir.exists() else []
    if not files:
        print(f"quality: no labelled sets in {bench_dir}, skipped")
    for path in files:
        print(f"== quality: aggregator replay {path}")
        for line in summary_lines(replay(read_rows(path))):
            print("   ", line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--bench-dir", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-restart", action="store_true")
    parser.add_argument("--child-speed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-restart", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_speed:
        print(json.dumps(speed_child(args.child_speed)))
        return
    if args.child_restart:
        print(json.dumps(restart_child(args.child_restart)))
        return
    if not args.skip_quality:
        quality(args.bench_dir)
    for n in args.sizes:
        if not args.skip_speed:
            print(f"== speed and memory with {n} articles indexed: {json.dumps(run_child('speed', n))}")
        if not args.skip_restart:
            print(f"== restart with {n} articles stored: {json.dumps(run_child('restart', n))}")


if __name__ == "__main__":
    main()
