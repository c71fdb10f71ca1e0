"""Tokenisation and normalisation for English and Chinese text."""

from gsid.data.normalize import has_cjk, normalize_text
from gsid.text.tokenize import LexicalTokenizer


def test_normalize_full_width_and_case():
    full_width = "  ＡＢＣ  Drill\t18V "  # noqa: RUF001 (full-width letters are the point)
    assert normalize_text(full_width) == "abc drill 18v"


def test_english_stemming_and_stopwords():
    tok = LexicalTokenizer()
    assert tok("The drills for the Walls") == ["drill", "wall"]
    assert LexicalTokenizer(stem=False, stopwords=False)("The drills") == ["the", "drills"]


def test_chinese_is_segmented_not_one_token():
    text = "小米手机 Redmi Note 12 蓝色"
    assert has_cjk(text)
    for mode in ("bigram", "auto"):
        toks = LexicalTokenizer(cjk=mode)(text)
        assert "redmi" in toks and "note" in toks and "12" in toks
        assert "小米手机蓝色" not in toks
        assert any(t in toks for t in ("手机", "小米手机"))
    bigram = LexicalTokenizer(cjk="bigram")("蓝色手机")
    assert bigram == ["蓝", "色", "手", "机", "蓝色", "色手", "手机"]


def test_chinese_query_shares_terms_with_title():
    tok = LexicalTokenizer(cjk="bigram")
    title, query = set(tok("华为 Mate 60 手机 黑色 12GB")), set(tok("黑色华为手机"))
    assert {"华为", "手机", "黑色"} <= title & query
