"""Run the README's "Use it on your catalogue" block verbatim, on CSV files written from the
synthetic marketplace, and record what each command did and how long it took.

    python benchmarks/readme_path.py [--items 2000] [--work runs/readme_path]

The block is read from README.md (the first ```bash block after the heading), so the README
and this check cannot drift apart. The `pip install` line is skipped (the checkout running
this is installed already); `gsid serve ... &` is started in the background and stopped at the
end; `curl` answers are parsed as JSON. Results: benchmarks/results/readme_path.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, provenance_markdown, write_results

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Use it on your catalogue"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(HEADING) :]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands, current = [], ""
    for line in block.splitlines():
        line = line.split(" #", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        if not line:
            continue
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return commands


def write_csvs(work: Path, n_items: int, seed: int) -> None:
    """products.csv (sku, name) and clicks.csv (search_term, sku, clicks) from the marketplace."""
    from gsid.data.synthetic import make_marketplace

    ds = make_marketplace(n_items=n_items, seed=seed)
    ds.items[["item_id", "title"]].rename(columns={"item_id": "sku", "title": "name"}).to_csv(
        work / "products.csv", index=False
    )
    log = ds.log.merge(ds.queries[["query_id", "query"]], on="query_id")
    log = log.rename(columns={"query": "search_term", "item_id": "sku", "weight": "clicks"})
    log[["search_term", "sku", "clicks"]].to_csv(work / "clicks.csv", index=False)


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gsid serve exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gsid serve did not become ready")


def run(commands: list[str], work: Path) -> list[dict]:
    steps, server = [], None
    env = {**os.environ, "GSID_NO_PROGRESS": "1"}
    try:
        for cmd in commands:
            if cmd.startswith("pip install"):
                steps.append({"command": cmd, "skipped": "this checkout is installed"})
                continue
            argv = shlex.split(cmd.rstrip("&").strip())
            t = time.perf_counter()
            if cmd.endswith("&"):
                server = subprocess.Popen(argv, cwd=work, env=env)
                port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 8000
                wait_ready(port, server)
                steps.append({"command": cmd, "s": round(time.perf_counter() - t, 1), "rc": None})
                continue
            r = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
            step = {"command": cmd, "s": round(time.perf_counter() - t, 1), "rc": r.returncode}
            out = r.stdout.strip()
            if argv[0] == "curl":
                step["answer"] = json.loads(out)
            else:
                step["output"] = out.splitlines()[-3:]
            if r.returncode != 0:
                step["stderr"] = r.stderr.strip().splitlines()[-3:]
            steps.append(step)
            print(json.dumps(step)[:300], flush=True)
            if r.returncode != 0:
                break
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    return steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/readme_path")
    ap.add_argument("--out", default="benchmarks/results/readme_path.json")
    args = ap.parse_args()
    work = Path(args.work)
    if work.exists():
        raise SystemExit(f"{work} exists; remove it or pass another --work")
    work.mkdir(parents=True)
    write_csvs(work, args.items, args.seed)
    commands = readme_commands()
    steps = run(commands, work)
    ok = all(s.get("rc") in (0, None) for s in steps) and len(steps) == len(commands)
    result = {**provenance(seed=args.seed), "items": args.items, "ok": ok, "steps": steps}
    lines = [
        "# The README's path from a CSV to a running service",
        "",
        *provenance_markdown(result),
    ]
    lines += [
        f"- catalogue: products.csv and clicks.csv written from the synthetic marketplace "
        f"({args.items} items); every command of the README block, verbatim, in order",
        f"- all commands succeeded: {ok}",
        "",
        "| command | s | exit | what it printed or answered |",
        "|:---|---:|---:|:---|",
    ]
    for s in steps:
        shown = s.get("skipped") or s.get("answer") or " / ".join(s.get("output", []))
        shown = json.dumps(shown)[:160] if not isinstance(shown, str) else shown[:160]
        cmd = s["command"].replace("|", "\\|")
        lines.append(
            f"| `{cmd[:90]}` | {s.get('s', '')} | {s.get('rc', '')} | {shown.replace('|', '/')} |"
        )
    write_results(args.out, result, "\n".join(lines))
    print("\n".join(lines))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
