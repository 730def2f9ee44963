"""benchmarks/vision_subset.py: the gains plot and the table built from finished runs only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image


def _finished(run: Path, knn: float, base: float) -> None:
    run.mkdir(parents=True)
    result = {
        "family": "contrastive",
        "kind": "instance-instance/discrimination",
        "epochs": 16,
        "probe": {"knn": {"top1": knn}},
        "random_init": {"knn": {"top1": base}},
        "train_seconds": 1.0,
        "device": "cpu",
    }
    (run / "results.json").write_text(json.dumps(result))
    (run / "linear.json").write_text(json.dumps({"linear": 0.4, "linear_random_init": 0.34}))


def test_plot_gains_writes_a_png_and_skips_empty_tables(tmp_path, load_benchmark):
    vs = load_benchmark("vision_subset")
    assert vs.plot_gains([], tmp_path / "none.png") is None
    rows = [
        {"method": "a", "epochs": 16, "gain": 0.12, "linear": 0.4, "linear_random_init": 0.34},
        {"method": "b", "epochs": 16, "gain": -0.01},
    ]
    path = vs.plot_gains(rows, tmp_path / "gains.png")
    assert path.is_file() and Image.open(path).size[0] > 100


def test_report_only_tables_finished_runs_and_trains_nothing(
    tmp_path, monkeypatch, capsys, load_benchmark
):
    vs = load_benchmark("vision_subset")
    _finished(tmp_path / "simclr", 0.40, 0.26)
    _finished(tmp_path / "byol", 0.34, 0.26)

    def no_training(*args, **kwargs):
        raise AssertionError("--report-only must not train")

    monkeypatch.setattr(vs, "pretrain", no_training)
    argv = ["vision_subset.py", "--data-root", str(tmp_path), "--out", str(tmp_path)]
    methods = ["--methods", "simclr,byol,dino", "--linear", "--report-only"]
    monkeypatch.setattr(sys, "argv", argv + methods)
    vs.main()
    rows = json.loads((tmp_path / "table.json").read_text())
    assert [r["method"] for r in rows] == ["simclr", "byol"]  # dino has no finished run
    assert abs(rows[0]["gain"] - 0.14) < 1e-9 and rows[1]["linear"] == 0.4
    assert (tmp_path / "gains.png").is_file() and "| simclr |" in capsys.readouterr().out
