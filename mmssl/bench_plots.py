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


def _legend(ax: Any) -> None:
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    ax.legend(
        handles,
        list(COLOURS),
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25),
        ncol=2,
        frameon=False,
    )


def accuracy_by_method(rows: list[dict[str, Any]], path: Path) -> Path | None:
    groups = _by_modality(rows)
    if not groups:
        return None
    height = max(len(g) for g in groups.values())
    fig, axes = plt.subplots(
        1, len(groups), figsize=(max(7, 5 * len(groups)), 2.2 + 0.32 * height), squeeze=False
    )
    for ax, (modality, mrows) in zip(axes[0], sorted(groups.items()), strict=True):
        s = _scale(mrows)
        mrows = sorted(mrows, key=lambda r: r["mean"])
        ys = range(len(mrows))
        ax.barh(
            ys,
            [r["mean"] * s for r in mrows],
            xerr=[r["std"] * s for r in mrows],
            color=[COLOURS.get(r["family"], "black") for r in mrows],
        )
        ax.set_yticks(list(ys), [r["method"] for r in mrows], fontsize=8)
        lo = min(r["mean"] - r["std"] for r in mrows) * s
        ax.set_xlim(max(0.0, lo - 5), max(r["mean"] + r["std"] for r in mrows) * s + 2)
        ax.set_xlabel(f"{mrows[0]['metric']} (%)" if s == 100 else mrows[0]["metric"])
        ax.set_title(modality)
        _legend(ax)
    fig.suptitle(
        "Probe accuracy by method (mean ± std over seeds), coloured by family", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy_vs_time(rows: list[dict[str, Any]], path: Path) -> Path | None:
    groups = _by_modality(rows)
    groups = {m: [r for r in g if r["family"] != "baseline"] for m, g in groups.items()}
    groups = {m: g for m, g in groups.items() if g}
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(max(7, 5 * len(groups)), 4.6), squeeze=False)
    for ax, (modality, mrows) in zip(axes[0], sorted(groups.items()), strict=True):
        s = _scale(mrows)
        for r in mrows:
            ax.errorbar(
                r["train_seconds"],
                r["mean"] * s,
                yerr=r["std"] * s,
                fmt="o",
                color=COLOURS.get(r["family"], "black"),
            )
            ax.annotate(r["method"], (r["train_seconds"], r["mean"] * s), fontsize=7)
        ax.set_xlabel("training seconds (mean over seeds)")
        ax.set_ylabel("probe accuracy (%)" if s == 100 else "probe")
        ax.set_title(modality)
        _legend(ax)
    fig.suptitle("Accuracy against training time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(out: Path, rows: list[dict[str, Any]], path: Path) -> Path | None:
    groups = _by_modality([r for r in rows if r["family"] != "baseline"])
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(max(7, 5 * len(groups)), 4.6), squeeze=False)
    for ax, (modality, mrows) in zip(axes[0], sorted(groups.items()), strict=True):
        for r in mrows:
            metrics = out / modality / r["method"] / "seed0" / "metrics.jsonl"
            if not metrics.is_file():
                continue
            recs = [json.loads(line) for line in metrics.read_text().splitlines() if line]
            recs = [x for x in recs if "loss" in x]
            if len(recs) < 2 or not recs[0]["loss"]:
                continue
            first = abs(recs[0]["loss"]) or 1.0
            ax.plot(
                [x["step"] for x in recs],
                [x["loss"] / first for x in recs],
                color=COLOURS.get(r["family"], "black"),
                alpha=0.8,
                lw=1,
            )
            ax.annotate(r["method"], (recs[-1]["step"], recs[-1]["loss"] / first), fontsize=6)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss / first logged loss (seed 0)")
        ax.set_title(modality)
        _legend(ax)
    fig.suptitle("Learning curves")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
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
    fig.tight_layout()
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
