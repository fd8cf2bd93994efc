#!/usr/bin/env python3
"""Benchmark ingest spread over processes on PostgreSQL: scaling with workers, the sequencer, the queue's cost.

usage: python scripts/bench_scale.py [--admin-url postgresql://postgres@127.0.0.1:5432/postgres] [--pages 600]
                                     [--feeds 20] [--wire 0.3] [--pages-dir ../shared/corpus/pages] [--synthetic]
                                     [--workers 1 2] [--sequencer-articles 3000] [--bench-dir ../shared/bench]
                                     [--jobs 2000] [--skip-scaling] [--skip-sequencer] [--skip-queue]

Each part runs on a scratch database of its own (created on --admin-url's server and dropped at the end):

- scaling: the local site of scripts/bench_ingest.py (--pages real pages renamed again and again, a --wire
  share of them wire copies, in --feeds full-text feeds on 127.0.0.1), ingested by one `aggregator run` and
  N-1 `aggregator worker`s, for each N of --workers. One worker is one core: each process is pinned to a core of
  its own (with one extraction process), so N workers use N cores while PostgreSQL and the site share the
  machine. Articles/s from the first article staged to the last one stored, and the speed-up over 1 worker.
  CPU an article, with and without the processes' start-up (the same processes started and stopped with no
  feed, apart: a long-lived cluster pays it once).
  Beside it, in the same run, the floor: trafilatura alone on the same pages in one process.
- sequencer: --sequencer-articles real articles (the labelled sets of --bench-dir, full texts and headlines;
  synthetic ones without them) staged as workers stage them, then one `aggregator run` with no feeds, whose
  sequencer stores them: its own articles/s on PostgreSQL. Beside it `aggregator replay` of the same articles
  into another PostgreSQL database: the single-process write path.
- queue: procrastinate alone, --jobs jobs of a task that does nothing, deferred one by one and run by one
  worker: the seconds and CPU each job costs the client and PostgreSQL, the queue's floor per article (an
  article is one extraction job, plus its share of its feed's poll).

Prints one line per figure, then one JSON line starting with "== scale:". Needs PostgreSQL and the postgres
extra (psycopg, procrastinate); the CPU of PostgreSQL is that of the whole server, other sessions included.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "scripts"))

import bench_ingest  # noqa: E402  (its site; it puts the repository first on sys.path)
from sqlalchemy import create_engine, text  # noqa: E402

from aggregator.localsite import LocalSite  # noqa: E402
from aggregator.workers.status import cluster_status  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_BENCH = ROOT.parent / "shared" / "bench"
SETTLE_TIMEOUT = 900.0  # seconds a part may take before it is reported as stuck


# ---- databases and processes --------------------------------------------------------------------------------


def sqlalchemy_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@contextmanager
def scratch_database(admin_url: str, purpose: str):
    """A new, empty database on the server of ``admin_url`` (its libpq URL), dropped afterwards."""
    admin = create_engine(sqlalchemy_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"aggregator_scale_{purpose}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def environment() -> dict[str, str]:
    """The repository's package first (after any PYTHONPATH already set), one extraction process a worker."""
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    return {**os.environ, "PYTHONPATH": path, "AGGREGATOR_EXTRACT_WORKERS": "1"}


def start(arguments: list[str], core: int | None, log: Path) -> subprocess.Popen:
    """``aggregator ARGUMENTS`` as a process, pinned to ``core`` (with its children) when one is given."""
    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    with open(log, "ab") as out:
        # Not in the repository's folder: `python -m` would put it before PYTHONPATH.
        return subprocess.Popen([sys.executable, "-m", "aggregator", *arguments], cwd=log.parent, env=environment(),
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin)


def stop(processes: list[subprocess.Popen], log: Path) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    failed = [p for p in processes if p.returncode not in (0, -15)]
    if failed:
        raise SystemExit(f"a process exited {failed[0].returncode}; its log:\n{log.read_text()[-3000:]}")


def _stat(path: Path) -> tuple[str, list[str]]:
    """(command name, the fields after it) of a /proc/PID/stat file: the name may hold spaces and parentheses."""
    line = path.read_text()
    return line.split("(", 1)[1].rsplit(")", 1)[0], line.rsplit(")", 1)[1].split()


def _cpu_seconds(fields: list[str]) -> tuple[float, float]:
    """(CPU seconds of the process itself, of its exited and waited-for children), from its stat fields."""
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks, (int(fields[13]) + int(fields[14])) / ticks


def postgres_cpu() -> float | None:
    """CPU seconds of every PostgreSQL process so far, exited backends included (via the postmaster's
    children), or None when they cannot be read (another machine, another user)."""
    total = 0.0
    found = False
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, fields = _stat(path)
        except (OSError, IndexError):
            continue
        if name not in ("postgres", "postmaster"):
            continue
        found = True
        own, children = _cpu_seconds(fields)
        parent = int(fields[1])
        total += own
        if parent == 1 or name == "postmaster" or not _is_postgres(parent):
            total += children  # the postmaster: what its exited backends spent
    return total if found else None


def _is_postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster")
    except OSError:
        return False


def children_of_cpu(pids: list[int]) -> float:
    """CPU seconds so far of the children of ``pids`` (the extraction processes of the run and the workers),
    the exited ones included; 0 where /proc cannot tell."""
    wanted, total = set(pids), 0.0
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat(path)[1]
            if int(fields[1]) in wanted:
                total += _cpu_seconds(fields)[0]
        except (OSError, IndexError, ValueError):
            continue
    for pid in pids:
        try:
            total += _cpu_seconds(_stat(Path(f"/proc/{pid}/stat"))[1])[1]
        except (OSError, IndexError, ValueError):
            continue
    return total


def wal_position(engine) -> str:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_current_wal_lsn()::text")).scalar()


def wal_bytes_since(engine, position: str) -> int:
    """WAL the whole server wrote since ``position`` (other databases' writes included)."""
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), CAST(:p AS pg_lsn))"),
                                      {"p": position}).scalar())


def count(engine, sql: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text(sql)).scalar() or 0


def backend_cpu(connection) -> float | None:
    """CPU seconds so far of the PostgreSQL backend serving ``connection``; None when /proc cannot tell (a
    server on another machine, another user's processes)."""
    pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    try:
        return _cpu_seconds(_stat(Path(f"/proc/{pid}/stat"))[1])[0]
    except (OSError, IndexError, ValueError):
        return None


def wait_for(condition, what: str, processes: list[subprocess.Popen], log: Path, every: float = 0.1) -> float:
    """Poll ``condition`` until it holds; the monotonic time it first held."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        if any(p.poll() is not None for p in processes):
            raise SystemExit(f"a process exited while waiting for {what}; its log:\n{log.read_text()[-3000:]}")
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}; the log:\n{log.read_text()[-3000:]}")


# ---- scaling ------------------------------------------------------------------------------------------------


def write_config(folder: Path, feeds: list[tuple[str, str]], full_text: bool = True) -> Path:
    config = folder / "feeds.yaml"
    config.write_text(
        "settings:\n  allowed_networks: [127.0.0.1/32]\n  max_concurrency: 16\n  per_host_limit: 16\n"
        "  poll_interval: 1d\n  web:\n    enabled: false\n"
        f"  digest_dir: {folder / 'digests'}\n"
        + ("feeds:\n" + "".join(f"  - name: {name}\n    url: {url}\n    full_text: {str(full_text).lower()}\n"
                                for name, url in feeds) if feeds else "feeds: []\n")
    )
    return config


def scaling_run(admin_url: str, config: Path, workers: int, pages: int, folder: Path) -> dict:
    """One run and ``workers - 1`` workers, each on its own core, until every page is stored."""
    cores = sorted(os.sched_getaffinity(0))
    with scratch_database(admin_url, f"w{workers}") as url:
        log = folder / f"scale-{workers}.log"
        engine = create_engine(sqlalchemy_url(url))
        cpu_before, pg_before, wal_before = bench_ingest.children_cpu(), postgres_cpu(), wal_position(engine)
        launched = time.monotonic()
        processes = [start(["--config", str(config), "--database", url, "--log-level", "WARNING", "run"],
                           cores[0] if len(cores) >= workers else None, log)]
        for number in range(1, workers):
            processes.append(start(["--config", str(config), "--database", url, "--log-level", "WARNING", "worker"],
                                   cores[number] if len(cores) >= workers else None, log))

        # Asked 20 times a second, on one connection in autocommit (one round trip a look): count(*) would scan
        # the articles each time, PostgreSQL CPU that the figure below would charge to the cluster. The highest
        # id (one step down the primary key) is at least the count, so the articles are counted only once it
        # says that they may all be there. What its backend spends is still measured, and left out.
        poll = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        poll_before = backend_cpu(poll)

        def look(sql: str) -> int:
            return poll.execute(text(sql)).scalar() or 0

        def stored() -> bool:
            try:
                return look("SELECT max(id) FROM article") >= pages and look("SELECT count(*) FROM article") >= pages
            except Exception:  # noqa: BLE001 - the tables appear once the run has started
                return False

        done = wait_for(stored, f"{pages} stored articles", processes, log, every=0.05)
        poll_after = backend_cpu(poll)
        poll.close()
        finished_utc = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=time.monotonic() - done)
        with engine.connect() as connection:
            first_staged = connection.execute(text("SELECT min(fetched_at) FROM article")).scalar()
            articles, copies, pages_text, stories = connection.execute(text(
                "SELECT count(*), count(duplicate_of), count(*) FILTER (WHERE text_source = 'page'), "
                "count(DISTINCT story_id) FROM article")).one()
        wal = wal_bytes_since(engine, wal_before)
        seen = cluster_status(engine)  # what `aggregator status` shows of the running cluster
        extraction = children_of_cpu([p.pid for p in processes])
        stop(processes, log)
        cpu, pg_after = bench_ingest.children_cpu() - cpu_before, postgres_cpu()
        engine.dispose()
    busy = max(1e-6, (finished_utc - first_staged).total_seconds())
    return {
        "workers": workers, "articles": articles, "copies": copies, "page_texts": pages_text, "stories": stories,
        "seconds": round(busy, 3), "articles_per_s": round(articles / busy, 2),
        "seconds_from_launch": round(done - launched, 3), "cpu": round(cpu, 2),
        "extraction_cpu": round(extraction, 2),
        "wal_kib_per_article": round(wal / 1024 / max(1, articles), 1),
        "processes": len({p.name for p in seen.processes}), "connections": sum(p.connections for p in seen.processes),
        "sequencer": seen.sequencer.holder.name if seen.sequencer.holder else None,
        "postgres_cpu": round(pg_after - pg_before, 2) if pg_before is not None and pg_after is not None else None,
        # the benchmark's own looks at the article count, part of postgres_cpu but not the cluster's work
        "bench_poll_cpu": round(poll_after - poll_before, 2) if None not in (poll_before, poll_after) else None,
    }


def startup_cpu(admin_url: str, folder: Path, workers: int) -> float:
    """CPU seconds that one run and ``workers - 1`` workers spend starting (imports, set-up, joining the queue)
    and stopping, with no feed: what a long-lived cluster pays once, not an article at a time. (An extraction
    process starts at the first page, so its import of trafilatura stays in the articles' figure.)"""
    config = write_config(folder, [])
    log = folder / f"startup-{workers}.log"
    with scratch_database(admin_url, f"start{workers}") as url:
        engine = create_engine(sqlalchemy_url(url))
        before = bench_ingest.children_cpu()
        processes = [start(["--config", str(config), "--database", url, "--log-level", "WARNING",
                            "run" if number == 0 else "worker"], None, log) for number in range(workers)]

        def joined() -> bool:
            try:
                return count(engine, "SELECT count(*) FROM procrastinate_workers") >= workers
            except Exception:  # noqa: BLE001 - the queue's tables appear once the run has started
                return False

        wait_for(joined, f"{workers} processes in the queue", processes, log)
        stop(processes, log)
        engine.dispose()
    return bench_ingest.children_cpu() - before


def scaling(args: argparse.Namespace, folder: Path) -> dict:
    bases, kind = bench_ingest.base_pages(args.pages_dir, args.synthetic)
    site_pages = bench_ingest.build_site(bases, args.pages, args.feeds, args.wire)
    pages_dir = folder / "pages"
    pages_dir.mkdir()
    with LocalSite() as site:
        by_feed = bench_ingest.publish(site, site_pages, pages_dir)
        config = write_config(folder, [(f"Outlet {f}", site.url(f"/feed{f}.xml")) for f in sorted(by_feed)])
        runs = [scaling_run(args.admin_url, config, n, len(site_pages), folder) for n in args.workers]
    # The floor: trafilatura alone in 1 and in N processes, N the most workers, so that the workers' speed-up can
    # be read beside what this machine gives N processes of pure extraction right now.
    floors = {}
    for processes in sorted({1, max(args.workers)}):
        wall, cpu, _ = bench_ingest.timed([sys.executable, "-c", bench_ingest.FLOOR, str(pages_dir), str(processes)],
                                          environment())
        floors[processes] = {"pages_per_s": round(len(site_pages) / wall, 2),
                             "cpu_per_page_ms": round(1000 * cpu / len(site_pages), 2)}
    one = next((r for r in runs if r["workers"] == 1), runs[0])
    for run in runs:
        run["speedup"] = round(run["articles_per_s"] / one["articles_per_s"], 3)
        run["cpu_per_article_ms"] = round(1000 * run["cpu"] / max(1, run["articles"]), 2)
        run["startup_cpu"] = round(startup_cpu(args.admin_url, folder, run["workers"]), 2)
        run["cpu_per_article_after_startup_ms"] = round(
            1000 * max(0.0, run["cpu"] - run["startup_cpu"]) / max(1, run["articles"]), 2)
        # what the run and workers spent outside extraction, their start-up left out
        run["outside_extraction_ms"] = round(
            1000 * max(0.0, run["cpu"] - run["extraction_cpu"] - run["startup_cpu"]) / max(1, run["articles"]), 2)
        run["extraction_per_page_ms"] = round(1000 * run["extraction_cpu"] / max(1, run["page_texts"]), 2)
    most = max(args.workers)
    return {"pages": len(site_pages), "kind": kind, "feeds": len(by_feed), "runs": runs,
            "floor_pages_per_s": floors[1]["pages_per_s"], "floor_cpu_per_page_ms": floors[1]["cpu_per_page_ms"],
            "floor_processes": most, "floor_n_pages_per_s": floors[most]["pages_per_s"],
            "floor_speedup": round(floors[most]["pages_per_s"] / floors[1]["pages_per_s"], 3)}


# ---- the sequencer ------------------------------------------------------------------------------------------


def labelled_articles(bench_dir: Path, wanted: int) -> tuple[list[dict], str]:
    """Real articles (syndication-dev's full texts, then googlenews-t's headlines), repeated with new ids up to
    ``wanted``; synthetic headlines without the sets."""
    rows: list[dict] = []
    for name in ("syndication-dev.jsonl", "googlenews-t.jsonl"):
        path = bench_dir / name
        if path.exists():
            rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kind = "labelled sets" if rows else "synthetic headlines"
    if not rows:
        rng = random.Random(3)
        words = [f"w{i}" for i in range(5000)]
        rows = [{"id": str(i), "title": " ".join(rng.choice(words) for _ in range(9)), "text": None,
                 "source": f"s{i % 40}", "published": None, "url": None} for i in range(wanted)]
    articles = []
    for number in range(wanted):
        row = rows[number % len(rows)]
        articles.append({**row, "id": f"{number // len(rows)}-{row['id']}"})
    return articles, kind


def stage_articles(url: str, articles: list[dict]) -> None:
    """Stage ``articles`` as workers do: the aggregator's schema, then rows in pending_article."""
    from sqlmodel import Session

    from aggregator.models import PendingArticle, utcnow
    from aggregator.store import open_database

    engine = open_database(url)
    PendingArticle.__table__.create(engine, checkfirst=True)  # a schema from before the staging table
    with Session(engine) as session:
        now = utcnow()
        for a in articles:
            published = datetime.fromisoformat(a["published"].replace("Z", "+00:00")) if a.get("published") else None
            if published is not None and published.tzinfo is not None:
                published = published.astimezone(UTC).replace(tzinfo=None)
            session.add(PendingArticle(
                created_at=now, worker="bench", source_key="bench", external_id=a["id"], source=a.get("source") or "",
                title=a.get("title") or "", text=a.get("text") or a.get("title") or "",
                text_source="page" if a.get("text") else "title", url=a.get("url"), published=published,
                fetched_at=now,
            ))
        session.commit()
    engine.dispose()


def sequencer(args: argparse.Namespace, folder: Path) -> dict:
    articles, kind = labelled_articles(args.bench_dir, args.sequencer_articles)
    config = write_config(folder, [])
    log = folder / "sequencer.log"
    with scratch_database(args.admin_url, "seq") as url:
        stage_articles(url, articles)
        engine = create_engine(sqlalchemy_url(url))
        pg_before, cpu_before, wal_before = postgres_cpu(), bench_ingest.children_cpu(), wal_position(engine)
        launched = time.monotonic()
        processes = [start(["--config", str(config), "--database", url, "--log-level", "WARNING", "run"], None, log)]
        began = wait_for(lambda: count(engine, "SELECT count(*) FROM (SELECT 1 FROM article LIMIT 1) AS one") > 0,
                         "the first article", processes, log, every=0.02)
        first = count(engine, "SELECT count(*) FROM article")
        ended = wait_for(lambda: count(engine, "SELECT count(*) FROM (SELECT 1 FROM pending_article LIMIT 1) AS one")
                         == 0, "an empty staging table", processes, log, every=0.05)
        wal = wal_bytes_since(engine, wal_before)
        stop(processes, log)
        cpu, pg_after = bench_ingest.children_cpu() - cpu_before, postgres_cpu()
        stored = count(engine, "SELECT count(*) FROM article")
        with engine.connect() as connection:  # what the articles take, indexes and the text's TOAST included
            size = connection.execute(text("SELECT pg_total_relation_size('article') + "
                                           "pg_total_relation_size('story')")).scalar()
        engine.dispose()
    # From the first batch stored to the last: start-up and the engine's first load left out. A run too small for
    # more than one batch is timed from the launch instead.
    rate = (stored - first) / max(1e-6, ended - began) if stored > first else stored / max(1e-6, ended - launched)
    replay_file = folder / "replay.jsonl"
    with open(replay_file, "w", encoding="utf-8") as out:
        for a in articles:
            out.write(json.dumps({k: a.get(k) for k in ("id", "title", "text", "published", "source", "url")}) + "\n")
    with scratch_database(args.admin_url, "replay") as url:
        wall, replay_cpu, _ = bench_ingest.timed(
            [sys.executable, "-m", "aggregator", "--database", url, "--log-level", "WARNING", "replay",
             str(replay_file)], environment())
    return {"articles": len(articles), "kind": kind, "stored": stored, "articles_per_s": round(rate, 1),
            "run_cpu": round(cpu, 2), "wal_kib_per_article": round(wal / 1024 / max(1, stored), 1),
            "stored_kib_per_article": round(size / 1024 / max(1, stored), 1),
            "postgres_cpu": round(pg_after - pg_before, 2) if pg_before is not None and pg_after is not None else None,
            "replay_articles_per_s": round(len(articles) / wall, 1), "replay_cpu": round(replay_cpu, 2)}


# ---- the queue ----------------------------------------------------------------------------------------------


def queue_cost(args: argparse.Namespace) -> dict:
    import logging

    import procrastinate

    logging.getLogger("procrastinate").setLevel(logging.ERROR)  # its note that the app lives in __main__
    with scratch_database(args.admin_url, "queue") as url:
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

        @app.task(name="nothing", queue="bench")
        def nothing(n: int) -> None:
            return None

        with app.open():
            app.schema_manager.apply_schema()
            pg_before, own_before, started = postgres_cpu(), time.process_time(), time.perf_counter()
            for n in range(args.jobs):
                nothing.defer(n=n)
            deferred_at, own_deferred, pg_deferred = time.perf_counter(), time.process_time(), postgres_cpu()
        # One worker, as many jobs at a time as a worker of the cluster, until the queue is empty.
        app.run_worker(queues=["bench"], wait=False, concurrency=args.queue_concurrency, delete_jobs="successful",
                       install_signal_handlers=False, listen_notify=False)
        ran_at, own_ran, pg_ran = time.perf_counter(), time.process_time(), postgres_cpu()
    per_job = 1000 / args.jobs
    result = {
        "jobs": args.jobs, "concurrency": args.queue_concurrency,
        "defer_ms": round((deferred_at - started) * per_job, 3),
        "defer_cpu_ms": round((own_deferred - own_before) * per_job, 3),
        "run_ms": round((ran_at - deferred_at) * per_job, 3),
        "run_cpu_ms": round((own_ran - own_deferred) * per_job, 3),
    }
    if pg_before is not None and pg_ran is not None:
        result["postgres_defer_cpu_ms"] = round((pg_deferred - pg_before) * per_job, 3)
        result["postgres_run_cpu_ms"] = round((pg_ran - pg_deferred) * per_job, 3)
    return result


# ---- report -------------------------------------------------------------------------------------------------


def report(figures: dict) -> None:
    scale = figures.get("scaling")
    if scale:
        print(f"scaling: {scale['pages']} pages ({scale['kind']}) in {scale['feeds']} full-text feeds, "
              "one core a worker")
        for run in scale["runs"]:
            pg = f", PostgreSQL {run['postgres_cpu']:.1f} s" if run["postgres_cpu"] is not None else ""
            if run["postgres_cpu"] is not None and run.get("bench_poll_cpu") is not None:
                pg += f" ({run['bench_poll_cpu']:.1f} s of it the benchmark's own looks at the count)"
            print(f"  {run['workers']} worker(s)  {run['articles_per_s']:7.1f} articles/s  {run['speedup']:5.2f}x  "
                  f"({run['seconds']:.1f} s busy, {run['seconds_from_launch']:.1f} s from launch; "
                  f"{run['cpu']:.1f} s CPU = {run['cpu_per_article_ms']:.1f} ms an article, "
                  f"{run['cpu_per_article_after_startup_ms']:.1f} ms less the processes' start-up "
                  f"({run['startup_cpu']:.1f} s): extraction {run['extraction_per_page_ms']:.1f} ms a page read (its "
                  f"processes' start included), "
                  f"the rest {run['outside_extraction_ms']:.1f} ms an article{pg}; "
                  f"{run['wal_kib_per_article']:.0f} KiB WAL an article; {run['processes']} processes on "
                  f"{run['connections']} connections; "
                  f"{run['articles']} stored, {run['copies']} copies, {run['stories']} stories)")
        print(f"  floor       {scale['floor_pages_per_s']:7.1f} pages/s in one process, "
              f"{scale['floor_cpu_per_page_ms']:.1f} ms CPU a page (trafilatura alone); "
              f"{scale['floor_n_pages_per_s']:.1f} pages/s in {scale['floor_processes']}, "
              f"{scale['floor_speedup']:.2f}x: what this machine gives that many processes now")
    seq = figures.get("sequencer")
    if seq:
        pg = f", PostgreSQL {seq['postgres_cpu']:.1f} s CPU" if seq["postgres_cpu"] is not None else ""
        print(f"sequencer: {seq['articles']} staged articles ({seq['kind']}): {seq['articles_per_s']:.1f} articles/s "
              f"(the run's process {seq['run_cpu']:.1f} s CPU{pg}; {seq['wal_kib_per_article']:.0f} KiB WAL and "
              f"{seq['stored_kib_per_article']:.0f} KiB stored an article); replay of the same into PostgreSQL "
              f"{seq['replay_articles_per_s']:.1f} articles/s")
    queue = figures.get("queue")
    if queue:
        pg = (f"; PostgreSQL {queue['postgres_defer_cpu_ms']:.2f} + {queue['postgres_run_cpu_ms']:.2f} ms CPU"
              if "postgres_run_cpu_ms" in queue else "")
        print(f"queue: {queue['jobs']} empty jobs, {queue['concurrency']} at once: defer {queue['defer_ms']:.2f} ms "
              f"({queue['defer_cpu_ms']:.2f} ms "
              f"CPU), run {queue['run_ms']:.2f} ms ({queue['run_cpu_ms']:.2f} ms CPU) a job{pg}")
    print("== scale: " + json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default=os.environ.get("AGGREGATOR_BENCH_POSTGRES", ADMIN_URL),
                        help="a PostgreSQL database to create the scratch databases from")
    parser.add_argument("--pages", type=int, default=600)
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--wire", type=float, default=0.3, help="share of pages that are wire copies")
    parser.add_argument("--pages-dir", type=Path, default=bench_ingest.DEFAULT_PAGES)
    parser.add_argument("--synthetic", action="store_true", help="synthetic pages even when --pages-dir exists")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sequencer-articles", type=int, default=3000)
    parser.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--queue-concurrency", type=int, default=8, help="jobs at once in the queue's worker")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-sequencer", action="store_true")
    parser.add_argument("--skip-queue", action="store_true")
    args = parser.parse_args()
    bench_ingest.require_pages_dir(args, "bench_scale")
    try:
        import procrastinate  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"bench_scale needs the postgres extra: pip install '.[postgres]' ({exc})") from None
    try:
        create_engine(sqlalchemy_url(args.admin_url)).connect().close()
    except Exception as exc:  # noqa: BLE001 - any failure to connect ends the benchmark with its reason
        raise SystemExit(f"bench_scale needs PostgreSQL at {args.admin_url}: {exc}") from None
    probe = subprocess.run([sys.executable, "-m", "aggregator", "worker", "--help"], cwd=tempfile.gettempdir(),
                           env=environment(), capture_output=True)
    if probe.returncode != 0:
        raise SystemExit("bench_scale needs `aggregator run` and `aggregator worker` on PostgreSQL "
                         "(aggregator.workers.runner), which this checkout does not have yet")

    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="aggregator-scale-") as tmp:
        folder = Path(tmp)
        if not args.skip_scaling:
            figures["scaling"] = scaling(args, folder)
        if not args.skip_sequencer:
            figures["sequencer"] = sequencer(args, folder)
        if not args.skip_queue:
            figures["queue"] = queue_cost(args)
    report(figures)


if __name__ == "__main__":
    main()
