"""aggregator: a self-hosted news aggregator that folds duplicate articles and groups coverage into stories.

Scripts use the same API as the command line::

    from aggregator import Aggregator

    with Aggregator(database="sqlite:///aggregator.db") as agg:
        for story in agg.stories(min_sources=3):
            print(story.source_count, story.headline)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Aggregator, Explanation
    from .config import Config, ConfigError, FeedConfig, Settings, load_config
    from .query import ArticleView, Digest, FeedHealth, StoryDetail, StoryEntry, StorySource

__version__ = "0.1.0"
__all__ = [
    "Aggregator", "ArticleView", "Config", "ConfigError", "Digest", "Explanation", "FeedConfig", "FeedHealth",
    "Settings", "StoryDetail", "StoryEntry", "StorySource", "load_config",
]

# Loaded on first use, so `import aggregator.cli` does not pay for the clustering engine and numpy before the
# command line can even answer (or be interrupted quietly).
_HOME = {
    "Aggregator": "api", "Explanation": "api",
    "Config": "config", "ConfigError": "config", "FeedConfig": "config", "Settings": "config", "load_config": "config",
    "ArticleView": "query", "Digest": "query", "FeedHealth": "query", "StoryDetail": "query", "StoryEntry": "query",
    "StorySource": "query",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'aggregator' has no attribute {name!r}")
    value = getattr(import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value
