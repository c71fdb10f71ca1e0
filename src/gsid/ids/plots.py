"""PNG plots of semantic IDs (matplotlib, imported only when plotting; figures are drawn on
their own Agg canvas, never through pyplot, so the caller's backend and open figures are untouched).

    plot_code_distribution(ids, "ids_levels.png")    # sorted token frequencies, one panel a level
    plot_code_tree(ids, "ids_tree.png", depth=2)     # icicle of the first levels + group sizes

A sand-glass shows in the first plot as a middle panel whose curve drops steeply after a few
tokens (high top-k share), between flatter first and last panels.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from gsid.errors import GsidError
from gsid.ids.diagnostics import diagnose
from gsid.ids.product_metrics import prefix_groups


def _figure(**kw: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kw)
    FigureCanvasAgg(fig)  # files only: no display, no pyplot global state
    return fig


def plot_code_distribution(
    ids: Any, path: str | os.PathLike, title: str | None = None, top_k: tuple[int, ...] = (1, 10)
) -> Path:
    """One panel per level: token frequencies sorted high to low (log y), annotated with the
    top-k shares, normalised entropy and utilisation; a dashed line marks the uniform share.
    Columns of adaptive variable-length IDs draw native tokens, shifted tokens and
    disambiguation codes as separate curves."""
    if ids.n_items == 0:
        raise GsidError("cannot plot semantic IDs of an empty catalogue (0 items)")
    diag = diagnose(ids, top_k=top_k)
    L = ids.n_levels
    cols = min(L, 4)
    rows = math.ceil(L / cols)
    fig = _figure(figsize=(3.6 * cols, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    repair = (getattr(ids, "config", {}) or {}).get("sandglass_repair") or {}
    tok_offsets = repair.get("token_offsets") or {}
    dis_offsets = repair.get("disambiguation_offsets") or {}
    for j in range(L):
        ax = axes[j // cols][j % cols]
        has = ids.lengths > j
        K = int(ids.codebook_sizes[j])
        counts = np.bincount(ids.codes[has, j], minlength=K)[:K]
        # adaptive IDs: codes past the native range are shifted next-level tokens or
        # disambiguation codes; draw them apart
        t_off = int(tok_offsets.get(str(j), K))
        d_off = int(dis_offsets.get(str(j), K))
        off = min(t_off, d_off)
        parts = [("native", counts[:off], "tab:blue")]
        if t_off < K:
            parts.append(("shifted from next level", counts[t_off:d_off], "tab:orange"))
        if d_off < K:
            parts.append(("disambiguation", counts[d_off:], "tab:green"))
        for label, part, colour in parts:
            freq = np.sort(part)[::-1] / max(int(has.sum()), 1)
            used = freq[freq > 0]
            x = np.arange(1, len(used) + 1)
            ax.plot(x, used, color=colour, lw=1.5, label=label if off < K else None)
            ax.fill_between(x, used, color=colour, alpha=0.15)
        if off < K:
            ax.legend(loc="best", fontsize=7)
        ax.axhline(1.0 / max(off, 1), color="grey", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlim(1, max(K, 2))
        r = diag["levels"][j]
        shares = ", ".join(f"top{k} {100 * r['top_share'][str(k)]:.0f}%" for k in top_k)
        kind = "" if j in diag["sandglass"]["levels"] else ", disambiguation"
        ax.set_title(f"level {j} (K={K}, {int(has.sum())} items{kind})", fontsize=9)
        ax.text(
            0.97,
            0.97,
            f"{shares}\nH/Hmax {r['normalised_entropy']:.2f}\nused {r['used']}/{K}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.9},
        )
        ax.set_xlabel("token rank", fontsize=8)
        if j % cols == 0:
            ax.set_ylabel("share of items", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
    for j in range(L, rows * cols):
        axes[j // cols][j % cols].axis("off")
    sg = diag["sandglass"]
    sub = (
        f"sand-glass score {sg['score']:+.3f} (routing level {sg['routing_level']})"
        if sg["score"] is not None
        else "sand-glass score n/a (< 3 levels)"
    )
    fig.suptitle(f"{title or 'token distribution per level'} — {sub}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_code_tree(
    ids: Any,
    path: str | os.PathLike,
    depth: int = 2,
    title: str | None = None,
    label_min_share: float = 0.03,
) -> Path:
    """Icicle of the first `depth` levels (a row per level, each node as wide as its item
    count, coloured by its first code; large nodes labelled), and below it the sizes of the code
    groups at prefix length `depth`, sorted (log scale)."""
    if ids.n_items == 0:
        raise GsidError("cannot plot semantic IDs of an empty catalogue (0 items)")
    if not 1 <= depth <= ids.n_levels:
        raise GsidError(f"depth must be in 1..{ids.n_levels}, got {depth}")
    from matplotlib import colormaps
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    codes, lengths, _ = ids.sorted_codes()  # sorted: every prefix is a contiguous run
    n = len(codes)
    fig = _figure(figsize=(11, 2.0 + 1.1 * depth + 2.4))
    ax, ax2 = fig.subplots(2, 1, gridspec_kw={"height_ratios": [depth, 2.2]})
    cmap = colormaps["tab20"]
    first = codes[:, 0]
    for d in range(depth):
        g = prefix_groups(codes, d + 1)
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        ends = np.r_[starts[1:], n]
        rects, colours = [], []
        for s, e in zip(starts, ends, strict=True):
            if lengths[s] <= d:  # an ID shorter than this depth has no node here
                continue
            rects.append(Rectangle((s / n, depth - d - 1), (e - s) / n, 0.92))
            # siblings alternate in shade so their borders show even without edge lines
            r, g_, b, _ = cmap(int(first[s]) % 20)
            shade = 1.0 if len(rects) % 2 else 0.72
            colours.append((r * shade, g_ * shade, b * shade, 1.0))
            if (e - s) / n >= label_min_share:
                ax.text(
                    (s + e) / 2 / n,
                    depth - d - 0.54,
                    str(int(codes[s, d])),
                    ha="center",
                    va="center",
                    fontsize=7,
                )
        lw = 0.3 if len(rects) < 400 else 0.0
        ax.add_collection(PatchCollection(rects, facecolors=colours, edgecolors="white", lw=lw))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, depth)
    ax.set_yticks([depth - d - 0.54 for d in range(depth)])
    ax.set_yticklabels([f"level {d}" for d in range(depth)], fontsize=8)
    ax.set_xlabel("share of items (in code order)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title or f"code tree, first {depth} level(s)", fontsize=10)

    g = prefix_groups(codes, depth)
    sizes = np.sort(np.bincount(g))[::-1]
    ax2.bar(np.arange(1, len(sizes) + 1), sizes, width=1.0, color="tab:blue")
    ax2.set_yscale("log")
    ax2.set_xlim(0.5, len(sizes) + 0.5)
    ax2.set_xlabel(f"code groups at prefix length {depth}, largest first", fontsize=8)
    ax2.set_ylabel("items", fontsize=8)
    ax2.tick_params(labelsize=7)
    ax2.text(
        0.99,
        0.95,
        f"{len(sizes)} groups; largest {int(sizes[0])} items "
        f"({100 * sizes[0] / n:.1f}%); median {int(np.median(sizes))}",
        transform=ax2.transAxes,
        ha="right",
        va="top",
        fontsize=8,
    )
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
