"""Tokens, terms and near-duplicate signals for texts in several languages and scripts."""

from datetime import datetime, timedelta

from aggregator.cluster import SIGNAL_NEAR, Clusterer, ClusterSettings
from aggregator.text import STOPWORDS, headline, shingle_hashes, terms, words

T0 = datetime(2026, 3, 1, 8, 0)

# A short news text in Chinese (written for these tests), a lightly edited copy, and an unrelated text.
ZH = (
    "国家气象局周二发布暴雨红色预警，预计未来三天南方多个省份将出现持续强降雨。"
    "当地政府已经启动应急响应，组织沿河低洼地区的居民转移到安全地带。"
    "气象专家提醒公众减少外出，注意防范山洪和城市内涝，学校和幼儿园暂停上课。"
    "铁路部门表示部分列车将停运或者晚点，旅客出行前请及时查询最新信息。"
)
ZH_EDITED = (
    "新华社电 " + ZH.replace("周二", "星期二").replace("旅客出行前请及时查询最新信息。", "") + "记者 王明 报道。"
)
ZH_OTHER = (
    "本市第一届国际马拉松比赛昨天上午在市中心广场鸣枪起跑，来自二十多个国家的一万名选手参加了比赛。"
    "男子组冠军由一名肯尼亚选手获得，女子组冠军则被本地运动员夺得，赛道沿途有数万名市民为选手加油。"
    "组委会表示明年将增加半程马拉松项目，并进一步完善志愿者服务和交通保障工作。"
)


def test_cjk_runs_become_overlapping_bigrams():
    assert words("东京大学") == ["东京", "京大", "大学"]
    assert words("日本の首相") == ["日本", "本の", "の首", "首相"]
    assert words("서울 시장") == ["서울", "시장"]
    # Latin words and numbers inside a CJK run stay whole; a lone CJK letter stays itself
    assert words("2024年Tokyo大会") == ["2024", "年", "tokyo", "大会"]
    assert "年" in terms("2024年")
    assert words("plain English text") == ["plain", "english", "text"]


def test_chinese_copy_is_a_near_duplicate_and_other_text_is_not():
    engine = Clusterer()
    assert len(shingle_hashes(words(ZH), 4)) > 50
    original = engine.features("南方暴雨预警", ZH, T0)
    engine.add(1, original, 1)
    copy = engine.features("暴雨红色预警发布", ZH_EDITED, T0 + timedelta(hours=1))
    decision = engine.decide(copy)
    assert decision.duplicate_of == 1 and decision.duplicate_signal == SIGNAL_NEAR
    other = engine.features("国际马拉松开跑", ZH_OTHER, T0 + timedelta(hours=1))
    decision = engine.decide(other)
    assert decision.duplicate_of is None and decision.story_id is None
    assert original.minhash.jaccard(other.minhash) < 0.1


def test_chinese_articles_on_one_event_share_terms():
    shared = set(terms(ZH)) & set(terms(ZH_EDITED))
    assert {"暴雨", "预警", "气象"} <= shared
    assert len(set(terms(ZH)) & set(terms(ZH_OTHER))) < 10


def test_german_french_spanish_and_russian_terms_drop_function_words():
    de = terms("Die Bundesregierung hat am Mittwoch das neue Klimagesetz beschlossen, sagte der Sprecher.")
    assert de == ["bundesregierung", "mittwoch", "neue", "klimagesetz", "beschlossen", "sagte", "sprecher"]
    fr = terms("Le gouvernement a annoncé mercredi une réforme des retraites pour les fonctionnaires.")
    assert "gouvernement" in fr and "réforme" in fr and not {"le", "une", "des", "pour", "les"} & set(fr)
    es = terms("El gobierno de España aprobó el martes una nueva ley para las empresas")
    assert "gobierno" in es and "españa" in es and not {"el", "de", "una", "para", "las"} & set(es)
    ru = terms("Правительство России в среду объявило о новых мерах поддержки экономики.")
    assert ru == ["правительство", "россии", "среду", "объявило", "новых", "мерах", "поддержки", "экономики"]
    assert {"и", "в", "не", "что", "на"} <= STOPWORDS


def test_accented_and_compatibility_forms_fold_alike():
    assert words("ÉCOLE ﬁnale") == ["école", "finale"]
    assert words("Ｔｏｋｙｏ　２０２４") == ["tokyo", "2024"]


def test_outlet_and_format_tags_leave_the_headline():
    fed = "Fed holds rates steady as inflation cools"
    assert headline(f"{fed} - Reuters") == fed
    assert headline("Trump's speech was bad. The response was worse | Cas Mudde") == (
        "Trump's speech was bad. The response was worse")
    assert headline("VIDEO: Fire destroys home in Ohio - Fox News") == "Fire destroys home in Ohio"
    assert headline("Fire destroys home in Ohio – video | Fox News") == "Fire destroys home in Ohio"
    assert headline("UPDATE 2-Indonesia expands search for missing jet") == "Indonesia expands search for missing jet"
    assert headline("Super blue blood moon - in pictures") == "Super blue blood moon"
    assert headline("Storm hits Florida coast (VIDEO)") == "Storm hits Florida coast"
    assert headline("Apple unveils new iPhone : NPR") == "Apple unveils new iPhone"
    # the source's own name goes whatever its case
    assert headline("Stocks slide on Monday - news.com.au", "news.com.au") == "Stocks slide on Monday"


def test_the_headline_itself_is_never_taken_for_a_tag():
    for title in ["Hackable Projects - Pillar 3: Infrastructure",  # a figure: not a name
                  "GTAC 2017 - Registration is open!",  # lower-case words: not a name
                  "Boom - Watch This Closely",  # too little headline left
                  "CBO: 13 Million More Uninsured By 2027",  # a leading segment that is no format word
                  "Live-streaming is big now in town",
                  "Something happened today - report"]:
        assert headline(title) == title
    # in a title-case headline every segment looks like a name: only the source and the learned tags go there
    for title in ["Fed Holds Rates - Yellen Says Economy Strong", "Malaysia Airlines MH370 - Search Resumes",
                  "Obama Signs Budget Bill - The White House"]:
        assert headline(title) == title
    assert headline("Obama Signs Budget Bill - The White House", "The White House") == "Obama Signs Budget Bill"
    # a name-like segment before a format tag is the headline's own
    assert headline("Echoes of the Past : The Hotel Syracuse (photos)") == "Echoes of the Past : The Hotel Syracuse"


def test_tagged_headlines_of_one_event_share_only_its_words():
    engine = Clusterer()
    a = engine.features("Fed holds rates steady as inflation cools - Reuters", "", T0, "Reuters")
    b = engine.features("WATCH: Fed holds rates steady as inflation cools | Fox News", "", T0, "Fox News")
    assert a.terms == b.terms
    assert "reuter" not in a.terms and "fox" not in b.terms and "watch" not in b.terms


def test_a_segment_ending_many_headlines_becomes_a_tag():
    engine = Clusterer()
    tagged = ["Fed holds rates steady - news.com.au", "Storm batters Queensland coast - news.com.au",
              "Wildfire forces evacuations near Perth - news.com.au"]
    assert "news.com.au" in engine.features(tagged[0], "", T0).terms  # not name-like: kept while seen once
    for title in tagged[1:]:
        engine.features(title, "", T0)
    feats = engine.features("Treasurer unveils budget surplus plan - news.com.au", "", T0)
    assert "news.com.au" not in feats.terms and "budget" in feats.terms
    # a segment ending one headline again and again (copies of it) is the headline's own
    again = Clusterer()
    for _ in range(5):
        feats = again.features("Detroit beat Green Bay at home - packers upset", "", T0)
    assert "upset" in feats.terms


def test_candidate_tags_stay_bounded_when_every_segment_recurs():
    engine = Clusterer(ClusterSettings(tag_candidates=40))
    for n in range(200):  # each segment ends two headlines: none of them goes as seen once
        for take in range(2):
            engine.features(f"Story number {n} told again {take} - desk {n} wire", "", T0)
            assert len(engine._segments) <= 40
    # the latest ones are kept, so a tag of the moment is still learned
    for title in ("Fed holds rates - desk 199 wire", "Storm hits coast - desk 199 wire"):
        engine.features(title, "", T0)
    assert "desk199wire" in engine.tags


def test_an_initialism_with_dots_is_the_one_without():
    assert terms("U.K. and N.Y. officials") == terms("UK and NY officials") == ["uk", "ny", "official"]
    assert terms("U.S. sends warship") == terms("US sends warship")  # "us" is a stop word either way
    assert terms("Parse.ly raises 3.6 million") == ["parse.ly", "raise", "3.6", "million"]


def test_a_stop_word_with_its_apostrophe_s_is_still_a_stop_word():
    assert terms("Here's what it's like: Trump's plan") == ["like", "trump", "plan"]


def test_words_split_as_the_word_pattern_does():
    from aggregator.text import WORD, fold

    samples = ["U.S. officials said, \"it's over\"... (again)", "a_b c__d e-f", "don’t stop: 3.5% of 1,200",
               "ﬁne Ｆｕｌｌ width", "İstanbul ǅemal", "a.b.c. .x. x. ..", "٣٤٥ ½ ² x²",
               "foo\u00a0bar\u2003baz\u200bqux"]
    for text in samples:
        assert words(text) == WORD.findall(fold(text).replace("’", "'"))


def test_shingle_hashes_stay_the_stored_ones():
    # stored signatures are made of these (ClusterSettings.scheme): a change would make old and new texts differ
    assert shingle_hashes("the quick brown fox jumps over the lazy dog".split(), 4).tolist() == [
        46700281, 337108885, 422032299, 993132813, 1760106950, 2676372005]
    assert shingle_hashes(["storm", "hits"], 4).tolist() == [1225903655]
    assert shingle_hashes([], 4).tolist() == []


def test_an_articles_minhash_is_datasketchs():
    import numpy as np
    from datasketch import MinHash

    engine = Clusterer()
    body = " ".join(f"word{i}" for i in range(40))
    feats = engine.features("Storm", body, T0)
    reference = MinHash(num_perm=engine.settings.num_perm, seed=engine.settings.seed, hashfunc=lambda v: v,
                        scheme="affine32")
    reference.update_batch(shingle_hashes(words(body), engine.settings.shingle_size))
    assert np.array_equal(feats.minhash.hashvalues, reference.hashvalues)
    assert feats.minhash.hashvalues.dtype == reference.hashvalues.dtype
