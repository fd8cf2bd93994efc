#!/usr/bin/env python3
"""Benchmark the fixed cost of a poll that finds nothing new, and of `aggregator --help`.

usage: python scripts/bench_idle_poll.py [--feeds 5] [--rounds 5] [--importtime]

Serves --feeds small RSS feeds from 127.0.0.1, polls them once with `aggregator poll` (which stores their entries
and validators), then times, as whole processes (interpreter start included), best of --rounds:

- the bare interpreter (`python -c pass`), the floor every command pays;
- `aggregator --help`;
- `aggregator poll` when every feed answers 304 Not Modified;
- `aggregator poll` when every feed sends its unchanged body again (served without ETag or Last-Modified, so the
  feed is read and its entries looked up).

Prints wall and CPU seconds (the child's user + system time) of each, then one JSON line starting with
"== idle poll:". --importtime adds the modules that cost the 304 poll most (`python -X importtime`).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aggregator.localsite import LocalSite  # noqa: E402
from scripts import bench_304  # noqa: E402
from scripts.bench_304 import feed  # noqa: E402

NO_VALIDATORS: dict[str, str | None] = {"ETag": None, "Last-Modified": None}


def timed(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds, the finished process) of one child process that must succeed."""
    return bench_304.timed(command, ok=(0,))


def config_file(folder: Path, name: str, urls: list[str]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text("settings:\n  allowed_networks: [127.0.0.1/32]\nfeeds:\n" + "".join(
        f"  - name: {name} {number}\n    url: {url}\n    full_text: false\n" for number, url in enumerate(urls)))
    return path


def slowest_imports(command: list[str], count: int) -> list[tuple[float, str]]:
    """The ``count`` top-level imports of ``command`` that took longest, with their cumulative milliseconds."""
    done = timed([command[0], "-X", "importtime", *command[1:]])[2]
    rows = re.findall(r"import time:\s+\d+ \|\s+(\d+) \| {1,3}(\S+)", done.stderr)  # top level and one below
    return sorted(((int(micros) / 1000, name) for micros, name in rows), reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=5, help="feeds of each kind")
    parser.add_argument("--entries", type=int, default=10, help="entries a feed")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of each; the best is reported")
    parser.add_argument("--importtime", action="store_true", help="also list the slowest imports of the 304 poll")
    args = parser.parse_args()

    with LocalSite() as site, tempfile.TemporaryDirectory(prefix="aggregator-idle-") as tmp:
        folder = Path(tmp)
        urls: dict[str, list[str]] = {"validated": [], "unchanged": []}
        for number in range(args.feeds):
            site.put(f"/v{number}.xml", feed(number, args.entries), "application/rss+xml")
            urls["validated"].append(site.url(f"/v{number}.xml"))
            site.put(f"/u{number}.xml", feed(1000 + number, args.entries), "application/rss+xml", NO_VALIDATORS)
            urls["unchanged"].append(site.url(f"/u{number}.xml"))
        polls = {}
        for kind, feed_urls in urls.items():
            config = config_file(folder, kind, feed_urls)
            polls[kind] = [sys.executable, "-m", "aggregator", "--config", str(config), "--database",
                           f"sqlite:///{folder}/{kind}.db", "--log-level", "WARNING", "poll"]
            first = timed(polls[kind])[2].stdout
            assert f"{args.feeds * args.entries} new articles" in first, first
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "aggregator --help": [sys.executable, "-m", "aggregator", "--help"],
            "poll, all 304": polls["validated"],
            "poll, bodies unchanged": polls["unchanged"],
        }
        best: dict[str, tuple[float, float]] = {}
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.rounds):  # interleaved, so a busy moment of the machine hits every command alike
            for name, command in commands.items():
                wall, cpu, done = timed(command)
                if name.startswith("poll"):
                    assert " 0 new articles" in done.stdout, done.stdout
                runs[name].append((wall, cpu))
        imports = slowest_imports(polls["validated"], 15) if args.importtime else []
    print(f"{args.feeds} feeds of {args.entries} entries each, best of {args.rounds} (min-max):")
    for name, measured in runs.items():
        walls, cpus = [m[0] for m in measured], [m[1] for m in measured]
        best[name] = (min(walls), min(cpus))
        print(f"  {name:24} {min(walls):5.2f} s wall ({max(walls):5.2f})  {min(cpus):5.2f} s CPU ({max(cpus):5.2f})")
    for millis, module in imports:
        print(f"  import {module:40} {millis:7.1f} ms")
    figures = {name: {"wall": round(wall, 3), "cpu": round(cpu, 3)} for name, (wall, cpu) in best.items()}
    print("== idle poll: " + json.dumps({"feeds": args.feeds, **figures}))


if __name__ == "__main__":
    main()
