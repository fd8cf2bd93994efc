from collections.abc import Iterator

import pytest

from aggregator.localsite import LocalSite


@pytest.fixture
def site() -> Iterator[LocalSite]:
    """A LocalSite serving on 127.0.0.1, stopped after the test."""
    with LocalSite() as running:
        yield running
