"""The bench's figures: the label-dodging helper and a smoke render of the plots."""

from __future__ import annotations

import json
import random
from pathlib import Path

from mmssl import bench_plots
from mmssl.bench_plots import _dodge


def test_dodge_spaces_labels_and_keeps_their_order() -> None:
    rng = random.Random(0)
    ys = [rng.uniform(80, 94) for _ in range(25)] + [23.4, 33.4, 47.9, 47.9]
    gap = 2.5
    out = _dodge(ys, gap, lo=15.0, hi=100.0)
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    placed = [out[i] for i in order]
    assert all(b - a >= gap - 1e-9 for a, b in zip(placed, placed[1:], strict=False))
    assert 15.0 <= min(out) and max(out) <= 100.0
    assert _dodge([0.0, 10.0, 5.0], 1.0) == [0.0, 10.0, 5.0]  # apart already: unmoved
    assert _dodge([], 1.0) == []


def test_plots_render_with_negative_losses(tmp_path: Path) -> None:
    rows = []
    for i, method in enumerate(["simsiam", "simclr", "mae"]):
        family = "generative" if method == "mae" else "contrastive"
        row = {"modality": "vision", "method": method, "family": family, "metric": "knn.top1"}
        rows.append({**row, "mean": 0.8 + 0.01 * i, "std": 0.01, "train_seconds": 5.0 * 10**i})
        seed = tmp_path / "vision" / method / "seed0"
        seed.mkdir(parents=True)
        losses = [-1.0, -2.5, -3.3] if method == "simsiam" else [4.0, 3.0, 2.0]
        lines = [json.dumps({"step": 10 * (k + 1), "loss": v}) for k, v in enumerate(losses)]
        (seed / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    rows.append({**rows[0], "method": "classical", "family": "baseline", "train_seconds": 0.0})
    for plot in (bench_plots.accuracy_by_method, bench_plots.accuracy_vs_time):
        assert plot(rows, tmp_path / f"{plot.__name__}.png").stat().st_size > 1000
    made = bench_plots.learning_curves(tmp_path, rows, tmp_path / "curves.png")
    assert made is not None and made.stat().st_size > 1000
