"""Everything a feed controls is escaped or dropped wherever it is rendered: HTML, markdown, the terminal."""

import re
from xml.sax.saxutils import escape

from aggregator import Aggregator
from aggregator.cli import main
from aggregator.config import load_config
from aggregator.digest import render_digest
from aggregator.pipeline import poll_once

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "<svg/onload=alert(3)>",
    "javascript:alert(4)",
    "[click](javascript:alert(5))",
    "\x1b[31mred\x1b[0m \x1b]8;;http://evil.example\x07link\x1b]8;;\x07",
    "<a href='javascript:alert(6)'>x</a>",
    "</title><style>body{display:none}</style>",
]


def _hostile_feed(base: str) -> bytes:
    items = []
    for i, payload in enumerate(PAYLOADS):
        link = "javascript:alert(7)" if i % 2 else f"{base}/page/{i}?x=\"><script>alert(8)</script>"
        items.append(
            f"<item><title>{escape(payload)} story {i}</title><link>{escape(link)}</link>"
            f"<guid isPermaLink='false'>hostile-{i}</guid><pubDate>Tue, 24 Nov 2026 0{i}:00:00 GMT</pubDate>"
            f"<author>{escape(payload)}</author>"
            f"<description>{escape('<p>' + payload + ' body text of the hostile item number ' + str(i) + '</p>')}"
            f"</description></item>"
        )
    channel = f"<title>{escape(PAYLOADS[0])}</title><link>javascript:alert(9)</link>" + "".join(items)
    return f"<?xml version='1.0'?><rss version='2.0'><channel>{channel}</channel></rss>".encode()


def test_xss_payloads_do_not_survive_the_pipeline(tmp_path, site, capsys):
    site.put("/evil.xml", _hostile_feed(site.base_url), "application/rss+xml")
    config_path = tmp_path / "feeds.yaml"
    config_path.write_text("settings:\n  allowed_networks: [127.0.0.1/32]\nfeeds:\n"
                           f"  - name: '<b>Evil</b> \"Outlet\"'\n    url: {site.url('/evil.xml')}\n"
                           "    full_text: false\n")
    config = load_config(config_path)
    database = f"sqlite:///{tmp_path}/x.db"
    agg = Aggregator(database=database, config=config)
    assert poll_once(agg.engine, config)[0].new_entries == len(PAYLOADS)
    digest = agg.digest(day=__import__("datetime").date(2026, 11, 24))
    assert len(digest.stories) >= 1

    page = render_digest(digest, "html")
    lowered = page.lower()
    assert "<script" not in lowered
    assert "<svg" not in lowered and "<img" not in lowered and "<iframe" not in lowered
    assert not re.search(r"<[^>]+\son\w+\s*=", lowered), "an event handler attribute survived"
    assert not re.search(r"href\s*=\s*[\"']?\s*javascript:", lowered)
    assert "<style>body" not in lowered
    assert "<b>evil</b>" not in lowered

    markdown = render_digest(digest, "markdown")
    assert "](javascript:" not in markdown
    assert "<script" not in markdown

    for fmt in ("text", "markdown", "html", "json"):
        assert "\x1b" not in render_digest(digest, fmt)
        assert "\x07" not in render_digest(digest, fmt)

    capsys.readouterr()
    for argv in (["stories"], ["story", str(digest.stories[0].id)], ["digest", "--date", "2026-11-24"]):
        assert main(["--database", database, *argv]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out
