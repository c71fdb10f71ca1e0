"""A WordPiece tokenizer trained on the catalogue itself, for models trained from scratch.

    path = train_catalogue_tokenizer(titles + queries, vocab_size=8000, out_dir="runs/tok")
    tok = AutoTokenizer.from_pretrained(path)       # a transformers fast tokenizer

A T5 trained from scratch on one catalogue does not need MiniLM's 30,522 general-English word
pieces: a vocabulary learnt from the titles and queries spends its rows on the catalogue's
words (brands, units, model numbers) and makes the embedding table several times smaller.
Built with the Hugging Face `tokenizers` trainer (BERT-style lower-casing normaliser and
pre-tokeniser), wrapped as a `PreTrainedTokenizerFast` so the rest of gsid treats it like any
checkpoint's tokenizer. [PAD] is id 0 (T5's decoder start and padding id).

Not reproducible run to run: the `tokenizers` WordPiece trainer breaks frequency ties in no
fixed order, so two trainings on the same texts can differ in a few pieces and in their ids.
A saved model keeps its own tokenizer, so loading it always gives the same codes.
"""

from __future__ import annotations

import os
from pathlib import Path

from gsid._io import atomic_dir
from gsid.errors import GsidError

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_catalogue_tokenizer(
    texts: list[str], vocab_size: int, out_dir: str | os.PathLike, min_frequency: int = 2
) -> str:
    """Train on `texts` and save a transformers tokenizer directory at `out_dir` (atomically)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < len(SPECIAL) + 1:
        raise GsidError(f"tokenizer vocab_size must be > {len(SPECIAL)}, got {vocab_size}")
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise GsidError("the catalogue tokenizer needs at least one non-empty text")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
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
