"""Text normalisation and script detection shared by every tokeniser."""

from __future__ import annotations

import re
import unicodedata

_WS = re.compile(r"\s+")
# CJK Unified Ideographs (+ extension A), Hiragana/Katakana, Hangul, CJK compatibility ideographs.
_CJK_CHAR = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
CJK_RUN = re.compile(f"[{_CJK_CHAR}]+")
_HAS_CJK = re.compile(f"[{_CJK_CHAR}]")


def normalize_text(text: str) -> str:
    """NFKC (full-width -> half-width, compatibility forms), lower-case, collapse whitespace.

    Used as the identity of a query string: two queries that normalise equally are one query,
    which is what keeps a query out of two splits.
    """
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def has_cjk(text: str) -> bool:
    return bool(_HAS_CJK.search(text))
