"""Unit tests of the dedup and story clustering engine (pure, in memory, no database)."""

from datetime import datetime, timedelta

from aggregator.cluster import SIGNAL_NEAR, SIGNAL_NEW, SIGNAL_STORY, Clusterer, ClusterSettings, StoredArticle

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


def _story_text(n: int) -> str:
    return " ".join(f"w{n}x{k}" for k in range(60))


def test_lsh_is_rebuilt_after_churn_and_still_finds_copies():
    settings = ClusterSettings(window=timedelta(hours=1))
    engine = Clusterer(settings)
    article = 0
    for cycle in range(30):
        when = T0 + timedelta(hours=2 * cycle)
        for n in range(5):
            article += 1
            engine.add(article, engine.features(f"title {cycle} {n}", _story_text(article), when), article)
        engine.expire()
        assert len(engine.index) == 5 and len(engine.articles) == 5
        # removed entries never outnumber the live ones: the arrays are rewritten without them
        assert engine.index.entries() <= 2 * 5 * engine.index.bands
    assert engine.index.rebuilds >= 10
    # the rewritten index holds the live signatures only, and finds a copy of one of them
    copy = engine.features("copy", _story_text(article) + " extra words", T0 + timedelta(hours=58))
    decision = engine.decide(copy)
    assert decision.duplicate_of == article and decision.duplicate_signal == SIGNAL_NEAR


def test_expire_leaves_no_trace_of_old_articles():
    settings = ClusterSettings(window=timedelta(hours=6))
    stream = Stream(settings)
    engine = stream.engine
    for n, title in enumerate(QUAKE + STORM_A):
        stream.push(title, WIRE if n == 0 else "", when=T0 + timedelta(minutes=n))
    assert len(engine.index) and engine.by_hash and engine.postings
    stream.push(FILLER[0], when=T0 + timedelta(hours=7))
    engine.expire()
    assert len(engine.articles) == 1 and len(engine.by_hash) == 1 and not len(engine.index)
    assert set(engine.df) == set(engine.features(FILLER[0], "", T0).terms)
    assert engine.documents == 1 and len(engine.stories) == 1
    (story,) = engine.stories.values()
    assert set(engine.postings) == set(story.vector) == set(story.counts)


def test_long_running_story_forgets_terms_of_expired_articles():
    settings = ClusterSettings(window=timedelta(hours=6))
    engine = Clusterer(settings)
    engine.add(1, engine.features("Hokkaido earthquake tsunami warning Sapporo", "", T0), 1)
    engine.add(2, engine.features("Hokkaido earthquake aftershock damage", "", T0 + timedelta(hours=5)), 1)
    engine.add(3, engine.features("Hokkaido earthquake rebuilding begins", "", T0 + timedelta(hours=10)), 1)
    engine.expire()
    story = engine.stories[1]
    assert story.members == [2, 3]
    assert "sapporo" not in story.vector and "sapporo" not in engine.postings
    assert story.counts["hokkaido"] == 2 and "hokkaido" in story.top
    assert abs(story.norm - sum(w * w for w in story.vector.values()) ** 0.5) < 1e-9


def test_recency_follows_time_when_articles_carry_it():
    engine = Clusterer(ClusterSettings(active_arrivals=5, active_time=timedelta(hours=6)))
    engine.add(1, engine.features(QUAKE[0], "", T0), 1)
    for n in range(10):  # many arrivals on other stories within the hour: the quake story stays active
        engine.add(10 + n, engine.features(FILLER[n % len(FILLER)], "", T0 + timedelta(minutes=5 * n)), 10 + n)
    assert engine.timed()
    assert engine._active(engine.stories[1])
    engine.add(30, engine.features(STORM_B[0], "", T0 + timedelta(hours=7)), 30)
    assert not engine._active(engine.stories[1])  # seven hours later: out of the news cycle


def test_recency_follows_arrivals_without_times():
    engine = Clusterer(ClusterSettings(active_arrivals=5))
    engine.add(1, engine.features(QUAKE[0], "", T0), 1)
    for n in range(3):
        engine.add(10 + n, engine.features(FILLER[n], "", T0), 10 + n)
    assert not engine.timed() and engine._active(engine.stories[1])
    for n in range(3, 6):
        engine.add(10 + n, engine.features(FILLER[n], "", T0 + timedelta(microseconds=n)), 10 + n)
    assert not engine.timed() and not engine._active(engine.stories[1])


# Eleven reports of one event, worded many ways: a big story whose centroid averages them all.
HOST = [
    "Hokkaido earthquake: rescuers search collapsed homes in Sapporo",
    "Sapporo hospitals treat injured after Hokkaido earthquake",
    "Hokkaido quake: power restored to most of Sapporo",
    "Aftershocks rattle Hokkaido as earthquake death toll rises",
    "Earthquake survivors in Hokkaido shelter in school gyms",
    "Hokkaido earthquake: airport reopens, trains resume",
    "Japan sends troops to Hokkaido earthquake zone",
    "Hokkaido earthquake damage estimated at billions of yen",
    "Sapporo residents queue for water after earthquake",
    "Hokkaido farmers count losses after earthquake",
    "Earthquake in Hokkaido: what we know so far",
]


def _host_engine(settings: ClusterSettings) -> Clusterer:
    engine = Clusterer(settings)
    for n, title in enumerate(FILLER):
        engine.add(n + 1, engine.features(title, "", T0), n + 1)
    for n, title in enumerate(HOST):
        engine.add(100 + n, engine.features(title, "", T0 + timedelta(minutes=n)), 7)
    return engine


def test_a_fragment_converging_with_a_big_story_is_folded_into_it():
    for settings, merged in ((ClusterSettings(), [7]), (ClusterSettings(fragment_articles=0), [])):
        engine = _host_engine(settings)
        engine.add(200, engine.features("Tomakomai refinery fire after Hokkaido tremor", "", T0), 8)
        feats = engine.features("Idemitsu Tomakomai refinery fire out after Hokkaido earthquake", "", T0)
        decision = engine.decide(feats)
        assert decision.story_id == 8
        assert decision.merge_story_ids == merged


GLASS = ["Google glass on sale", "Google headset for developers", "Google invites coders", "Google wearable price",
         "Google eyewear arrives"]
STREET_VIEW = ["Google street view inside airports", "Google maps trains stations", "Google imagery indoors",
               "Google panoramas museums"]
QUAKE_TOLD_ONCE = ["Hokkaido earthquake kills dozens", "Hokkaido earthquake cuts power",
                   "Rescuers dig after Hokkaido earthquake", "Hokkaido earthquake landslides bury homes"]
QUAKE_TOLD_TWICE = ["Strong earthquake shakes Hokkaido island", "Earthquake in Hokkaido leaves millions without power",
                    "Hokkaido quake survivors queue for water", "Earthquake toll rises in Hokkaido"]


def _two_stories(settings: ClusterSettings, first: list[str], second: list[str]) -> Clusterer:
    engine = Clusterer(settings)
    for n, title in enumerate(FILLER):
        engine.add(n + 1, engine.features(title, "", T0), n + 1)
    for story, titles in ((7, first), (8, second)):
        for n, title in enumerate(titles):
            engine.add(story * 100 + n, engine.features(title, "", T0 + timedelta(minutes=n)), story)
    return engine


def test_stories_of_one_subject_meeting_through_its_word_do_not_merge():
    for settings, merged in ((ClusterSettings(), []), (ClusterSettings(merge_word_share=1.0), [7])):
        engine = _two_stories(settings, GLASS, STREET_VIEW)
        decision = engine.decide(engine.features("Google street view maps airports", "", T0))
        assert decision.story_id == 8
        assert decision.merge_story_ids == merged


def test_two_tellings_of_one_event_meeting_through_several_words_merge():
    engine = _two_stories(ClusterSettings(), QUAKE_TOLD_ONCE, QUAKE_TOLD_TWICE)
    decision = engine.decide(engine.features("Hokkaido earthquake power cuts continue", "", T0))
    assert (decision.story_id, decision.merge_story_ids) == (7, [8])


def test_a_loaded_engine_forgets_and_merges_like_one_built_article_by_article():
    settings = ClusterSettings(window=timedelta(hours=6))
    built, loaded = Clusterer(settings), Clusterer(settings)
    stored = []
    for n, title in enumerate(QUAKE + STORM_A + STORM_B):
        feats = built.features(title, WIRE if n == 0 else "", T0 + timedelta(minutes=20 * n))
        weights = dict(built.weights(feats))
        story = built.decide(feats).story_id or 100 + n
        built.add(n, feats, story, weights)
        stored.append(StoredArticle(n, story, feats.when, feats.content_hash, list(weights), list(weights.values()),
                                    feats.signature_bytes(), feats.shingle_count))
    assert loaded.load(stored) == len(stored)
    assert loaded.load(stored) == 0  # already there
    later = T0 + timedelta(hours=6, minutes=50)
    for engine in (built, loaded):
        engine.add(1000, engine.features(FILLER[0], "", later), 999)
        engine.expire()
        first, second = sorted(engine.stories)[:2]
        engine.merge(first, second)
    for story_id, story in built.stories.items():
        again = loaded.stories[story_id]
        assert again.members == story.members
        assert loaded._term_counts(again) == story.counts
        assert set(again.vector) == set(story.vector)
    assert loaded.df == built.df and set(loaded.postings) == set(built.postings)


# Two earthquakes: full texts that share the words of their kind, and none of their names or figures.
HAITI = [
    ("Earthquake devastates Haiti",
     "A powerful earthquake struck near Port-au-Prince late on the afternoon, flattening homes, schools and the "
     "main hospital. President Rene Preval said at least 230 people were killed and appealed for international "
     "help as rescue teams dug through the rubble."),
    ("Haiti quake: rescuers search rubble",
     "Rescue teams from the Red Cross searched collapsed schools and homes through the night after the earthquake "
     "near Port-au-Prince, as aftershocks shook the region. Preval said the toll of 230 killed would rise."),
    ("Haiti earthquake survivors sleep in the streets",
     "Survivors of the earthquake that flattened much of Port-au-Prince slept in the streets, afraid of "
     "aftershocks. The Red Cross said hospitals were overwhelmed and Preval asked for international help."),
]
CHILE = [
    ("Earthquake devastates Chile",
     "A powerful earthquake struck near Concepcion early in the morning, flattening homes, schools and a "
     "hospital. President Michelle Bachelet said at least 520 people were killed and appealed for calm as "
     "rescue teams dug through the rubble."),
    ("Chile quake: rescuers search rubble",
     "Rescue teams from the Chilean Navy searched collapsed homes and schools through the night after the "
     "earthquake near Concepcion, as aftershocks shook the region. Bachelet said the toll of 520 killed would rise."),
    ("Chile earthquake survivors sleep in the streets",
     "Survivors of the earthquake that flattened much of Concepcion slept in the streets, afraid of aftershocks. "
     "The Chilean Navy said hospitals were overwhelmed and Bachelet asked Santiago for more help."),
]
NO_EVIDENCE = ClusterSettings(evidence_min_terms=10**6)  # the rule switched off


def _quakes(settings: ClusterSettings | None = None) -> tuple[Stream, list[int], list[int]]:
    stream = Stream(settings)
    for title in FILLER:
        stream.push(title)
    haiti = [stream.push(title, text)[0] for title, text in HAITI]
    chile = [stream.push(title, text)[0] for title, text in CHILE]
    return stream, haiti, chile


def test_two_quakes_naming_different_places_stay_apart():
    stream, haiti, chile = _quakes()
    assert len({stream.story_of[i] for i in haiti}) == 1  # one event in other words, the same names: one story
    assert len({stream.story_of[i] for i in chile}) == 1
    assert stream.story_of[haiti[0]] != stream.story_of[chile[0]]
    # the lexical similarity alone (the rule off) joins them: they share every word of their kind
    stream, haiti, chile = _quakes(NO_EVIDENCE)
    assert stream.story_of[haiti[0]] == stream.story_of[chile[0]]


def test_a_headline_the_story_already_uses_joins_when_its_body_shares_a_name():
    # another part of the same report: the same headline, a body naming other people and the story's capital
    text = ("Doctors Without Borders flew 40 surgeons from Miami to help survivors of the earthquake, as hospitals "
            "were overwhelmed and rescue teams searched collapsed homes through the night while aftershocks shook "
            "the region.")
    stream, haiti, _ = _quakes()
    _, decision = stream.push(HAITI[2][0], text.replace("earthquake", "earthquake in Port-au-Prince"))
    assert decision.story_id == stream.story_of[haiti[0]]
    # the same headline over a body naming nothing the story names: two events of one kind headed alike
    stream, haiti, _ = _quakes()
    _, decision = stream.push(HAITI[2][0], text)
    assert decision.story_id != stream.story_of[haiti[0]]
    # a headline naming a place the story does not name is another event's
    stream, haiti, _ = _quakes()
    _, decision = stream.push(HAITI[2][0] + " of Jacmel", text)
    assert decision.story_id != stream.story_of[haiti[0]]
    stream, haiti, _ = _quakes(NO_EVIDENCE)
    _, decision = stream.push(HAITI[2][0] + " of Jacmel", text)
    assert decision.story_id == stream.story_of[haiti[0]]


def test_two_stories_of_quakes_naming_different_places_do_not_converge():
    def bridged(settings: ClusterSettings | None = None) -> list[int]:
        engine = Clusterer(settings)
        for n, title in enumerate(FILLER):
            engine.add(n, engine.features(title, "", T0), n)
        for n, (title, text) in enumerate(HAITI):
            engine.add(100 + n, engine.features(title, text, T0), 100)
        for n, (title, text) in enumerate(CHILE[:2]):
            engine.add(200 + n, engine.features(title, text, T0), 200)
        title, text = CHILE[2]
        decision = engine.decide(engine.features(title, text, T0))
        return [decision.story_id, *decision.merge_story_ids]

    assert bridged() == [200]
    assert sorted(bridged(NO_EVIDENCE)) == [100, 200]


def test_a_story_read_back_at_a_restart_keeps_no_article_out_until_new_articles_name_enough():
    built = Clusterer()
    stored = []
    for n, (title, text) in enumerate(HAITI[:2]):
        feats = built.features(title, text, T0)
        weights = dict(built.weights(feats))
        built.add(n, feats, 1, weights)
        stored.append(StoredArticle(n, 1, T0, feats.content_hash, list(weights), list(weights.values()),
                                    feats.signature_bytes(), feats.shingle_count))
    loaded = Clusterer()
    loaded.load(stored)
    assert loaded.stories[1].evidence == set()  # not stored
    assert built._tells_other_event(built.features(*CHILE[0], T0), built.stories[1])
    assert not loaded._tells_other_event(loaded.features(*CHILE[0], T0), loaded.stories[1])
    loaded.add(2, loaded.features(*HAITI[2], T0), 1)  # a new article names the story's event again
    assert loaded._tells_other_event(loaded.features(*CHILE[0], T0), loaded.stories[1])


def test_compare_shows_the_names_and_figures_two_reports_share():
    engine = Clusterer()
    for n, (title, text) in enumerate(HAITI + CHILE):
        engine.add(n, engine.features(title, text, T0), n)
    same = {s.name: s for s in engine.compare(engine.features(*HAITI[0], T0), engine.features(*HAITI[1], T0))}
    assert same["shared-evidence"].decided
    assert "preval" in same["shared-evidence"].value_text and "230" in same["shared-evidence"].value_text
    other = {s.name: s for s in engine.compare(engine.features(*HAITI[0], T0), engine.features(*CHILE[0], T0))}
    assert not other["shared-evidence"].decided
    assert other["shared-evidence"].describe().startswith("names and figures of A in B: 0 % (none) (missed")
    headlines = {s.name: s for s in engine.compare(engine.features(QUAKE[0], "", T0),
                                                   engine.features(QUAKE[1], "", T0))}
    assert headlines["shared-evidence"].verdict == "not run: too few names"


def test_similarity_decays_with_time_apart_when_articles_carry_times():
    def joined(settings: ClusterSettings | None = None, hours: float = 50.0, timed: bool = True) -> bool:
        stream = Stream(settings)
        gap = timedelta(hours=hours) if timed else timedelta(0)
        for n, title in enumerate(FILLER):  # a timed stream: its arrivals spread over more than a minute
            stream.push(title, when=T0 + (timedelta(minutes=n) if timed else timedelta(0)))
        first, _ = stream.push(STORM_B[0], when=T0 + timedelta(minutes=10) if timed else T0)
        stream.push("Quiz night raises funds for the village hall", when=T0 + gap)  # the news moved on
        # the same words two days later: a storm of the same name, another season
        _, decision = stream.push("Tropical storm Helene floods roads in Florida", when=T0 + gap)
        return decision.story_id == stream.story_of[first]

    assert joined(hours=1)  # within the news cycle
    assert not joined(hours=50)  # two days apart, the cosine is a quarter: another event
    assert joined(ClusterSettings(time_half_life=timedelta(0)))  # the rule off, the words alone join
    assert joined(timed=False)  # without times nothing decays


def test_reading_stories_names_the_new_story_signal_as_the_engine_does():
    from aggregator.query import STARTED_STORY, how_joined

    assert STARTED_STORY == SIGNAL_NEW
    assert how_joined(SIGNAL_NEW, 0.0) == "started a story"
    assert how_joined(SIGNAL_STORY, 0.4567) == "story-similarity 0.46"


def test_centroid_dot_is_kept_up_to_date_through_adds_merges_and_expiry():
    """The kept dot product of two centroids is the one taken afresh, whatever changed either story since."""
    import math

    from aggregator.vectors import vector_dot

    engine = Clusterer(ClusterSettings(window=timedelta(hours=6)))
    fresh = lambda a, b: vector_dot(engine.stories[a].vector, engine.stories[b].vector)  # noqa: E731
    engine.add(1, engine.features(QUAKE[0], "", T0), 7)
    engine.add(2, engine.features(QUAKE[1], "", T0), 9)
    engine.add(3, engine.features(STORM_A[0], "", T0), 11)
    computed = []
    original = vector_dot

    def counting(a, b):
        computed.append((len(a), len(b)))
        return original(a, b)

    import aggregator.storyindex as storyindex

    storyindex.vector_dot = counting
    try:
        assert math.isclose(engine.centroid_dot(7, 9), fresh(7, 9))
        assert engine.centroid_dot(7, 9) == engine.centroid_dot(7, 9) and len(computed) == 1  # kept
        added = engine.features(QUAKE[2], "", T0 + timedelta(hours=1))
        engine.add(4, added, 7)  # one article more in the story: its weights alone are multiplied
        assert math.isclose(engine.centroid_dot(7, 9), fresh(7, 9))
        assert len(computed) == 2 and computed[-1][0] == len(engine.stories[7].last_added)
        engine.add(5, engine.features(QUAKE[3], "", T0 + timedelta(hours=1)), 9)  # the other story changed
        assert math.isclose(engine.centroid_dot(7, 9), fresh(7, 9))
        engine.merge(7, 11)
        assert math.isclose(engine.centroid_dot(7, 9), fresh(7, 9))
        engine.add(6, engine.features(STORM_A[1], "", T0 + timedelta(hours=6, minutes=30)), 7)
        engine.expire()  # the first articles left the window: both centroids lost their terms
        assert set(engine.stories) == {7, 9}
        assert math.isclose(engine.centroid_dot(7, 9), fresh(7, 9), abs_tol=1e-12)
    finally:
        storyindex.vector_dot = original
