"""`gsid index build | info`, `gsid search`, `gsid train` and `gsid.load`: the user's path from
a catalogue to an index searched from the shell; mistakes are one line and exit code 2."""

from __future__ import annotations

import io
import json

import pytest
from model_fixtures import tiny_dataset

import gsid
from gsid.cli import main

TINY_GSID = [
    "n_levels=2",
    "codebook_size=4",
    "batch_size=16",
    "warmup_batches=1",
    "init_from_data=true",
]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ds"
    tiny_dataset().save(path)
    return str(path)


@pytest.fixture(scope="module")
def bm25_index(tmp_path_factory, dataset_dir):
    out = str(tmp_path_factory.mktemp("idx") / "bm25")
    rc = main(["--no-progress", "index", "build", "--data", dataset_dir, "--method", "bm25",
               "--set", "k1=1.2", "--set", "bm25.b=0.7", "--out", out])  # fmt: skip
    assert rc == 0
    return out


def test_index_build_and_info(bm25_index, dataset_dir, capsys):
    assert main(["index", "info", bm25_index, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "bm25" and info["n_items"] == 48 and info["n_added"] == 0
    assert info["config"]["k1"] == 1.2 and info["config"]["b"] == 0.7
    assert info["dataset"]["fingerprint"] == gsid.data.Dataset.load(dataset_dir).fingerprint()
    assert info["gsid_version"] == gsid.__version__ and info["created"]
    assert main(["index", "info", bm25_index]) == 0
    text = capsys.readouterr().out
    assert "method: bm25" in text and "n_items: 48" in text


def test_search_from_arguments_and_stdin(bm25_index, capsys, monkeypatch):
    assert main(["search", bm25_index, "cordless drill", "garden hose", "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("query: ") == 2 and "cordless drill model" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("cordless drill\n\nmatte paint\n"))
    assert main(["search", bm25_index, "-k", "3", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["query"] for x in lines] == ["cordless drill", "matte paint"]
    hit = lines[0]["results"][0]
    assert set(hit) == {"rank", "item_id", "title", "score"} and "drill" in hit["title"]


def test_mistakes_are_one_line(bm25_index, dataset_dir, tmp_path, capsys):
    cases = [
        (["index", "build", "--data", dataset_dir, "--method", "nope", "--out", str(tmp_path / "a")],
         "unknown method"),
        (["index", "build", "--data", dataset_dir, "--method", "bm25", "--set", "dense.x=1",
          "--out", str(tmp_path / "b")], "another method"),
        (["index", "build", "--data", dataset_dir, "--method", "bm25", "--set", "k9=1",
          "--out", str(tmp_path / "c")], "no option"),
        (["index", "build", "--data", dataset_dir, "--method", "bm25", "--out", dataset_dir],
         "input"),
        (["search", str(tmp_path / "missing"), "drill"], "no such directory"),
        (["index", "info", dataset_dir], "gsid-dataset"),
        (["search", bm25_index, "drill", "-k", "0"], "k must be"),
    ]  # fmt: skip
    for argv, says in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_train_resume_rules_and_a_gsid_gr_index_from_the_run(dataset_dir, tmp_path, capsys):
    run = str(tmp_path / "run")
    sets = [x for s in TINY_GSID for x in ("--set", s)]
    argv = ["--no-progress", "train", "--data", dataset_dir, "--out", run,
            "--cache", str(tmp_path / "cache"), *sets]  # fmt: skip
    assert main(argv) == 0
    assert "gsid index build --method gsid-gr" in capsys.readouterr().out
    assert main(argv) == 2  # a finished run is not silently retrained
    assert "finished run" in capsys.readouterr().err
    (tmp_path / "run" / "checkpoint").mkdir()
    assert main(argv) == 2  # an interrupted run needs --resume
    assert "--resume" in capsys.readouterr().err
    (tmp_path / "run" / "checkpoint").rmdir()
    out = str(tmp_path / "idx")
    rc = main(["--no-progress", "index", "build", "--data", dataset_dir, "--method", "gsid-gr",
               "--set", f"model_dir={run}", "--set", "rescore=cosine", "--out", out,
               "--cache", str(tmp_path / "cache")])  # fmt: skip
    assert rc == 0
    capsys.readouterr()
    assert main(["search", out, "cordless drill", "-k", "2", "--json"]) == 0
    hit = json.loads(capsys.readouterr().out)["results"][0]
    assert hit["code"] and "-" in hit["code"]
    r = gsid.load(out)
    assert r.name == "gsid-gr" and r.titles(["i0"]) == ["acme cordless drill model 0"]
