"""The command line: import, info, bench, ids; errors are one clear line and exit code 2."""

from __future__ import annotations

import json

from gsid.cli import main
from gsid.data.splits import BucketRule
from gsid.ids import SemanticIDs
from gsid.ids.diagnostics import diagnose

ITEMS = "sku,name\n1,Red cordless drill\n2,Blue claw hammer\n3,LED light bulb 60W\n4,Garden hose 50 ft\n"
LOG = "query,sku,clicks,split\ncordless drill,1,5,train\nhammer,2,2,dev\nled bulb,3,1,dev\nhose,4,3,dev\n"


def _files(tmp_path):
    (tmp_path / "items.csv").write_text(ITEMS, encoding="utf-8")
    (tmp_path / "log.csv").write_text(LOG, encoding="utf-8")


def _import(tmp_path) -> int:
    """Write the fixture files and import them with `gsid data files` into tmp_path/ds."""
    _files(tmp_path)
    items, log, out = (str(tmp_path / n) for n in ("items.csv", "log.csv", "ds"))
    return main(["--no-progress", "data", "files", "--items", items, "--items-map",
                 "item_id=sku,title=name", "--log", log, "--log-map",
                 "item_id=sku,weight=clicks", "--out", out])  # fmt: skip


def test_import_info_and_bench(tmp_path, capsys):
    assert _import(tmp_path) == 0
    assert "imported 4 items, 4 queries" in capsys.readouterr().out
    assert main(["data", "info", str(tmp_path / "ds")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {
        "name": "ds",  # --out's name
        "items": 4,
        "queries": {"train": 1, "dev": 3, "test": 0},  # the log's split column
        "log_rows": 4,
        "judgments": 0,
        "category_depth": 0,
        "relevance_threshold": 1.0,
        "bucket_rule": BucketRule().to_dict(),
    }
    rc = main(["--no-progress", "bench", "--data", str(tmp_path / "ds"), "--methods", "bm25",
               "--no-timing", "--out", str(tmp_path / "rep"), "--set", "bm25.k1=1.2"])  # fmt: skip
    assert rc == 0
    report = json.loads((tmp_path / "rep" / "bench.json").read_text(encoding="utf-8"))
    assert report["methods"]["bm25"]["metrics"]["overall"]["R@1"] == 1.0
    assert "bm25" in (tmp_path / "rep" / "bench.md").read_text(encoding="utf-8")


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    _files(tmp_path)
    rc = main(
        ["data", "files", "--items", str(tmp_path / "items.csv"), "--out", str(tmp_path / "ds")]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "gsid: error:" in err and "--map item_id=" in err
    assert not (tmp_path / "ds").exists()  # a failed import writes nothing


def test_bench_rejects_unknown_method_and_option(tmp_path, capsys):
    assert _import(tmp_path) == 0
    capsys.readouterr()
    assert main(["bench", "--data", str(tmp_path / "ds"), "--methods", "nope"]) == 2
    assert "available methods" in capsys.readouterr().err
    assert main(["bench", "--data", str(tmp_path / "ds"), "--methods", "bm25",
                 "--set", "bm25.colour=1"]) == 2  # fmt: skip
    assert "its options are" in capsys.readouterr().err


def test_ids_build_report_repair(tmp_path, capsys):
    assert _import(tmp_path) == 0
    ids, fixed = str(tmp_path / "ids"), str(tmp_path / "fixed")
    assert main(["--no-progress", "ids", "build", "--data", str(tmp_path / "ds"), "--method",
                 "random", "--levels", "3", "--codebook-size", "4", "--out", ids]) == 0  # fmt: skip
    assert main(["ids", "report", ids, "--json", str(tmp_path / "d.json"),
                 "--plots", str(tmp_path / "plots")]) == 0  # fmt: skip
    built = SemanticIDs.load(ids)
    diag = json.loads((tmp_path / "d.json").read_text(encoding="utf-8"))
    assert diag == json.loads(json.dumps(diagnose(built), default=float))  # the full report
    assert {k: diag[k] for k in ("n_items", "n_levels", "codebook_sizes", "builder")} == {
        "n_items": 4,
        "n_levels": 3,
        "codebook_sizes": [4, 4, 4],
        "builder": "random",
    }
    # append resolves every collision: 4 distinct full-length IDs
    assert diag["length_histogram"] == {"3": 4} and diag["mean_length"] == 3.0
    assert diag["collision_rate"] == 0.0 and diag["n_unique_ids"] == 4
    assert [lv["level"] for lv in diag["levels"]] == [0, 1, 2]
    assert [lv["used"] for lv in diag["levels"]] == [
        len(set(built.codes[:, j].tolist())) for j in range(3)
    ]
    assert [lv["n_ending_here"] for lv in diag["levels"]] == [0, 0, 4]
    assert diag["sandglass"]["levels"] == [0, 1, 2] and diag["sandglass"]["middle_levels"] == [1]
    assert "unique IDs 4, collision rate 0.0000, mean length 3.00" in capsys.readouterr().out
    assert (tmp_path / "plots" / "code_distribution.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["ids", "repair", ids, "drop-level", "--level", "1", "--out", fixed]) == 0
    assert "drop-level: mean ID length 3.00 -> 2.00" in capsys.readouterr().out
    dropped = SemanticIDs.load(fixed)
    assert list(dropped.item_ids) == list(built.item_ids)
    # these four IDs stay distinct without level 1: the other two columns, nothing appended
    assert dropped.codes.tolist() == built.codes[:, [0, 2]].tolist()
    assert dropped.config["sandglass_repair"]["level"] == 1
