"""The command line: import, info, bench; errors are one clear line and exit code 2."""

from __future__ import annotations

import json

from gsid.cli import main

ITEMS = "sku,name\n1,Red cordless drill\n2,Blue claw hammer\n3,LED light bulb 60W\n4,Garden hose 50 ft\n"
LOG = "query,sku,clicks,split\ncordless drill,1,5,train\nhammer,2,2,dev\nled bulb,3,1,dev\nhose,4,3,dev\n"


def _files(tmp_path):
    (tmp_path / "items.csv").write_text(ITEMS, encoding="utf-8")
    (tmp_path / "log.csv").write_text(LOG, encoding="utf-8")


def test_import_info_and_bench(tmp_path, capsys):
    _files(tmp_path)
    rc = main(
        [
            "--no-progress",
            "data",
            "files",
            "--items",
            str(tmp_path / "items.csv"),
            "--items-map",
            "item_id=sku,title=name",
            "--log",
            str(tmp_path / "log.csv"),
            "--log-map",
            "item_id=sku,weight=clicks",
            "--out",
            str(tmp_path / "ds"),
        ]
    )
    assert rc == 0
    assert main(["data", "info", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    assert '"items": 4' in out
    rc = main(
        [
            "--no-progress",
            "bench",
            "--data",
            str(tmp_path / "ds"),
            "--methods",
            "bm25",
            "--no-timing",
            "--out",
            str(tmp_path / "rep"),
            "--set",
            "bm25.k1=1.2",
        ]
    )
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
    _files(tmp_path)
    main(
        [
            "data",
            "files",
            "--items",
            str(tmp_path / "items.csv"),
            "--items-map",
            "item_id=sku,title=name",
            "--log",
            str(tmp_path / "log.csv"),
            "--log-map",
            "item_id=sku",
            "--out",
            str(tmp_path / "ds"),
        ]
    )
    capsys.readouterr()
    assert main(["bench", "--data", str(tmp_path / "ds"), "--methods", "nope"]) == 2
    assert "available methods" in capsys.readouterr().err
    assert (
        main(
            ["bench", "--data", str(tmp_path / "ds"), "--methods", "bm25", "--set", "bm25.colour=1"]
        )
        == 2
    )
    assert "its options are" in capsys.readouterr().err


def test_ids_build_report_repair(tmp_path, capsys):
    _files(tmp_path)
    main(
        [
            "data",
            "files",
            "--items",
            str(tmp_path / "items.csv"),
            "--items-map",
            "item_id=sku,title=name",
            "--out",
            str(tmp_path / "ds"),
        ]
    )
    assert (
        main(
            [
                "--no-progress",
                "ids",
                "build",
                "--data",
                str(tmp_path / "ds"),
                "--method",
                "random",
                "--levels",
                "3",
                "--codebook-size",
                "4",
                "--out",
                str(tmp_path / "ids"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "ids",
                "report",
                str(tmp_path / "ids"),
                "--json",
                str(tmp_path / "d.json"),
                "--plots",
                str(tmp_path / "plots"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "d.json").read_text(encoding="utf-8"))
    assert (tmp_path / "plots" / "code_distribution.png").read_bytes()[:4] == b"\x89PNG"
    assert (
        main(
            [
                "ids",
                "repair",
                str(tmp_path / "ids"),
                "drop-level",
                "--level",
                "1",
                "--out",
                str(tmp_path / "fixed"),
            ]
        )
        == 0
    )
    assert "mean ID length" in capsys.readouterr().out
