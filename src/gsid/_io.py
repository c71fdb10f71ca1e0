"""Safe artifact writing and checked reading.

- `check_out`: the one rule for an output path. gsid replaces a directory only when it holds a
  gsid artifact of the same kind (its manifest says so); with `force`, a gsid artifact of another
  kind; never a directory gsid did not write, and never an input of the same command.
- `atomic_dir`: build in a temporary sibling, then rename, so that a crash or an error never
  leaves a half-written artifact and never destroys the previous one. On success the manifest
  gains the size and BLAKE2b checksum of every file; `read_manifest` verifies them on load.
- Temporaries are named `.NAME.tmp-PID-…`: the next write to NAME removes those of dead
  processes (a `kill -9` leaves no permanent litter) and restores a `.NAME.old-PID` left
  between the two renames.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gsid.errors import ArtifactError, GsidError

MANIFEST = "manifest.json"
VERIFY_ENV = "GSID_VERIFY"  # "0" skips checksum verification on load (very large indexes)


class OutputError(GsidError):
    """An output path that gsid will not write to (it would lose a user's files)."""


# ---------------------------------------------------------------- the output rule
def manifest_kind(directory: Path) -> str | None:
    """The `kind` of the gsid artifact in `directory`, or None when it holds none."""
    try:
        m = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    kind = m.get("kind") if isinstance(m, dict) else None
    return kind if isinstance(kind, str) and kind.startswith("gsid-") else None


def check_writable(path: Path) -> None:
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot write {path}: {parent} is not writable; choose an output in a directory "
            f"you can write to"
        )


def check_out(
    path: str | os.PathLike,
    kind: str | None,
    *,
    force: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
) -> Path:
    """Raise OutputError unless `path` may be (re)written as an artifact of `kind`.

    Allowed: a new path; an empty directory; a directory holding a gsid artifact of `kind`;
    with `force`, one holding a gsid artifact of another kind. Never: a file, a non-empty
    directory without a gsid manifest, the current directory or one above it, or a path that is
    (or contains) one of `inputs`. Also checks that the path can be written, before any work."""
    path = Path(path)
    _clean_stale(path)
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OutputError(
            f"--out {str(path)!r} is the current directory or above it; gsid will not replace "
            f"it: name a new directory, e.g. {str(path / 'out')!r}"
        )
    for inp in inputs:
        r = Path(inp).resolve()
        if r == resolved or resolved in r.parents:
            raise OutputError(
                f"--out {str(path)!r} holds {str(inp)!r}, an input of this command; writing "
                f"there would delete it: choose another --out"
            )
    check_writable(path)
    if not path.exists() and not path.is_symlink():
        return path
    if not path.is_dir():
        raise OutputError(f"{path} exists and is not a directory; choose another --out")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot replace {path}: {path.parent} is not writable")
    if not any(path.iterdir()):
        return path
    found = manifest_kind(path)
    if found is None:
        raise OutputError(
            f"{path} is a non-empty directory that gsid did not write (no gsid manifest.json); "
            f"gsid never replaces such a directory: choose a new --out, or empty it yourself"
        )
    if kind is not None and found != kind and not force:
        raise OutputError(
            f"{path} holds a gsid {found!r} artifact, not a {kind!r}; pass --force to replace "
            f"it (Python: force=True), or choose another --out"
        )
    if kind is None and not force:
        raise OutputError(f"{path} already holds a gsid {found!r} artifact; choose another path")
    return path


# ---------------------------------------------------------------- temporaries
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(path: Path) -> None:
    """Remove the temporaries of dead processes beside `path`; restore an orphaned `.old`."""
    parent = path.parent
    if not parent.is_dir():
        return
    for tag in ("old", "tmp"):  # old first: it may be the only copy of the artifact
        for p in parent.glob(f".{path.name}.{tag}-*"):
            pid = p.name[len(path.name) + len(tag) + 3 :].split("-", 1)[0]
            if not pid.isdigit() or _pid_alive(int(pid)):
                continue
            if tag == "old" and not path.exists():
                p.rename(path)  # killed between the two renames: the previous artifact returns
            elif p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


def recover(path: str | os.PathLike) -> None:
    """What a killed writer left beside `path`: its temporaries are removed and, if it died
    between its two renames, the previous artifact is put back (a server does this at start)."""
    _clean_stale(Path(path))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike, kind: str | None = None, force: bool = False
) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` only if the block succeeds.

    `path` must pass `check_out(path, kind, force=force)`. If the block wrote a manifest.json,
    it is completed with the size and checksum of every file before the rename."""
    path = Path(path)
    check_out(path, kind, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a saved artifact gets the usual mode
    try:
        yield tmp
        if (tmp / MANIFEST).is_file():
            _seal(tmp)
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
    if path.is_dir():
        raise OutputError(f"{path} is a directory; name a file to write")
    _clean_stale(path)
    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------- manifests and checksums
def file_digest(path: Path) -> str:
    """BLAKE2b-128 of a file: ~1 GB/s, so verifying a 100 MB index costs ~0.1 s."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _seal(directory: Path) -> None:
    """Record size and checksum of every file under `directory`, except inside a nested gsid
    artifact (a sub-directory with its own manifest: its files are listed and verified there,
    when it is loaded, so no file is hashed twice)."""
    mpath = directory / MANIFEST
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    nested = {m.parent for m in directory.rglob(MANIFEST) if m != mpath}
    files = {}
    for f in sorted(directory.rglob("*")):
        if f.is_file() and f != mpath and not nested.intersection(f.parents):
            rel = f.relative_to(directory).as_posix()
            files[rel] = {"bytes": f.stat().st_size, "blake2b": file_digest(f)}
    manifest["files"] = files
    mpath.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8")


def write_manifest(directory: Path, kind: str, version: int, **fields: Any) -> None:
    manifest = {"kind": kind, "format_version": version, **fields}
    (directory / MANIFEST).write_text(
        json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8"
    )


def verify_enabled(verify: bool | None = None) -> bool:
    if verify is not None:
        return verify
    return os.environ.get(VERIFY_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def verify_files(directory: Path, manifest: dict[str, Any]) -> None:
    """Check every file the manifest lists: present, of its size, of its checksum."""
    files = manifest.get("files")
    if files is None:
        return  # written before checksums were recorded
    if not isinstance(files, dict):
        raise ArtifactError(f"{directory / MANIFEST} is corrupted (bad 'files'); rebuild it.")
    fix = (
        "rebuild the artifact or restore it from a backup (GSID_VERIFY=0 skips this check, "
        "at your own risk)"
    )
    for rel, rec in files.items():
        f = directory / rel
        if not f.is_file():
            raise ArtifactError(f"{directory}: {rel} is missing; {fix}")
        size = f.stat().st_size
        if not isinstance(rec, dict) or size != rec.get("bytes"):
            raise ArtifactError(
                f"{directory}: {rel} is corrupted (truncated or changed: {size} bytes, the "
                f"manifest recorded {rec.get('bytes') if isinstance(rec, dict) else '?'}); {fix}"
            )
        if file_digest(f) != rec.get("blake2b"):
            raise ArtifactError(
                f"{directory}: {rel} is corrupted (its checksum differs from the manifest's); {fix}"
            )


def read_manifest(
    directory: str | os.PathLike, kind: str, version: int, verify: bool | None = None
) -> dict[str, Any]:
    """Read and check a manifest (and, unless `verify` is False or GSID_VERIFY=0, the checksums
    of the files it lists); raise ArtifactError with a fix when it does not fit."""
    directory = Path(directory)
    mpath = directory / MANIFEST
    if not directory.exists():
        _clean_stale(directory)  # a writer killed between its two renames: restore its .old
    if not directory.exists():
        raise ArtifactError(f"{directory}: no such directory; pass the directory a gsid save wrote")
    if not directory.is_dir():
        raise ArtifactError(
            f"{directory} is a file; a gsid {kind} artifact is a directory (with {MANIFEST})"
        )
    if not mpath.is_file():
        raise ArtifactError(
            f"{directory} is not a gsid {kind} artifact: {MANIFEST} is missing. "
            f"Pass the directory that a gsid `save` wrote."
        )
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{mpath} is corrupted ({e}); rebuild the artifact.") from e
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{mpath} is corrupted (not a JSON object); rebuild the artifact.")
    if manifest.get("kind") != kind:
        raise ArtifactError(
            f"{directory} holds a {manifest.get('kind')!r} artifact, expected {kind!r}."
        )
    if manifest.get("format_version") != version:
        raise ArtifactError(
            f"{directory} has format version {manifest.get('format_version')}, this gsid reads "
            f"version {version}; rebuild it with this version of gsid."
        )
    if verify_enabled(verify):
        verify_files(directory, manifest)
    return manifest
