"""The commands that poll, serve and replay: run, worker, serve, poll, demo, replay, status."""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys

from ..digest import clean_text, iso_time
from .common import (
    CommandError,
    check_writable,
    command_config,
    database_config,
    file_error,
    open_aggregator,
    setup_logging,
)
from .output import emit, progress_bar


def cmd_run(args: argparse.Namespace) -> int:
    from ..scheduler import Daemon, check_digest_folder

    check_digest_folder(command_config(args, required=True))  # at start, not at digest_time
    with open_aggregator(args, config_required=True) as agg:
        setup_logging(args, agg.config)
        if agg.engine.url.get_backend_name() == "postgresql":  # workers, a sequencer and a scheduler
            from ..workers.runner import run_cluster

            run_cluster(agg.engine, agg.config)
        else:
            Daemon(agg.engine, agg.config).run()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from ..workers.runner import run_worker

    with open_aggregator(args, config_required=True) as agg:
        setup_logging(args, agg.config)
        run_worker(agg.engine, agg.config)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from ..web.server import WebError, serve_forever

    agg = open_aggregator(args)
    setup_logging(args, agg.config)
    web = agg.settings.web
    try:
        serve_forever(agg, args.host or web.host, web.port if args.port is None else args.port)
    except WebError as exc:
        raise CommandError(str(exc)) from None
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    from ..quickpoll import open_poll

    config = database_config(args, config_required=True)
    with open_poll(args.database_url, config) as poll:  # a poll that finds nothing new loads no ORM
        setup_logging(args, config)
        poll_log = logging.getLogger("aggregator.poll")
        level = poll_log.level
        if logging.getLogger().level > logging.DEBUG:  # each failure gets its line below, not a log line as well
            poll_log.setLevel(logging.ERROR)
        try:
            results = poll(args.feed, args.force)
        finally:
            poll_log.setLevel(level)
    if not results:  # the config's loading has warned that it lists no enabled feed
        return 1
    new = sum(r.new_entries for r in results)  # what was committed, also by a poll that then failed
    failed = [r for r in results if r.status == "error"]
    skipped = [r for r in results if not r.polled and r.status != "error"]
    polled = len(results) - len(failed) - len(skipped)
    problems = f"; {len(failed)} failed, {len(skipped)} skipped" if failed or skipped else ""
    print(f"polled {polled} of {len(results)} feeds: {new} new articles{problems}")
    for r in failed:
        print(f"aggregator: {clean_text(r.feed)}: failed: {clean_text(r.error or 'unknown error')}", file=sys.stderr)
    for r in skipped:
        hint = "--force polls it now" if r.status == "skipped" else f"aggregator feeds resume {shlex.quote(r.feed)}"
        print(f"aggregator: {clean_text(r.feed)}: skipped: {clean_text(r.error or r.status)} ({clean_text(hint)})",
              file=sys.stderr)
    for r in results:
        if r.polled and r.unreadable_entries:
            print(f"aggregator: {clean_text(r.feed)}: polled, but {r.unreadable_entries} of its entries could not be "
                  "read", file=sys.stderr)
    return 1 if failed or skipped else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    setup_logging(args, None) if getattr(args, "log_level", None) else logging.basicConfig(level="WARNING")
    config = command_config(args, required=False)  # only for the time zone the digest is shown in
    sys.stdout.write(run_demo(database=getattr(args, "database", None), fmt=args.format,
                              tz=config.settings.timezone if config else "UTC"))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from ..replay import ReplayError, read_rows, replay, summary_lines, write_predictions

    check_writable(args.out)
    config = command_config(args, required=False)
    window = config.settings.story_window if config else 3 * 86400
    try:
        rows = read_rows(args.file)
        with progress_bar(len(rows), "replaying", "articles") as progress:
            report = replay(rows, database=getattr(args, "database", None), window_seconds=window, progress=progress,
                            semantic=bool(config and config.settings.semantic_clustering), as_of=args.as_of)
    except (OSError, ReplayError) as exc:
        raise CommandError(file_error(exc, args.file)) from None
    except UnicodeDecodeError as exc:
        raise CommandError(f"{args.file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if args.out:
        write_predictions(report, args.out)
    for line in summary_lines(report):
        print(line)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from ..workers.status import cluster_status, render_status

    with open_aggregator(args) as agg:
        status = cluster_status(agg.engine, agg.config)
    if args.format == "json":
        emit(json.dumps(status.as_dict(), default=iso_time, indent=2))
    else:
        print(render_status(status, agg.settings.timezone))
    return 0
