"""Keyboard slips: the typos of seller titles and shopper queries."""

from __future__ import annotations

import functools

from gsid.data.synthetic.vocabulary import load_vocabulary


@functools.cache
def _neighbours() -> dict[str, str]:
    """Letter -> its left and right neighbours on a QWERTY keyboard row."""
    return {
        ch: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
        for row in load_vocabulary().keyboard_rows
        for i, ch in enumerate(row)
    }


def _typo(word: str, u_pos: float, u_op: float) -> str:
    """One keyboard slip: drop, swap, double or hit a neighbouring key (never the 1st letter)."""
    n = len(word)
    if n < 4:
        return word
    i = 1 + int(u_pos * (n - 2))  # 1 .. n-2
    op = int(u_op * 4)
    if op == 0:
        return word[:i] + word[i + 1 :]
    if op == 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == 2:
        return word[:i] + word[i] + word[i:]
    c = word[i]
    nb = _neighbours().get(c.lower())
    if not nb:
        return word[:i] + word[i + 1 :]
    r = nb[int(u_pos * 7919) % len(nb)]
    return word[:i] + (r.upper() if c.isupper() else r) + word[i + 1 :]


def typo_in_text(text: str, u_word: float, u_pos: float, u_op: float) -> str:
    """One slip in a word of 4+ letters chosen by u_word (text unchanged when none)."""
    words = text.split(" ")
    cand = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not cand:
        return text
    i = cand[int(u_word * len(cand))]
    words[i] = _typo(words[i], u_pos, u_op)
    return " ".join(words)
