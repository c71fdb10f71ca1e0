"""Run every bad input of the robustness study against one checkout of gsid and classify what
happened; write the case / before / after table.

    python benchmarks/bad_inputs.py --src src --label after --out benchmarks/results/bad_inputs.json
    python benchmarks/bad_inputs.py --src /tmp/old/src --label before --out ... (merged by label)

Each case runs in a fresh copy of a user's working directory (their CSV files, a folder of their
own, a gsid dataset and IDs). Outcomes:
- CLEAR: exit 2, one line on stderr starting with "gsid", no traceback, nothing changed outside
  the target (for Python cases: a gsid error with its message, or the documented result);
- DATA LOSS: a file the user had was changed or removed;
- SILENT: the command succeeded (or the load returned) although the input was wrong;
- TRACEBACK / CRASH / UNCLEAR (exit code, lines on stderr): anything else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, write_results

ITEMS = "item_id,title,category\ni1,red cordless drill,Tools\ni2,blue garden hose,Garden\n"
LOG = "query,item_id\ndrill,i1\nhose,i2\n"
FILES = ["data", "files", "--items", "items.csv", "--log", "log.csv"]
RQ = ["ids", "build", "--data", "ds", "--method", "rq"]
LOAD = "from gsid.{m} import {c}; {c}.load({p!r})"
LOAD_GSID = (
    "try:\n    from gsid.models.model import GSIDModel\n"
    "except ImportError:\n    from gsid.indexer.model import GSIDModel\n"
    "GSIDModel.load('gsid/model')"
)


def _flip(ws: Path, rel: str) -> None:
    p = ws / rel
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x10
    p.write_bytes(bytes(data))


def _write(rel: str, text: str):
    return lambda ws: (ws / rel).write_text(text, encoding="utf-8")


SIGTERM = """import signal, subprocess, sys, time
from pathlib import Path
p = subprocess.Popen([sys.executable, '-m', 'gsid.cli', 'data', 'synth', '--items', '50000',
                      '--out', 'ds'], stderr=subprocess.PIPE, text=True)
while not list(Path().glob('.ds.tmp-*')) and p.poll() is None:
    time.sleep(0.01)
p.send_signal(signal.SIGTERM)
p.communicate()
left = list(Path().glob('.ds.*'))
verdict = f'SILENT left {left[0].name}' if left else f'CLEAR exit {p.returncode}, nothing left'
"""


# (case, group, command: argv list or Python code, setup(ws) or None)
CASES: list[tuple[str, str, list[str] | str, object]] = [
    ("data files --out a folder of the user's", "data loss", [*FILES, "--out", "mine"], None),
    ("data synth --out a folder of the user's", "data loss",
     ["data", "synth", "--items", "100", "--out", "mine"], None),
    ("ids build --out a folder of the user's", "data loss",
     ["ids", "build", "--data", "ds", "--method", "random", "--out", "mine"], None),
    ("data files --out the folder holding --items", "data loss",
     ["data", "files", "--items", "ds/items.csv", "--out", "ds"],
     lambda ws: shutil.copy(ws / "items.csv", ws / "ds" / "items.csv")),
    ("ids build --data ds --out ds", "data loss",
     ["ids", "build", "--data", "ds", "--method", "random", "--out", "ds"], None),
    ("CSV with one field too many on every row", "silent",
     ["data", "files", "--items", "extra.csv", "--out", "new"],
     _write("extra.csv", "item_id,title\ni1,red drill,x\ni2,hose,y\n")),
    ("header-only catalogue", "silent", ["data", "files", "--items", "h.csv", "--out", "new"],
     _write("h.csv", "item_id,title\n")),
    ("a 1 MB title", "silent", ["data", "files", "--items", "big.csv", "--out", "new"],
     _write("big.csv", "item_id,title\ni1," + "a" * 1_000_000 + "\n")),
    ("--relevance-threshold nan", "silent",
     ["data", "files", "--items", "items.csv", "--judgments", "j.csv", "--relevance-threshold",
      "nan", "--out", "new"], _write("j.csv", "query,item_id,grade\ndrill,i1,1\nhose,i2,2\n")),
    ("--relevance-threshold above every grade", "silent",
     ["data", "files", "--items", "items.csv", "--judgments", "j.csv", "--relevance-threshold",
      "3", "--out", "new"], _write("j.csv", "query,item_id,grade\ndrill,i1,1\nhose,i2,2\n")),
    ("--codebook-size 1", "silent",
     ["ids", "build", "--data", "ds", "--method", "random", "--codebook-size", "1", "--out", "x"],
     None),
    ("--set bm25.stem=maybe", "silent",
     ["bench", "--data", "ds", "--methods", "bm25", "--no-timing", "--set", "bm25.stem=maybe",
      "--out", "rep"], None),
    ("ids assign --text ''", "silent", ["ids", "assign", "--model", "gsid/model", "--text", ""],
     None),
    ("ids assign --text of 100,000 characters", "silent",
     ["ids", "assign", "--model", "gsid/model", "--text", "a" * 100_000], None),
    ("search(k=10**6) on 300 items", "silent",
     "from gsid.data import Dataset; from gsid.retrieval.bm25 import BM25Retriever\n"
     "r = BM25Retriever().index(Dataset.load('ds')).search(['drill'], k=10**6)\n"
     "verdict = 'CLEAR capped at 300' if r.ids.shape == (1, 300) else f'SILENT shape {r.ids.shape}'",
     None),
    ("a flipped byte in codes.npy", "integrity", LOAD.format(m="ids", c="SemanticIDs", p="ids"),
     lambda ws: _flip(ws, "ids/codes.npy")),
    ("a flipped byte in a BM25 matrix", "integrity",
     "from gsid.retrieval.base import load_retriever; load_retriever('bm25')",
     lambda ws: _flip(ws, "bm25/bm25s/data.csc.index.npy")),
    ("BM25 postings out of bounds", "integrity",
     "from gsid.retrieval.base import load_retriever; load_retriever('bm25')",
     lambda ws: _bad_postings(ws)),
    ("a flipped byte in a dataset table", "integrity",
     LOAD.format(m="data", c="Dataset", p="ds"), lambda ws: _flip(ws, "ds/items.parquet")),
    ("a flipped byte in a faiss index", "integrity",
     "from gsid.retrieval.base import load_retriever; load_retriever('dense')",
     lambda ws: _flip(ws, "dense/faiss.index")),
    ("a flipped byte in a GSID weight", "integrity",
     LOAD_GSID,
     lambda ws: _flip(ws, "gsid/model/model.safetensors")),
    ("a truncated safetensors file", "traceback",
     LOAD_GSID,
     lambda ws: _truncate(ws, "gsid/model/model.safetensors")),
    ("a deleted tokenizer folder", "traceback",
     LOAD_GSID,
     lambda ws: shutil.rmtree(ws / "gsid" / "model" / "tokenizer")),
    ("gsid ... | head -1 (a long output)", "traceback",
     ("sh", f"{sys.executable} -m gsid.cli ids assign --model gsid/model --data synthetic:20000"
            " | head -1"), None),
    ("SIGTERM during a write", "leak", SIGTERM, None),
    ("a temporary left by kill -9", "leak",
     "import subprocess, sys; from pathlib import Path\n"
     "Path('.ds.tmp-4194305-x').mkdir()\n"
     "subprocess.run([sys.executable, '-m', 'gsid.cli', 'data', 'synth', '--items', '100', '--out', 'ds'], check=True)\n"
     "verdict = 'SILENT left' if list(Path().glob('.ds.*')) else 'CLEAR removed by the next write'", None),
    ("mode of a new artifact directory", "leak",
     "import os, stat; m = stat.S_IMODE(os.stat('ds').st_mode)\n"
     "verdict = ('CLEAR' if m == 0o777 & ~0o022 else 'SILENT') + f' mode {m:o} under umask 022'", None),
    ("progress when stderr is not a terminal", "leak",
     "import os, subprocess, sys; env = {k: v for k, v in os.environ.items() if k != 'GSID_NO_PROGRESS'}\n"
     "env['GSID_PROGRESS_INTERVAL'] = '0'  # a line per 10% however fast (default: one per 5 s)\n"
     "r = subprocess.run([sys.executable, '-m', 'gsid.cli', 'data', 'synth', '--items', '2000', '--out', 'p'], capture_output=True, text=True, env=env)\n"
     "n = sum(line.startswith('gsid: ') for line in r.stderr.splitlines())\n"
     "verdict = f'CLEAR {n} progress lines' if n else 'SILENT no progress lines'", None),
    ("a 0-byte --items file", "traceback",
     ["data", "files", "--items", "empty.csv", "--out", "new"], _write("empty.csv", "")),
    ("a directory as --items", "traceback", ["data", "files", "--items", "mine", "--out", "new"],
     None),
    ("--split-fractions a,b,c", "traceback", [*FILES, "--split-fractions", "a,b,c", "--out", "n"],
     None),
    ("--split-fractions 0.9,0.2,0.1", "traceback",
     [*FILES, "--split-fractions", "0.9,0.2,0.1", "--out", "n"], None),
    ("--buckets volume", "traceback", [*FILES, "--buckets", "volume", "--out", "n"], None),
    ("--data synthetic:abc", "traceback", ["bench", "--data", "synthetic:abc"], None),
    ("data synth --items 0", "traceback", ["data", "synth", "--items", "0", "--out", "x"], None),
    ("--set bm25.k1=abc", "traceback",
     ["bench", "--data", "ds", "--methods", "bm25", "--no-timing", "--set", "bm25.k1=abc",
      "--out", "rep"], None),
    ("ids build --set niter=abc", "traceback", [*RQ, "--set", "niter=abc", "--out", "x"], None),
    ("--out .", "traceback", ["data", "synth", "--items", "100", "--out", "."], None),
    ("bench --out under a file", "traceback",
     ["bench", "--data", "ds", "--methods", "bm25", "--no-timing", "--out", "afile/rep"], None),
    ("a damaged npy header (checksums off)", "traceback",
     "import os; os.environ['GSID_VERIFY'] = '0'\n" + LOAD.format(m="ids", c="SemanticIDs", p="ids"),
     lambda ws: _damage_header(ws)),
    ("ids report on a dataset directory", "traceback", ["ids", "report", "ds"], None),
    ("data info on a folder of the user's", "traceback", ["data", "info", "mine"], None),
]  # fmt: skip


def _bad_postings(ws: Path) -> None:
    import numpy as np

    f = ws / "bm25" / "bm25s" / "indices.csc.index.npy"
    a = np.load(f)
    a[len(a) // 2] = 10**6
    np.save(f, a)


def _truncate(ws: Path, rel: str) -> None:
    p = ws / rel
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _damage_header(ws: Path) -> None:
    p = ws / "ids" / "codes.npy"
    raw = bytearray(p.read_bytes())
    raw[8:20] = b"{'descr': 'x"
    p.write_bytes(bytes(raw))


PY_WRAP = """
import sys
try:
    from gsid.errors import GsidError
except ImportError:
    GsidError = ()
try:
{body}
except GsidError as e:
    print('CLEAR', str(e).splitlines()[0][:160]); sys.exit(0)
except Exception as e:
    print('TRACEBACK', type(e).__name__, str(e).splitlines()[0][:160] if str(e) else ''); sys.exit(0)
else:
    print(globals().get('verdict', 'SILENT'))
"""


def _snapshot(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.blake2b(p.read_bytes(), digest_size=8).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _template(src: Path, work: Path) -> Path:
    ws = work / "template"
    ws.mkdir()
    (ws / "items.csv").write_text(ITEMS, encoding="utf-8")
    (ws / "log.csv").write_text(LOG, encoding="utf-8")
    (ws / "mine").mkdir()
    (ws / "mine" / "notes.txt").write_text("my own work", encoding="utf-8")
    (ws / "afile").write_text("x", encoding="utf-8")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from gsid.data.synthetic import make_marketplace; from gsid.ids import build_ids\n"
        "from gsid.retrieval.bm25 import BM25Retriever\n"
        "from gsid.retrieval.dense import DenseRetriever\n"
        "try:\n    from gsid.models.train import train_gsid\n"
        "    from model_fixtures import all_texts, save_tiny_t5, small, tiny_dataset\n"
        "except ImportError:  # a checkout from before gsid.indexer became gsid.models\n"
        "    from gsid.indexer.train import train_gsid\n"
        "    from indexer_fixtures import all_texts, save_tiny_t5, small, tiny_dataset\n"
        "ds = make_marketplace(n_items=300, seed=0); ds.save('ds')\n"
        "build_ids('random', None, ds.item_ids, levels=2, codebook_size=8).save('ids')\n"
        "BM25Retriever().index(ds).save('bm25')\n"
        "DenseRetriever().index(ds).save('dense')\n"
        "tiny = tiny_dataset(); t5 = save_tiny_t5('/tmp/gsid-bad-inputs-t5', all_texts(tiny))\n"
        "train_gsid(tiny, small(t5, epochs_per_level=1), 'gsid', show_progress=False)\n"
    )
    tests = src.parent / "tests"  # the tested checkout's own fixtures
    subprocess.run([sys.executable, "-c", code, str(tests)], cwd=ws, env=_env(src), check=True)
    return ws


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "GSID_NO_PROGRESS": "1"}


def _python_outcome(r: subprocess.CompletedProcess) -> tuple[str, str]:
    """The verdict a Python case printed (see PY_WRAP), or the crash that stopped it."""
    out = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else f"rc {r.returncode}"
    if r.returncode < 0 or r.returncode > 128:
        return "CRASH", f"signal / rc {r.returncode}"
    word, _, detail = out.partition(" ")
    if word == "CLEAR" and any(w in detail.lower() for w in ("repo id", "hub")):
        return "UNCLEAR", f"speaks of a model hub in an offline tool: {detail}"
    return word, detail


def classify(src: Path, template: Path, work: Path, command, setup) -> tuple[str, str]:
    ws = work / "case"
    shutil.rmtree(ws, ignore_errors=True)
    shutil.copytree(template, ws)
    if setup is not None:
        setup(ws)
    user_files = {k: v for k, v in _snapshot(ws).items() if not k.startswith(("new/", "x/"))}
    if isinstance(command, str):
        body = "\n".join("    " + line for line in command.splitlines())
        argv = [sys.executable, "-c", PY_WRAP.format(body=body)]
    elif isinstance(command, tuple):
        argv = ["bash", "-c", command[1]]
    else:
        argv = [sys.executable, "-m", "gsid.cli", *command]
    r = subprocess.run(argv, cwd=ws, env=_env(src), capture_output=True, text=True, timeout=600)
    after = _snapshot(ws)
    lost = [k for k, v in user_files.items() if after.get(k) != v]
    err = [line for line in r.stderr.splitlines() if line.strip()]
    if isinstance(command, str):
        return _python_outcome(r)
    if isinstance(command, tuple):  # a pipeline: quiet and successful is right
        if err:
            return ("TRACEBACK" if any("Traceback" in e for e in err) else "UNCLEAR"), err[-1][:160]
        return "CLEAR", "first line printed, nothing on stderr"
    if lost:
        return "DATA LOSS", f"changed or removed: {', '.join(lost[:3])}"
    if r.returncode == 0:
        return "SILENT", "accepted (exit 0)"
    if any("Traceback" in line for line in err):
        return "TRACEBACK", err[-1][:160]
    if r.returncode == 2 and len(err) == 1 and err[0].startswith("gsid"):
        return "CLEAR", err[0][:160]
    return "UNCLEAR", f"rc {r.returncode}, {len(err)} stderr lines: {(err or [''])[-1][:120]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default="src", help="the src/ folder of the checkout to test")
    ap.add_argument("--label", default="after", help="column name (before / after)")
    ap.add_argument("--out", default="benchmarks/results/bad_inputs.json")
    args = ap.parse_args()
    src = Path(args.src).resolve()
    out = Path(args.out)
    previous = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    columns = previous.get("columns", {})
    with tempfile.TemporaryDirectory(prefix="gsid-bad-inputs-") as tmp:
        work = Path(tmp)
        template = _template(src, work)
        rows = {}
        for name, group, command, setup in CASES:
            outcome, detail = classify(src, template, work, command, setup)
            rows[name] = {"group": group, "outcome": outcome, "detail": detail}
            print(f"{outcome:10s} {name}: {detail}", flush=True)
    tested = subprocess.run(["git", "-C", str(src), "rev-parse", "--short=12", "HEAD"],
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    columns[args.label] = {"src": str(args.src), "tested_commit": tested, "rows": rows,
                           **provenance(seed=None)}  # fmt: skip
    result = {"study": "bad inputs", "columns": columns}
    write_results(out, result, _markdown(columns))


def _markdown(columns: dict) -> str:
    labels = [c for c in ("before", "after") if c in columns] or list(columns)
    lines = ["# Bad inputs: what a user's mistake got, before and after", ""]
    for label in labels:
        c = columns[label]
        lines.append(
            f"- **{label}**: gsid at commit `{c['tested_commit']}`, run by `{c['command']}` "
            f"(script at `{c['commit']}`), {c['date']}, {c['machine']}"
        )
    lines += ["", "| case | group | " + " | ".join(labels) + " |",
              "|---|---|" + "---|" * len(labels)]  # fmt: skip
    names = list(columns[labels[-1]]["rows"])
    for name in names:
        cells = []
        for label in labels:
            row = columns[label]["rows"].get(name)
            cells.append(
                "—" if row is None else f"{row['outcome']}: {row['detail']}".replace("|", "/")
            )
        lines.append(
            f"| {name} | {columns[labels[-1]]['rows'][name]['group']} | " + " | ".join(cells) + " |"
        )
    last = columns[labels[-1]]["rows"].values()
    n_clear = sum(r["outcome"] == "CLEAR" for r in last)
    lines += ["", f"{labels[-1]}: {n_clear} of {len(last)} cases CLEAR.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
