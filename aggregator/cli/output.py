"""How commands write: table cells, files replaced whole, and a progress bar on a terminal."""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from ..digest import format_time


def table_time(value: datetime | None, tz: str | None = None) -> str:
    """A stored (UTC) time for a table: in zone ``tz`` with its abbreviation (see ``digest.format_time``)."""
    if not value:
        return "-"
    return format_time(value, tz) if tz else value.strftime("%Y-%m-%d %H:%M")


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut at a word boundary with an ellipsis when it is longer."""
    if len(text) <= width:
        return text
    short = textwrap.shorten(text, width, placeholder="…")
    return short if short != "…" else text[: width - 1] + "…"  # a first word longer than the column


@contextmanager
def output_file(path: str) -> Iterator:
    """``path`` opened for writing text, replaced only once everything is written: an error or Ctrl-C midway
    leaves the file as it was, not cut short (a device or pipe such as /dev/stdout, or a file in a folder we may
    not write, is written in place)."""
    given = Path(path)
    target = Path(os.path.realpath(given))  # through a symbolic link: the file it points to is replaced
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        regular = not str(given).startswith(("/dev/", "/proc/")) and (given.is_file() or not given.exists())
        out = open(partial, "x", encoding="utf-8") if regular else None
    except OSError:  # a file we may write in a folder we may not: written in place
        out = None
    if out is None:
        with open(given, "w", encoding="utf-8") as out:
            yield out
        return
    try:
        with out:
            yield out
        if target.exists():
            shutil.copymode(target, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def emit(text: str, output: str | None = None) -> None:
    if output:
        with output_file(output) as out:
            out.write(text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@contextmanager
def progress_bar(total: int, description: str, unit: str) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(done, total)`` callback drawing a bar on standard error, or None when that is not a terminal
    (piped or redirected output gets no bar and no control characters)."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit=f" {unit}", file=sys.stderr, leave=False, dynamic_ncols=True) as bar:
        yield lambda done, _total: bar.update(done - bar.n)


