"""The bench's figures: accuracy by method, accuracy against training time, learning curves
and a 2-D t-SNE map of one contrastive and one generative encoder per modality."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import torch  # noqa: E402

__all__ = ["make_all"]

COLOURS = {
    "generative": "tab:orange",
    "contrastive": "tab:blue",
    "generative-contrastive": "tab:green",
    "baseline": "tab:gray",
}


def _scale(rows: list[dict[str, Any]]) -> float:
    finite = [r["mean"] for r in rows if not math.isnan(r["mean"])]
    return 100.0 if finite and max(finite) <= 1.0 else 1.0


def _by_modality(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if not math.isnan(r["mean"]):
            out.setdefault(r["modality"], []).append(r)
    return out


PANEL_W, PANEL_H = 7.0, 5.0  # inches per panel; two panels a row
FONT = {
    "font.size": 11,
    "axes.titlesize": 13,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 11,
    "figure.titlesize": 14,
}
LABEL_PT = 9.0  # point labels; shrunk only where a panel has too many to stack
LEGEND_IN, TITLE_IN = 0.55, 0.55  # figure margins (inches) for the legend and the title


def _dodge(
    ys: list[float], gap: float, lo: float | None = None, hi: float | None = None
) -> list[float]:
    """Move label heights ``ys`` apart so that neighbours end at least ``gap`` apart.

    The order of the labels by height is kept and the total squared shift is the least
    possible (isotonic regression of ``y_k - k * gap`` over the sorted labels). The labels
    are kept inside ``[lo, hi]`` where they fit; where they do not, ``gap`` wins over
    ``hi``. Returns the new heights in the order of ``ys``.
    """
    n = len(ys)
    order = sorted(range(n), key=lambda i: ys[i])
    blocks: list[list[float]] = []  # [mean, count] of pooled, adjacent labels
    for k, i in enumerate(order):
        blocks.append([ys[i] - k * gap, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, c2 = blocks.pop()
            m1, c1 = blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    shifted = [m for m, c in blocks for _ in range(int(c))]
    if hi is not None:
        shifted = [min(v, hi - (n - 1) * gap) for v in shifted]
    if lo is not None:
        shifted = [max(v, lo) for v in shifted]
    out = [0.0] * n
    for k, i in enumerate(order):
        out[i] = shifted[k] + k * gap
    return out


def _grid(n: int, heights: list[float] | None = None) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels, two a row; ``heights`` (inches) sets each row's height."""
    cols = 1 if n == 1 else 2
    nrows = math.ceil(n / cols)
    heights = heights or [PANEL_H] * nrows
    fig, axes = plt.subplots(
        nrows,
        cols,
        figsize=(PANEL_W * cols, sum(heights) + LEGEND_IN + TITLE_IN),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def _finish(fig: Any, title: str) -> None:
    """Figure title, one family legend under the panels, layout, save."""
    height = fig.get_figheight()
    fig.suptitle(title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    fig.legend(
        handles,
        list(COLOURS),
        loc="lower center",
        ncol=len(COLOURS),
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )
    fig.tight_layout(rect=(0, LEGEND_IN / height, 1, 1 - TITLE_IN / height))


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label_column(
    ax: Any,
    points: list[tuple[float, float, str, str]],
    x_text: float,
    lo: float,
    hi: float,
) -> None:
    """Label ``(x, y, text, colour)`` points in a column at axes-x ``x_text``, the labels
    dodged apart by their font height and tied to their points by thin leader lines.
    Call once the layout is final: the font height in data units depends on it."""
    if not points:
        return
    fig = ax.figure
    axes_pt = ax.get_position().height * fig.get_figheight() * 72
    size = min(LABEL_PT, axes_pt / (1.2 * len(points)))  # shrink only if they cannot stack
    size = max(size, 5.0)
    gap = 1.2 * size / axes_pt * (hi - lo)
    ys = _dodge([p[1] for p in points], gap, lo + gap / 2, hi - gap / 2)
    for (x, y, text, colour), yl in zip(points, ys, strict=True):
        ax.annotate(
            text,
            xy=(x, y),
            xycoords="data",
            xytext=(x_text, yl),
            textcoords=ax.get_yaxis_transform(),  # x in axes fraction, y in data
            fontsize=size,
            color=colour,
            va="center",
            ha="left",
            annotation_clip=False,
            arrowprops={
                "arrowstyle": "-",
                "lw": 0.5,
                "color": colour,
                "alpha": 0.5,
                "shrinkA": 0,
                "shrinkB": 2,
                "relpos": (0.0, 0.5),  # end at the text's left middle, not across its letters
            },
        )


def _room_right(ax: Any, xs: list[float], log: bool, used: float) -> None:
    """Set x limits so the data fill only the left ``used`` fraction of the axes."""
    f = math.log10 if log else float
    lo, hi = f(min(xs)), f(max(xs))
    span = (hi - lo) or 1.0
    total = span / (used - 0.04)
    lo_lim, hi_lim = lo - 0.04 * total, lo - 0.04 * total + total
    top = lo - 0.04 * total + used * total  # where the data part of the axes ends
    if log:
        ax.set_xscale("log")
        lo_lim, hi_lim, top = 10**lo_lim, 10**hi_lim, 10**top
        # 1-2-5 ticks in plain numbers: a decade or two has too few powers of ten to read
        ticks = [m * 10.0**k for k in range(-3, 7) for m in (1, 2, 5)]
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    else:
        ax.set_xlim(lo_lim, hi_lim)
        ticks = list(ax.get_xticks())
    # no ticks under the label column: the axis ends, in effect, where the data end
    ax.set_xticks([t for t in ticks if lo_lim <= t <= top])
    ax.set_xlim(lo_lim, hi_lim)


def accuracy_by_method(rows: list[dict[str, Any]], path: Path) -> Path | None:
    groups = sorted(_by_modality(rows).items())
    if not groups:
        return None
    cols = 1 if len(groups) == 1 else 2
    counts = [len(g) for _, g in groups]
    heights = [
        max(PANEL_H, 1.4 + 0.24 * max(counts[i : i + cols])) for i in range(0, len(counts), cols)
    ]
    with plt.rc_context(FONT):
        fig, axes = _grid(len(groups), heights)
        for ax, (modality, mrows) in zip(axes, groups, strict=True):
            s = _scale(mrows)
            mrows = sorted(mrows, key=lambda r: r["mean"])
            ys = range(len(mrows))
            ax.barh(
                ys,
                [r["mean"] * s for r in mrows],
                xerr=[r["std"] * s for r in mrows],
                color=[COLOURS.get(r["family"], "black") for r in mrows],
                error_kw={"lw": 1, "capsize": 2},
            )
            ax.set_yticks(list(ys), [r["method"] for r in mrows])
            ax.set_ylim(-0.6, len(mrows) - 0.4)
            lo = min(r["mean"] - r["std"] for r in mrows) * s
            ax.set_xlim(max(0.0, lo - 5), max(r["mean"] + r["std"] for r in mrows) * s + 2)
            ax.set_xlabel(f"{mrows[0]['metric']} (%)" if s == 100 else mrows[0]["metric"])
            ax.set_title(modality)
            ax.grid(axis="x", alpha=0.3)
        _finish(fig, "Probe accuracy by method (mean ± std over seeds), coloured by family")
        _save(fig, path)
    return path


def accuracy_vs_time(rows: list[dict[str, Any]], path: Path) -> Path | None:
    groups = _by_modality(rows)
    groups = {m: [r for r in g if r["family"] != "baseline"] for m, g in groups.items()}
    groups = {m: g for m, g in groups.items() if g}
    if not groups:
        return None
    used = 0.7  # the left part of each panel holds the points, the right part their names
    with plt.rc_context(FONT):
        fig, axes = _grid(len(groups))
        labels = []
        for ax, (modality, mrows) in zip(axes, sorted(groups.items()), strict=True):
            s = _scale(mrows)
            xs = [r["train_seconds"] for r in mrows]
            log = min(xs) > 0 and max(xs) > 10 * min(xs)
            for r in mrows:
                ax.errorbar(
                    r["train_seconds"],
                    r["mean"] * s,
                    yerr=r["std"] * s,
                    fmt="o",
                    ms=5,
                    lw=1,
                    color=COLOURS.get(r["family"], "black"),
                )
            _room_right(ax, xs, log, used)
            lo = min(r["mean"] - r["std"] for r in mrows) * s
            hi = max(r["mean"] + r["std"] for r in mrows) * s
            pad = 0.06 * ((hi - lo) or 1.0)
            ax.set_ylim(lo - pad, hi + pad)
            scale = "log scale" if log else "linear"
            ax.set_xlabel(f"training seconds (mean over seeds, {scale})")
            ax.set_ylabel("probe accuracy (%)" if s == 100 else "probe")
            ax.set_title(modality)
            ax.grid(alpha=0.3)
            points = [
                (r["train_seconds"], r["mean"] * s, r["method"], COLOURS.get(r["family"], "black"))
                for r in mrows
            ]
            labels.append((ax, points, lo - pad, hi + pad))
        _finish(fig, "Accuracy against training time")
        for ax, points, lo, hi in labels:
            _label_column(ax, points, used + 0.06, lo, hi)
        _save(fig, path)
    return path


def _loss_curve(metrics: Path) -> tuple[list[float], list[float]] | None:
    """Steps and losses scaled to [0, 1] (1 = the highest logged loss, 0 = the lowest)."""
    if not metrics.is_file():
        return None
    recs = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    recs = [x for x in recs if isinstance(x.get("loss"), int | float) and math.isfinite(x["loss"])]
    if len(recs) < 2:
        return None
    losses = [float(x["loss"]) for x in recs]
    lo, hi = min(losses), max(losses)
    span = hi - lo
    scaled = [(v - lo) / span if span > 0 else 0.5 for v in losses]
    return [float(x["step"]) for x in recs], scaled


def learning_curves(out: Path, rows: list[dict[str, Any]], path: Path) -> Path | None:
    groups = _by_modality([r for r in rows if r["family"] != "baseline"])
    if not groups:
        return None
    used = 0.7
    with plt.rc_context(FONT):
        fig, axes = _grid(len(groups))
        labels = []
        for ax, (modality, mrows) in zip(axes, sorted(groups.items()), strict=True):
            points = []
            steps: list[float] = []
            for r in mrows:
                curve = _loss_curve(out / modality / r["method"] / "seed0" / "metrics.jsonl")
                if curve is None:
                    continue
                xs, ys = curve
                colour = COLOURS.get(r["family"], "black")
                ax.plot(xs, ys, color=colour, alpha=0.8, lw=1.2)
                points.append((xs[-1], ys[-1], r["method"], colour))
                steps += xs
            if steps:
                _room_right(ax, steps, False, used)
            ax.set_ylim(-0.05, 1.05)
            ax.set_xlabel("step")
            ax.set_ylabel("training loss, min-max scaled per method\n(1 = highest, 0 = lowest)")
            ax.set_title(f"{modality} (seed 0)")
            ax.grid(alpha=0.3)
            labels.append((ax, points))
        _finish(fig, "Learning curves")
        for ax, points in labels:
            _label_column(ax, points, used + 0.08, -0.05, 1.05)
        _save(fig, path)
    return path


def _tsne_points(run: Path, limit: int = 1500) -> tuple[Any, Any] | None:
    from sklearn.manifold import TSNE

    from mmssl.core.evaluate import extract_features
    from mmssl.pretrain import load_run

    method, data, cfg = load_run(run)
    if data.probe is None:
        return None
    feats = extract_features(method, data.probe)
    split = "test" if "test" in feats else next(iter(feats))
    x, y = feats[split]
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(x), generator=g)[:limit]
    x, y = x[idx], y[idx]
    xy = TSNE(2, init="pca", random_state=0, perplexity=min(30, len(x) - 1)).fit_transform(
        x.numpy()
    )
    return xy, y.numpy()


def tsne_maps(out: Path, rows: list[dict[str, Any]], path: Path) -> Path | None:
    picks = []
    for modality, mrows in sorted(_by_modality(rows).items()):
        for family in ("contrastive", "generative"):
            best = max(
                (r for r in mrows if r["family"] == family), key=lambda r: r["mean"], default=None
            )
            run = out / modality / best["method"] / "seed0" if best else None
            if run is not None and (run / "checkpoints" / "latest.pt").is_file():
                picks.append((modality, best, run))
    if not picks:
        return None
    cols = 2
    nrows = math.ceil(len(picks) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(9, 4.2 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (modality, r, run) in zip(axes.flat, picks, strict=False):
        try:
            pts = _tsne_points(run)
        except Exception as err:  # a plot must not sink the report
            ax.set_title(f"{modality} {r['method']}: t-SNE failed ({type(err).__name__})")
            continue
        if pts is None:
            continue
        xy, y = pts
        ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab10", s=4)
        ax.set_title(f"{modality}: {r['method']} ({r['family']})", fontsize=9)
    fig.suptitle("t-SNE of frozen embeddings, coloured by the probe's labels")
    fig.tight_layout(rect=(0, 0, 1, 1 - TITLE_IN / fig.get_figheight()))  # room for the title
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_all(out: Path, rows: list[dict[str, Any]]) -> list[Path]:
    """Write every plot under ``out/plots``; returns the paths written."""
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    made = [
        accuracy_by_method(rows, plots / "accuracy_by_method.png"),
        accuracy_vs_time(rows, plots / "accuracy_vs_time.png"),
        learning_curves(out, rows, plots / "learning_curves.png"),
        tsne_maps(out, rows, plots / "tsne.png"),
    ]
    return [p for p in made if p is not None]
