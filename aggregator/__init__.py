"""aggregator: a self-hosted news aggregator that folds duplicate articles and groups coverage into stories.

Scripts use the same API as the command line::

    from aggregator import Aggregator

    with Aggregator(database="sqlite:///aggregator.db") as agg:
        for story in agg.stories(min_sources=3):
            print(story.source_count, story.headline)
"""

from .api import Aggregator, Explanation
from .config import Config, ConfigError, FeedConfig, Settings, load_config
from .query import ArticleView, Digest, FeedHealth, StoryDetail, StoryEntry, StorySource

__version__ = "0.1.0"
__all__ = [
    "Aggregator", "ArticleView", "Config", "ConfigError", "Digest", "Explanation", "FeedConfig", "FeedHealth",
    "Settings", "StoryDetail", "StoryEntry", "StorySource", "load_config",
]
