"""Tokens, terms and near-duplicate signals for texts in several languages and scripts."""

from datetime import datetime, timedelta

from aggregator.cluster import SIGNAL_NEAR, Clusterer
from aggregator.text import STOPWORDS, shingle_hashes, terms, words

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


def test_words_split_as_the_word_pattern_does():
    from aggregator.text import _WORD, fold

    samples = ["U.S. officials said, \"it's over\"... (again)", "a_b c__d e-f", "don’t stop: 3.5% of 1,200",
               "ﬁne Ｆｕｌｌ width", "İstanbul ǅemal", "a.b.c. .x. x. ..", "٣٤٥ ½ ² x²",
               "foo\u00a0bar\u2003baz\u200bqux"]
    for text in samples:
        assert words(text) == _WORD.findall(fold(text).replace("’", "'"))


def test_shingle_hashes_stay_the_stored_ones():
    # stored signatures are made of these (ClusterSettings.scheme): a change would make old and new texts differ
    assert shingle_hashes("the quick brown fox jumps over the lazy dog".split(), 4).tolist() == [
        46700281, 337108885, 422032299, 993132813, 1760106950, 2676372005]
    assert shingle_hashes(["storm", "hits"], 4).tolist() == [1225903655]
    assert shingle_hashes([], 4).tolist() == []


def test_an_articles_minhash_is_datasketchs():
    from datasketch import MinHash

    engine = Clusterer()
    feats = engine.features("Storm", " ".join(f"word{i}" for i in range(40)), T0)
    made = MinHash(num_perm=engine.settings.num_perm, permutations=engine._permutations,
                   hashvalues=feats.minhash.hashvalues, hashfunc=lambda v: v, scheme="affine32")
    assert feats.minhash == made and feats.minhash.jaccard(made) == 1.0
    assert feats.minhash.hashvalues.dtype == made.hashvalues.dtype
