"""The Jinja2 environment shared by the pages, the feeds' HTML content and the e-mail: autoescaped, with the
filters that clean feed text, keep only http(s) links and format times in the configured time zone."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2

from ..digest import all_copies, clean_text, format_time, iso_time, safe_url

TEMPLATES = Path(__file__).parent / "templates"
def clean_segment(text: str) -> str:
    """A snippet segment cleaned like any feed text, keeping the space at either end that separates words."""
    cleaned = clean(text)
    if cleaned and text[:1].isspace():
        cleaned = " " + cleaned
    if cleaned and text[-1:].isspace():
        cleaned += " "
    return cleaned or (" " if text.strip() == "" and text else "")


# Every character clean_text removes or rewrites besides whitespace: C0/C1 controls (ANSI escapes start with
# one), surrogates, and the invisible format characters. Text without any needs only its whitespace folded.
_SUSPECT = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff\ud800-\udfff]")
_SPACES = re.compile(r"\s+")


def clean(value: object) -> str:
    """:func:`aggregator.digest.clean_text`, with a fast path for the common text that holds nothing to remove."""
    if value is None:
        return ""
    text = str(value)
    if _SUSPECT.search(text) is None:
        return _SPACES.sub(" ", text).strip()
    return clean_text(text)


@lru_cache(maxsize=4)
def environment(tz: str = "UTC") -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, including the .xml-free e-mail and feed fragments
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        clean=clean,
        href=safe_url,
        iso=iso_time,
        when=lambda value: format_time(value, tz),
        copies=lambda source: list(all_copies(source)),
        segment=clean_segment,
    )
    env.globals["timezone"] = tz
    return env
