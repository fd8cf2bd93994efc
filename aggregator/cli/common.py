"""What every command shares: its config, its database, its logging, and checks on the files it writes."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# The config and the database layer (pydantic, SQLAlchemy, numpy) are imported by the commands that use them,
# so that --help, --version and a mistyped command answer at once.
if TYPE_CHECKING:
    from ..config import Config

EXIT_USAGE = 2


class CommandError(Exception):
    """A user error with a message for the terminal (exit status 1)."""


def command_config(args: argparse.Namespace, required: bool) -> Config | None:
    from ..config import DEFAULT_CONFIG_PATH, load_config

    path = getattr(args, "config", None)
    if path is None and not required and not Path(DEFAULT_CONFIG_PATH).exists():
        return None
    config = load_config(path or DEFAULT_CONFIG_PATH)
    for warning in config.warnings:
        print(f"aggregator: warning: {warning}", file=sys.stderr)
    return config


POLLING_COMMANDS = ("run", "poll", "worker")  # they create the database; the other commands open an existing one


def open_aggregator(args: argparse.Namespace, config_required: bool = False):
    """The commands that poll create the database; the others open an existing one."""
    from ..api import Aggregator

    config = database_config(args, config_required)
    polls = getattr(args, "command", None) in POLLING_COMMANDS
    return Aggregator(database=args.database_url, config=config, create=polls)


def database_config(args: argparse.Namespace, config_required: bool) -> Config | None:
    """The config, checked against the command's options; sets ``args.database_url`` (for error messages)."""
    from ..dbfile import resolve_database

    config = command_config(args, config_required)
    for name in getattr(args, "feed", None) or []:  # `poll --feed TYPO` fails before the database is touched
        config.feed(name)
    polls = getattr(args, "command", None) in POLLING_COMMANDS
    if polls and config is not None and not any(feed.enabled for feed in config.feeds):
        print(f"aggregator: warning: {config.path} lists no enabled feeds: there is nothing to poll", file=sys.stderr)
    args.database_url = resolve_database(getattr(args, "database", None), config)
    return config


def file_error(exc: Exception, path: str) -> str:
    """``FILE: what went wrong`` for an input file (``FILE: No such file or directory``, not ``[Errno 2] ...``)."""
    if isinstance(exc, IsADirectoryError):
        return f"{path}: is a folder, not a file"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename or path}: {exc.strerror}"
    return str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"


def check_writable(*paths: str | Path | None) -> None:
    """Refuse an output file that cannot be written, before any work is done (an existing file is untouched)."""
    for path in paths:
        if not path:
            continue
        target = Path(path)
        existed = target.exists()
        try:
            with open(target, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            if target.is_dir():
                raise CommandError(f"cannot write {path}: it is a folder") from None
            if not target.parent.is_dir():
                raise CommandError(f"cannot write {path}: folder {target.parent} does not exist") from None
            raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
        if not existed:
            target.unlink()


def setup_logging(args: argparse.Namespace, config: Config | None) -> None:
    level = getattr(args, "log_level", None) or (config.settings.log_level if config else "INFO")
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"
    )
    noisy_loggers = ("httpx", "httpcore", "apscheduler", "trafilatura", "htmldate", "courlan")
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
