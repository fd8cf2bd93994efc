"""The same pipeline on PostgreSQL (skipped when no server answers on 127.0.0.1:5432)."""


import pytest
from sqlmodel import Session, func, select

from aggregator.config import load_config
from aggregator.demo import serve_round
from aggregator.models import Article, Story
from aggregator.pipeline import poll_once
from aggregator.store import DaemonLock, StoreError, open_database


def test_pipeline_on_postgres(pg_url, demo_site, demo_config_file, three_outlets):
    config = load_config(demo_config_file)
    engine = open_database(pg_url)
    poll_once(engine, config)
    serve_round(demo_site, three_outlets, 2)
    poll_once(engine, config)
    poll_once(engine, config)  # nothing new, nothing duplicated
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Article)).one() == len(three_outlets.articles)
        wire = session.exec(select(Article).where(Article.title.like("Trump and Putin to meet%"))).one()
        budapest = session.get(Story, wire.story_id)
        expected = sum(1 for a in three_outlets.articles if a.story == "budapest-summit")
        assert budapest.source_count == 3 and budapest.article_count == expected
    with DaemonLock(engine):
        with pytest.raises(StoreError, match="already running"):
            DaemonLock(open_database(pg_url)).acquire()
    engine.dispose()


def test_counts_and_ids_past_a_postgresql_integer(pg_url, capsys):
    from aggregator.cli import main

    open_database(pg_url).dispose()
    for command in (["stories", "--min-sources"], ["digest", "--min-sources"], ["stories", "--limit"]):
        assert main(["--database", pg_url, *command, "99999999999999999999"]) == 0
        assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit) as info:
        main(["--database", pg_url, "story", "2147483648"])
    assert info.value.code == 2
    assert "no such id: 2147483648" in capsys.readouterr().err


def test_the_web_view_answers_404_for_an_id_past_a_postgresql_integer(pg_url):
    from fastapi.testclient import TestClient

    from aggregator.api import Aggregator
    from aggregator.web.app import create_app

    open_database(pg_url).dispose()
    with Aggregator(database=pg_url, create=False) as agg:
        client = TestClient(create_app(agg))
        for path in ("/stories/2147483648", "/api/stories/2147483648", "/stories/999999999999999"):
            assert client.get(path).status_code == 404
