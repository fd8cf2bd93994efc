from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import ConfigError, Settings, load_config, parse_config

SHIPPED = Path(__file__).resolve().parent.parent / "feeds.yaml"

VALID = """\
# a small config
settings:
  database: sqlite:///test.db
  poll_interval: 30m
  digest_time: "06:30"
  story_window: 2d
  log_level: debug

feeds:
  - name: One
    url: https://one.example/rss
    interval: 1h
    tags: [world, uk]
  - name: Two
    url: http://two.example/atom.xml
    enabled: false
    full_text: false
"""


def test_valid_file(tmp_path):
    path = tmp_path / "feeds.yaml"
    path.write_text(VALID, encoding="utf-8")
    config = load_config(path)
    assert config.path == path
    assert config.settings.database == "sqlite:///test.db"
    assert config.settings.poll_interval == 30 * 60
    assert config.settings.digest_time == "06:30"
    assert config.settings.story_window == 2 * 86400
    assert config.settings.log_level == "DEBUG"
    one, two = config.feeds
    assert (one.name, one.url, one.interval, one.tags) == ("One", "https://one.example/rss", 3600, ["world", "uk"])
    assert one.enabled and one.full_text
    assert not two.enabled and not two.full_text
    assert config.interval_of(two) == 30 * 60
    assert config.feed("Two") is two


def test_shipped_feeds_yaml_loads():
    config = load_config(SHIPPED)
    names = [feed.name for feed in config.feeds]
    assert 15 <= len(names) <= 25
    assert len(set(names)) == len(names)
    urls = [feed.url for feed in config.feeds]
    assert len(set(urls)) == len(urls)
    assert all(url.startswith("https://") for url in urls)
    assert config.settings.digest_time == "07:00"
    assert config.settings.poll_interval == 15 * 60
    assert config.settings.story_window == 3 * 86400
    assert any(not feed.full_text for feed in config.feeds)


def test_unknown_key_names_key_and_line():
    text = VALID.replace("    full_text: false\n", "    full_txt: false\n")
    line = text.splitlines().index("    full_txt: false") + 1
    with pytest.raises(ConfigError) as info:
        parse_config(text, "feeds.yaml")
    message = str(info.value)
    assert "feeds.1.full_txt" in message
    assert f"feeds.yaml:{line}:" in message


def test_unknown_settings_key_line():
    text = "settings:\n  poll_interval: 15m\n  colour: blue\nfeeds: []\n"
    with pytest.raises(ConfigError, match=r"^cfg:3: settings\.colour"):
        parse_config(text, "cfg")


@pytest.mark.parametrize("interval", ["soon", "30s", "-5m", "true"])
def test_bad_interval(interval):
    text = f"feeds:\n  - name: A\n    url: https://a.example/rss\n    interval: {interval}\n"
    with pytest.raises(ConfigError, match=r":4: feeds\.0\.interval"):
        parse_config(text)


@pytest.mark.parametrize("url", ["ftp://a.example/rss", "javascript:alert(1)", "a.example/rss", "https:///x"])
def test_bad_url(url):
    text = f"feeds:\n  - name: A\n    url: '{url}'\n"
    with pytest.raises(ConfigError, match=r":3: feeds\.0\.url: expected an http or https URL"):
        parse_config(text)


def test_bad_digest_time():
    with pytest.raises(ConfigError, match="settings.digest_time"):
        parse_config('settings:\n  digest_time: "25:00"\n')


def test_not_yaml():
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("feeds:\n  - name: [unclosed\n    url: x\n", "bad.yaml")


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config("- just\n- a list\n")


def test_duplicate_feed_name():
    text = "feeds:\n  - name: Same\n    url: https://a.example/rss\n  - name: Same\n    url: https://b.example/rss\n"
    with pytest.raises(ConfigError, match=r":4: feeds\.1\.name: duplicate feed name 'Same'"):
        parse_config(text)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_empty_file_gives_defaults():
    config = parse_config("# nothing yet\n")
    assert config.feeds == []
    assert config.settings.poll_interval == 15 * 60


def test_allowed_networks_are_read_in_canonical_form():
    text = "settings:\n  allowed_networks: [127.0.0.1/32, 192.168.1.20, 10.1.2.3/8, 'FD00::1/64']\n"
    config = parse_config(text)
    assert config.settings.allowed_networks == ["127.0.0.1/32", "192.168.1.20/32", "10.0.0.0/8", "fd00::/64"]
    assert config.warnings == []
    assert parse_config("").settings.allowed_networks == []
    assert parse_config("settings:\n  allowed_networks:\n").settings.allowed_networks == []


@pytest.mark.parametrize("entry", ["localhost", "10.0.0.0/33", "300.1.2.3", "''", "12", "[10.0.0.1]"])
def test_bad_allowed_network_names_key_and_line(entry):
    text = f"settings:\n  allowed_networks:\n    - 127.0.0.1/32\n    - {entry}\nfeeds: []\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "feeds.yaml")
    assert str(info.value).startswith("feeds.yaml:4: settings.allowed_networks.1: expected an address or CIDR network")


def test_allowed_networks_must_be_a_list():
    with pytest.raises(ConfigError, match=r"^cfg:2: settings\.allowed_networks: expected a list such as \["):
        parse_config("settings:\n  allowed_networks: 127.0.0.1/32\n", "cfg")


def test_allow_private_networks_is_a_deprecated_alias_with_a_warning():
    config = parse_config("settings:\n  log_level: INFO\n  allow_private_networks: true\n", "feeds.yaml")
    assert config.settings.allowed_networks == ["0.0.0.0/0", "::/0"]
    [warning] = config.warnings
    assert warning.startswith("feeds.yaml:3: settings.allow_private_networks is deprecated")
    assert "allowed_networks" in warning


def test_allow_private_networks_false_warns_and_changes_nothing():
    config = parse_config("settings:\n  allow_private_networks: false\n", "feeds.yaml")
    assert config.settings.allowed_networks == []
    assert [w.split(":", 2)[:2] for w in config.warnings] == [["feeds.yaml", "2"]]


def test_allow_private_networks_in_python_warns():
    with pytest.warns(DeprecationWarning, match="allowed_networks"):
        settings = Settings(allow_private_networks=True)
    assert settings.allowed_networks == ["0.0.0.0/0", "::/0"]


def test_allow_private_networks_with_allowed_networks_refused():
    text = "settings:\n  allow_private_networks: true\n  allowed_networks: [127.0.0.1/32]\n"
    with pytest.raises(ConfigError, match=r"^cfg:1: settings: .*replaced by allowed_networks"):
        parse_config(text, "cfg")


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("timezone", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("timezone", "America", "unknown time zone"),
        ("timezone", "../etc/passwd", "unknown time zone"),
        ("poll_interval", "0", "at least 1m"),
        ("poll_interval", "30s", "at least 1m"),
        ("poll_interval", ".inf", "at least 1m"),
        ("story_window", "0", "at least 1h"),
        ("timeout", "0", "greater than 0"),
        ("timeout", "-1", "greater than 0"),
        ("timeout", ".inf", "finite"),
        ("extract_timeout", "0", "greater than 0"),
        ("extract_timeout", "-5", "greater than 0"),
        ("max_response_bytes", "0", "greater than 0"),
        ("max_concurrency", "0", "greater than or equal to 1"),
        ("per_host_limit", "-1", "greater than or equal to 1"),
        ("max_entries_per_feed", "0", "greater than or equal to 1"),
        ("digest_dir", "''", "must not be empty"),
        ("user_agent", "''", "must not be empty"),
        ("user_agent", '"agent\\nX-Injected: 1"', "one line"),
        ("user_agent", "agrégateur/1.0", "ASCII"),
        ("preferred_sources", "[Reuters, '']", "must not be empty"),
        ("database", "mysql://u@h/db", "unsupported database 'mysql'"),
        ("database", "sqlite://aggregator.db", "three slashes"),
        ("database", "''", "empty"),
        ("database", "'postgresql://'", None),  # any shape SQLAlchemy parses as PostgreSQL is left to the server
    ],
)
def test_every_setting_is_validated_with_key_and_line(setting, value, message):
    text = f"# settings\nsettings:\n  log_level: INFO\n  {setting}: {value}\nfeeds: []\n"
    if message is None:
        parse_config(text, "cfg")
        return
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg")
    assert str(info.value).startswith(f"cfg:4: settings.{setting}: ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        ("name: '   '", "feeds.0.name: a feed name must not be empty"),
        ('name: "A\\nB"', "feeds.0.name: a feed name must be one line"),
        ("tags: [world, '']", "feeds.0.tags: a tag must not be empty"),
        ("tags: [world, null]", "feeds.0.tags.1"),
        ("tags: {a: 1}", "feeds.0.tags"),
    ],
)
def test_feed_name_and_tags_are_validated(feed, message):
    key = feed.split(":")[0]
    base = {"name": "name: A", "tags": "tags: [x]"}
    lines = [feed if key == "name" else base["name"], "url: https://a.example/rss", feed if key == "tags" else ""]
    text = "feeds:\n  - " + "\n    ".join(line for line in lines if line) + "\n"
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "cfg")


def test_friendly_forms_are_accepted():
    text = ("settings:\n  timezone: Europe/Paris\n  preferred_sources: Reuters\n"
            "feeds:\n  - name: ' A '\n    url: https://a.example/rss\n    tags: world\n"
            "  - name: B\n    url: https://b.example/rss\n    tags: [' x ', x, y]\n")
    config = parse_config(text)
    assert config.settings.preferred_sources == ["Reuters"]
    assert [(f.name, f.tags) for f in config.feeds] == [("A", ["world"]), ("B", ["x", "y"])]


@pytest.mark.parametrize("text", ["feeds:\n", "settings:\nfeeds:\n", "settings:\n"])
def test_empty_sections_are_empty_not_errors(text):
    config = parse_config(text)
    assert config.feeds == [] and config.settings.poll_interval == 15 * 60


def test_an_unquoted_digest_time_is_the_time_written():
    # YAML 1.1 reads 7:00 as the base-60 number 420
    assert parse_config("settings:\n  digest_time: 7:00\n").settings.digest_time == "07:00"
    assert parse_config("settings:\n  digest_time: 23:59\n").settings.digest_time == "23:59"


def test_a_key_given_twice_is_an_error_not_silently_dropped():
    text = "feeds:\n  - name: A\n    url: https://a.example/rss\n    url: https://b.example/rss\n"
    with pytest.raises(ConfigError, match=r"^cfg:4: feeds\.0\.url: given twice"):
        parse_config(text, "cfg")
    with pytest.raises(ConfigError, match=r"^cfg:3: settings: given twice"):
        parse_config("settings:\n  timezone: UTC\nsettings:\n  log_level: INFO\n", "cfg")
