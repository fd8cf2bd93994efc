from collections.abc import Iterator

import pytest

from aggregator.localsite import LocalSite


@pytest.fixture
def site() -> Iterator[LocalSite]:
    """A LocalSite serving on 127.0.0.1, stopped after the test."""
    with LocalSite() as running:
        yield running


@pytest.fixture
def three_outlets():
    """The demo corpus cut to three outlets (RSS wire, Atom reprinter, JSON Feed paper) and two rounds."""
    from aggregator.demo import DemoCorpus, load_corpus

    corpus = load_corpus()
    keep = {"continental-press", "northern-chronicle", "valley-courier"}
    return DemoCorpus(
        outlets=[o for o in corpus.outlets if o.slug in keep],
        articles=[a for a in corpus.articles if a.outlet in keep and a.round <= 2],
        rounds=2,
    )


@pytest.fixture
def demo_site(site, three_outlets):
    """``site`` serving round 1 of ``three_outlets``, with a feeds config file pointing at it."""
    from aggregator.demo import serve_round

    serve_round(site, three_outlets, 1)
    return site


@pytest.fixture
def demo_config_file(tmp_path, demo_site, three_outlets):
    from aggregator.demo import demo_feeds_yaml

    path = tmp_path / "feeds.yaml"
    path.write_text(demo_feeds_yaml(three_outlets, demo_site.base_url))
    return path
