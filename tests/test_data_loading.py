"""Import and validation: every error names the file, the row and the fix; failures write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gsid.data import BucketRule, Dataset
from gsid.data.loading import Source, build_dataset
from gsid.errors import ArtifactError, DataValidationError

ITEMS_CSV = "sku,name,desc,cat\n1,Red cordless drill,18V drill,Tools > Power > Drills\n2,Blue hammer,,Tools > Hand > Hammers\n3,LED bulb,60W,Home > Lighting > Bulbs\n"
LOG_CSV = "query,sku,clicks\ncordless drill,1,5\nhammer,2,2\nled bulb,3,1\ndrill,1,7\n"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


def items_src(tmp_path, text=ITEMS_CSV, **kw) -> Source:
    mapping = {"item_id": "sku", "title": "name", "description": "desc", "category": "cat"}
    return Source(write(tmp_path, "items.csv", text), mapping, **kw)


def log_src(tmp_path, text=LOG_CSV) -> Source:
    return Source(write(tmp_path, "log.csv", text), {"item_id": "sku", "weight": "clicks"})


def test_import_csv_with_mapping(tmp_path):
    ds = build_dataset(items_src(tmp_path), log=log_src(tmp_path))
    assert list(ds.items["item_id"]) == ["1", "2", "3"]
    assert ds.items["category"].iloc[0] == "Tools > Power > Drills"
    assert len(ds.queries) == 4 and set(ds.queries["split"]) <= {"train", "dev", "test"}
    assert ds.queries.set_index("query")["frequency"]["drill"] == 7.0
    assert [len(set(level)) for level in ds.category_levels()] == [2, 3, 3]


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "parquet"])
def test_import_other_formats(tmp_path, fmt):
    df = pd.DataFrame({"id": ["a", "b"], "t": ["Phone case", "USB cable"]})
    path = tmp_path / f"items.{fmt}"
    if fmt == "tsv":
        df.to_csv(path, sep="\t", index=False)
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in df.to_dict("records")), encoding="utf-8")
    else:
        df.to_parquet(path)
    ds = build_dataset(Source(path, {"item_id": "id", "title": "t"}))
    assert list(ds.items["title"]) == ["Phone case", "USB cable"]


def test_missing_column_names_the_file_and_the_fix(tmp_path):
    src = Source(write(tmp_path, "items.csv", ITEMS_CSV), {"item_id": "sku"})  # no title mapping
    with pytest.raises(DataValidationError, match=r"items\.csv.*column 'title'.*--map title="):
        build_dataset(src)


def test_misnamed_column_suggests_the_close_match(tmp_path):
    src = Source(write(tmp_path, "items.csv", ITEMS_CSV), {"item_id": "skuu", "title": "name"})
    with pytest.raises(DataValidationError, match=r"Did you mean 'sku'"):
        build_dataset(src)


def test_mapping_to_unknown_gsid_column(tmp_path):
    src = Source(
        write(tmp_path, "items.csv", ITEMS_CSV), {"item_id": "sku", "title": "name", "colour": "x"}
    )
    with pytest.raises(DataValidationError, match=r"'colour'.*valid gsid columns"):
        build_dataset(src)


def test_duplicate_item_id_names_rows(tmp_path):
    text = ITEMS_CSV + "2,Another hammer,,Tools\n"
    with pytest.raises(
        DataValidationError, match=r"duplicate item_id '2' at row 2 \(line 3\), row 4 \(line 5\)"
    ):
        build_dataset(items_src(tmp_path, text))


def test_empty_title_names_row(tmp_path):
    text = ITEMS_CSV + "4,  ,x,Home\n"
    with pytest.raises(DataValidationError, match=r"row 4 \(line 5\) has an empty 'title'"):
        build_dataset(items_src(tmp_path, text))


def test_undecodable_text_names_line_and_fix(tmp_path):
    data = ITEMS_CSV.encode() + b"4,Caf\xe9 table,,Home\n"
    with pytest.raises(DataValidationError, match=r"line 5 is not valid UTF-8.*iconv"):
        build_dataset(items_src(tmp_path, data))


def test_log_with_unknown_item(tmp_path):
    with pytest.raises(
        DataValidationError, match=r"log\.csv: row 2 \(line 3\) of the query log names item '99'"
    ):
        build_dataset(
            items_src(tmp_path), log=log_src(tmp_path, "query,sku,clicks\ndrill,1,1\nsaw,99,1\n")
        )


def test_judgments_with_unknown_item(tmp_path):
    j = Source(write(tmp_path, "j.csv", "query,item_id,grade\ndrill,1,3\ndrill,42,1\n"))
    with pytest.raises(
        DataValidationError, match=r"j\.csv: row 2 \(line 3\) of the judgments names item '42'"
    ):
        build_dataset(items_src(tmp_path), judgments=j)


def test_non_numeric_weight(tmp_path):
    with pytest.raises(DataValidationError, match=r"clicks|weight='many'"):
        build_dataset(
            items_src(tmp_path), log=log_src(tmp_path, "query,sku,clicks\ndrill,1,many\n")
        )


def test_query_in_two_splits_is_rejected(tmp_path):
    log = Source(write(tmp_path, "log.csv", "query,item_id,split\nDrill,1,train\ndrill ,1,dev\n"))
    with pytest.raises(DataValidationError, match=r"one split only"):
        build_dataset(items_src(tmp_path), log=log)


def test_hash_split_keeps_normalised_query_in_one_split(tmp_path):
    rows = "".join(f"query {i},1,1\nQUERY  {i},2,1\n" for i in range(60))
    ds = build_dataset(items_src(tmp_path), log=log_src(tmp_path, "query,sku,clicks\n" + rows))
    assert len(ds.queries) == 60  # "query 3" and "QUERY  3" are one query
    assert set(ds.queries["split"]) == {"train", "dev", "test"}


def test_save_load_round_trip(tmp_path):
    ds = build_dataset(items_src(tmp_path), log=log_src(tmp_path), name="tiny")
    ds.save(tmp_path / "ds")
    back = Dataset.load(tmp_path / "ds")
    for t in ("items", "queries", "log", "judgments"):
        pd.testing.assert_frame_equal(getattr(ds, t), getattr(back, t), check_dtype=False)
    assert back.name == "tiny"


def test_failed_save_keeps_previous_dataset(tmp_path, monkeypatch):
    ds = build_dataset(items_src(tmp_path), log=log_src(tmp_path), name="first")
    ds.save(tmp_path / "ds")
    import gsid.data.dataset as mod

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(mod.pq, "write_table", boom)
    with pytest.raises(OSError):
        ds.save(tmp_path / "ds2")
    with pytest.raises(OSError):
        ds.save(tmp_path / "ds")
    assert not (tmp_path / "ds2").exists()
    assert Dataset.load(tmp_path / "ds").name == "first"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_corrupted_dataset_gives_artifact_error(tmp_path, monkeypatch):
    build_dataset(items_src(tmp_path), log=log_src(tmp_path)).save(tmp_path / "ds")
    (tmp_path / "ds" / "items.parquet").write_bytes(b"not parquet")
    with pytest.raises(ArtifactError, match=r"items.parquet is corrupted"):
        Dataset.load(tmp_path / "ds")
    monkeypatch.setenv("GSID_VERIFY", "0")  # beneath the checksums, the reader's own check
    with pytest.raises(ArtifactError, match=r"corrupted.*import it again"):
        Dataset.load(tmp_path / "ds")
    (tmp_path / "ds" / "manifest.json").write_text("{", encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"corrupted"):
        Dataset.load(tmp_path / "ds")


def test_bucket_rule_volume_and_ties():
    items = pd.DataFrame({"item_id": ["1"], "title": ["x"]})
    freq = [100, 50, 30, 10, 10, 1, 1, 1]
    queries = pd.DataFrame(
        {
            "query_id": [f"q{i}" for i in range(8)],
            "query": [f"t{i}" for i in range(8)],
            "split": "dev",
            "frequency": freq,
        }
    )
    ds = Dataset(items=items, queries=queries)
    b = ds.buckets()
    # total 203: head takes the top third of traffic (q0 alone is 49%), torso up to 2/3
    assert b["q0"] == "head" and b["q1"] == "torso"
    assert b["q3"] == b["q4"]  # equal frequency, same bucket
    assert b["q7"] == "tail"
    rank = ds.buckets(BucketRule("rank", (0.25, 0.5)))
    assert list(rank[["q0", "q1", "q2", "q3"]]) == ["head", "head", "torso", "torso"]
    with pytest.raises(ValueError, match="cuts"):
        BucketRule("volume", (0.7, 0.2))
    assert BucketRule.parse("rank:0.1,0.5") == BucketRule("rank", (0.1, 0.5))
