"""Load and growth through the HTTP service (`gsid serve`), on the loopback only.

    python benchmarks/serve_load.py --data homedepot:../shared/data/homedepot \
        --requests 20000 --clients 32

For each method (default gsid-gr, bm25), on the same machine and in one run:
  1. `gsid index build` on 90% of the catalogue (the growth split: 10% of the products arrive
     later, without search log), with the user's CLI;
  2. in-process: QPS of `search` in batches of 64 over the dev queries, and p50 of one query
     at a time (the ratios below are against this, measured minutes apart on the same machine);
  3. `gsid serve` in a subprocess; `--requests` GET /search (k=10) from `--clients` concurrent
     keep-alive connections, cycling through the dev queries: errors, p50/p99, QPS;
  4. the same load while another connection POSTs the 10% new products in chunks;
  5. the growth study through the service: the share of old items whose code is unchanged
     (from the saved index before and after), and R@10 of the new items over the dev queries
     that have a new relevant item (searched over HTTP), beside the dev R@10 of all queries.
The client is a minimal asyncio HTTP/1.1 client, hand-written so that the load generator costs
little CPU on the machine it shares with the server (an HTTP library costs several times more
per request and would measure itself). Results: benchmarks/results/serve_load.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import provenance, provenance_markdown, write_results

from gsid.cli.bench import DEMO_OPTIONS

# the demo's online gsid-gr (static query encoder, beam over first codes, mass cut, cosine),
# with the Home Depot GSID setup of benchmarks/gsid_growth.py (3 x 64 codes, 1 epoch a step)
GSID_GR = {
    **DEMO_OPTIONS["gsid-gr"],
    "config": {
        "n_levels": 3,
        "codebook_size": 64,
        "batch_size": 128,
        "epochs_per_level": 1.0,
        "pseudo_queries_per_item": 0,
        "warmup_batches": 50,
        "dead_window": 50,
    },
}
OPTIONS = {"gsid-gr": GSID_GR, "bm25": {}}
CHUNK = 500  # new products per POST /items


# ---------------------------------------------------------------- a small HTTP client
class Connection:
    def __init__(self, port: int) -> None:
        self.port = port

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        await self.writer.drain()
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header.split(b" ", 2)[1])
        length = 0
        for line in header.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def search_path(query: str, k: int = 10) -> str:
    return f"/search?q={urllib.parse.quote(query)}&k={k}"


async def load(port: int, queries: list[str], n: int, clients: int, grow=None) -> dict:
    """`n` GET /search from `clients` connections (each waits for its answer); `grow`: an
    async function run beside them (POST /items), whose own figures are returned too."""
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(n))

    async def client() -> None:
        conn = await Connection(port).open()
        for i in counter:
            t = time.perf_counter()
            try:
                status, body = await conn.request("GET", search_path(queries[i % len(queries)]))
            except (OSError, asyncio.IncompleteReadError) as e:
                errors.append(repr(e))
                conn = await Connection(port).open()
                continue
            latencies.append(time.perf_counter() - t)
            if status != 200:
                errors.append(f"{status} {body[:100]!r}")
        conn.close()

    t0 = time.perf_counter()
    tasks = [client() for _ in range(clients)]
    grown = None
    if grow is not None:
        *_, grown = await asyncio.gather(*tasks, grow(port))
    else:
        await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    return {
        "requests": n,
        "clients": clients,
        "errors": len(errors),
        "error_examples": errors[:3],
        "wall_s": round(wall, 2),
        "qps": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "grow": grown,
    }


def grower(items: list[dict]):
    async def grow(port: int) -> dict:
        conn = await Connection(port).open()
        took, statuses = [], []
        for s in range(0, len(items), CHUNK):
            body = json.dumps({"items": items[s : s + CHUNK]}).encode()
            t = time.perf_counter()
            status, _ = await conn.request("POST", "/items", body)
            took.append(time.perf_counter() - t)
            statuses.append(status)
        conn.close()
        return {
            "posts": len(took),
            "items": len(items),
            "non_200": sum(s != 200 for s in statuses),
            "post_s_mean": round(float(np.mean(took)), 2),
            "post_s_max": round(float(np.max(took)), 2),
        }

    return grow


async def search_all(port: int, queries: list[str], k: int, clients: int = 8) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in queries]
    counter = iter(range(len(queries)))

    async def client() -> None:
        conn = await Connection(port).open()
        for i in counter:
            status, body = await conn.request("GET", search_path(queries[i], k))
            assert status == 200, body
            out[i] = [h["item_id"] for h in json.loads(body)["results"]]
        conn.close()

    await asyncio.gather(*[client() for _ in range(clients)])
    return out


# ---------------------------------------------------------------- the phases
def gsid_cli(*args: str) -> None:
    cmd = [sys.executable, "-m", "gsid.cli", "--no-progress", *args]
    subprocess.run(cmd, check=True)


def build(method: str, data_dir: Path, out: Path, cache: str) -> float:
    sets = [x for k, v in OPTIONS[method].items() for x in ("--set", f"{k}={json.dumps(v)}")]
    t = time.perf_counter()
    gsid_cli("index", "build", "--data", str(data_dir), "--method", method, "--out", str(out),
             "--cache", cache, "--force", *sets)  # fmt: skip
    return time.perf_counter() - t


def in_process(index: Path, queries: list[str], batch: int = 64) -> dict:
    import gsid

    r = gsid.load(index)
    r.search(queries[:batch], 10)  # warm-up
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < 10 or n < len(queries):
        s = (n // batch * batch) % len(queries)
        r.search(queries[s : s + batch] or queries[:batch], 10)
        n += batch
    qps = n / (time.perf_counter() - t)
    one = []
    for q in queries[:200]:
        t1 = time.perf_counter()
        r.search([q], 10)
        one.append(time.perf_counter() - t1)
    return {"qps_at_64": round(qps, 1), "p50_ms_one_query": round(1000 * float(np.median(one)), 2)}


def start_server(index: Path, port: int) -> subprocess.Popen:
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "gsid.cli", "serve", str(index), "--port", str(port)]
    )
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"gsid serve exited with {proc.returncode}") from None
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gsid serve did not become ready")


def codes_of(index: Path) -> dict[str, tuple]:
    import gsid

    ids = gsid.load(index).semantic_ids()
    if ids is None:
        return {}
    return {
        i: tuple(c[:n])
        for i, c, n in zip(ids.item_ids, ids.codes.tolist(), ids.lengths, strict=True)
    }


def recall_at(found: list[list[str]], expected: list[set[str]], k: int = 10) -> float:
    return float(
        np.mean([len(set(f[:k]) & e) / len(e) for f, e in zip(found, expected, strict=True)])
    )


def run_method(method: str, args, old, full, work: Path, port: int) -> dict:
    index = work / f"{method}_index"
    snapshot = work / f"{method}_index_before_growth"
    timing = work / f"{method}_build_s.json"
    if args.reuse and snapshot.is_dir() and timing.is_file():  # the index of an earlier run
        shutil.rmtree(index, ignore_errors=True)
        shutil.copytree(snapshot, index)
        build_s = json.loads(timing.read_text())["build_s"]
    else:
        build_s = build(method, work / "old_data", index, args.cache)
        timing.write_text(json.dumps({"build_s": build_s}))
    before = codes_of(index)
    dev = full.split_queries("dev")
    queries = dev["query"].tolist()
    result = {"method": method, "options": OPTIONS[method], "build_s": round(build_s, 1)}
    result["in_process"] = in_process(index, queries)
    print(method, "in-process", result["in_process"], flush=True)
    if not (args.reuse and snapshot.is_dir()):
        shutil.rmtree(snapshot, ignore_errors=True)
        shutil.copytree(index, snapshot)
    proc = start_server(index, port)
    try:
        result["load"] = asyncio.run(load(port, queries, args.requests, args.clients))
        print(method, "load", result["load"], flush=True)
        new_ids = set(full.info["growth"]["new_items"])
        items = full.items[full.items["item_id"].isin(new_ids)]
        new_items = items[["item_id", "title"]].to_dict("records")
        grow = grower(new_items)
        result["load_while_growing"] = asyncio.run(
            load(port, queries, args.requests, args.clients, grow)
        )
        print(method, "load while growing", result["load_while_growing"], flush=True)
        # growth study over HTTP: R@10 of the new items on the dev queries that have one
        expected = full.expected("dev")
        qid_query = dict(zip(dev["query_id"], dev["query"], strict=True))
        with_new = [(q, e & new_ids) for q, e in expected.items() if e & new_ids]
        found = asyncio.run(search_all(port, [qid_query[q] for q, _ in with_new], 10))
        all_found = asyncio.run(search_all(port, [qid_query[q] for q in expected], 10))
        result["growth"] = {
            "n_old": len(old.items),
            "n_new": len(new_items),
            "new_items_r10": round(recall_at(found, [e for _, e in with_new]), 4),
            "n_queries_with_new": len(with_new),
            "dev_r10_all": round(recall_at(all_found, list(expected.values())), 4),
            "n_dev_queries": len(expected),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    after = codes_of(index)
    kept = [after.get(i) == c for i, c in before.items()]
    result["growth"]["old_codes_kept"] = round(float(np.mean(kept)), 6) if kept else None
    result["growth"]["n_items_after"] = len(gsid_load_ids(index))
    result["served_ratio"] = round(result["load"]["qps"] / result["in_process"]["qps_at_64"], 3)
    print(method, "growth", result["growth"], flush=True)
    return result


def gsid_load_ids(index: Path):
    import gsid

    return gsid.load(index).item_ids_


def markdown(result: dict) -> str:
    lines = ["# gsid serve: load and growth over HTTP (loopback)", "", *provenance_markdown(result)]
    lines += [
        f"- data: {result['dataset']}; load: {result['requests']} GET /search (k=10) from "
        f"{result['clients']} concurrent keep-alive clients, cycling through the dev queries; "
        f"client and server share the machine",
        f"- machine load (1-min average) before the run: {result['loadavg_before']}",
        "",
        "| method | build s | in-process QPS@64 | in-process p50 ms | served QPS | served / in-process | p50 ms | p99 ms | errors | QPS while growing | p50 / p99 ms while growing | errors | POST /items (items, s mean / max) |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    for r in result["methods"]:
        ip, ld, lg = r["in_process"], r["load"], r["load_while_growing"]
        g = lg["grow"]
        lines.append(
            f"| {r['method']} | {r['build_s']} | {ip['qps_at_64']} | {ip['p50_ms_one_query']} | "
            f"{ld['qps']} | {r['served_ratio']:.2f} | {ld['p50_ms']} | {ld['p99_ms']} | "
            f"{ld['errors']} | {lg['qps']} | {lg['p50_ms']} / {lg['p99_ms']} | {lg['errors']} | "
            f"{g['items']} in {g['posts']} ({g['non_200']} not 200), {g['post_s_mean']} / {g['post_s_max']} |"
        )
    lines += [
        "",
        "## Growth through POST /items",
        "",
        "| method | old items | new items | old codes kept | items after | new items' R@10 (queries) | dev R@10, all queries |",
        "|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["methods"]:
        g = r["growth"]
        kept = "-" if g["old_codes_kept"] is None else f"{100 * g['old_codes_kept']:.2f}%"
        lines.append(
            f"| {r['method']} | {g['n_old']} | {g['n_new']} | {kept} | {g['n_items_after']} | "
            f"{100 * g['new_items_r10']:.2f} ({g['n_queries_with_new']}) | "
            f"{100 * g['dev_r10_all']:.2f} ({g['n_dev_queries']}) |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="homedepot:../shared/data/homedepot")
    ap.add_argument("--methods", default="gsid-gr,bm25")
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--work", default="runs/serve_load")
    ap.add_argument("--out", default="benchmarks/results/serve_load.json")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="serve the indexes an earlier run built in --work (its build time is reported)",
    )
    args = ap.parse_args()
    os.environ.setdefault("GSID_NO_PROGRESS", "1")
    from gsid.cli.common import load_data
    from gsid.models.growth import grow_split

    result = {**provenance(seed=args.seed), "requests": args.requests, "clients": args.clients}
    result["loadavg_before"] = round(os.getloadavg()[0], 2)
    ds = load_data(args.data, args.seed)
    old, full = grow_split(ds, args.fraction, seed=args.seed)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    old.save(work / "old_data", force=True)
    result["dataset"] = (
        f"{ds.name}: {len(ds.items)} items, {len(old.items)} indexed, the rest added"
    )
    result["methods"] = [
        run_method(m.strip(), args, old, full, work, args.port)
        for m in args.methods.split(",")
        if m.strip()
    ]
    write_results(args.out, result, markdown(result), default=float)
    print(markdown(result))


if __name__ == "__main__":
    main()
