#!/usr/bin/env python3
"""Benchmark the dedup and clustering stage: quality on labelled sets, speed and memory at scale, restart time.

usage: python scripts/bench_cluster.py [--sizes 10000 100000] [--bench-dir ../shared/bench] [--synthetic]
                                       [--skip-quality] [--skip-speed] [--skip-restart] [--semantic]

- quality: `aggregator replay` on every labelled *.jsonl in --bench-dir (skipped when the folder is absent);
- speed: the engine alone (extraction excluded), one core, with N articles already indexed in the open window
  (three days, N spread over them): headline-only and full-text articles per second, merges included;
- memory: resident set size of the process holding those N indexed articles;
- restart: N articles stored through the production ingest path into a SQLite file, then a new process times
  Ingestor.reload from the database (the daemon's start-up), reports its resident memory and clusters articles
  at once; then it saves the engine's snapshot (as the daemon does at shutdown) and times a reload from it.
- --semantic: the speed with the optional semantic signal on (the 'semantic' extra): headlines are embedded in
  batches as ingest does (prepare), within the time measured; the rate with the embeddings made ahead is the
  cost of the blend alone. The encoder's own rate is reported too: headlines, and full texts (headline and
  body, cut at the model's 128 word pieces), from the labelled sets (or the synthetic stream).

The articles are real news when --bench-dir holds the labelled sets: headlines from googlenews-t, full texts
from syndication-dev, their rows again and again with every word but the everyday ones renamed in each copy.
Each copy is then other events told in the same everyday words, so the postings of those words fill up as in a
real window, while no copy can join another's stories. Without the sets (or with --synthetic), a synthetic
stream with Zipf-distributed words is used instead.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aggregator.cluster import Clusterer, ClusterSettings  # noqa: E402

START = datetime(2026, 11, 20)
WINDOW = timedelta(days=3)
HEADLINES, FULL_TEXTS = "googlenews-t.jsonl", "syndication-dev.jsonl"
Article = tuple[str, str, datetime, str]  # title, text, time, source


# ---- real news, renamed copies -----------------------------------------------------------------------------

def everyday_words(rows: list[dict], share: float = 0.1) -> set[str]:
    """Words used in at least ``share`` of the rows' stories: news' everyday vocabulary, not one event's."""
    stories = defaultdict(set)
    for row in rows:
        for word in re.findall(r"\w+", (row["title"] + " " + (row["text"] or "")).lower()):
            stories[word].add(row["story"])
    total = len({row["story"] for row in rows})
    return {word for word, used in stories.items() if len(used) >= share * total}


def renamed(text: str, copy: int, keep: set[str]) -> str:
    """``text`` with every word but the everyday ones tagged by ``copy``: the same shape of story, other names."""
    if not text or not copy:
        return text or ""
    return " ".join(w if w.lower() in keep else f"{w}x{copy}" for w in re.findall(r"\w+", text))


class RealStream:
    """Rows of a labelled set, copy after copy, each copy with its rarer words renamed."""

    def __init__(self, path: Path):
        self.rows = [json.loads(line) for line in path.open(encoding="utf-8")]
        self.keep = everyday_words(self.rows)
        self.position = 0

    def skip(self, n: int) -> None:
        self.position += n

    def next(self) -> tuple[str, str, str]:
        copy, index = divmod(self.position, len(self.rows))
        self.position += 1
        row = self.rows[index]
        return renamed(row["title"], copy + 1, self.keep), renamed(row["text"], copy + 1, self.keep), \
            row["source"] or f"outlet{index % 60}"


class Real:
    def __init__(self, bench_dir: Path):
        self.headlines = RealStream(bench_dir / HEADLINES)
        self.full_texts = RealStream(bench_dir / FULL_TEXTS)

    def article(self, when: datetime, full_text: bool) -> Article:
        title, text, source = (self.full_texts if full_text else self.headlines).next()
        return title, text, when, source

    def skip(self, n: int) -> None:
        """Move past the first n articles, so what comes next is new."""
        self.headlines.skip(n)
        self.full_texts.skip(n)


# ---- synthetic ---------------------------------------------------------------------------------------------

SYLLABLES = "ba be bi bo bu da de di do du ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu ra re ri ro " \
            "ru sa se si so su ta te ti to tu va ve vi vo vu za ze zi zo zu".split()


class Synthetic:
    """About six articles a story: Zipf-distributed background words plus ten words of each story's own."""

    def __init__(self, seed: int = 1, vocab: int = 40000):
        self.rng = random.Random(seed)
        words: set[str] = set()
        while len(words) < vocab:
            words.add("".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(2, 4))))
        self.words = sorted(words)
        weights = [1 / (rank + 1) for rank in range(vocab)]
        total, acc = sum(weights), 0.0
        self.cumulative = []
        for weight in weights:
            acc += weight / total
            self.cumulative.append(acc)
        self.count = 0

    def skip(self, n: int) -> None:
        self.count += n

    def background(self, n: int) -> list[str]:
        top = len(self.words) - 1
        return [self.words[min(bisect.bisect(self.cumulative, self.rng.random()), top)] for _ in range(n)]

    def article(self, when: datetime, full_text: bool) -> Article:
        rng = self.rng
        terms = random.Random(self.count // 6).sample(self.words[2000:], 10)
        self.count += 1
        title_words = rng.sample(terms, 4) + self.background(rng.randint(3, 6))
        rng.shuffle(title_words)
        text = ""
        if full_text:
            body = self.background(rng.randint(150, 500))
            for _ in range(12):
                body.insert(rng.randrange(len(body)), rng.choice(terms))
            text = " ".join(body)
        return " ".join(title_words).capitalize(), text, when, f"outlet{rng.randint(1, 60)}"


def stream(bench_dir: Path, synthetic: bool):
    if not synthetic and (bench_dir / HEADLINES).exists() and (bench_dir / FULL_TEXTS).exists():
        return Real(bench_dir), "real news, renamed copies"
    return Synthetic(), "synthetic"


def moment(index: int, total: int) -> datetime:
    """The time of the index-th of ``total`` articles spread over the window."""
    return START + WINDOW * (index / max(total, 1))


# ---- measurements ------------------------------------------------------------------------------------------

def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cluster_one(clusterer: Clusterer, article_id: int, article: Article, next_story: int) -> int:
    """Put one article in its story the way the ingest path does; returns the next free story id."""
    title, text, when, source = article
    feats = clusterer.features(title, text, when, source)
    decision = clusterer.decide(feats)
    story = decision.story_id
    if story is None:
        story, next_story = next_story, next_story + 1
    survivor, *others = sorted({story, *decision.merge_story_ids})  # the older id survives
    for other in others:
        clusterer.merge(survivor, other)
    clusterer.add(article_id, feats, survivor)
    return next_story


def measure_rate(clusterer: Clusterer, articles: list[Article], first_id: int,
                 next_story: int) -> tuple[float, float, int]:
    """(articles a second, articles a CPU second, the next story id) over clustering ``articles``."""
    # A full garbage collection walks the whole index (about 0.6 s with 100,000 articles) once the objects added
    # since the last one reach a quarter of it, so it costs some 25 us an article over a day; one that fell in a
    # window of 500 articles would charge all of it to them. Collecting first keeps it out of every window.
    gc.collect()
    began, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(articles), 1000):  # the semantic signal's batches, as ingest makes them (else nothing)
        clusterer.prepare((title, text) for title, text, _, _ in articles[start : start + 1000])
    for offset, article in enumerate(articles):
        next_story = cluster_one(clusterer, first_id + offset, article, next_story)
    count = len(articles)
    return count / (time.perf_counter() - began), count / (time.process_time() - cpu), next_story


def speed_child(n: int, bench_dir: Path, synthetic: bool, semantic: bool = False, windows: int = 3) -> dict:
    """Runs in its own process so resident memory belongs to one size only."""
    gen, kind = stream(bench_dir, synthetic)
    base = rss_mib()
    clusterer = Clusterer(ClusterSettings(semantic=semantic))
    began = time.perf_counter()
    next_story = 1
    for start in range(0, n, 1000):
        batch = [gen.article(moment(i, n), i % 2 == 1) for i in range(start, min(n, start + 1000))]
        clusterer.prepare((title, text) for title, text, _, _ in batch)
        for i, article in enumerate(batch, start):
            next_story = cluster_one(clusterer, i, article, next_story)
    indexing = time.perf_counter() - began
    resident = rss_mib()
    # windows of 2,000 headlines and 500 full texts, one after the other: on a shared machine one window can fall
    # in a busy second, the median of several seldom does; CPU seconds are what an idle core would take
    clock, article_id = moment(n, n), n
    rates: dict[str, list[float]] = {"headline_per_s": [], "headline_per_cpu_s": [], "fulltext_per_s": [],
                                     "fulltext_per_cpu_s": []}
    for _ in range(windows):
        for name, count, full in (("headline", 2000, False), ("fulltext", 500, True)):
            batch = [gen.article(clock + timedelta(seconds=i), full) for i in range(count)]
            wall, cpu, next_story = measure_rate(clusterer, batch, article_id, next_story)
            rates[f"{name}_per_s"].append(wall)
            rates[f"{name}_per_cpu_s"].append(cpu)
            clock, article_id = clock + timedelta(seconds=count), article_id + count
    result = {"stream": kind, "indexed": n, "index_seconds": round(indexing, 1), "rss_mib": round(resident, 1),
              "rss_growth_mib": round(resident - base, 1), "windows": windows,
              **{name: round(statistics.median(values)) for name, values in rates.items()},
              "open_stories": len(clusterer.stories)}
    if semantic:  # the blend alone: the headlines embedded before the clock starts
        more = [gen.article(clock + timedelta(seconds=i), False) for i in range(2000)]
        clusterer.prepare((title, text) for title, text, _, _ in more)
        result["headline_per_s_embedded_ahead"] = round(measure_rate(clusterer, more, article_id, next_story)[0])
    return result


def fill_child(n: int, bench_dir: Path, synthetic: bool, database: str) -> dict:
    """Store n articles through the production ingest path (what the daemon writes)."""
    from aggregator.ingest import Incoming, Ingestor
    from aggregator.store import open_database, session_scope

    gen, kind = stream(bench_dir, synthetic)
    engine = open_database(database)
    ingestor = Ingestor(engine)
    began = time.perf_counter()
    for start in range(0, n, 1000):
        batch = []
        for i in range(start, min(n, start + 1000)):
            title, text, when, source = gen.article(moment(i, n), i % 2 == 1)
            batch.append(Incoming(source_key=source, external_id=str(i), source=source, title=title, text=text,
                                  published=when, fetched_at=when))
        with session_scope(engine) as session:
            ingestor.ingest_batch(session, batch)
    engine.dispose()
    return {"stream": kind, "stored": n, "fill_seconds": round(time.perf_counter() - began, 1)}


def reload_child(n: int, database: str, bench_dir: Path, synthetic: bool) -> dict:
    """A fresh process, as a restarted daemon: time the reload, then cluster articles right away."""
    from aggregator.ingest import Ingestor
    from aggregator.store import open_database

    base = rss_mib()
    began = time.perf_counter()
    engine = open_database(database)
    ingestor = Ingestor(engine)
    loaded = ingestor.reload(snapshot=False)
    seconds = time.perf_counter() - began
    resident = rss_mib()
    saving = time.perf_counter()
    ingestor.save_snapshot()  # what the daemon does at shutdown and hourly; then a restart from it
    saved = time.perf_counter() - saving
    began = time.perf_counter()
    from_snapshot = Ingestor(engine)
    assert from_snapshot.reload() == loaded
    snapshot_seconds = time.perf_counter() - began
    clusterer = ingestor.clusterer
    gen, _ = stream(bench_dir, synthetic)
    gen.skip(n)
    articles = [gen.article(clusterer.clock + timedelta(seconds=i), False) for i in range(1000)]
    rate, _, _ = measure_rate(clusterer, articles, 10**9, 10**9)
    return {"reloaded": loaded, "restart_seconds": round(seconds, 2), "snapshot_save_seconds": round(saved, 2),
            "restart_from_snapshot_seconds": round(snapshot_seconds, 2), "rss_mib": round(resident, 1),
            "rss_growth_mib": round(resident - base, 1), "headline_per_s_after_restart": round(rate)}


def encoder_child(bench_dir: Path, synthetic: bool) -> dict:
    """The semantic encoder alone (model loaded first), in its batches: headlines and full texts a second."""
    from aggregator.semantic import Encoder

    if not synthetic and (bench_dir / HEADLINES).exists() and (bench_dir / FULL_TEXTS).exists():
        kind = "real news as published"  # renamed copies would cut words into more pieces than real words
        synd = [json.loads(line) for line in (bench_dir / FULL_TEXTS).open(encoding="utf-8")]
        gn = [json.loads(line)["title"] for line in (bench_dir / HEADLINES).open(encoding="utf-8")]
        headlines = {"raw_headlines": list(dict.fromkeys(r["title"] for r in synd)),
                     "stemmed_headlines": list(dict.fromkeys(gn))[:2000]}
        texts = list(dict.fromkeys(f"{r['title']}\n{r['text']}" for r in synd if r["text"]))
    else:
        gen, kind = stream(bench_dir, synthetic)
        headlines = {"headlines": list(dict.fromkeys(gen.article(START, False)[0] for _ in range(2000)))}
        texts = list(dict.fromkeys("\n".join(gen.article(START, True)[:2]) for _ in range(300)))
    encoder = Encoder(cache_size=0)
    encoder.encode(["warm up"])
    rates: dict = {"stream": kind}
    for name, batch in (*headlines.items(), ("full_texts", texts)):
        began, cpu = time.perf_counter(), time.process_time()
        encoder.encode(batch)
        rates[name] = len(batch)
        rates[f"{name}_per_s"] = round(len(batch) / (time.perf_counter() - began), 1)
        # a second of CPU: what the rate is on an idle core, however busy the machine is
        rates[f"{name}_per_cpu_s"] = round(len(batch) / (time.process_time() - cpu), 1)
    return rates


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
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
    parser.add_argument("--synthetic", action="store_true", help="a synthetic stream even when real data is there")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-restart", action="store_true")
    parser.add_argument("--semantic", action="store_true", help="speed with the semantic signal on (its extra)")
    parser.add_argument("--windows", type=int, default=3,
                        help="timed windows of 2,000 headlines and 500 full texts at each size (the median is shown)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "speed":
            result = speed_child(int(rest[0]), args.bench_dir, args.synthetic, args.semantic, args.windows)
        elif kind == "encoder":
            result = encoder_child(args.bench_dir, args.synthetic)
        elif kind == "fill":
            result = fill_child(int(rest[0]), args.bench_dir, args.synthetic, rest[1])
        else:
            result = reload_child(int(rest[0]), rest[1], args.bench_dir, args.synthetic)
        print(json.dumps(result))
        return
    if not args.skip_quality:
        quality(args.bench_dir)
    common = ["--bench-dir", str(args.bench_dir)] + (["--synthetic"] if args.synthetic else [])
    common += ["--semantic"] if args.semantic else []
    if args.semantic:
        print(f"== semantic encoder: {json.dumps(run_child('--child', 'encoder', *common))}")
    for n in args.sizes:
        if not args.skip_speed:
            speed = run_child("--child", "speed", str(n), "--windows", str(args.windows), *common)
            print(f"== speed and memory with {n} articles indexed: {json.dumps(speed)}")
        if not args.skip_restart:
            with tempfile.TemporaryDirectory() as tmp:
                database = f"sqlite:///{tmp}/bench.db"
                filled = run_child("--child", "fill", str(n), database, *common)
                reloaded = run_child("--child", "reload", str(n), database, *common)
            print(f"== restart with {n} articles stored: {json.dumps(filled | reloaded)}")


if __name__ == "__main__":
    main()
