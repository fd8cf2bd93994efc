"""Event evidence: the names and figures of running text, the rule that tells two events apart by them, and
what a story's articles share."""

from datetime import datetime, timedelta

from aggregator.evidence import EventRule, evidence, headline_names, story_makeup

T0 = datetime(2026, 3, 1, 8, 0)


def test_evidence_is_the_names_and_figures_of_running_text():
    text = ("Rescuers reached Port-au-Prince on Tuesday, a day after the 7.0 quake. Officials of the Red Cross said "
            "230 died.\nThe airport reopened. \"We need help,\" said Rene Preval in 2010, 3 hours later.")
    assert evidence(text) == {"port", "tuesday", "7.0", "red", "cross", "230", "rene", "preval", "2010"}
    # the first word of a sentence, a line or a quote is capitalised whatever it is; a lone digit is no figure
    assert not evidence("Officials said. The airport reopened.\nRescuers came. \"We\" left 3 days later.")


def test_figures_are_whole_numbers_however_written():
    # thousands separated by commas are one figure (not "000", which every round thousand shares); a decimal
    # comma is the decimal point most of Europe writes; a list of numbers gives each of them
    assert evidence("The 7,1 quake left 12,000 homeless and 3,000 homes down, 10,15,20 km away.") == {
        "7.1", "12000", "3000", "10", "15", "20"}
    assert evidence("Le séisme de magnitude 7,1 a fait 230 morts.") == evidence("The 7.1 quake killed 230.")
    assert evidence("It cost $1,000,000.50 in all.") == {"1000000.50"}
    shown = story_makeup([(1, "Quake", "The 7,1 quake left 12,000 homeless.", T0, []),
                          (2, "Quake", "A 7,1 quake, with 12,000 homeless.", T0, [])])
    assert [(n.term, n.shown) for n in shown.names] == [("7.1", "7,1"), ("12000", "12,000")]

def test_headline_names_are_its_capitalised_words_and_figures():
    assert headline_names("Chile earthquake survivors sleep in the streets") == {"chile"}
    assert headline_names("UPDATE 1-Magnitude 6.8 Quake Hits Japan's North") == {"magnitude", "6.8", "quake", "hit",
                                                                                "japan", "north"}

def test_evidence_leaves_out_headings_and_words_the_text_writes_in_lower_case():
    text = ("Centerpiece Tabletop Decoration Ideas for Fall\nA bowl of gourds makes a fine decoration, said Martha "
            "Stewart in Boston. Any Decoration works.")
    assert evidence(text) == {"martha", "stewart", "boston"}


def test_german_capitals_mark_nouns_not_names_so_only_figures_are_evidence():
    text = ("Nach tagelangem Dauerregen hat die Stadt Passau den Katastrophenfall ausgerufen. Die Donau erreichte "
            "am Morgen einen Pegel von 9,8 Metern, 300 Anwohner wurden in Sicherheit gebracht.")
    assert evidence(text) == {"9.8", "300"}  # "9,8": a decimal comma
    # Danish writes "der" and "dem" too, and capitalises only its names
    assert evidence("Der er mange, der har mistet hjem i Aarhus, og politiet har bedt dem om at vente på Mette "
                    "Frederiksen.") == {"aarhus", "mette", "frederiksen"}
    # an English text naming German places keeps its names
    assert evidence("Officials in Passau said the Danube rose, and Mayor Dupper ordered 300 people out.") == {
        "passau", "danube", "mayor", "dupper", "300"}


def test_evidence_reads_only_the_first_words_when_told():
    text = "Rescuers reached Haiti on Tuesday. " + "word " * 50 + "Then Preval spoke."
    assert "preval" in evidence(text) and "preval" not in evidence(text, 20)


def _rule() -> EventRule:
    return EventRule(min_terms=3, min_share=0.1, idf=lambda term: 1.0)


def test_an_article_naming_none_of_a_storys_names_tells_another_event():
    rule = _rule()
    haiti = {"haiti", "preval", "port", "230"}
    chile = {"chile", "bachelet", "concepcion", "520"}
    assert rule.tells_other_event(chile, "Earthquake devastates Chile", haiti, {"earthquake": 1.0})
    assert not rule.tells_other_event({"haiti", "jacmel", "red", "cross"}, "Quake aid", haiti, {})
    assert not rule.tells_other_event({"chile", "bachelet"}, "Chile", haiti, {})  # too few names to tell
    # the story's own headline vouches for a body sharing one name with it, not for one sharing none
    words = {"earthquake": 1.0, "haiti": 1.0}
    assert not rule.tells_other_event({"port", "miami", "without", "border", "40", "11", "12", "13", "14", "15", "16"},
                                      "Earthquake in Haiti", haiti, words)
    assert rule.tells_other_event({"miami", "without", "border", "40"}, "Earthquake in Haiti", haiti, words)


def test_two_events_of_one_subject_are_told_apart_by_what_the_body_names_besides():
    rule = _rule()
    miami = {"justin", "bieber", "miami", "beach", "lamborghini", "19"}
    words = {"bieber": 1.0, "arrest": 1.0, "justin": 1.0}
    toronto = {"justin", "bieber", "toronto", "limo", "driver", "2014", "ontario", "police", "court", "assault",
               "charge", "august", "lawyer", "release", "statement", "jan", "29", "hearing", "judge", "date"}
    # the subject alone is a tenth of the body's names: by them all, one event; by the rest, none is the story's
    assert rule.share(toronto, words, miami) >= 0.1
    judged = rule.judged_names(toronto, "Justin Bieber charged in Toronto", words, miami)
    assert set(judged) == toronto - {"justin", "bieber", "toronto"} and rule.share(judged, words, miami) == 0.0
    assert rule.tells_other_event(toronto, "Justin Bieber charged in Toronto", miami, words)
    # the same event told again names its places and figures too
    again = {"justin", "bieber", "miami", "beach", "police", "19", "drag", "race"}
    assert not rule.tells_other_event(again, "Justin Bieber arrested in Miami Beach", miami, words)
    # with too few names beyond the headline's, all of them count
    few = {"justin", "bieber", "miami", "x1"}
    assert rule.judged_names(few, "Justin Bieber arrested", words, miami) == few


def test_two_stories_of_one_subject_are_apart_by_their_names_besides_the_joining_headlines():
    rule = _rule()
    miami = {"justin", "bieber", "miami", "beach", "lamborghini", "19", "drag", "race", "florida", "jan"}
    miami_words = {"bieber": 1.0, "arrest": 1.0, "justin": 1.0, "miami": 1.0}
    toronto = {"justin", "bieber", "toronto", "limo", "driver", "2014", "ontario", "police", "court", "assault"}
    toronto_words = {"bieber": 1.0, "charge": 1.0, "justin": 1.0, "toronto": 1.0}
    # the subject's two names are a fifth of the smaller story's: by every name, one event
    assert not rule.stories_apart(miami, miami_words, toronto, toronto_words)
    # an article headed "Justin Bieber charged" brings them together: its headline's names are the subject
    heading = headline_names("Justin Bieber charged")
    assert rule.stories_apart(miami, miami_words, toronto, toronto_words, heading)
    # two tellings of one event share more than the subject, and still converge
    again = {"justin", "bieber", "miami", "beach", "police", "19", "drag", "race"}
    assert not rule.stories_apart(miami, miami_words, again, miami_words, heading)


def test_a_storys_makeup_is_what_several_of_its_articles_share():
    articles = [
        (1, "Quake hits Haiti", "A quake struck near Port-au-Prince, said Rene Preval. At least 230 died.", T0,
         ["quake", "hit", "haiti", "struck"]),
        (2, "Haiti quake toll rises", "The toll of the quake near Port-au-Prince rose, Preval said, as Jacmel "
         "counted its dead.", T0 + timedelta(hours=5), ["haiti", "quake", "toll", "rise"]),
        (3, "Aid for Haiti", "Aid for Haiti", T0 + timedelta(hours=2), ["aid", "haiti"]),  # a headline only
    ]
    makeup = story_makeup(articles)
    assert [(n.shown, n.articles) for n in makeup.names] == [("Port", 2), ("Preval", 2)]
    assert [(w.term, w.articles) for w in makeup.words] == [("haiti", 3), ("quake", 2)]
    assert makeup.hours == 5.0 and makeup.articles == 3
    assert makeup.shared_names == {1: ["Port", "Preval"], 2: ["Port", "Preval"], 3: []}
    # as an article names them, its names before its figures, however many figures it shares
    text = "Fans met in Huntsville, Alabama on Friday: " + ", ".join(str(n) for n in range(10, 20)) + " of them."
    copies = story_makeup([(1, "Fans", text, T0, []), (2, "Fans", text, T0, [])]).shared_names
    assert copies[1][:3] == ["Huntsville", "Alabama", "Friday"] and len(copies[1]) == 8


def test_a_story_shows_its_shared_words_as_written():
    from aggregator.text import terms

    titles = ["U.K. summits set in Budapest", "U.K. summit in Budapest: Trump and Putin to meet"]
    makeup = story_makeup((n, title, "", datetime(2026, 10, 16, n), terms(title)) for n, title in enumerate(titles))
    assert {w.term: w.shown for w in makeup.words} == {"uk": "U.K", "summit": "summits", "budapest": "Budapest"}
    # a common word capitalised by a headline is shown in lower case once running text writes it so
    articles = [(1, "Record Heat in Spain", "Spain saw record heat.", T0, terms("Record Heat in Spain record heat 1")),
                (2, "Record heat hits Spain", "", T0, terms("Record heat hits Spain 1"))]  # a lone digit: not shown
    assert {w.term: w.shown for w in story_makeup(articles).words} == {"record": "record", "heat": "heat",
                                                                     "spain": "Spain"}
