"""Config stage: read and validate ``feeds.yaml``.

A bad file raises :class:`ConfigError` naming the key and the line, so the CLI can print one clear message.
"""

from __future__ import annotations

import ipaddress
import math
import re
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG_PATH = Path("feeds.yaml")
DEFAULT_DATABASE_URL = "sqlite:///aggregator.db"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(Exception):
    """The config file is missing, not YAML, or does not validate."""


class DeprecatedSetting(DeprecationWarning):
    """A setting that still works but has been replaced; its message starts with the setting's key."""


def parse_duration(value: Any, default_unit: str = "m") -> float:
    """Seconds in ``value``: a number (in ``default_unit``) or a string like ``90s``, ``15m``, ``2h``, ``3d``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 15m, 2h or 3d")
    if isinstance(value, int | float):
        return float(value) * _UNIT_SECONDS[default_unit]
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration such as 15m, 2h or 3d, got {value!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or default_unit]


def parse_since(value: str) -> datetime | None:
    """The moment ``value`` names, in UTC: a duration back from now (``6h``, ``2d``) or an ISO 8601 time;
    ``all`` (or empty) is no bound, and so is a duration past ten years. Raises ValueError saying what was
    expected."""
    value = value.strip()
    if value in ("", "all"):
        return None
    try:
        seconds = parse_duration(value, "h")
    except ValueError:
        pass
    else:
        return None if seconds > 3650 * 86400 else datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected a duration such as 6h or 2d, an ISO time, or 'all'; got {value[:40]!r}") from None
    try:  # in UTC, as it is compared: 0001-01-01T00:00+05:00 is before the year 1 there
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError(f"{value[:40]!r} is out of range in UTC") from None


def _network(value: Any) -> str:
    """One ``allowed_networks`` entry, an address or a CIDR network, in its canonical form (``10.0.0.0/8``)."""
    if not isinstance(value, str):
        raise ValueError(f"expected an address or CIDR network such as 192.168.1.0/24, got {value!r}")
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(f"expected an address or CIDR network such as 192.168.1.0/24, got {value!r}") from None


Network = Annotated[str, BeforeValidator(_network)]

# What the deprecated ``allow_private_networks: true`` stands for: every private network (cloud metadata
# addresses stay refused all the same, as they are unless listed one by one).
_EVERY_NETWORK = ["0.0.0.0/0", "::/0"]
ALLOW_PRIVATE_DEPRECATED = (
    "allow_private_networks is deprecated: it opens every private network to every feed; "
    "list the networks feeds may reach in allowed_networks instead, e.g. allowed_networks: [127.0.0.1/32]"
)


def _at_least(seconds: float, minimum: float, shown: str) -> float:
    if not math.isfinite(seconds) or seconds < minimum:
        raise ValueError(f"must be at least {shown}")
    return seconds


def _one_line(value: str, what: str) -> str:
    """``value`` stripped; refused when blank or holding control characters (it goes into logs and headers)."""
    value = value.strip()
    if not value:
        raise ValueError(f"{what} must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what} must be one line without control characters")
    return value


def _string_list(value: Any) -> Any:
    """A single string stands for a list of one (``tags: world``)."""
    return [value] if isinstance(value, str) else value


def _url_problem(url: str) -> str | None:
    """What keeps ``url`` (http or https) from being fetched as written, or None."""
    if any(c.isspace() for c in url):
        return "a space in it: write it as %20"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number up to 65535)
    except ValueError as exc:
        return str(exc)
    if not parts.hostname:
        return "no host name"
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        return "not a valid host name: a part of it is empty or over 63 characters"
    return None


class FeedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    url: str
    interval: float | None = None  # seconds; None means the global poll_interval
    tags: list[str] = Field(default_factory=list)
    enabled: bool = True
    full_text: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value, re.I):
            raise ValueError(f"expected an http or https URL, got {value!r}")
        value = value.strip()
        problem = _url_problem(value)
        if problem:
            raise ValueError(f"expected an http or https URL, got {value!r} ({problem})")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _one_line(value, "a feed name")

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> float | None:
        if value is None:
            return None
        return _at_least(parse_duration(value), 60, "1m")

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_list(cls, value: Any) -> Any:
        return _string_list(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_one_line(tag, "a tag") for tag in value))


class WebSettings(BaseModel):
    """The web view that ``aggregator run`` serves beside the daemon (``aggregator serve`` serves it alone)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"  # anything else is reachable from other machines, and the view has no login
    port: int = Field(default=8080, ge=0, le=65535)


class EmailSettings(BaseModel):
    """Where the daily digest is mailed; the password is read from the environment variable named here."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    smtp_host: str = "localhost"
    smtp_port: int | None = Field(default=None, ge=1, le=65535)  # default: 465 for tls, 587 for starttls, else 25
    security: str = "starttls"
    username: str | None = None
    password_env: str | None = None
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)

    @field_validator("security")
    @classmethod
    def _security(cls, value: str) -> str:
        if value not in ("starttls", "tls", "none"):
            raise ValueError("expected one of starttls, tls, none")
        return value

    @field_validator("to", mode="before")
    @classmethod
    def _recipients(cls, value: Any) -> Any:
        return _string_list(value)


class Settings(BaseModel):
    """Global settings; every one has a default, so ``feeds.yaml`` may list feeds only."""

    model_config = ConfigDict(extra="forbid")

    database: str = DEFAULT_DATABASE_URL
    poll_interval: float = 15 * 60
    digest_time: str = "07:00"
    digest_dir: str = "digests"
    digest_format: str = "markdown"
    timezone: str = "UTC"
    log_level: str = "INFO"
    user_agent: str = "aggregator/0.1 (+https://github.com/aggregator/aggregator; self-hosted news reader)"
    timeout: float = Field(20.0, gt=0, allow_inf_nan=False)
    max_response_bytes: int = Field(15 * 1024 * 1024, gt=0)
    max_concurrency: int = Field(8, ge=1)
    per_host_limit: int = Field(2, ge=1)
    max_entries_per_feed: int = Field(500, ge=1)
    # seconds trafilatura may spend on one page before the feed's text is used
    extract_timeout: float = Field(10.0, gt=0, allow_inf_nan=False)
    # Private networks feeds may reach (addresses or CIDR); public addresses are always allowed.
    allowed_networks: list[Network] = Field(default_factory=list)
    story_window: float = 3 * 86400
    # headlines clustered with sentence embeddings too (aggregator.semantic): needs the 'semantic' extra
    semantic_clustering: bool = False
    preferred_sources: list[str] = Field(default_factory=list)
    web: WebSettings = Field(default_factory=WebSettings)
    email: EmailSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _deprecated_allow_private(cls, data: Any) -> Any:
        """Read ``allow_private_networks`` as ``allowed_networks`` covering every private network, with a warning."""
        if not isinstance(data, dict) or "allow_private_networks" not in data:
            return data
        data = dict(data)
        allow = data.pop("allow_private_networks")
        if not isinstance(allow, bool):
            raise ValueError("allow_private_networks: deprecated; list networks in allowed_networks instead")
        if allow and data.get("allowed_networks"):
            raise ValueError("allow_private_networks: replaced by allowed_networks; remove it")
        warnings.warn(ALLOW_PRIVATE_DEPRECATED, DeprecatedSetting, stacklevel=2)
        if allow:
            data["allowed_networks"] = list(_EVERY_NETWORK)
        return data

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _network_list(cls, value: Any) -> Any:
        if value is None:  # "allowed_networks:" with nothing after it
            return []
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list such as [127.0.0.1/32, 192.168.1.0/24], got {value!r}")
        return value

    @field_validator("semantic_clustering")
    @classmethod
    def _semantic_installed(cls, value: bool) -> bool:
        if value:
            from .semantic import SemanticUnavailable, check_available

            try:
                check_available()
            except SemanticUnavailable as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("poll_interval", "story_window", mode="before")
    @classmethod
    def _duration(cls, value: Any, info: Any) -> float:
        if info.field_name == "story_window":
            return _at_least(parse_duration(value, "d"), 3600, "1h")
        return _at_least(parse_duration(value, "m"), 60, "1m")

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        from .store import database_url_problem  # the store module owns what a database URL may be

        problem = database_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {value!r}: expected a name such as UTC or Europe/Paris") from None
        return value

    @field_validator("digest_dir")
    @classmethod
    def _digest_dir(cls, value: str) -> str:
        return _one_line(value, "digest_dir")

    @field_validator("user_agent")
    @classmethod
    def _user_agent(cls, value: str) -> str:
        value = _one_line(value, "user_agent")
        if not value.isascii():
            raise ValueError("user_agent must be ASCII (it is sent as an HTTP header)")
        return value

    @field_validator("preferred_sources", mode="before")
    @classmethod
    def _sources_list(cls, value: Any) -> Any:
        return _string_list(value)

    @field_validator("preferred_sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        return [_one_line(source, "a preferred source") for source in value]

    @field_validator("digest_time", mode="before")
    @classmethod
    def _unquoted_clock(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted 7:00 as the base-60 number 420: give the user back the time they wrote
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
            return f"{value // 60:02d}:{value % 60:02d}"
        return value

    @field_validator("digest_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not re.match(r"^([01]?\d|2[0-3]):[0-5]\d$", str(value)):
            raise ValueError(f"expected HH:MM, got {value!r}")
        return str(value)

    @field_validator("digest_format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value not in ("text", "markdown", "html", "json"):
            raise ValueError("expected one of text, markdown, html, json")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR")
        return value.upper()


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    settings: Settings = Field(default_factory=Settings)
    feeds: list[FeedConfig] = Field(default_factory=list)

    @field_validator("settings", "feeds", mode="before")
    @classmethod
    def _empty_section(cls, value: Any, info: Any) -> Any:
        # `feeds:` with nothing under it (as a new file starts) is an empty list, not an error
        if value is None:
            return {} if info.field_name == "settings" else []
        return value


@dataclass
class Config:
    settings: Settings
    feeds: list[FeedConfig]
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)  # "file:line: message" for deprecated settings

    def feed(self, name: str) -> FeedConfig:
        for feed in self.feeds:
            if feed.name == name:
                return feed
        raise ConfigError(f"no feed named {name!r} in {self.path or 'the config'}")

    def interval_of(self, feed: FeedConfig) -> float:
        return feed.interval or self.settings.poll_interval


def _line_index(node: yaml.Node, path: tuple = (), out: dict | None = None, source: str = "<config>",
                visited: set | None = None) -> dict:
    """Map every key path in a composed YAML document to its 1-based line; a key given twice is an error
    (YAML would silently keep the last one, so a feed's second ``url:`` would hide its first)."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    visited = set() if visited is None else visited
    if id(node) in visited:  # an alias (*name) of a node already indexed: a cycle, or one that doubles per level
        return out
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key, value in node.value:
            child = path + (key.value,)
            if key.value in seen:
                where = ".".join(str(p) for p in child)
                raise ConfigError(f"{source}:{key.start_mark.line + 1}: {where}: given twice")
            seen.add(key.value)
            out[child] = key.start_mark.line + 1
            _line_index(value, child, out, source, visited)
            out[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, path + (i,), out, source, visited)
    return out


def _describe(error: ValidationError, lines: dict[tuple, int], source: str) -> str:
    first = error.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)
    where = f"{source}:{line}" if line else source
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {key}: {message}"


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_config(text: str, source: str = "<config>") -> Config:
    """Validate YAML text into a :class:`Config`."""
    try:
        try:  # libyaml when present (five times faster: a thousand feeds); the pure loader words its errors
            node = yaml.compose(text, Loader=_FAST_LOADER)
            data = yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 - a safe loader
        except yaml.YAMLError:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: expected a mapping with 'settings' and 'feeds'")
    lines = _line_index(node, source=source) if node is not None else {}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeprecatedSetting)
            parsed = _File.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, lines, source)) from None
    notes = []
    for caught_warning in caught:
        if issubclass(caught_warning.category, DeprecatedSetting):
            notes.append(_deprecation(str(caught_warning.message), lines, source))
        else:
            warnings.warn(caught_warning.message, caught_warning.category, stacklevel=2)
    names = [f.name for f in parsed.feeds]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{source}:{lines.get(('feeds', i), '?')}: feeds.{i}.name: duplicate feed name {name!r}")
    return Config(settings=parsed.settings, feeds=parsed.feeds, warnings=notes)


def _deprecation(message: str, lines: dict[tuple, int], source: str) -> str:
    """``file:line: settings.KEY is deprecated ...`` for a deprecated setting."""
    key = message.split(" ", 1)[0]
    line = lines.get(("settings", key))
    return f"{source}:{line}: settings.{message}" if line else f"{source}: settings.{message}"


def load_config(path: str | Path = DEFAULT_CONFIG_PATH) -> Config:
    """Read and validate a config file; a missing file is an error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    config = parse_config(text, str(path))
    config.path = path
    return config
