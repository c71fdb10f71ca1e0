"""The generator's vocabulary, read once from the package data file vocabulary.json.

Tables (JSON lists come back as tuples, the generic words as a frozenset):

- taxonomy: department -> category -> one line per product type,
  "Type label | nouns | attributes | feature words":
  - nouns: the first is canonical; a leading "?" marks a query-only synonym (shoppers type it,
    sellers rarely write it: only keyword stuffing does);
  - attributes: `key[/unit]:v1,v2,...` (values most common first; "_" stands for a space; a
    value like `1tb` carries its own unit). `color`, `gender`, `size`, `bed_size` alone take the
    default value lists (default_values). At most 4 attributes per type.
- brands: department -> fictional brands, most popular first (Zipf shares by this order);
  store_brands: sold in every department (at a lower share than a department's top brands).
- default_values: attribute key -> comma-separated default values; default_units: key -> unit.
- units: unit key -> (canonical JSON format, title spellings, query spellings); "{v}" is the
  number.
- value_forms: categorical values with several spellings: value -> (title spellings, query
  spellings).
- marketing_prefix, marketing_suffix, stuffing_extra: title noise; desc_openers ("{b}" brand,
  "{n}" noun) and desc_closers (per department): descriptions.
- generic_words: words that never make two types "confusable" on their own.
- keyboard_rows: the QWERTY rows behind keyboard-neighbour typos.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

Unit = tuple[str, tuple[str, ...], tuple[str, ...]]
ValueForms = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class Vocabulary:
    """Every literal table of the generator (see the module docstring for the formats)."""

    taxonomy: dict[str, dict[str, tuple[str, ...]]]
    brands: dict[str, tuple[str, ...]]
    store_brands: tuple[str, ...]
    default_values: dict[str, str]
    default_units: dict[str, str]
    units: dict[str, Unit]
    value_forms: dict[str, ValueForms]
    marketing_prefix: tuple[str, ...]
    marketing_suffix: tuple[str, ...]
    stuffing_extra: tuple[str, ...]
    desc_openers: tuple[str, ...]
    desc_closers: dict[str, tuple[str, ...]]
    generic_words: frozenset[str]
    keyboard_rows: tuple[str, ...]


@functools.cache
def load_vocabulary() -> Vocabulary:
    """The vocabulary, parsed from vocabulary.json on the first call and cached."""
    text = resources.files(__package__).joinpath("vocabulary.json").read_text(encoding="utf-8")
    raw = json.loads(text)
    return Vocabulary(
        taxonomy={
            dept: {cat: tuple(types) for cat, types in cats.items()}
            for dept, cats in raw["taxonomy"].items()
        },
        brands={dept: tuple(names) for dept, names in raw["brands"].items()},
        store_brands=tuple(raw["store_brands"]),
        default_values=dict(raw["default_values"]),
        default_units=dict(raw["default_units"]),
        units={
            k: (canon, tuple(title), tuple(query))
            for k, (canon, title, query) in raw["units"].items()
        },
        value_forms={
            k: (tuple(title), tuple(query)) for k, (title, query) in raw["value_forms"].items()
        },
        marketing_prefix=tuple(raw["marketing_prefix"]),
        marketing_suffix=tuple(raw["marketing_suffix"]),
        stuffing_extra=tuple(raw["stuffing_extra"]),
        desc_openers=tuple(raw["desc_openers"]),
        desc_closers={dept: tuple(lines) for dept, lines in raw["desc_closers"].items()},
        generic_words=frozenset(raw["generic_words"]),
        keyboard_rows=tuple(raw["keyboard_rows"]),
    )
