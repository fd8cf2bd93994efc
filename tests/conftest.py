import os
import uuid
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


@pytest.fixture
def polled(tmp_path, demo_config_file, monkeypatch) -> list[str]:
    """The options naming a database filled by one `aggregator poll` over the three demo outlets."""
    from aggregator.cli import main

    monkeypatch.chdir(tmp_path)
    database = f"sqlite:///{tmp_path}/cli.db"
    assert main(["--config", str(demo_config_file), "--database", database, "poll"]) == 0
    return ["--config", str(demo_config_file), "--database", database]


ADMIN_URL = os.environ.get("AGGREGATOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def pg_database():
    """A factory of new, empty PostgreSQL databases of this test's own (dropped after); skips the test when no
    server answers (the SQLite tests still cover the pipeline)."""
    pytest.importorskip("psycopg")
    from sqlalchemy import create_engine, text

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"aggregator_test_{uuid.uuid4().hex[:10]}"
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # noqa: BLE001 - no server, or not one that lets us in
            pytest.skip(f"PostgreSQL not reachable: {exc}")
        made.append(name)
        return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    yield make
    with admin.connect() as connection:
        for name in made:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_url(pg_database) -> str:
    """The URL of one new, empty PostgreSQL database of this test's own."""
    return pg_database()
