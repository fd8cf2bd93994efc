#!/usr/bin/env python3
"""Benchmark a poll that finds nothing new: every feed answers 304 Not Modified.

usage: python scripts/bench_304.py [--feeds 1000] [--rounds 3]

Serves --feeds small RSS feeds from 127.0.0.1, polls them once with `aggregator poll` (which stores their
articles and validators), then times, as whole processes (interpreter start included):

- `aggregator poll` again: every feed is asked with its ETag and answers 304;
- a bare httpx loop making the same conditional requests with the same concurrency (the per-host limit: all
  feeds are on one host), the floor.

Prints the wall and CPU seconds of each (best of --rounds) and their ratios, then one JSON line starting
with "== 304:". CPU is the child processes' user + system time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aggregator.localsite import LocalSite  # noqa: E402
from scripts import bench_ingest  # noqa: E402

BARE_LOOP = """
import asyncio, json, sys
import httpx

async def main(requests, limit):
    slots = asyncio.Semaphore(limit)
    async with httpx.AsyncClient(timeout=20, trust_env=False) as client:
        async def one(url, etag):
            async with slots:
                response = await client.get(url, headers={"If-None-Match": etag} if etag else {})
                return response.status_code
        statuses = await asyncio.gather(*(one(url, etag) for url, etag in requests))
    print(json.dumps({"not_modified": statuses.count(304), "requests": len(statuses)}))

requests = json.load(open(sys.argv[1]))
asyncio.run(main(requests, int(sys.argv[2])))
"""


def feed(number: int, entries: int) -> bytes:
    items = "".join(
        f"<item><title>Feed {number} story {i}</title><link>https://news{number}.example/{i}</link>"
        f"<guid>urn:feed{number}:{i}</guid><description>Short text {i} of feed {number}.</description></item>"
        for i in range(entries)
    )
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Feed {number}</title>"
            f"{items}</channel></rss>").encode()


def timed(command: list[str], ok: tuple[int, ...] = (0, 1)) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds, the finished process) of one child process; an exit status outside ``ok``
    stops the benchmark (a poll exits 1 when a feed failed, which the 304 pass expects of none but allows)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's package
    return bench_ingest.run_timed(command, environment, ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=5, help="entries a feed")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each; the best is reported")
    parser.add_argument("--per-host-limit", type=int, default=2, help="the aggregator's setting (its default: 2)")
    args = parser.parse_args()

    with LocalSite() as site, tempfile.TemporaryDirectory(prefix="aggregator-304-") as tmp:
        urls = []
        for number in range(args.feeds):
            site.put(f"/feed{number}.xml", feed(number, args.entries), "application/rss+xml")
            urls.append(site.url(f"/feed{number}.xml"))
        config = Path(tmp) / "feeds.yaml"
        config.write_text(
            "settings:\n  allowed_networks: [127.0.0.1/32]\n"
            f"  per_host_limit: {args.per_host_limit}\n  max_concurrency: {max(8, args.per_host_limit)}\nfeeds:\n"
            + "".join(f"  - name: feed {n}\n    url: {url}\n    full_text: false\n" for n, url in enumerate(urls))
        )
        poll = [sys.executable, "-m", "aggregator", "--config", str(config), "--database",
                f"sqlite:///{tmp}/304.db", "--log-level", "WARNING", "poll"]
        timed(poll)  # stores the entries and every feed's ETag
        requests = []
        for url in urls:
            with urllib.request.urlopen(url) as response:  # noqa: S310 - our own server on 127.0.0.1
                requests.append((url, response.headers.get("ETag")))
        request_file = Path(tmp) / "requests.json"
        request_file.write_text(json.dumps(requests))
        bare = [sys.executable, "-c", BARE_LOOP, str(request_file), str(args.per_host_limit)]
        aggregator_runs, bare_runs = [], []
        for _ in range(args.rounds):
            hits = sum(site.hits.values())
            aggregator_runs.append(timed(poll)[:2])
            assert sum(site.hits.values()) - hits == args.feeds, "every feed is asked once"
            wall, cpu, done = timed(bare)
            out = done.stdout
            assert json.loads(out)["not_modified"] == args.feeds, out
            bare_runs.append((wall, cpu))
    agg_wall, agg_cpu = min(r[0] for r in aggregator_runs), min(r[1] for r in aggregator_runs)
    bare_wall, bare_cpu = min(r[0] for r in bare_runs), min(r[1] for r in bare_runs)
    print(f"{args.feeds} feeds answering 304, per-host limit {args.per_host_limit}, best of {args.rounds}:")
    print(f"  aggregator poll   {agg_wall:6.2f} s wall  {agg_cpu:6.2f} s CPU")
    print(f"  bare httpx loop   {bare_wall:6.2f} s wall  {bare_cpu:6.2f} s CPU")
    print(f"  ratio             {agg_wall / bare_wall:6.2f}x wall  {agg_cpu / bare_cpu:5.2f}x CPU")
    print("== 304: " + json.dumps({
        "feeds": args.feeds, "aggregator_wall": round(agg_wall, 3), "aggregator_cpu": round(agg_cpu, 3),
        "bare_wall": round(bare_wall, 3), "bare_cpu": round(bare_cpu, 3),
        "wall_ratio": round(agg_wall / bare_wall, 3), "cpu_ratio": round(agg_cpu / bare_cpu, 3),
    }))


if __name__ == "__main__":
    main()
