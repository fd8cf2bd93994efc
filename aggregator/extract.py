"""Extract stage: the article body from its page (trafilatura), else the feed's own text."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import trafilatura

log = logging.getLogger(__name__)

MIN_PAGE_WORDS = 40  # below this a page yielded a teaser or a paywall notice, not the article
MAX_PAGE_CHARS = 5_000_000
_SENTENCE_END = re.compile(r"[.!?][\"'”’)]?\s+(?=[A-Z0-9\"'“‘(])")
# A period after these ends an abbreviation, not a sentence ("U.S. President", "Dec. 11", "Mr. Orbán").
_ABBREVIATION = re.compile(
    r"(?:^|[\s(])(?:[A-Z]\.)*[A-Z]$|(?:^|\s)(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Gen|Sen|Rep|Gov|Lt|Col|Sgt|Capt|Prof|Inc|Co|"
    r"Corp|Ltd|No|vs|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Mt|Ft|approx|est)$"
)


@dataclass
class Extracted:
    text: str
    source: str  # "page", "feed" or "title": where the text came from


def extract_from_html(html: str, url: str | None = None) -> str:
    """The main text of an article page, paragraphs on their own lines; "" when nothing was found."""
    if not html or len(html) > MAX_PAGE_CHARS:
        return ""
    try:
        text = trafilatura.extract(
            html,
            url=url,
            include_comments=False,
            include_tables=False,
            include_images=False,
            favor_precision=True,
            # No deduplicate=True: its cache lives across calls, so a wire copy's page would come back empty.
        )
    except Exception as exc:  # trafilatura raises many kinds on broken markup; a page never stops a poll
        log.debug("extraction failed for %s: %s", url, exc)
        return ""
    return (text or "").strip()


def choose_text(page_text: str, feed_text: str, title: str) -> Extracted:
    """The page's text when it is substantial, else the feed's own text, else the title."""
    page_words = len(page_text.split())
    feed_words = len(feed_text.split())
    if page_words >= MIN_PAGE_WORDS and page_words >= 0.5 * feed_words:
        return Extracted(page_text, "page")
    if feed_text.strip():
        return Extracted(feed_text.strip(), "feed")
    return Extracted(title.strip(), "title")


def lead_sentence(text: str, limit: int = 300) -> str:
    """The first sentence of a text (a dateline kept), cut at ``limit`` characters."""
    first_par = next((p.strip() for p in text.split("\n") if len(p.split()) >= 5), text.strip())
    sentence = first_par
    for match in _SENTENCE_END.finditer(first_par):
        if not _ABBREVIATION.search(first_par[: match.start()]):
            sentence = first_par[: match.end()]
            break
    sentence = sentence.strip()
    if len(sentence) > limit:
        sentence = sentence[: limit - 1].rsplit(" ", 1)[0] + "…"
    return sentence
