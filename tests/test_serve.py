"""The HTTP service: every endpoint through FastAPI's test client, the limits and bad requests
(always a 4xx with a message, never a 5xx), growth through POST /items, and a real uvicorn
process on a loopback port: searched over HTTP, stopped by SIGTERM, killed by SIGKILL in the
middle of POST /items (the index then holds the old or the new items, never a broken state)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from model_fixtures import TINY_GSID, tiny_dataset

import gsid
from gsid.data import Dataset

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from gsid.serve import IndexService, Limits, create_app

MINILM = TINY_GSID
N_NEW = 6  # items of the tiny catalogue held back to be added


@pytest.fixture(scope="module")
def data():
    ds = tiny_dataset()
    new = ds.items.iloc[-N_NEW:].reset_index(drop=True)
    keep = ~ds.log["item_id"].isin(new["item_id"])
    old = Dataset(items=ds.items.iloc[:-N_NEW], queries=ds.queries, log=ds.log[keep], name="tiny")
    return old, new


@pytest.fixture(scope="module")
def built(tmp_path_factory, data):
    """Saved indexes of the old catalogue: bm25 and gsid-gr (cosine, so POST /items works)."""
    from gsid.retrieval.generative import GSIDGenerativeRetriever
    from gsid.retrieval.registry import make_retriever

    old, _ = data
    root = tmp_path_factory.mktemp("serve")
    make_retriever("bm25").index(old).save(root / "bm25")
    GSIDGenerativeRetriever(
        config=MINILM, beam_width=4, rescore="cosine", cache_dir=str(root / "cache")
    ).index(old).save(root / "gsid-gr")
    return root


def fresh(built, tmp_path, method: str) -> Path:
    """A private copy of a built index (tests that add items must not share one)."""
    import shutil

    dst = tmp_path / method
    shutil.copytree(built / method, dst)
    return dst


def open_client(path: Path) -> TestClient:
    c = TestClient(create_app(IndexService.open(path)))
    c.index_path = path
    return c


@pytest.fixture(scope="module")
def client(built, tmp_path_factory):
    """One service for the tests that change nothing (bad requests are refused whole)."""
    with open_client(fresh(built, tmp_path_factory.mktemp("shared"), "gsid-gr")) as c:
        yield c


@pytest.fixture
def own_client(built, tmp_path):
    with open_client(fresh(built, tmp_path, "gsid-gr")) as c:
        yield c


def test_search_get_and_post_carry_titles_and_codes(client, data):
    old, _ = data
    r = client.get("/search", params={"q": "cordless drill", "k": 3})
    assert r.status_code == 200
    hits = r.json()["results"]
    assert [h["rank"] for h in hits] == [1, 2, 3]
    titles = dict(zip(old.items["item_id"], old.items["title"], strict=True))
    for h in hits:
        assert h["title"] == titles[h["item_id"]]
        assert h["code"] and all(p.isdigit() for p in h["code"].split("-"))
    batch = client.post("/search", json={"queries": ["cordless drill", "garden hose"], "k": 3})
    assert batch.status_code == 200
    answers = batch.json()["results"]
    assert [a["query"] for a in answers] == ["cordless drill", "garden hose"]
    # one query alone or in a batch: the same answer (scores up to float noise)
    assert [h["item_id"] for h in answers[0]["results"]] == [h["item_id"] for h in hits]
    assert [h["score"] for h in answers[0]["results"]] == pytest.approx([h["score"] for h in hits])


def test_item_codes_info_and_health(client):
    item = client.get("/items/i0").json()
    assert item["title"].startswith("acme cordless drill") and item["code"]
    assert item["neighbours"] and all(n["item_id"] != "i0" for n in item["neighbours"])
    depth = item["neighbours"][0]["prefix"]
    prefix = item["code"].split("-")[:depth]
    assert all(n["code"].split("-")[:depth] == prefix for n in item["neighbours"])
    codes = client.post("/codes", json={"texts": ["cordless drill", "acme garden hose"]}).json()
    assert [c["text"] for c in codes["codes"]] == ["cordless drill", "acme garden hose"]
    assert client.get("/livez").json() == {"status": "ok"}
    assert client.get("/readyz").json()["n_items"] == 48 - N_NEW
    info = client.get("/info").json()
    assert info["method"] == "gsid-gr" and info["can_add"] and info["has_codes"]
    assert info["provenance"]["dataset"]["fingerprint"]
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_post_items_are_searchable_at_once_and_persisted(own_client, data):
    _, new = data
    client = own_client
    before = client.get("/info").json()["n_items"]
    old_codes = {i: client.get(f"/items/{i}").json()["code"] for i in ("i0", "i5", "i20")}
    items = new[["item_id", "title"]].to_dict("records")
    r = client.post("/items", json={"items": items})
    assert r.status_code == 200 and r.json() == {"added": N_NEW, "n_items": before + N_NEW}
    title = items[0]["title"]
    top = client.get("/search", params={"q": title, "k": 5}).json()["results"]
    assert items[0]["item_id"] in [h["item_id"] for h in top]
    assert client.get(f"/items/{items[0]['item_id']}").json()["title"] == title
    assert {i: client.get(f"/items/{i}").json()["code"] for i in old_codes} == old_codes
    on_disk = gsid.load(client.index_path)  # persisted: a restart serves the grown index
    assert len(on_disk.item_ids_) == before + N_NEW
    assert set(on_disk.catalogue_["item_id"]) >= {i["item_id"] for i in items}
    assert on_disk.provenance_["n_added"] == N_NEW


BAD_GETS = [
    ({"q": ""}, "empty"),
    ({"q": "   "}, "empty"),
    ({}, "q"),
    ({"q": "drill", "k": 0}, "k must be between 1 and 1000"),
    ({"q": "drill", "k": 10**6}, "k must be between 1 and 1000"),
    ({"q": "drill", "k": "ten"}, "k"),
    ({"q": "x" * 3000}, "over the limit of 2000"),
    ({"q": "drill", "limit": 3}, "unknown query parameter"),
]
BAD_POSTS = [
    ("/search", b'{"queries": ', "not valid UTF-8 JSON"),
    ("/search", b"\xff\xfe\x00", "not valid UTF-8 JSON"),
    ("/search", b'{"queries": ["a"], "extra": 1}', "extra"),
    ("/search", b'{"queries": []}', "no query given"),
    ("/search", b'{"queries": [1]}', "valid string"),
    ("/search", b'{"queries": "drill"}', "valid list"),
    ("/search", json.dumps({"queries": ["x" * 100_000]}).encode(), "over the limit of 2000"),
    ("/search", json.dumps({"queries": ["a"] * 300}).encode(), "over the limit of 256"),
    ("/search", b'{"queries": ["a"], "k": 1.5}', "k"),
    ("/search", b"[]", "body"),
    ("/items", b'{"items": [{"item_id": "i0", "title": "again"}]}', "already in the index"),
    ("/items", b'{"items": [{"item_id": "z9", "title": ""}]}', "empty title"),
    ("/items", b'{"items": [{"item_id": "z9", "title": "x", "price": 3}]}', "price"),
    ("/items", b'{"items": []}', "between 1 and"),
    ("/codes", b'{"texts": []}', "no text given"),
]


@pytest.mark.parametrize(("params", "says"), BAD_GETS)
def test_bad_search_requests_answer_422_with_a_message(client, params, says):
    r = client.get("/search", params=params)
    assert r.status_code == 422, r.text
    assert says.lower() in r.json()["error"].lower()


@pytest.mark.parametrize(("path", "body", "says"), BAD_POSTS)
def test_bad_bodies_answer_4xx_with_a_message(client, path, body, says):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert says.lower() in r.json()["error"].lower()


def test_unknown_item_oversized_body_and_methods_without_growth(client, built, tmp_path):
    r = client.get("/items/no-such-item")
    assert r.status_code == 404 and "no-such-item" in r.json()["error"]
    big = b'{"queries": ["' + b"a" * (2 << 20) + b'"]}'
    r = client.post("/search", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "1048576 bytes" in r.json()["error"]
    with TestClient(create_app(IndexService.open(fresh(built, tmp_path, "bm25")))) as c:
        r = c.post("/codes", json={"texts": ["drill"]})
        assert r.status_code == 400 and "no GSID model" in r.json()["error"]
        assert "code" not in c.get("/search", params={"q": "drill"}).json()["results"][0]


def test_configured_limits(built, tmp_path):
    app = create_app(IndexService.open(fresh(built, tmp_path, "bm25")), Limits(max_k=5))
    with TestClient(app) as c:
        assert c.get("/search", params={"q": "drill", "k": 5}).status_code == 200
        r = c.get("/search", params={"q": "drill", "k": 6})
        assert r.status_code == 422 and "between 1 and 5" in r.json()["error"]


def test_bm25_grows_by_reindexing(built, tmp_path, data):
    _, new = data
    path = fresh(built, tmp_path, "bm25")
    with TestClient(create_app(IndexService.open(path))) as c:
        items = new[["item_id", "title"]].to_dict("records")
        assert c.post("/items", json={"items": items}).status_code == 200
        hits = c.get("/search", params={"q": items[1]["title"], "k": 1}).json()["results"]
        assert hits[0]["item_id"] == items[1]["item_id"]
    assert len(gsid.load(path).item_ids_) == 48


def test_concurrent_searches_share_model_calls(built, tmp_path):
    app = create_app(IndexService.open(fresh(built, tmp_path, "gsid-gr")), Limits(window_ms=20))
    with TestClient(app) as c:
        results: list[int] = []

        def one(i: int) -> None:
            results.append(c.get("/search", params={"q": f"drill {i}", "k": 3}).status_code)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 16
        batching = c.get("/info").json()["batching"]
    assert batching["queries"] == 16 and batching["model_calls"] < 16


# ---------------------------------------------------------------- a real uvicorn process
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(path: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "GSID_NO_PROGRESS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gsid.cli", "serve", str(path), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {proc.stderr.read()}")
        try:
            http("GET", port, "/readyz")
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not become ready in 60 s")


def http(method: str, port: int, path: str, body: dict | None = None, timeout: float = 30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def test_uvicorn_process_answers_over_http_and_stops_on_sigterm(built, tmp_path):
    port = free_port()
    proc = start_server(fresh(built, tmp_path, "bm25"), port)
    try:
        answer = http("GET", port, "/search?q=garden+hose&k=2")
        assert len(answer["results"]) == 2 and answer["results"][0]["title"]
        batch = http("POST", port, "/search", {"queries": ["drill", "paint"], "k": 1})
        assert len(batch["results"]) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: gsid's exit code for it
        assert proc.wait(timeout=30) == 143
        assert "Traceback" not in proc.stderr.read()


def test_serve_refuses_a_corrupted_index_with_a_clear_error(built, tmp_path):
    path = fresh(built, tmp_path, "bm25")
    target = next(p for p in sorted(path.rglob("*.npy")))
    target.write_bytes(target.read_bytes()[:-8])
    r = subprocess.run(
        [sys.executable, "-m", "gsid.cli", "serve", str(path), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "corrupted" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "gsid.cli", "serve", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "no such directory" in r.stderr


def test_sigkill_during_post_items_leaves_old_or_new_index(built, tmp_path, data):
    """Kill the server at several moments of a large POST /items (BM25 re-indexes and saves):
    each restart loads an index of the old or of the grown catalogue, never a broken one."""
    old, _ = data
    path = fresh(built, tmp_path, "bm25")
    n_old = len(old.items)
    for attempt, delay in enumerate((0.05, 0.3, 0.6, 1.0)):
        port = free_port()
        proc = start_server(path, port)
        n_before = http("GET", port, "/readyz")["n_items"]
        items = [
            {"item_id": f"new-{attempt}-{j}", "title": f"acme cordless widget model {j}"}
            for j in range(3000)
        ]
        threading.Thread(
            target=lambda items=items, port=port: _post_quietly(port, items), daemon=True
        ).start()
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=30)
        loaded = gsid.load(path)  # verifies every checksum
        n = len(loaded.item_ids_)
        assert n in (n_before, n_before + len(items))
        assert len(loaded.catalogue_) == n
        ids, _ = loaded.search(["cordless drill"], 3)
        assert ids[0, 0] is not None
    assert n >= n_old
    IndexService.open(path)  # a restart removes what the killed writes left behind
    left = [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.")]
    assert not left


def _post_quietly(port: int, items: list[dict]) -> None:
    with contextlib.suppress(OSError):  # the server was killed: the point of the test
        http("POST", port, "/items", {"items": items}, timeout=60)


def test_python_load_search_and_add(built, tmp_path, data):
    _, new = data
    path = fresh(built, tmp_path, "gsid-gr")
    r = gsid.load(path)
    ids, scores = r.search(["cordless drill"], k=3)
    assert ids.shape == (1, 3) and np.all(np.diff(scores[0]) <= 0)
    assert r.titles(list(ids[0]))[0].split()[0] in {"acme", "bolt", "zeta"}
    codes_before = {i: r.ids_.code_of(i) for i in r.item_ids_}
    r.add(pd.DataFrame(new[["item_id", "title"]]))
    assert all(r.ids_.code_of(i) == c for i, c in codes_before.items())
    r.save(path)
    assert len(gsid.load(path).item_ids_) == 48


def test_binds_loopback_unless_told_and_warns_for_another_host(
    built, tmp_path, monkeypatch, caplog
):
    import uvicorn

    from gsid.serve import run

    seen = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: seen.append(self.config.host))
    path = fresh(built, tmp_path, "bm25")
    with caplog.at_level("WARNING", logger="gsid.serve"):
        run(str(path))
        assert not caplog.records
        run(str(path), host="0.0.0.0")
    assert seen == ["127.0.0.1", "0.0.0.0"]
    assert "reachable from other machines" in caplog.text
