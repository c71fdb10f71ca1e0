"""Lexical tokenisation for BM25 and for span indexes, for English and Chinese alike.

English follows bm25s's own scheme (words of 2+ word characters, English stop words removed,
Snowball stemming) so that our BM25 numbers are comparable with plain bm25s. A CJK run has no
spaces, so it is cut into words by jieba when installed (extra `cjk`), and otherwise into
single characters plus character bigrams, the standard dictionary-free CJK indexing scheme.
"""

from __future__ import annotations

import functools
import itertools
import re

from gsid.data.normalize import CJK_RUN, normalize_text

_WORD = re.compile(r"(?u)\b\w\w+\b")


@functools.lru_cache(maxsize=1)
def _stopwords_en() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@functools.lru_cache(maxsize=4)
def _stemmer(language: str):
    import Stemmer  # PyStemmer: C Snowball stemmers

    return Stemmer.Stemmer(language)


@functools.lru_cache(maxsize=1)
def _jieba():
    try:
        import jieba
    except ImportError:
        return None
    jieba.setLogLevel(60)  # jieba logs its dictionary loading at INFO to stderr
    return jieba


def _cjk_tokens(run: str, use_jieba: bool) -> list[str]:
    jb = _jieba() if use_jieba else None
    if jb is not None:
        return [w for w in jb.lcut(run) if w.strip()]
    chars = list(run)
    return chars + [a + b for a, b in itertools.pairwise(chars)]


class LexicalTokenizer:
    """Turns text into index terms. Pure function of its config, so it is saved as that config."""

    def __init__(self, stem: bool = True, stopwords: bool = True, cjk: str = "auto") -> None:
        if cjk not in {"auto", "jieba", "bigram"}:
            raise ValueError(f"cjk must be one of 'auto', 'jieba', 'bigram'; got {cjk!r}")
        self.stem = stem
        self.stopwords = stopwords
        self.cjk = cjk

    def config(self) -> dict:
        return {"stem": self.stem, "stopwords": self.stopwords, "cjk": self.cjk}

    def __call__(self, text: str) -> list[str]:
        text = normalize_text(text)
        tokens: list[str] = []
        pos = 0
        use_jieba = self.cjk != "bigram"
        for m in CJK_RUN.finditer(text):
            tokens.extend(self._latin(text[pos : m.start()]))
            tokens.extend(_cjk_tokens(m.group(), use_jieba))
            pos = m.end()
        tokens.extend(self._latin(text[pos:]))
        return tokens

    def _latin(self, text: str) -> list[str]:
        words = _WORD.findall(text)
        if self.stopwords:
            sw = _stopwords_en()
            words = [w for w in words if w not in sw]
        if self.stem and words:
            words = _stemmer("english").stemWords(words)
        return words
