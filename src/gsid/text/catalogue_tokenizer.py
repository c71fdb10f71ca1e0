"""A WordPiece tokenizer trained on the catalogue itself, for models trained from scratch.

    path = train_catalogue_tokenizer(titles + queries, vocab_size=8000, out_dir="runs/tok")
    tok = AutoTokenizer.from_pretrained(path)       # a transformers fast tokenizer

A T5 trained from scratch on one catalogue does not need MiniLM's 30,522 general-English word
pieces: a vocabulary learnt from the titles and queries spends its rows on the catalogue's
words (brands, units, model numbers) and makes the embedding table several times smaller.
Built with the Hugging Face `tokenizers` trainer (BERT-style lower-casing normaliser and
pre-tokeniser), wrapped as a `PreTrainedTokenizerFast` so the rest of gsid treats it like any
checkpoint's tokenizer. [PAD] is id 0 (T5's decoder start and padding id).

The same texts always give the same vocabulary, ids included. The pieces are learnt by
`learn_wordpieces` (BPE merges over `##`-prefixed word pieces, what `tokenizers`'
WordPieceTrainer does), hand-written here for one reason: that trainer breaks frequency ties
in hash order, which changes from process to process, so two trainings on the same texts gave
different pieces and ids (6 pieces and 350 ids of 2,000 on the demo catalogue) and models
trained from scratch with the same seed differed. Here every tie is broken by the pieces'
text. The normaliser, pre-tokeniser and WordPiece model are still `tokenizers`' own.
"""

from __future__ import annotations

import heapq
import os
from collections import Counter
from pathlib import Path

from gsid._io import atomic_dir
from gsid.errors import GsidError

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_catalogue_tokenizer(
    texts: list[str], vocab_size: int, out_dir: str | os.PathLike, min_frequency: int = 2
) -> str:
    """Train on `texts` and save a transformers tokenizer directory at `out_dir` (atomically)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < len(SPECIAL) + 1:
        raise GsidError(f"tokenizer vocab_size must be > {len(SPECIAL)}, got {vocab_size}")
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise GsidError("the catalogue tokenizer needs at least one non-empty text")
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words = Counter(w for t in texts for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(t)))
    pieces = learn_wordpieces(words, vocab_size - len(SPECIAL), min_frequency)
    vocab = {p: i for i, p in enumerate([*SPECIAL, *pieces])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    out = Path(out_dir)
    with atomic_dir(out) as tmp:
        fast.save_pretrained(tmp)
    return str(out)


def learn_wordpieces(
    words: Counter[str] | dict[str, int], size: int, min_frequency: int = 2
) -> list[str]:
    """Up to `size` WordPiece pieces for these word counts: every character (a word's first as
    itself, the others as "##c"), then BPE merges of the most frequent adjacent pair (counted
    over words times their counts) until `size` pieces or no pair occurs `min_frequency`
    times. Ties: the pair whose pieces sort first. Deterministic; returns the alphabet
    (most frequent first, ties by text) then the merged pieces in merge order."""
    keys = sorted(words)  # word order fixed by text, so everything below is
    freq = [int(words[w]) for w in keys]
    syms = [[w[0], *("##" + c for c in w[1:])] for w in keys]
    alpha: Counter[str] = Counter()
    for sy, f in zip(syms, freq, strict=True):
        alpha.update({x: n * f for x, n in Counter(sy).items()})  # update adds counts
    pieces = sorted(alpha, key=lambda x: (-alpha[x], x))
    pair: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], set[int]] = {}

    def count(i: int, sign: int) -> list[tuple[str, str]]:
        """Add (sign +1) or remove (-1) word i's adjacent pairs; -> those pairs."""
        pairs = list(zip(syms[i][:-1], syms[i][1:], strict=True))
        for ab in pairs:
            pair[ab] += sign * freq[i]
            if sign > 0:
                where.setdefault(ab, set()).add(i)
        return pairs

    for i in range(len(keys)):
        count(i, +1)
    heap = [(-c, ab) for ab, c in pair.items()]
    heapq.heapify(heap)
    have = set(pieces)
    while len(pieces) < size and heap:
        neg, ab = heapq.heappop(heap)
        if pair.get(ab, 0) != -neg:
            continue  # stale: this pair's count changed since it was pushed
        if -neg < min_frequency:
            break
        a, b = ab
        new = a + b[2:]  # b is never a word start: it carries the ## prefix
        for i in sorted(where.pop(ab, ())):
            count(i, -1)
            syms[i] = _merged(syms[i], a, b, new)
            for other in count(i, +1):
                heapq.heappush(heap, (-pair[other], other))
        pair.pop(ab, None)
        if new not in have:
            have.add(new)
            pieces.append(new)
    return pieces[: max(size, len(alpha))]


def _merged(sy: list[str], a: str, b: str, new: str) -> list[str]:
    """sy with every adjacent (a, b), left to right, replaced by `new`."""
    out, j = [], 0
    while j < len(sy):
        if j + 1 < len(sy) and sy[j] == a and sy[j + 1] == b:
            out.append(new)
            j += 2
        else:
            out.append(sy[j])
            j += 1
    return out
