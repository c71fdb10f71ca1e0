"""What the subcommands share: output checks (gsid._io's rule, applied before any work), the
--data spec, column mappings and split fractions."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gsid.errors import GsidError

DATASET, IDS = "gsid-dataset", "gsid-semantic-ids"


def add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a gsid artifact of another kind at --out (never a directory gsid did not "
        "write, never an input)",
    )


def parse_map(spec: str | None) -> dict[str, str]:
    """'item_id=sku,title=name' -> {'item_id': 'sku', 'title': 'name'}."""
    if not spec:
        return {}
    out = {}
    for part in spec.split(","):
        if "=" not in part:
            raise GsidError(f"column mapping {part!r} must look like gsid_column=your_column")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def parse_fractions(spec: str) -> tuple[float, float, float]:
    from gsid.data.splits import check_fractions

    try:
        parts = tuple(float(x) for x in spec.split(","))
        return check_fractions(parts)  # type: ignore[arg-type]
    except ValueError:
        raise GsidError(
            f"--split-fractions needs 3 non-negative numbers summing to 1 (train,dev,test), "
            f"like 0.8,0.1,0.1; got {spec!r}"
        ) from None


def guard_out(args: argparse.Namespace, kind: str, *inputs: str | None, out: str | None = None):
    """Refuse, before any work, an --out that would lose a user's files (see gsid._io)."""
    from gsid._io import check_out

    check_out(
        out or args.out,
        kind,
        force=getattr(args, "force", False),
        inputs=[i for i in inputs if i],
    )


def data_path(spec: str | None) -> str | None:
    """The file-system input behind a --data spec (None for synthetic:N)."""
    if spec is None:
        return None
    kind, sep, rest = spec.partition(":")
    if sep and kind == "synthetic":
        return None
    if sep and kind in ("homedepot", "instacart", "bestbuy"):
        return rest
    return spec


def guard_report_dir(path: str) -> None:
    """A directory that reports go into: writable now, not after an hour of benchmarking."""
    from gsid._io import OutputError, check_writable

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p} is a file; pass a directory for the reports")
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"{p} is not writable; choose another --out")
    check_writable(p)


def load_data(spec: str, seed: int = 0, show_progress: bool | None = None):
    """A dataset directory, `synthetic:N`, or `homedepot|instacart|bestbuy:PATH`."""
    from gsid.data import Dataset

    kind, sep, rest = spec.partition(":")
    if sep and kind == "synthetic":
        from gsid.data.synthetic import make_marketplace

        if not rest.strip().isdigit():
            raise GsidError(
                f"--data {spec!r}: synthetic:N needs a whole number of items, e.g. synthetic:3000"
            )
        return make_marketplace(n_items=int(rest), seed=seed, show_progress=show_progress)
    if sep and kind in ("homedepot", "instacart", "bestbuy"):
        from gsid.data.importers import import_dataset

        return import_dataset(kind, rest)
    return Dataset.load(spec)
