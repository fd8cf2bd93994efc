"""``aggregator feeds``: list the feeds with their health, import or export OPML, resume a paused feed."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from ..digest import clean_text, iso_time
from .common import EXIT_USAGE, CommandError, check_writable, command_config, file_error, open_aggregator
from .output import emit, shorten, table_time


def cmd_feeds(args: argparse.Namespace) -> int:
    if args.format and args.action != "list":  # export and import speak OPML
        print(f"aggregator: --format is for feeds list, not feeds {args.action}", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "list" and args.file:
        print(f"aggregator: feeds list takes no file or name, got {args.file!r}", file=sys.stderr)
        return EXIT_USAGE
    actions = {"export": _export, "resume": _resume, "import": _import, "list": _list}
    return actions[args.action](args)


def _export(args: argparse.Namespace) -> int:
    from ..opml import export_opml

    config = command_config(args, required=True)
    check_writable(args.file)
    emit(export_opml(config.feeds), args.file)
    return 0


def _resume(args: argparse.Namespace) -> int:
    from ..pipeline import resume_feed

    if not args.file:
        raise CommandError("feeds resume needs a feed name")
    with open_aggregator(args) as agg:
        if not resume_feed(agg.engine, args.file):
            raise CommandError(f"no feed named {args.file!r} has been polled")
    print(f"resumed {args.file}: it is polled again at its next turn")
    return 0


def _import(args: argparse.Namespace) -> int:
    from ..config import DEFAULT_CONFIG_PATH, load_config
    from ..opml import OpmlError, merge_feeds_into_yaml, read_opml

    if not args.file:
        raise CommandError("feeds import needs an OPML file")
    path = Path(getattr(args, "config", None) or DEFAULT_CONFIG_PATH)
    if path.exists():
        load_config(path)  # a config that does not load is not merged into
    check_writable(path)
    try:
        found = read_opml(Path(args.file).read_bytes())
    except (OSError, OpmlError) as exc:
        raise CommandError(file_error(exc, args.file)) from None
    feeds, skipped = found.feeds, found.skipped_summary()
    if not feeds:
        raise CommandError(f"{args.file}: no feeds to import" + (f" ({skipped})" if skipped else ""))
    current = path.read_text(encoding="utf-8") if path.exists() else "feeds:\n"
    updated, added = merge_feeds_into_yaml(current, feeds)
    emit(updated, str(path))  # replaced whole, never left half-written
    notes = "".join(f"; {note}" for note in (skipped, found.ignored_summary()) if note)
    print(f"imported {added} new feeds into {path} ({len(feeds) - added} already there){notes}")
    return 0


def _list(args: argparse.Namespace) -> int:
    with open_aggregator(args) as agg:
        health = agg.feeds()
        configured = {f.name: f for f in agg.config.feeds} if agg.config else {}
    if args.format == "json":
        from dataclasses import asdict

        emit(json.dumps([asdict(h) for h in health], default=iso_time, indent=2))
        return 0
    now = datetime.now(UTC).replace(tzinfo=None)  # stored times are naive UTC
    note_width = max(40, shutil.get_terminal_size((120, 24)).columns - 30)
    tz = agg.settings.timezone
    print(f"{'FEED':28} {'STATE':8} {'LAST FETCH':20} {'HTTP':>4} {'NEW':>4} {'ERR':>3} {'ARTICLES':>8}")
    for h in health:
        state = h.state(enabled=h.name not in configured or configured[h.name].enabled, now=now)
        print(f"{shorten(clean_text(h.name), 28):28} {state:8} {table_time(h.last_fetched, tz):20} "
              f"{h.last_status or '-':>4} {h.new_entries:>4} {h.consecutive_errors:>3} {h.articles:>8}")
        for line in textwrap.wrap(clean_text(_health_note(h, now, tz)), note_width, max_lines=4, placeholder=" …"):
            print(f"{'':28} {line}")
    known = {h.name for h in health}
    for name in configured:
        if name not in known:
            print(f"{shorten(clean_text(name), 28):28} {'new':8} {'never':20}")
    return 0


def _health_note(health, now: datetime, tz: str) -> str:
    """Why a feed is paused, or its last error (and until when it rests), for the line under it."""
    if health.disabled:
        return health.disabled
    if not health.last_error:
        return ""
    resting = health.resting_until is not None and health.resting_until > now
    rest = f"resting until {table_time(health.resting_until, tz)}; " if resting else ""
    return rest + f"last error: {health.last_error}"
