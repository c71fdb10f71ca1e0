"""Atomic artifact writing: build in a temporary sibling, then rename, so that a crash or an
error never leaves a half-written artifact and never destroys the previous one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gsid.errors import ArtifactError


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        path.rename(old)
    tmp.rename(path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_manifest(directory: Path, kind: str, version: int, **fields: Any) -> None:
    manifest = {"kind": kind, "format_version": version, **fields}
    (directory / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8"
    )


def read_manifest(directory: str | os.PathLike, kind: str, version: int) -> dict[str, Any]:
    """Read and check a manifest; raise ArtifactError with a fix when it does not fit."""
    directory = Path(directory)
    mpath = directory / "manifest.json"
    if not mpath.is_file():
        raise ArtifactError(
            f"{directory} is not a gsid {kind} artifact: manifest.json is missing. "
            f"Pass the directory that a gsid `save` wrote."
        )
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{mpath} is corrupted ({e}); rebuild the artifact.") from e
    if manifest.get("kind") != kind:
        raise ArtifactError(
            f"{directory} holds a {manifest.get('kind')!r} artifact, expected {kind!r}."
        )
    if manifest.get("format_version") != version:
        raise ArtifactError(
            f"{directory} has format version {manifest.get('format_version')}, this gsid reads "
            f"version {version}; rebuild it with this version of gsid."
        )
    return manifest
