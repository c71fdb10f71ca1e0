"""Bad inputs, as a new user meets them: every mistake gets exit code 2 and one line that says
what was wrong, and no file outside the command's target is touched. The table of these cases
is docs/bad-inputs.md."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gsid.cli import main
from gsid.data import Dataset
from gsid.data.synthetic import make_marketplace
from gsid.errors import ArtifactError

ITEMS = "item_id,title,category\ni1,red cordless drill,Tools\ni2,blue garden hose,Garden\n"
LOG = "query,item_id\ndrill,i1\nhose,i2\n"


# ---------------------------------------------------------------- helpers
def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and directory under root: (mode, size, digest) — to prove nothing changed."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.blake2b(p.read_bytes(), digest_size=8).hexdigest() if p.is_file() else ""
        out[p.relative_to(root).as_posix()] = (stat.S_IFMT(st.st_mode), st.st_size, digest)
    return out


def clear(capsys, argv: list[str], root: Path, *phrases: str) -> str:
    """Run the CLI; assert exit 2, exactly one line on stderr containing `phrases`, and that
    nothing under `root` changed. Returns the line."""
    capsys.readouterr()
    before = snapshot(root)
    rc = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2, (rc, err)
    assert len(err) == 1, err
    assert err[0].startswith("gsid"), err
    assert "Traceback" not in err[0]
    for phrase in phrases:
        assert phrase in err[0], (phrase, err[0])
    assert snapshot(root) == before, "a failed command touched files"
    return err[0]


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Path:
    """A user's working directory: their CSV files, a foreign folder, a gsid dataset."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "items.csv").write_text(ITEMS, encoding="utf-8")
    (tmp_path / "log.csv").write_text(LOG, encoding="utf-8")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my own work", encoding="utf-8")
    assert main(["data", "synth", "--items", "300", "--out", "ds"]) == 0
    return tmp_path


def files_args(out: str = "new", *extra: str) -> list[str]:
    return ["data", "files", "--items", "items.csv", "--log", "log.csv", "--out", out, *extra]


# ---------------------------------------------------------------- data loss
@pytest.mark.parametrize(
    "argv",
    [
        files_args("mine"),
        ["data", "synth", "--items", "100", "--out", "mine"],
        ["ids", "build", "--data", "ds", "--method", "random", "--out", "mine"],
        ["data", "synth", "--items", "100", "--out", "mine", "--force"],  # never a foreign dir
    ],
    ids=["data-files", "data-synth", "ids-build", "force"],
)
def test_out_never_replaces_a_foreign_directory(ws, capsys, argv):
    clear(capsys, argv, ws, "gsid did not write")
    assert (ws / "mine" / "notes.txt").read_text(encoding="utf-8") == "my own work"


def test_out_never_replaces_an_input(ws, capsys):
    shutil.copy(ws / "items.csv", ws / "ds" / "items.csv")  # the user's CSV inside a dataset
    clear(capsys, files_args("ds", "--items", "ds/items.csv"), ws, "an input of this command")
    clear(capsys, ["ids", "build", "--data", "ds", "--method", "random", "--out", "ds"], ws,
          "an input of this command")  # fmt: skip
    assert Dataset.load(ws / "ds").name == "synthetic-300"


def test_out_kind_rule_and_force(ws, capsys):
    clear(capsys, ["data", "synth", "--items", "100", "--out", "."], ws, "current directory")
    (ws / "afile").write_text("x", encoding="utf-8")
    clear(capsys, ["data", "synth", "--items", "100", "--out", "afile"], ws, "not a directory")
    assert main(["ids", "build", "--data", "ds", "--method", "random", "--out", "ids"]) == 0
    # a gsid artifact of another kind: refused, then replaced with --force
    clear(capsys, ["data", "synth", "--items", "100", "--out", "ids"], ws, "--force")
    assert main(["data", "synth", "--items", "100", "--out", "ids", "--force"]) == 0
    assert Dataset.load(ws / "ids").name == "synthetic-100"
    # the same kind is replaced without asking (rerunning a command)
    assert main(["data", "synth", "--items", "120", "--out", "ds"]) == 0
    assert Dataset.load(ws / "ds").name == "synthetic-120"
    assert main(["data", "synth", "--items", "100", "--out", "empty_dir_is_fine"]) == 0


# ---------------------------------------------------------------- silent wrong data
def test_wrong_csv_shapes_are_refused(ws, capsys):
    (ws / "extra.csv").write_text("item_id,title\ni1,red drill,x\ni2,hose,y\n", encoding="utf-8")
    clear(capsys, files_args("new", "--items", "extra.csv"), ws, "line 2 has 3 fields")
    (ws / "header.csv").write_text("item_id,title\n", encoding="utf-8")
    clear(capsys, files_args("new", "--items", "header.csv"), ws, "no data rows")
    (ws / "empty.csv").write_bytes(b"")
    clear(capsys, files_args("new", "--items", "empty.csv"), ws, "empty (0 bytes)")
    (ws / "huge.csv").write_text(f"item_id,title\ni1,{'a' * 1_000_000}\n", encoding="utf-8")
    clear(capsys, files_args("new", "--items", "huge.csv"), ws, "more than the limit of 2,000")
    clear(capsys, files_args("new", "--items", "mine"), ws, "is a directory")
    clear(capsys, files_args("new", "--items", "nope.csv"), ws, "no such file")


def test_relevance_threshold(ws, capsys):
    (ws / "j.csv").write_text("query,item_id,grade\ndrill,i1,1\nhose,i2,2\n", encoding="utf-8")
    base = ["data", "files", "--items", "items.csv", "--judgments", "j.csv", "--out", "new"]
    clear(capsys, [*base, "--relevance-threshold", "nan"], ws, "finite number")
    clear(capsys, [*base, "--relevance-threshold", "3"], ws, "no judgment reaches", "1 to 2")
    (ws / "j2.csv").write_text("query,item_id,grade\ndrill,i1,1\ndrill,i1,2\n", encoding="utf-8")
    clear(capsys, [*base[:4], "--judgments", "j2.csv", "--out", "new"], ws, "judges pair")


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (
            [
                "ids",
                "build",
                "--data",
                "ds",
                "--method",
                "random",
                "--codebook-size",
                "1",
                "--out",
                "x",
            ],
            ">= 2",
        ),
        (
            ["ids", "build", "--data", "ds", "--method", "rq", "--set", "niter=abc", "--out", "x"],
            "niter='abc' must be an integer",
        ),
        (
            ["bench", "--data", "ds", "--methods", "bm25", "--set", "bm25.stem=maybe"],
            "stem='maybe' must be true or false",
        ),
        (
            ["bench", "--data", "ds", "--methods", "bm25", "--set", "bm25.k1=abc"],
            "k1='abc' must be a finite number",
        ),
        (["ids", "assign", "--model", "nowhere", "--text", ""], "--text 0 is empty"),
        (["ids", "assign", "--model", "nowhere", "--text", "a" * 100_000], "100000 characters"),
        (files_args("new", "--split-fractions", "a,b,c"), "--split-fractions"),
        (files_args("new", "--split-fractions", "0.5,0.5"), "--split-fractions"),
        (files_args("new", "--split-fractions", "0.9,0.2,0.1"), "--split-fractions"),
        (files_args("new", "--split-fractions", "nan,0.5,0.5"), "--split-fractions"),
        (files_args("new", "--buckets", "volume"), "bucket rule"),
        (files_args("new", "--buckets", "size:0.1,0.2"), "bucket method"),
        (["bench", "--data", "synthetic:abc"], "whole number"),
        (["data", "synth", "--items", "0", "--out", "x"], "n_items"),
        (["data", "synth", "--items", "abc", "--out", "x"], "invalid int value"),
        (["ids", "report", "ds"], "expected 'gsid-semantic-ids'"),
        (["data", "info", "mine"], "manifest.json is missing"),
        (["data", "info", "nowhere"], "no such directory"),
        (["bench", "--data", "ds", "--out", "afile/rep"], "is a file"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_mistakes_get_one_clear_line(ws, capsys, argv, phrase):
    (ws / "afile").write_text("x", encoding="utf-8")
    t0 = time.perf_counter()
    clear(capsys, argv, ws, phrase)
    assert time.perf_counter() - t0 < 30  # refused before any long work (no embedding)
    assert not (ws / "cache").exists()


def test_k_above_the_catalogue_is_capped():
    from gsid.retrieval.bm25 import BM25Retriever

    ds = make_marketplace(n_items=300, seed=0)
    ids, scores = BM25Retriever().index(ds).search(["drill"], k=10**6)
    assert ids.shape == scores.shape == (1, 300)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
def test_read_only_out_is_refused_before_the_work(ws, capsys):
    (ws / "ro").mkdir()
    (ws / "ro").chmod(0o500)
    clear(capsys, ["bench", "--data", "ds", "--methods", "bm25", "--out", "ro"], ws, "writable")


# ---------------------------------------------------------------- integrity
def _artifacts(root: Path) -> dict[str, tuple[Path, object]]:
    """name -> (directory, loader) for one saved artifact of each kind."""
    from gsid.ids import SemanticIDs, build_ids
    from gsid.retrieval.base import load_retriever
    from gsid.retrieval.bm25 import BM25Retriever

    ds = make_marketplace(n_items=300, seed=0)
    ds.save(root / "ds")
    build_ids("random", None, ds.item_ids, levels=2, codebook_size=8).save(root / "ids")
    BM25Retriever().index(ds).save(root / "bm25")
    return {
        "dataset": (root / "ds", Dataset.load),
        "ids": (root / "ids", SemanticIDs.load),
        "bm25": (root / "bm25", load_retriever),
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, tuple[Path, object]]:
    """Small artifacts of every kind, built once: dataset, IDs, BM25, a dense retriever with
    its own (fine-tuned) encoder weights and faiss index, and a GSID model."""
    from model_fixtures import all_texts, save_tiny_t5, small, tiny_dataset

    from gsid.models.model import GSIDModel
    from gsid.models.train import train_gsid
    from gsid.retrieval.base import load_retriever
    from gsid.retrieval.dense import DenseRetriever
    from gsid.text.finetune import FineTuneConfig, finetune_encoder

    root = tmp_path_factory.mktemp("artifacts")
    out = _artifacts(root)
    tiny = tiny_dataset()
    ft = finetune_encoder(
        tiny, root / "ft", FineTuneConfig(epochs=1, batch_size=8, max_seq_length=16),
        show_progress=False,
    )  # fmt: skip
    DenseRetriever(model=str(ft.query_model)).index(tiny).save(root / "dense")
    out["dense"] = (root / "dense", load_retriever)
    t5 = save_tiny_t5(root / "t5", all_texts(tiny))
    train_gsid(tiny, small(t5, epochs_per_level=1), root / "gsid", show_progress=False)
    out["gsid-model"] = (root / "gsid" / "model", GSIDModel.load)
    return out


def _artifact_root(path: Path, top: Path) -> Path:
    """The nearest directory at or above `path` (within `top`) that holds a manifest."""
    for d in path.parents:
        if (d / "manifest.json").is_file():
            return d
        if d == top:
            break
    return top


def test_every_artifact_file_is_checksummed_once(saved):
    """Every file is listed in exactly one manifest: its nearest artifact's (a nested artifact
    lists its own files, so no file is hashed twice on load)."""
    for name, (path, load) in saved.items():
        listed: dict[str, int] = {}
        for m in path.rglob("manifest.json"):
            for rel in json.loads(m.read_text(encoding="utf-8"))["files"]:
                full = (m.parent / rel).relative_to(path).as_posix()
                listed[full] = listed.get(full, 0) + 1
                assert _artifact_root(m.parent / rel, path) == m.parent, (name, full)
        on_disk = {
            p.relative_to(path).as_posix()
            for p in path.rglob("*")
            if p.is_file() and p.name != "manifest.json"
        }
        assert set(listed) == on_disk and set(listed.values()) == {1}, name
        load(path)  # loads cleanly


@pytest.mark.parametrize("name", ["dataset", "ids", "bm25", "dense", "gsid-model"])
def test_junk_in_any_artifact_file_is_refused(saved, tmp_path, name):
    """Property: a flipped byte, a truncation or random junk in any one file -> ArtifactError
    naming that file, never a silent change of results or a crash."""
    src, load = saved[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.name != "manifest.json")
    for f in files:
        rel = f.relative_to(src).as_posix()
        for damage in ("flip", "truncate", "junk"):
            work = tmp_path / f"{damage}-{f.name}"
            shutil.copytree(src, work)
            target = work / rel
            data = bytearray(target.read_bytes())
            if damage == "flip" and data:
                i = int(rng.integers(len(data)))
                data[i] ^= 1 << int(rng.integers(8))
            elif damage == "truncate":
                data = data[: int(rng.integers(len(data))) if data else 0]
            else:
                data = bytearray(rng.bytes(int(rng.integers(1, 4096))))
            target.write_bytes(bytes(data))
            root = _artifact_root(target, work)  # the artifact whose manifest lists the file
            inner = target.relative_to(root).as_posix()
            with pytest.raises(ArtifactError, match=re.escape(f"{root.name}: {inner}")):
                load(work)
            shutil.rmtree(work)


def test_checks_beneath_the_checksums(tmp_path, monkeypatch):
    """GSID_VERIFY=0 skips the checksums; the readers' own checks still refuse damage."""
    from gsid.ids import SemanticIDs
    from gsid.retrieval.base import load_retriever

    arts = _artifacts(tmp_path)
    monkeypatch.setenv("GSID_VERIFY", "0")
    codes = tmp_path / "ids" / "codes.npy"
    raw = bytearray(codes.read_bytes())
    raw[8:20] = b"{'descr': 'x"  # a damaged npy header
    codes.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="corrupted"):
        SemanticIDs.load(tmp_path / "ids")
    # BM25 postings that point past the catalogue: refused before native code reads them
    sub = next((tmp_path / "bm25").rglob("indices*.npy"))
    ind = np.load(sub)
    ind[len(ind) // 2] = 10**6
    np.save(sub, ind)
    with pytest.raises(ArtifactError, match="out of bounds"):
        load_retriever(arts["bm25"][0])


def test_gsid_model_damage(saved, tmp_path, monkeypatch):
    from gsid.models.model import GSIDModel

    model_dir = tmp_path / "m"
    shutil.copytree(saved["gsid-model"][0], model_dir)
    shutil.rmtree(model_dir / "tokenizer")
    with pytest.raises(ArtifactError, match="tokenizer") as info:
        GSIDModel.load(model_dir)
    assert "hub" not in str(info.value).lower()
    monkeypatch.setenv("GSID_VERIFY", "0")
    with pytest.raises(ArtifactError, match="tokenizer is missing"):
        GSIDModel.load(model_dir)
    shutil.rmtree(model_dir)
    shutil.copytree(saved["gsid-model"][0], model_dir)
    w = model_dir / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])  # truncated safetensors
    with pytest.raises(ArtifactError, match="cannot be restored"):
        GSIDModel.load(model_dir)


# ---------------------------------------------------------------- processes and leaks
def _gsid(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gsid.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **kw,
    )


def test_broken_pipe_is_quiet(ws):
    assert main(["ids", "build", "--data", "ds", "--method", "random", "--out", "ids"]) == 0
    cmd = f"{sys.executable} -m gsid.cli ids report ids | head -1"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ws)
    assert r.stdout.strip() and r.stderr == "", r.stderr


def test_sigterm_cleans_up_and_a_kill_leaves_nothing_forever(ws):
    """SIGTERM mid-write: exit 143, the previous artifact intact, no temporary left. SIGKILL
    mid-write: the hidden temporary it leaves is removed by the next write."""
    before = snapshot(ws / "ds")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        p = _gsid("data", "synth", "--items", "50000", "--out", "ds", cwd=ws)
        deadline = time.time() + 60
        while not list(ws.glob(".ds.tmp-*")) and time.time() < deadline and p.poll() is None:
            time.sleep(0.01)  # wait until the write has begun
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        assert snapshot(ws / "ds") == before
        if sig == signal.SIGTERM:
            assert p.returncode == 143 and err.strip().splitlines()[-1] == "gsid: terminated"
            assert not list(ws.glob(".ds.*"))
    assert list(ws.glob(".ds.tmp-*"))  # what kill -9 left
    assert main(["data", "synth", "--items", "100", "--out", "ds"]) == 0
    assert not list(ws.glob(".ds.*"))


def test_sigterm_in_a_finaliser_is_delivered_again(monkeypatch):
    """A signal handled inside __del__ (the garbage collector runs finalisers anywhere) must
    not be lost: Python drops exceptions raised there, so the handler re-sends it."""
    import gsid.cli as cli

    timers = []
    monkeypatch.setattr(cli.threading, "Timer", lambda *a: timers.append(a) or type(
        "T", (), {"start": lambda self: None})())  # fmt: skip

    class Finalised:
        def __del__(self):
            cli._on_sigterm(signal.SIGTERM, sys._getframe())

    Finalised()  # no exception escapes the finaliser, a re-delivery is scheduled
    assert len(timers) == 1 and timers[0][1] is os.kill
    assert timers[0][2] == (os.getpid(), signal.SIGTERM)
    with pytest.raises(cli._Terminated):
        cli._on_sigterm(signal.SIGTERM, sys._getframe())


def test_sigterm_removes_temporary_directories(ws, tmp_path_factory):
    """dense-ft trains into a temporary directory; SIGTERM must remove it like Ctrl-C does."""
    tmpdir = tmp_path_factory.mktemp("tmpdir")
    p = _gsid("bench", "--data", "ds", "--methods", "dense-ft", "--no-timing", "--out", "rep",
              env={"TMPDIR": str(tmpdir)}, cwd=ws)  # fmt: skip
    deadline = time.time() + 120
    while not list(tmpdir.glob("gsid-dense-ft-*")) and time.time() < deadline:
        assert p.poll() is None, p.communicate()
        time.sleep(0.1)
    assert list(tmpdir.glob("gsid-dense-ft-*"))
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=120)
    assert p.returncode == 143
    assert not list(tmpdir.glob("gsid-*"))


def test_orphaned_old_copy_is_restored(ws):
    """Killed between the two renames: the previous artifact sits in .ds.old-PID alone."""
    dead = 2**22 + 1  # above pid_max on common systems: never a live process
    (ws / "ds").rename(ws / f".ds.old-{dead}")
    (ws / f".ds.tmp-{dead}-abc").mkdir()
    assert main(["data", "synth", "--items", "50", "--out", "ds"]) == 2  # fails (< 100) ...
    assert Dataset.load(ws / "ds").name == "synthetic-300"  # ... yet the old copy is back
    assert not list(ws.glob(".ds.*"))


def test_directories_follow_the_umask(ws):
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE((ws / "ds").stat().st_mode) == 0o777 & ~mask


def test_progress_lines_when_not_a_terminal(ws):
    env = {k: v for k, v in os.environ.items() if k != "GSID_NO_PROGRESS"}
    env["GSID_PROGRESS_INTERVAL"] = "0"  # a line at every 10%, however fast the loop
    r = subprocess.run([sys.executable, "-m", "gsid.cli", "data", "synth", "--items", "500",
                        "--out", "p"], capture_output=True, text=True, cwd=ws, env=env)  # fmt: skip
    assert r.returncode == 0
    lines = r.stderr.splitlines()
    assert any(line.startswith("gsid: synthetic: 100% (5/5)") for line in lines), lines
    r = subprocess.run([sys.executable, "-m", "gsid.cli", "--no-progress", "data", "synth",
                        "--items", "500", "--out", "p"], capture_output=True, text=True, cwd=ws,
                       env=env)  # fmt: skip
    assert r.returncode == 0 and r.stderr == ""


def test_line_progress_over_numpy_arrays_and_quiet_for_quick_loops(capsys, monkeypatch):
    from gsid._progress import LineProgress

    monkeypatch.setenv("GSID_PROGRESS_INTERVAL", "0")
    assert list(LineProgress(np.arange(4), desc="four")) == [0, 1, 2, 3]  # no truth-value error
    assert "gsid: four: 100% (4/4)" in capsys.readouterr().err
    monkeypatch.setenv("GSID_PROGRESS_INTERVAL", "60")
    assert sum(LineProgress(range(1000), desc="quick")) == 499500
    assert capsys.readouterr().err == ""


def test_a_bench_logs_its_stages_when_not_a_terminal(ws):
    env = {k: v for k, v in os.environ.items() if k != "GSID_NO_PROGRESS"}
    env["GSID_PROGRESS_INTERVAL"] = "0"
    r = subprocess.run([sys.executable, "-m", "gsid.cli", "bench", "--data", "ds", "--methods",
                        "bm25", "--latency-sample", "20", "--out", "rep"],
                       capture_output=True, text=True, cwd=ws, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert "gsid: bm25: indexing 300 items" in lines and "gsid: bm25: done" in lines
    assert any(line.startswith("gsid: bm25 latency: 100%") for line in lines), lines
