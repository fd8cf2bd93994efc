from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from aggregator import opml
from aggregator.config import FeedConfig, parse_config
from aggregator.opml import OpmlError, export_opml, import_opml, merge_feeds_into_yaml

SHIPPED = Path(__file__).resolve().parent.parent / "feeds.yaml"


def feed(name: str, url: str, **kw) -> FeedConfig:
    return FeedConfig(name=name, url=url, **kw)


def test_export_is_opml_2():
    text = export_opml([feed("A & B <news>", "https://a.example/rss?x=1&y=2", tags=["world", "uk"])], "Mine")
    root = ET.fromstring(text)
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/title") == "Mine"
    (outline,) = root.findall("body/outline")
    assert outline.attrib == {
        "text": "A & B <news>",
        "title": "A & B <news>",
        "type": "rss",
        "xmlUrl": "https://a.example/rss?x=1&y=2",
        "category": "world,uk",
    }


def test_round_trip():
    feeds = [
        feed("BBC", "https://feeds.bbci.co.uk/news/world/rss.xml", tags=["world", "uk"]),
        feed("Ars Technica", "https://feeds.arstechnica.com/arstechnica/index", tags=["tech"]),
        feed("Plain", "http://plain.example/feed"),
    ]
    back = import_opml(export_opml(feeds))
    assert [(f.name, f.url, f.tags) for f in back] == [(f.name, f.url, f.tags) for f in feeds]
    assert import_opml(export_opml(feeds).encode("utf-8")) == back


def test_round_trip_keeps_interval_enabled_and_full_text():
    feeds = [
        feed("Slow", "https://slow.example/feed", interval="2h", enabled=False, full_text=False),
        feed("Fast", "https://fast.example/feed", interval=300),
        feed("Default", "https://default.example/feed"),
    ]
    text = export_opml(feeds)
    assert import_opml(text) == feeds
    (default,) = [o for o in ET.fromstring(text).iter("outline") if o.get("text") == "Default"]
    assert not any(name.startswith("aggregator") for name in default.attrib)  # defaults are not written


def test_own_attributes_that_do_not_validate_are_ignored():
    doc = ('<opml version="2.0"><body><outline text="X" xmlUrl="https://x.example/feed" aggregatorInterval="soon" '
           'aggregatorEnabled="maybe" aggregatorFullText="false"/></body></opml>')
    (imported,) = import_opml(doc)
    assert (imported.interval, imported.enabled, imported.full_text) == (None, True, False)
    summary = opml.read_opml(doc).ignored_summary()
    assert summary == "ignored 2 invalid settings: 1 aggregatorEnabled, 1 aggregatorInterval"
    assert opml.read_opml(export_opml([feed("A", "https://a.example/feed", enabled=False)])).ignored_summary() is None


NESTED = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head><title>export</title></head>
  <body>
    <outline text="News">
      <outline text="Europe">
        <outline text="DW" type="rss" xmlUrl="https://rss.dw.com/rdf/rss-en-all" category="germany"/>
      </outline>
      <outline title="BBC" type="rss" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"/>
    </outline>
    <outline text="Tech">
      <outline text="BBC" type="rss" xmlurl="https://feeds.bbci.co.uk/news/technology/rss.xml"/>
      <outline text="Again" type="rss" xmlUrl="HTTPS://FEEDS.BBCI.CO.UK/news/world/rss.xml"/>
      <outline text="Just a link" type="link" url="https://example.org/"/>
    </outline>
    <outline type="rss" xmlUrl="https://untitled.example/feed.xml"/>
  </body>
</opml>
"""


def test_nested_folders_become_tags():
    feeds = import_opml(NESTED)
    assert [(f.name, f.url, f.tags) for f in feeds] == [
        ("DW", "https://rss.dw.com/rdf/rss-en-all", ["News", "Europe", "germany"]),
        ("BBC", "https://feeds.bbci.co.uk/news/world/rss.xml", ["News"]),
        ("BBC (2)", "https://feeds.bbci.co.uk/news/technology/rss.xml", ["Tech"]),
        ("untitled.example", "https://untitled.example/feed.xml", []),
    ]


def test_hostile_urls_skipped():
    doc = """<opml version="2.0"><body>
      <outline text="js" xmlUrl="javascript:alert(1)"/>
      <outline text="file" xmlUrl="file:///etc/passwd"/>
      <outline text="data" xmlUrl="data:text/xml,&lt;rss/&gt;"/>
      <outline text="nohost" xmlUrl="https:///feed"/>
      <outline text="ws" xmlUrl="https://a.example/ feed"/>
      <outline text="ok" xmlUrl=" https://ok.example/feed "/>
    </body></opml>"""
    assert [(f.name, f.url) for f in import_opml(doc)] == [("ok", "https://ok.example/feed")]


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE opml [
  <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
]>
<opml version="2.0"><body><outline text="&b;" xmlUrl="https://a.example/rss"/></body></opml>
"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<opml version="2.0"><body><outline text="&xxe;" xmlUrl="https://a.example/rss"/></body></opml>
"""

DOCTYPE_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE opml SYSTEM "http://attacker.example/opml.dtd">
<opml version="2.0"><body><outline text="x" xmlUrl="https://a.example/rss"/></body></opml>
"""


@pytest.mark.parametrize("doc", [BOMB, EXTERNAL, DOCTYPE_ONLY, BOMB.decode()], ids=["bomb", "xxe", "dtd", "str"])
def test_doctype_and_entities_refused(doc):
    with pytest.raises(OpmlError, match="DOCTYPE or entity"):
        import_opml(doc)


def test_expat_fallback_refuses_declarations_directly():
    # exercised even where defusedxml happens to be installed
    with pytest.raises(OpmlError, match="DOCTYPE or entity"):
        opml._parse_expat(EXTERNAL)
    assert opml._parse_expat(b"<opml><body/></opml>").tag == "opml"


@pytest.mark.parametrize(
    "doc, message",
    [
        (b"<opml><body><outline></body></opml>", "not well-formed"),
        (b"<rss><channel/></rss>", "not an OPML document"),
        (b"<opml><head/></opml>", "no <body>"),
        (b"<opml><body><outline text='&undefined;' xmlUrl='https://a.example/'/></body></opml>", "not well-formed"),
    ],
)
def test_malformed_documents(doc, message):
    with pytest.raises(OpmlError, match=message):
        import_opml(doc)


def test_opml_error_is_value_error():
    assert issubclass(OpmlError, ValueError)


EXISTING = """\
# my feeds, hand-edited
settings:
  poll_interval: 10m   # keep this comment

feeds:
  # world news
  - name: BBC
    url: https://feeds.bbci.co.uk/news/world/rss.xml
    tags: [world]  # trailing comment
  # - name: Disabled example
  #   url: https://old.example/rss
"""


def test_merge_keeps_comments_and_skips_existing():
    new = [
        feed("BBC again", "https://feeds.bbci.co.uk/news/world/rss.xml"),
        feed("BBC", "https://feeds.bbci.co.uk/news/technology/rss.xml", tags=["tech", "uk"], interval="1h"),
        feed("Hacker News", "https://news.ycombinator.com/rss", full_text=False, enabled=False),
        feed("Hacker News dup", "https://news.ycombinator.com/rss"),
    ]
    text, added = merge_feeds_into_yaml(EXISTING, new)
    assert added == 2
    assert text.startswith(EXISTING.split("  # - name: Disabled")[0])
    for line in EXISTING.splitlines():
        assert line in text.splitlines()
    config = parse_config(text)
    assert config.settings.poll_interval == 600
    assert [(f.name, f.url) for f in config.feeds] == [
        ("BBC", "https://feeds.bbci.co.uk/news/world/rss.xml"),
        ("BBC (2)", "https://feeds.bbci.co.uk/news/technology/rss.xml"),
        ("Hacker News", "https://news.ycombinator.com/rss"),
    ]
    bbc2, hn = config.feeds[1:]
    assert bbc2.tags == ["tech", "uk"] and bbc2.interval == 3600
    assert not hn.full_text and not hn.enabled
    # merging the same feeds again changes nothing
    assert merge_feeds_into_yaml(text, new) == (text, 0)


def test_merge_without_feeds_key():
    text, added = merge_feeds_into_yaml(
        "# settings only\nsettings:\n  log_level: INFO\n", [feed("A", "https://a.example/")]
    )
    assert added == 1
    assert text.startswith("# settings only\nsettings:\n  log_level: INFO\n")
    assert [f.name for f in parse_config(text).feeds] == ["A"]


@pytest.mark.parametrize(
    "before",
    [
        "",
        "# only a comment",
        "feeds:\n",
        "feeds: []  # none yet\n",
        "feeds: ~\nsettings:\n  log_level: INFO\n",
        "feeds: [{name: X, url: 'https://x.example/'}]\n",
        "feeds:\n- name: X\n  url: https://x.example/\nsettings:\n  log_level: INFO\n",
        "settings:\r\n  log_level: INFO\r\nfeeds:\r\n  - name: X\r\n    url: https://x.example/\r\n",
    ],
)
def test_merge_into_various_layouts(before):
    existing = [f["url"] for f in (yaml.safe_load(before) or {}).get("feeds") or []]
    text, added = merge_feeds_into_yaml(before, [feed("New: one", "https://new.example/rss", tags=["a b"])])
    assert added == 1
    config = parse_config(text)
    assert [f.url for f in config.feeds] == existing + ["https://new.example/rss"]
    assert config.feeds[-1].name == "New: one" and config.feeds[-1].tags == ["a b"]
    if "\r\n" in before:
        assert "\n" not in text.replace("\r\n", "")


def test_merge_into_shipped_config_round_trips_through_opml():
    shipped = SHIPPED.read_text(encoding="utf-8")
    feeds = parse_config(shipped).feeds
    assert merge_feeds_into_yaml(shipped, import_opml(export_opml(feeds))) == (shipped, 0)
    text, added = merge_feeds_into_yaml(shipped, [feed("Extra", "https://extra.example/feed")])
    assert added == 1
    assert text.startswith(shipped)
    assert len(parse_config(text).feeds) == len(feeds) + 1


def test_skipped_outlines_are_counted_by_reason():
    nested = opml.read_opml(NESTED)
    assert nested.skipped == {"listed twice": 1, "without xmlUrl": 1}
    doc = """<opml version="2.0"><body>
      <outline text="js" xmlUrl="javascript:alert(1)"/>
      <outline text="file" xmlUrl="file:///etc/passwd"/>
      <outline text="nohost" xmlUrl="https:///feed"/>
      <outline text="empty" xmlUrl="  "/>
      <outline text="a page" type="link" url="https://example.org/"/>
      <outline text="folder with a feed"><outline text="ok" xmlUrl="https://ok.example/feed"/></outline>
    </body></opml>"""
    found = opml.read_opml(doc)
    assert [f.name for f in found.feeds] == ["ok"]
    assert found.skipped == {"not http(s)": 2, "not a valid URL": 1, "without xmlUrl": 2}
    assert found.skipped_summary() == "skipped 5 outlines: 2 without xmlUrl, 2 not http(s), 1 not a valid URL"
    assert opml.read_opml(export_opml([feed("A", "https://a.example/feed")])).skipped_summary() is None
