"""The on-disk embedding cache, keyed by text: a row computed once for a text is reused by every
later list that holds the text (a grown catalogue, another split's queries, ...), and only the
texts never met are computed.

    X = cached_rows(encoder_identity, texts, "cache", lambda todo: encoder.encode(todo))

Layout: `cache_dir/rows-<identity hash>/*.npz`, each shard holding `keys` (M,) 16-byte hashes
of identity + text and `rows` (M, D). A list met for the first time is computed whole, in one
call, exactly as without a cache, unless most of its texts are cached already (a grown
catalogue): then it takes their rows and computes only the new texts. Either way the answer is
kept as `list-<hash of the list>.npz`, and asking for the same list again returns those very
rows: batch composition changes float rounding in the last bits, and GSID's training amplifies
such bits, so a rerun must not assemble a list differently because other lists were cached in
between. A shard is written to a temporary file and renamed, so readers never see half a
shard; two processes may add shards at once (at worst a text is computed twice). Many small
shards are merged into one when they pile up.

Hand-written because no maintained library caches numpy rows by key on disk without a server
(joblib.Memory keys on the whole argument, which is what this replaces).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MERGE_AT = 32  # shards in one identity's directory before they are merged into one
#: a list whose share of new texts is above this is computed whole, as without a cache (its
#: rows then do not depend on what was cached before); below it only the new texts are computed
REUSE_AT = 0.5


def _key(prefix: Any, text: str) -> bytes:
    h = prefix.copy()
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.digest()[:16]


def _oldest_first(directory: Path) -> list[Path]:
    dated = []
    for f in directory.glob("*.npz"):
        with contextlib.suppress(FileNotFoundError):  # merged away by another process
            dated.append((f.stat().st_mtime_ns, f.name, f))
    return [f for _, _, f in sorted(dated)]


def _read_shards(directory: Path) -> tuple[list[Path], dict[bytes, tuple[int, int]], list]:
    shards, where, rows = [], {}, []
    # oldest first, and the first row written for a text wins: a text that several lists
    # computed (in different batches, so different in the last bits) always reads the same row
    for f in _oldest_first(directory):
        try:
            with np.load(f, allow_pickle=False) as z:
                keys, X = z["keys"], z["rows"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            continue  # a damaged shard is ignored: its texts are computed again
        if len(keys) != len(X):
            continue
        s = len(rows)
        shards.append(f)
        rows.append(X)
        for r, k in enumerate(keys):
            where.setdefault(bytes(k), (s, r))
    return shards, where, rows


def _write_shard(
    directory: Path, keys: list[bytes], X: np.ndarray, name: str | None = None
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    name = name or f"shard-{os.getpid()}-{os.urandom(4).hex()}"
    tmp = directory / f".{name}.tmp.npz"
    np.savez(tmp, keys=np.asarray(keys, dtype="S16"), rows=X)
    path = directory / f"{name}.npz"
    os.replace(tmp, path)
    return path


def cached_rows(
    identity: str,
    texts: Sequence[str],
    cache_dir: str | os.PathLike | None,
    compute: Callable[[list[str]], np.ndarray],
) -> np.ndarray:
    """(len(texts), D) rows, `compute(todo)` called only for the texts not cached yet under
    `identity` (what produces the rows: a model and its settings); no cache_dir: no cache."""
    texts = list(texts)
    if cache_dir is None:
        return compute(texts)
    prefix = hashlib.sha256(identity.encode("utf-8") + b"\x00")
    directory = Path(cache_dir) / f"rows-{prefix.hexdigest()[:24]}"
    if not texts:
        return np.asarray(compute([]))
    keys = [_key(prefix, t) for t in texts]
    whole = hashlib.sha256(b"".join(keys)).hexdigest()[:24]
    hit = _read_list(directory / f"list-{whole}.npz", len(texts))
    if hit is not None:
        return hit
    shards, where, rows = _read_shards(directory) if directory.is_dir() else ([], {}, [])
    todo = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in where))
    if len(todo) > REUSE_AT * len(set(keys)):  # mostly new: computed whole, as without a cache
        X = np.asarray(compute(texts))
        _write_shard(directory, keys, X, name=f"list-{whole}")
        return X
    if todo:
        new = np.asarray(compute(todo))
        new_keys = [_key(prefix, t) for t in todo]
        _write_shard(directory, new_keys, new)
        s = len(rows)
        rows.append(new)
        for r, key in enumerate(new_keys):
            where.setdefault(key, (s, r))
        if sum(f.name.startswith("shard-") for f in shards) + 1 >= MERGE_AT:
            _merge(directory, where, rows)
    out = np.empty((len(texts), rows[0].shape[1]), dtype=rows[0].dtype)
    for i, k in enumerate(keys):
        s, r = where[k]
        out[i] = rows[s][r]
    # kept as this list's answer: later texts computed in other batches must not change it
    _write_shard(directory, keys, out, name=f"list-{whole}")
    return out


def _read_list(path: Path, n: int) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            X = z["rows"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    return X if len(X) == n else None


def _merge(directory: Path, where: dict[bytes, tuple[int, int]], rows: list) -> None:
    """Rewrite every shard as one (the old ones are removed after the new one is in place)."""
    old = sorted(directory.glob("shard-*.npz"))  # whole lists stay: they answer their list
    keys = list(where)
    X = np.stack([rows[s][r] for s, r in where.values()])
    merged = _write_shard(directory, keys, X)
    for f in old:
        if f != merged:
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
