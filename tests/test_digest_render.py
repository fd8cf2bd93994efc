from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest

from aggregator.digest import FORMATS, clean_text, render_digest, safe_url
from aggregator.query import Digest, StoryEntry, StorySource

DAY = date(2026, 11, 24)
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
MD_LINK = "[click](javascript:x)"
ESC = "\x1b[31m"


def make_digest() -> Digest:
    first = StoryEntry(
        id=7,
        headline=f"Ceasefire talks resume {MD_LINK}",
        url="https://news.example/ceasefire",
        lead=f"{ESC}Negotiators\x1b[0m met again\x07 on Monday,\x00 officials said.",
        source_count=3,
        article_count=4,
        first_seen=datetime(2026, 11, 24, 5, 10),  # naive: UTC
        last_updated=datetime(2026, 11, 24, 8, 58, tzinfo=timezone(timedelta(hours=1))),
        sources=[
            StorySource(
                article_id=1,
                source=IMG,
                title=f"Talks resume {SCRIPT}",
                url="javascript:alert(1)",
                published=datetime(2026, 11, 24, 6, 0, tzinfo=UTC),
                copies=[
                    StorySource(2, "Copy Wire", "Talks resume", "https://wire.example/1", None),
                    StorySource(3, "Local Paper", "Talks resume", "file:///etc/passwd", None),
                ],
            ),
            StorySource(
                article_id=4,
                source="Daily Planet",
                title=f"Ceasefire talks resume {MD_LINK}",
                url="https://planet.example/story?a=1&b=2",
                published=datetime(2026, 11, 24, 7, 58),
            ),
        ],
    )
    second = StoryEntry(
        id=8,
        headline=f"Second story {SCRIPT}",
        url="javascript:alert(1)",
        lead="A plain lead.",
        source_count=1,
        article_count=1,
        first_seen=datetime(2026, 11, 24, 1, 0, tzinfo=UTC),
        last_updated=datetime(2026, 11, 24, 1, 30, tzinfo=UTC),
        sources=[StorySource(5, "Only Outlet", "Another angle", "https://only.example/x", None)],
    )
    return Digest(day=DAY, generated_at=datetime(2026, 11, 24, 7, 0, tzinfo=UTC), stories=[first, second])


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_formats_constant():
    assert FORMATS == ("text", "markdown", "html", "json")
    with pytest.raises(ValueError, match="unknown digest format"):
        render_digest(make_digest(), "pdf")


def test_html_is_safe_and_complete():
    out = render_digest(make_digest(), "html")
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    assert '<meta name="viewport"' in out and "<style>" in out
    assert "<script" not in out.lower()
    assert "<img" not in out.lower()
    assert 'href="javascript' not in out.lower() and 'href="file' not in out.lower()
    parser = _Collector()
    parser.feed(out)
    tag_names = {tag for tag, _ in parser.tags}
    assert not tag_names & {"script", "img", "iframe", "object"}
    anchors = [attrs for tag, attrs in parser.tags if tag == "a"]
    assert [a["href"] for a in anchors] == [
        "https://news.example/ceasefire",
        "https://wire.example/1",
        "https://planet.example/story?a=1&b=2",
        "https://only.example/x",
    ]
    assert all(a["rel"] == "noopener noreferrer" for a in anchors)
    for _tag, attrs in parser.tags:
        assert not any(name.startswith("on") for name in attrs)
    text = "".join(parser.text)
    # hostile strings are shown, as text
    assert SCRIPT in text and IMG in text
    assert "Local Paper" in text and "also carried by" in text
    assert "\x1b" not in out and "\x00" not in out


def test_html_story_content_and_times():
    out = render_digest(make_digest(), "html")
    assert out.index("Ceasefire talks resume") < out.index("Second story")
    assert "3 sources" in out and "1 source" in out
    assert "2026-11-24 05:10 UTC" in out  # naive first_seen taken as UTC
    assert "2026-11-24 07:58 UTC" in out  # +01:00 converted to UTC
    assert 'datetime="2026-11-24T07:58:00Z"' in out
    # the Daily Planet title equals the headline, so it is not repeated as a separate link text
    # the Daily Planet title equals the headline, so only the headline shows it
    assert out.count("Ceasefire talks resume") == 1
    assert "Talks resume &lt;script&gt;" in out


def test_text_is_terminal_safe():
    out = render_digest(make_digest(), "text")
    assert "\x1b" not in out and "\x07" not in out and "\x00" not in out
    assert all(ch in "\n" or ch.isprintable() for ch in out)
    assert "[31m" not in out
    assert "Negotiators met again on Monday, officials said." in out
    assert "javascript:" not in out.replace(MD_LINK, "")
    assert "file:" not in out
    assert "https://news.example/ceasefire" in out
    assert "also carried by: Copy Wire <https://wire.example/1>, Local Paper" in " ".join(out.split())
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "3 sources" in out and "first seen 2026-11-24 05:10 UTC" in out
    assert "updated 2026-11-24 07:58 UTC" in out
    assert out.index("1. Ceasefire") < out.index("2. Second story")


def test_markdown_escapes_and_links():
    out = render_digest(make_digest(), "markdown")
    assert "](javascript:" not in out
    assert "](file:" not in out
    assert not re.search(r"(?<!\\)<(script|img|/script)", out)  # only backslash-escaped forms remain
    assert "\\<script\\>" in out and "\\<img src=x" in out
    links = re.findall(r"\]\((\S+?)\)", out)
    assert links and all(link.startswith("https://") for link in links)
    assert "[Ceasefire talks resume \\[click\\]\\(javascript:x\\)](https://news.example/ceasefire)" in out
    assert "[Copy Wire](https://wire.example/1)" in out
    assert "also carried by:" in out and "Local Paper" in out
    assert "\x1b" not in out
    # the second story's headline has no link because its URL is not http(s)
    assert "## 2. Second story \\<script\\>alert\\(1\\)\\</script\\>" in out


def test_markdown_escape_set():
    digest = make_digest()
    digest.stories[1].headline = "# Not a heading | a*b_c `code` ~x~"
    out = render_digest(digest, "markdown")
    assert "\\# Not a heading \\| a\\*b\\_c \\`code\\` \\~x\\~" in out


def test_json_round_trips():
    digest = make_digest()
    data = json.loads(render_digest(digest, "json"))
    assert data["date"] == "2026-11-24"
    assert data["generated_at"] == "2026-11-24T07:00:00Z"
    first, second = data["stories"]
    assert first["id"] == 7 and first["source_count"] == 3 and first["article_count"] == 4
    assert first["first_seen"] == "2026-11-24T05:10:00Z"
    assert first["last_updated"] == "2026-11-24T07:58:00Z"
    assert first["lead"] == "Negotiators met again on Monday, officials said."
    assert first["headline"] == digest.stories[0].headline
    src = first["sources"][0]
    assert src["source"] == IMG and src["url"] is None and src["published"] == "2026-11-24T06:00:00Z"
    assert [(c["source"], c["url"], c["published"]) for c in src["copies"]] == [
        ("Copy Wire", "https://wire.example/1", None),
        ("Local Paper", None, None),
    ]
    assert first["sources"][1]["published"] == "2026-11-24T07:58:00Z"
    assert second["url"] is None and second["headline"] == f"Second story {SCRIPT}"
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_people_read_times_in_the_digest_zone(fmt):
    digest = make_digest()
    digest.timezone = "Europe/Berlin"
    out = render_digest(digest, fmt)
    assert "2026-11-24 06:10 CET" in out  # naive 05:10 is UTC
    assert "2026-11-24 08:58 CET" in out  # 08:58+01:00
    assert "2026-11-24 08:00 CET" in out  # generated at 07:00 UTC
    assert " UTC" not in out
    if fmt == "html":
        assert 'datetime="2026-11-24T07:58:00Z"' in out  # the machine-readable attribute stays UTC


def test_json_times_stay_utc_whatever_the_zone():
    digest = make_digest()
    digest.timezone = "Asia/Tokyo"
    data = json.loads(render_digest(digest, "json"))
    assert data["generated_at"] == "2026-11-24T07:00:00Z"
    assert data["stories"][0]["first_seen"] == "2026-11-24T05:10:00Z"


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_empty_digest_message(fmt):
    out = render_digest(Digest(day=DAY, generated_at=datetime(2026, 11, 24, 7, 0)), fmt)
    assert "No stories for 2026-11-24." in out


def test_empty_digest_json():
    data = json.loads(render_digest(Digest(day=DAY, generated_at=datetime(2026, 11, 24, 7, 0)), "json"))
    assert data == {"date": "2026-11-24", "generated_at": "2026-11-24T07:00:00Z", "stories": []}


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://a.example/x?y=1", "https://a.example/x?y=1"),
        ("  HTTP://A.example  ", "HTTP://A.example"),
        ("javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("file:///etc/passwd", None),
        ("data:text/html,<b>", None),
        ("//evil.example/x", None),
        ("https://", None),
        ("http://[::1", None),
        ("https://a.example/\x1b[31m", None),
        ("https://a.example/a b", None),
        (None, None),
        (42, None),
    ],
)
def test_safe_url(url, expected):
    assert safe_url(url) == expected


def test_clean_text():
    assert clean_text(f"  {ESC}red\x1b[0m \n\t text\x00\x7f\u202e ") == "red text"
    assert clean_text("\x1b]0;title\x07after") == "after"
    assert clean_text("\x9b31mx") == "x"
    assert clean_text(None) == ""
    assert clean_text("caf\u00e9 \u2014 ok") == "caf\u00e9 \u2014 ok"
