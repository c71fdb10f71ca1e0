"""The three record types every gsid step reads, as column schemas.

- catalogue (items): item_id, title, [description], [category], [attributes]
  `category` is a path of any depth joined by " > " ("Home > Kitchen > Knives");
  `attributes` is a JSON object serialised as text ({"brand": "Acme", "color": "red"}).
- queries: query_id, query, split, frequency  (one row per distinct normalised query string)
- log (search/click log): query_id, item_id, weight, [user], [time]
- judgments (graded relevance): query_id, item_id, grade
Item and query ids are strings everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

CATEGORY_SEP = " > "
MAX_TITLE_CHARS = 2000
MAX_QUERY_CHARS = 2000
MAX_ID_CHARS = 500


@dataclass(frozen=True)
class TableSchema:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    # Columns that must be non-empty text.
    nonempty_text: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    # Longest text a column may hold (a title of a megabyte is a broken export, not a title).
    max_chars: tuple[tuple[str, int], ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


ITEMS = TableSchema(
    "catalogue",
    required=("item_id", "title"),
    optional=("description", "category", "attributes"),
    nonempty_text=("item_id", "title"),
    max_chars=(
        ("item_id", MAX_ID_CHARS),
        ("title", MAX_TITLE_CHARS),
        ("category", MAX_TITLE_CHARS),
    ),
)
# Input form of a log: query *text* + item; query ids are assigned by gsid.
LOG_INPUT = TableSchema(
    "query log",
    required=("query", "item_id"),
    optional=("weight", "user", "time", "split"),
    nonempty_text=("query", "item_id"),
    numeric=("weight",),
    max_chars=(("query", MAX_QUERY_CHARS), ("item_id", MAX_ID_CHARS)),
)
# Input form of judgments: either a query id (with a queries file) or the query text.
JUDGMENTS_INPUT = TableSchema(
    "judgments",
    required=("item_id", "grade"),
    optional=("query_id", "query", "split"),
    nonempty_text=("item_id",),
    numeric=("grade",),
)
QUERIES_INPUT = TableSchema(
    "queries",
    required=("query_id", "query"),
    optional=("split", "frequency"),
    nonempty_text=("query_id", "query"),
    numeric=("frequency",),
    max_chars=(("query", MAX_QUERY_CHARS), ("query_id", MAX_ID_CHARS)),
)
SPLITS = ("train", "dev", "test")
