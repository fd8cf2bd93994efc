"""The ``aggregator`` command: a thin layer over :mod:`aggregator.api` and the stage modules.

``arguments`` holds the grammar, ``running`` the commands that poll, serve and replay, ``reading`` those that read
the stories, ``feeds`` the feed list; ``common`` and ``output`` what they share.
"""

from __future__ import annotations

import argparse
import sys

from .arguments import build_parser
from .common import EXIT_USAGE, CommandError
from .feeds import cmd_feeds
from .reading import cmd_digest, cmd_explain, cmd_export, cmd_stories, cmd_story
from .running import cmd_demo, cmd_poll, cmd_replay, cmd_run, cmd_serve, cmd_status, cmd_worker

__all__ = ["build_parser", "main"]


COMMANDS = {
    "run": cmd_run, "poll": cmd_poll, "demo": cmd_demo, "digest": cmd_digest, "stories": cmd_stories,
    "story": cmd_story, "explain": cmd_explain, "replay": cmd_replay, "feeds": cmd_feeds, "export": cmd_export,
    "serve": cmd_serve, "worker": cmd_worker, "status": cmd_status,
}


def _database_error(args: argparse.Namespace, exc: Exception) -> str | None:
    """One line for an error the database raised (a damaged file, a lost server), None for anything else."""
    from sqlalchemy.exc import DBAPIError

    from ..store import describe_database_error

    if not isinstance(exc, DBAPIError):
        return None
    return describe_database_error(getattr(args, "database_url", None), exc, doing="read")


def main(argv: list[str] | None = None) -> int:
    args = argparse.Namespace()
    try:
        # Ctrl-C may come while the modules load: quiet, whatever was loading.
        args = build_parser().parse_args(argv)
        from ..config import ConfigError
        from ..errors import SearchError, StoreError
    except KeyboardInterrupt:
        return 130
    try:
        # ... or while the engine reloads or a command runs.
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"aggregator: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StoreError, CommandError) as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return 1
    except SearchError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        message = _database_error(args, exc)
        if message is None:
            raise
        print(f"aggregator: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
