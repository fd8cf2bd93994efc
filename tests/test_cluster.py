"""Unit tests of the dedup and story clustering engine (pure, in memory, no database)."""

from datetime import datetime, timedelta

from aggregator.cluster import SIGNAL_NEAR, SIGNAL_NEW, SIGNAL_STORY, Clusterer, ClusterSettings

T0 = datetime(2026, 3, 1, 8, 0)

WIRE = (
    "Firefighters battled a large blaze at the Harbourside grain terminal on Tuesday night as thick smoke drifted "
    "over the eastern suburbs. The fire started shortly after nine in a conveyor housing and spread to two storage "
    "silos, according to the regional fire service. About eighty firefighters and twenty appliances were sent to "
    "the site, and residents near the port were told to keep windows and doors closed. No injuries were reported. "
    "The terminal operator said all staff had been accounted for and that shipping movements would be suspended "
    "until inspectors had assessed the damage to the quay. Investigators will examine the cause once the site is safe."
)

# Independent coverage of one event: different outlets, different wording, the same names.
QUAKE = [
    "Magnitude 6.8 earthquake strikes off Hokkaido coast, tsunami advisory issued",
    "Strong earthquake hits Hokkaido coast, residents warned of tsunami",
    "Hokkaido earthquake: tsunami advisory lifted after 6.8 quake shakes northern Japan",
    "Japan earthquake: Hokkaido towns assess damage after magnitude 6.8 tremor",
]

# Two different storms: they share the topic word, not the event.
STORM_A = [
    "Storm Isha brings 90mph winds to Scotland, trains cancelled",
    "Storm Isha: Scotland rail services suspended as 90mph gusts hit",
]
STORM_B = [
    "Tropical storm Helene floods Florida Keys, evacuation ordered",
    "Florida Keys evacuated as tropical storm Helene floods roads",
]

FILLER = [
    "Central bank holds interest rates steady amid inflation worries",
    "Champions league draw pairs holders with German giants",
    "Parliament approves budget after marathon overnight session",
    "Museum returns looted bronze sculptures to Nigeria",
    "Electric carmaker recalls sedans over faulty seatbelt sensors",
    "Astronomers spot water vapour on distant exoplanet",
]


class Stream:
    """Feeds articles to an engine the way the pipeline does; remembers where each one went."""

    def __init__(self, settings: ClusterSettings | None = None):
        self.engine = Clusterer(settings)
        self.next_story = 0
        self.next_article = 0
        self.story_of: dict[int, int] = {}

    def push(self, title: str, text: str = "", when: datetime = T0, source: str = ""):
        feats = self.engine.features(title, text, when, source)
        decision = self.engine.decide(feats)
        story = decision.story_id
        if story is None:
            self.next_story += 1
            story = self.next_story
        for other in decision.merge_story_ids:
            self.engine.merge(story, other)
            for article, current in self.story_of.items():
                if current == other:
                    self.story_of[article] = story
        self.next_article += 1
        self.engine.add(self.next_article, feats, story)
        self.story_of[self.next_article] = story
        return self.next_article, decision


def test_wire_copy_with_edits_is_a_near_duplicate():
    stream = Stream()
    original, first = stream.push("Fire at Harbourside grain terminal", WIRE)
    assert first.duplicate_of is None and first.story_signal == SIGNAL_NEW
    edited = ("PORT CITY (Reuters) - " + WIRE.replace("said", "stated").replace("About eighty", "Around 80"))
    edited = edited.rsplit(" Investigators", 1)[0] + " Sign up for our newsletter."
    _, copy = stream.push("Huge blaze hits port grain silos", edited, T0 + timedelta(hours=1), "Other Outlet")
    assert copy.duplicate_of == original
    assert copy.duplicate_signal == SIGNAL_NEAR
    assert copy.duplicate_score >= stream.engine.settings.duplicate_containment
    assert copy.story_id == stream.story_of[original]


def test_unrelated_text_is_not_a_duplicate():
    stream = Stream()
    stream.push("Fire at Harbourside grain terminal", WIRE)
    other = " ".join(FILLER * 4)
    _, decision = stream.push("Round-up of the day", other, T0 + timedelta(minutes=5))
    assert decision.duplicate_of is None
    assert decision.story_id is None


def test_independent_coverage_of_one_event_joins_one_story():
    stream = Stream()
    for n, title in enumerate(FILLER):
        stream.push(title, when=T0 + timedelta(minutes=n))
    ids = [stream.push(title, when=T0 + timedelta(hours=1, minutes=10 * n))[0] for n, title in enumerate(QUAKE)]
    stories = {stream.story_of[i] for i in ids}
    assert len(stories) == 1
    assert stories.isdisjoint(stream.story_of[i] for i in range(1, len(FILLER) + 1))


def test_two_storms_sharing_a_topic_word_stay_apart():
    stream = Stream()
    for n, title in enumerate(FILLER):
        stream.push(title, when=T0 + timedelta(minutes=n))
    a = [stream.push(t, when=T0 + timedelta(hours=1, minutes=n))[0] for n, t in enumerate(STORM_A)]
    b = [stream.push(t, when=T0 + timedelta(hours=2, minutes=n))[0] for n, t in enumerate(STORM_B)]
    assert len({stream.story_of[i] for i in a}) == 1
    assert len({stream.story_of[i] for i in b}) == 1
    assert stream.story_of[a[0]] != stream.story_of[b[0]]


def test_story_signal_and_score_reported():
    stream = Stream()
    stream.push(QUAKE[0])
    _, decision = stream.push(QUAKE[2], when=T0 + timedelta(minutes=30))
    assert decision.story_signal == SIGNAL_STORY
    assert decision.story_score >= stream.engine.settings.active_story_threshold


def test_merge_moves_articles_and_vocabulary():
    stream = Stream()
    first, _ = stream.push(QUAKE[0])
    engine = stream.engine
    feats = engine.features(STORM_B[0], "", T0)
    engine.add(100, feats, 50)  # another story, indexed as the store put it
    engine.merge(stream.story_of[first], 50)
    assert 50 not in engine.stories
    assert engine.articles[100].story_id == stream.story_of[first]
    merged = engine.stories[stream.story_of[first]]
    assert merged.articles == 2
    assert "helene" in merged.vector and "hokkaido" in merged.vector
    assert all(50 not in posting for posting in engine.postings.values())
    # the merged story is found by either vocabulary
    scored = engine.story_scores(engine.weights(engine.features(STORM_B[1], "", T0)), T0)
    assert scored and scored[0][2] == stream.story_of[first]


def test_merge_into_the_older_story_keeps_it():
    stream = Stream()
    engine = stream.engine
    engine.add(1, engine.features(QUAKE[0], "", T0), 7)
    engine.add(2, engine.features(QUAKE[1], "", T0), 9)
    engine.merge(7, 9)
    assert set(engine.stories) == {7}
    assert engine.articles[2].story_id == 7 and engine.stories[7].articles == 2


def test_expire_drops_stories_that_left_the_window():
    settings = ClusterSettings(window=timedelta(hours=6))
    stream = Stream(settings)
    old, _ = stream.push(QUAKE[0], when=T0)
    engine = stream.engine
    old_story = stream.story_of[old]
    assert engine.df["hokkaido"] == 1
    new, _ = stream.push(STORM_A[0], when=T0 + timedelta(hours=7))
    closed = engine.expire()
    assert closed == [old_story]
    assert old not in engine.articles and new in engine.articles
    assert old_story not in engine.stories
    assert "hokkaido" not in engine.postings and engine.df["hokkaido"] == 0
    assert engine.documents == 1
    # a late follow-up of the expired event starts a new story
    _, decision = stream.push(QUAKE[2], when=T0 + timedelta(hours=7, minutes=5))
    assert decision.story_id is None


def test_compare_reports_signals_with_thresholds():
    engine = Clusterer()
    a = engine.features(QUAKE[0], "", T0)
    b = engine.features(QUAKE[2], "", T0 + timedelta(hours=2))
    c = engine.features(STORM_B[0], "", T0 + timedelta(hours=100))
    signals = {s.name: s for s in engine.compare(a, b)}
    assert {"text-hash", "term-cosine", "shared-terms", "hours-apart"} <= set(signals)
    assert signals["term-cosine"].threshold == engine.settings.story_threshold
    assert signals["term-cosine"].decided and signals["shared-terms"].decided and signals["hours-apart"].decided
    assert "met threshold" in signals["term-cosine"].describe()
    far = {s.name: s for s in engine.compare(a, c)}
    assert not far["term-cosine"].decided and not far["hours-apart"].decided
    assert "missed threshold" in far["hours-apart"].describe()


def test_candidate_retrieval_is_bounded():
    settings = ClusterSettings(max_posting=5, max_candidates=3)
    engine = Clusterer(settings)
    for n in range(40):
        engine.add(n, engine.features(f"council budget vote district{n} school{n}", "", T0), n)
    scored = engine.story_scores(engine.weights(engine.features("council budget vote", "", T0)), T0)
    assert len(scored) <= 3
    assert {story for _, _, story, _ in scored} <= set(range(35, 40))  # the most recently updated ones
