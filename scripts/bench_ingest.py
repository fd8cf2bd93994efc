#!/usr/bin/env python3
"""Benchmark a full-text poll against its floor: trafilatura alone on the same pages.

usage: python scripts/bench_ingest.py [--pages 1000] [--feeds 20] [--wire 0.3] [--pages-dir ../shared/corpus/pages]
                                      [--synthetic] [--workers N]

Builds a local site of --pages article pages: the real pages of --pages-dir (when present; synthetic pages
otherwise or with --synthetic), copied again and again with their words renamed in each copy (other articles
in the same markup), and a --wire share of them wire copies: another outlet's page carrying an earlier
article's text with a line of its own. --feeds RSS feeds list them (full_text: true), served from 127.0.0.1.

Then, in the same run:

- aggregator: `aggregator poll` on a fresh SQLite database, as a process (start-up included): fetch, parse,
  extract in its worker processes, dedup, cluster and store. Its CPU time includes the workers'. The main
  process's peak resident memory and the SQL statements it sent are reported too.
- floor: trafilatura alone with the aggregator's options on the same pages, read from files by a pool of
  --workers processes (default: one a core), as a process.
- bare-library floor of the main process's other stages: the CPU that the bare libraries take for them on the
  same site. An httpx.AsyncClient fetching the same feeds and pages as many at once as the poll, feedparser on the
  same feed bytes, sqlite3 inserting the articles the poll stored (one transaction a feed), and a fresh
  interpreter importing every module the poll's main process imported. The main process's CPU beside it shows
  what the aggregator adds to its libraries, and the share of the 1.1x allowance the libraries alone take.

Prints pages/s and CPU seconds of both and their ratios, then one JSON line starting with "== ingest:".
All pages are on one host here, so the per-host limit is raised to the global one (20 outlets are 20 hosts).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PAGES = ROOT.parent / "shared" / "corpus" / "pages"
sys.path.insert(0, str(ROOT))

from aggregator.localsite import LocalSite  # noqa: E402

CONCURRENCY = 16  # the poll's max_concurrency and per_host_limit, and the bare fetch's

# Runs `aggregator poll` in this process, then tells the main process's peak memory and statement count.
POLL = """
import json, resource, sys
from sqlalchemy import event
import aggregator.store as store

statements = [0]
make_engine = store.make_engine

def counted(url):
    engine = make_engine(url)
    event.listen(engine, "before_cursor_execute", lambda *_: statements.__setitem__(0, statements[0] + 1))
    return engine

store.make_engine = counted
from aggregator.cli import main

status = main(sys.argv[1:])
try:  # this process's own peak: ru_maxrss would count the benchmark's, which it was forked from, too
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
own = resource.getrusage(resource.RUSAGE_SELF)
modules = [name for name in sys.modules if name != "__main__" and name.split(".")[0] != "aggregator"]
print("== poll: " + json.dumps({"status": status, "rss_mib": round(peak, 1), "statements": statements[0],
                               "main_cpu": round(own.ru_utime + own.ru_stime, 3), "modules": modules}))
"""

# trafilatura alone, with the options aggregator.extract.article_text passes, on every page, one process a core.
FLOOR = """
import json, multiprocessing, sys
from pathlib import Path

def extract(path):
    import trafilatura
    html = Path(path).read_text(encoding="utf-8", errors="replace")
    text = trafilatura.extract(html, include_comments=False, include_tables=False, include_images=False,
                               favor_precision=True)
    return len((text or "").split())

if __name__ == "__main__":
    files = sorted(str(p) for p in Path(sys.argv[1]).glob("*.html"))
    with multiprocessing.Pool(int(sys.argv[2])) as pool:
        words = pool.map(extract, files, chunksize=1)
    print("== floor: " + json.dumps({"pages": len(files), "with_text": sum(1 for w in words if w >= 40)}))
"""

# The bare libraries doing the main process's other stages on the same site, each stage's CPU timed on its own:
# an httpx.AsyncClient fetching the feeds, then their pages, as many at once as the poll does; feedparser on
# the feed bytes; sqlite3 inserting the articles the poll stored, one transaction a feed.
BARE = """
import asyncio, json, sqlite3, sys, time
import feedparser, httpx

def timed(stage, *args):
    started = time.process_time()
    result = stage(*args)
    return time.process_time() - started, result

def fetch_all(urls, concurrency):
    async def run():
        slots = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            async def get(url):
                async with slots:
                    return (await client.get(url)).content
            return await asyncio.gather(*(get(url) for url in urls))
    return asyncio.run(run())

def parse_all(bodies):
    return [feedparser.parse(body) for body in bodies]

def store_all(path, feeds):
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE article (id INTEGER PRIMARY KEY, feed INTEGER, external_id TEXT, url TEXT,"
                       " title TEXT, text TEXT, UNIQUE (feed, external_id))")
    for feed, rows in feeds.items():
        with connection:
            connection.executemany("INSERT INTO article (feed, external_id, url, title, text) VALUES (?, ?, ?, ?, ?)",
                                   [(feed, *row) for row in rows])
    connection.close()
    return sum(len(rows) for rows in feeds.values())

if __name__ == "__main__":
    feed_urls, articles, database, concurrency = json.load(open(sys.argv[1]))
    fetch_feeds_cpu, bodies = timed(fetch_all, feed_urls, concurrency)
    parse_cpu, parsed = timed(parse_all, bodies)
    links = [entry.link for feed in parsed for entry in feed.entries]
    fetch_pages_cpu, pages = timed(fetch_all, links, concurrency)
    store_cpu, rows = timed(store_all, database, articles)
    print("== bare: " + json.dumps({"fetch_cpu": round(fetch_feeds_cpu + fetch_pages_cpu, 3),
                                    "parse_cpu": round(parse_cpu, 3), "store_cpu": round(store_cpu, 3),
                                    "pages": len(pages), "page_bytes": sum(map(len, pages)), "rows": rows}))
"""

# Imports every module the poll's main process had imported, in its order, in a fresh interpreter.
IMPORTS = """
import importlib, json, sys
for name in json.load(open(sys.argv[1])):
    try:
        importlib.import_module(name)
    except Exception:  # a module that only imports as part of its package's start-up
        pass
"""


_TEXT = re.compile(r">([^<]+)<")
_WORD = re.compile(r"\b([A-Za-z]{4,})\b")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)


def renamed(html: str, copy: int) -> str:
    """``html`` with every word of four letters or more in its text renamed for ``copy``: another article
    with the same markup and the same amount of text."""
    if not copy:
        return html
    suffix = "".join("bdfgkmprstvz"[int(d)] for d in str(copy))
    return _TEXT.sub(lambda m: ">" + _WORD.sub(lambda w: w.group(1) + suffix, m.group(1)) + "<", html)


def wire_copy(html: str, outlet: int) -> str:
    """Another outlet's page with an earlier article's text: its own line at the end of the body."""
    line = f"<p>This article was distributed by a news agency and published by outlet {outlet}.</p>"
    at = html.lower().rfind("</body>")
    return html[:at] + line + html[at:] if at >= 0 else html + line


def title_of(html: str, fallback: str) -> str:
    match = _TITLE.search(html)
    title = re.sub(r"\s+", " ", match.group(1)).strip() if match else ""
    return title[:150] or fallback


SYLLABLES = "ba be bi bo bu da de di do du ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu ra re ri".split()


def synthetic_pages(count: int, seed: int = 1) -> list[str]:
    """Article pages with navigation, a headline, 8 to 20 paragraphs and a footer."""
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(5000)]
    pages = []
    for number in range(count):
        def sentence() -> str:
            return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(8, 20))).capitalize() + "."

        headline = " ".join(rng.choice(vocabulary) for _ in range(8)).capitalize()
        paragraphs = "".join(f"<p>{' '.join(sentence() for _ in range(rng.randint(2, 5)))}</p>"
                             for _ in range(rng.randint(8, 20)))
        nav = "".join(f"<li><a href='/section/{i}'>{rng.choice(vocabulary)}</a></li>" for i in range(25))
        pages.append(
            f"<!doctype html><html><head><title>{headline}</title><meta charset='utf-8'></head><body>"
            f"<header><nav><ul>{nav}</ul></nav></header><main><article><h1>{headline}</h1>"
            f"<p class='byline'>By staff {number}</p>{paragraphs}</article></main>"
            f"<footer><p>Copyright {number % 7} News. All rights reserved.</p></footer></body></html>"
        )
    return pages


def require_pages_dir(args: argparse.Namespace, script: str) -> None:
    """Stop when a --pages-dir was given and is no folder: a relative one read from another folder would
    otherwise measure synthetic pages unannounced (the default may be missing: synthetic pages, said so)."""
    if not args.synthetic and args.pages_dir != DEFAULT_PAGES and not args.pages_dir.is_dir():
        raise SystemExit(f"{script}: no folder {args.pages_dir.resolve()} (--synthetic for made-up pages)")


def base_pages(pages_dir: Path, synthetic: bool) -> tuple[list[str], str]:
    files = sorted(pages_dir.glob("*.html")) if pages_dir.is_dir() and not synthetic else []
    if files:
        return [f.read_text(encoding="utf-8", errors="replace") for f in files], f"{len(files)} real pages"
    return synthetic_pages(60), "60 synthetic pages"


def build_site(bases: list[str], pages: int, feeds: int, wire: float, seed: int = 7) -> list[tuple[int, str, str]]:
    """(feed number, title, html) of every page: renamed copies of the bases, a ``wire`` share wire copies."""
    rng = random.Random(seed)
    site: list[tuple[int, str, str]] = []
    originals: list[tuple[int, str, str]] = []
    for number in range(pages):
        feed = number % feeds
        if originals and rng.random() < wire:
            source_feed, title, html = rng.choice(originals)
            site.append((feed if feed != source_feed else (feed + 1) % feeds, title, wire_copy(html, feed)))
            continue
        copy, index = divmod(len(originals), len(bases))
        html = renamed(bases[index], copy)
        title = title_of(html, f"Article {number}")
        originals.append((feed, title, html))
        site.append((feed, title, html))
    return site


def feed_document(number: int, entries: list[tuple[int, str, str]], url_of) -> bytes:
    start = datetime(2026, 11, 30, tzinfo=UTC)
    items = "".join(
        f"<item><title>{escape(title)}</title><link>{url_of(page)}</link><guid>urn:page:{page}</guid>"
        f"<pubDate>{format_datetime(start - timedelta(minutes=page))}</pubDate>"
        f"<description>{escape(title)}</description></item>"
        for page, title in entries
    )
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Outlet {number}</title>"
            f"<link>https://outlet{number}.example/</link>{items}</channel></rss>").encode()


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process waited for so far, their own children included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(command: list[str], environment: dict[str, str],
              ok: tuple[int, ...] = (0,)) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the process and its children, the finished process), run from the
    repository; an exit status outside ``ok`` stops the benchmark."""
    cpu_before = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=environment)
    wall = time.perf_counter() - started
    cpu = children_cpu() - cpu_before
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(command[:4])}... exited {done.returncode}:\n{done.stderr[-3000:]}")
    return wall, cpu, done


def timed(command: list[str], environment: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process and its children, standard output) of a run that must succeed."""
    wall, cpu, done = run_timed(command, environment)
    return wall, cpu, done.stdout


def figures(output: str, tag: str) -> dict:
    return next(json.loads(line.split(": ", 1)[1]) for line in output.splitlines() if line.startswith(f"== {tag}:"))


def stored(database: Path) -> dict:
    import sqlite3

    with sqlite3.connect(database) as connection:
        sources = dict(connection.execute("SELECT text_source, count(*) FROM article GROUP BY text_source"))
        copies = connection.execute("SELECT count(*) FROM article WHERE duplicate_of IS NOT NULL").fetchone()[0]
    return {"articles": sum(sources.values()), "page_texts": sources.get("page", 0), "copies": copies}


def stored_articles(database: Path) -> dict[int, list[tuple[str, str, str, str]]]:
    """The poll's stored articles by feed: (external id, url, title, text), what the bare sqlite3 stage inserts."""
    import sqlite3

    by_feed: dict[int, list[tuple[str, str, str, str]]] = {}
    with sqlite3.connect(database) as connection:
        for feed, *row in connection.execute("SELECT feed_id, external_id, url, title, text FROM article ORDER BY id"):
            by_feed.setdefault(feed, []).append(tuple(row))
    return by_feed


def bare_floor(tmp: Path, feed_urls: list[str], database: Path, modules: list[str],
               environment: dict[str, str]) -> dict[str, float]:
    """CPU seconds of the bare libraries doing the main process's work but extraction, stage by stage: fetch
    (httpx), parse (feedparser), store (sqlite3), and imports (a fresh interpreter importing the poll's modules)."""
    work = tmp / "bare.json"
    work.write_text(json.dumps([feed_urls, stored_articles(database), str(tmp / "bare.db"), CONCURRENCY]))
    bare = figures(timed([sys.executable, "-c", BARE, str(work)], environment)[2], "bare")
    names = tmp / "modules.json"
    names.write_text(json.dumps(modules))
    imports_cpu = timed([sys.executable, "-c", IMPORTS, str(names)], environment)[1]
    stages = {"fetch": bare["fetch_cpu"], "parse": bare["parse_cpu"], "store": bare["store_cpu"],
              "imports": round(imports_cpu, 3)}
    return {**stages, "total": round(sum(stages.values()), 3), "pages": bare["pages"], "rows": bare["rows"]}


def publish(site: LocalSite, site_pages: list[tuple[int, str, str]], pages_dir: Path) -> dict[int, list]:
    """Serve the pages and their feeds from ``site`` and write the pages into ``pages_dir`` (the floor reads them
    there); returns each feed's entries, (page number, title)."""
    by_feed: dict[int, list[tuple[int, str]]] = {}
    for number, (feed, title, html) in enumerate(site_pages):
        site.put(f"/page/{number}.html", html)
        (pages_dir / f"{number:05d}.html").write_text(html, encoding="utf-8")
        by_feed.setdefault(feed, []).append((number, title))
    for feed, entries in by_feed.items():
        site.put(f"/feed{feed}.xml", feed_document(feed, entries, lambda n: site.url(f"/page/{n}.html")),
                 "application/rss+xml")
    return by_feed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--wire", type=float, default=0.3, help="share of pages that are wire copies")
    parser.add_argument("--pages-dir", type=Path, default=DEFAULT_PAGES)
    parser.add_argument("--synthetic", action="store_true", help="synthetic pages even when --pages-dir exists")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes of the floor and extraction workers of the aggregator (default: cores)")
    args = parser.parse_args()
    require_pages_dir(args, "bench_ingest")

    bases, kind = base_pages(args.pages_dir, args.synthetic)
    site_pages = build_site(bases, args.pages, args.feeds, args.wire)
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "AGGREGATOR_EXTRACT_WORKERS": str(args.workers)}
    with LocalSite() as site, tempfile.TemporaryDirectory(prefix="aggregator-ingest-") as tmp:
        pages_dir = Path(tmp) / "pages"
        pages_dir.mkdir()
        by_feed = publish(site, site_pages, pages_dir)
        config = Path(tmp) / "feeds.yaml"
        config.write_text(
            f"settings:\n  allowed_networks: [127.0.0.1/32]\n  max_concurrency: {CONCURRENCY}\n"
            f"  per_host_limit: {CONCURRENCY}\n"
            "feeds:\n" + "".join(f"  - name: Outlet {feed}\n    url: {site.url(f'/feed{feed}.xml')}\n"
                                 "    full_text: true\n" for feed in sorted(by_feed))
        )
        database = Path(tmp) / "ingest.db"
        poll = [sys.executable, "-c", POLL, "--config", str(config), "--database", f"sqlite:///{database}",
                "--log-level", "WARNING", "poll"]
        agg_wall, agg_cpu, out = timed(poll, environment)
        poll_figures = figures(out, "poll")
        result = stored(database)
        floor_wall, floor_cpu, out = timed([sys.executable, "-c", FLOOR, str(pages_dir), str(args.workers)],
                                           environment)
        floor_figures = figures(out, "floor")
        feed_urls = [site.url(f"/feed{feed}.xml") for feed in sorted(by_feed)]
        bare = bare_floor(Path(tmp), feed_urls, database, poll_figures["modules"], environment)

    pages = len(site_pages)
    print(f"{pages} pages ({kind}, renamed copies, {args.wire:.0%} wire copies) in {len(by_feed)} feeds, "
          f"{args.workers} worker processes")
    print(f"  aggregator poll  {pages / agg_wall:7.1f} pages/s  {agg_wall:6.2f} s wall  {agg_cpu:6.2f} s CPU  "
          f"({poll_figures['main_cpu']:.2f} s in the main process, peak {poll_figures['rss_mib']:.0f} MiB), "
          f"{poll_figures['statements'] / max(1, result['articles']):.2f} SQL statements an article")
    print(f"  floor            {pages / floor_wall:7.1f} pages/s  {floor_wall:6.2f} s wall  {floor_cpu:6.2f} s CPU  "
          f"(trafilatura alone)")
    print(f"  ratio            {agg_wall / floor_wall:6.2f}x wall  {agg_cpu / floor_cpu:5.2f}x CPU")
    main_cpu = poll_figures["main_cpu"]
    allowance = 0.1 * floor_cpu  # what a poll at 1.1x the floor may spend beyond trafilatura
    print(f"  bare libraries   {bare['total']:6.2f} s CPU for the main process's stages: fetch (httpx) "
          f"{bare['fetch']:.2f} s, parse (feedparser) {bare['parse']:.2f} s, store (sqlite3) {bare['store']:.2f} s, "
          f"imports {bare['imports']:.2f} s")
    print(f"  main process     {main_cpu:6.2f} s CPU, {main_cpu / bare['total']:.2f}x its bare-library floor; "
          f"the bare libraries alone take {bare['total'] / allowance:.0%} of the {allowance:.2f} s that 1.1x "
          f"the floor allows beyond it")
    print(f"  stored {result['articles']} articles, {result['page_texts']} with the page's text, "
          f"{result['copies']} copies; the floor found text in {floor_figures['with_text']} pages")
    print("== ingest: " + json.dumps({
        "pages": pages, "kind": kind, "workers": args.workers,
        "aggregator_wall": round(agg_wall, 3), "aggregator_cpu": round(agg_cpu, 3),
        "floor_wall": round(floor_wall, 3), "floor_cpu": round(floor_cpu, 3),
        "wall_ratio": round(agg_wall / floor_wall, 3), "cpu_ratio": round(agg_cpu / floor_cpu, 3),
        "main_rss_mib": poll_figures["rss_mib"], "main_cpu": main_cpu,
        "bare_cpu": bare, "main_to_bare_ratio": round(main_cpu / bare["total"], 3),
        "bare_share_of_allowance": round(bare["total"] / allowance, 3),
        "statements_per_article": round(poll_figures["statements"] / max(1, result["articles"]), 3),
        **result,
    }))


if __name__ == "__main__":
    main()
