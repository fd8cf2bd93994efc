"""aggregator: a self-hosted news aggregator that folds duplicate articles and groups coverage into stories.

Scripts use the same API as the command line::

    from aggregator import Aggregator

    with Aggregator(database="sqlite:///aggregator.db") as agg:
        for story in agg.stories(min_sources=3):
            print(story.source_count, story.headline)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# The one place the version is written: pyproject.toml reads it from here, and `aggregator --version` prints it.
__version__ = "0.1.0"

# Names exported from the modules that define them, imported on first use: `aggregator --help` and the
# commands that do not need the database or the clustering engine start without loading SQLAlchemy or numpy.
_EXPORTS = {
    "Aggregator": "api", "Explanation": "api",
    "Config": "config", "ConfigError": "config", "FeedConfig": "config", "Settings": "config", "load_config": "config",
    "ArticleView": "query", "Digest": "query", "FeedHealth": "query", "StoryDetail": "query", "StoryEntry": "query",
    "StorySource": "query",
}
__all__ = [
    "Aggregator", "ArticleView", "Config", "ConfigError", "Digest", "Explanation", "FeedConfig", "FeedHealth",
    "Settings", "StoryDetail", "StoryEntry", "StorySource", "load_config",
]

if TYPE_CHECKING:
    from .api import Aggregator, Explanation
    from .config import Config, ConfigError, FeedConfig, Settings, load_config
    from .query import ArticleView, Digest, FeedHealth, StoryDetail, StoryEntry, StorySource


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
