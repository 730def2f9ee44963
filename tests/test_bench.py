"""The bench: cells are ordinary runs, finished cells are never rerun, failures are reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmssl import cli
from mmssl.bench import collect, load_suite, primary_metric, run_bench

SUITE = {
    "graph": {
        "data": "karate",
        "train": {"max_steps": 3, "patience": None},
        "method_options": {"hidden_dim": 16},
        "seeds": 2,
        "probe": "knn",
        "reference": "dgi",
    },
    "vision": {
        "data": "digits",
        "train": {"max_steps": 2, "batch_size": 64},
        "method_options": {"encoder": "small"},
        "seeds": 1,
        "probe": "knn",
        "reference": "simclr",
    },
}


def test_cells_baselines_report_and_resume(tmp_path: Path) -> None:
    logs: list[str] = []
    methods = ["dgi", "random-init", "classical"]
    summary = run_bench(SUITE, tmp_path, modalities=["graph"], methods=methods, log=logs.append)
    rows = {(r["modality"], r["method"]): r for r in summary["rows"]}
    assert set(rows) == {("graph", "dgi"), ("graph", "random-init"), ("graph", "classical")}
    assert (
        rows[("graph", "dgi")]["seeds"] == 2 and rows[("graph", "dgi")]["family"] == "contrastive"
    )
    assert all(0.0 <= v <= 1.0 for r in rows.values() for v in r["values"])
    cell = tmp_path / "graph" / "dgi" / "seed1"
    assert (cell / "results.json").is_file() and (cell / "checkpoints" / "latest.pt").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "| contrastive |" in report and "classical" in report and "wins with dgi" in report
    assert "Against the same encoder at random init" in report  # the gap to the baseline
    assert "| contrastive | 1 | dgi |" in report  # the per-family table
    assert (tmp_path / "plots" / "accuracy_by_method.png").stat().st_size > 1000

    stamp = (cell / "results.json").stat().st_mtime_ns
    logs.clear()
    run_bench(SUITE, tmp_path, modalities=["graph"], methods=methods, log=logs.append)
    assert logs == []  # every cell was finished: nothing reran
    assert (cell / "results.json").stat().st_mtime_ns == stamp


def test_vision_classical_baseline_is_raw_pixels(tmp_path: Path) -> None:
    summary = run_bench(SUITE, tmp_path, modalities=["vision"], methods=["classical"])
    (row,) = summary["rows"]
    assert row["metric"] == "knn.top1" and row["mean"] > 0.8  # kNN on raw digits pixels


def test_a_failing_cell_is_recorded_and_the_rest_goes_on(tmp_path: Path) -> None:
    suite = {"graph": {**SUITE["graph"], "seeds": 1, "train": {"max_steps": 3, "lr": -1.0}}}
    summary = run_bench(suite, tmp_path, methods=["dgi", "classical"], log=lambda _: None)
    rows = {r["method"]: r for r in summary["rows"]}
    assert rows["dgi"]["failed"] == ["seed0"]
    assert "Traceback" in (tmp_path / "graph" / "dgi" / "seed0" / "error.txt").read_text()
    assert rows["classical"]["seeds"] == 1
    assert "1 failed" in (tmp_path / "report.md").read_text()


def test_cli_bench_and_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "suite.yaml"
    config.write_text(json.dumps({"graph": {**SUITE["graph"], "seeds": 1}}))
    code = cli.main(
        ["bench", "--config", str(config), "--methods", "classical", "--out", str(tmp_path / "b")]
    )
    assert code == 0 and (tmp_path / "b" / "report.md").is_file()
    assert len(collect(tmp_path / "b")) == 1
    with pytest.raises(FileNotFoundError, match="neither quick nor full"):
        load_suite(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("audio: {}\n")
    assert cli.main(["bench", "--config", str(bad)]) == 2
    assert "top-level keys must be modalities" in capsys.readouterr().err


def test_primary_metric_prefers_test_accuracy() -> None:
    probe = {"linear": {"val_acc": 0.9, "test_acc": 0.8}}
    assert primary_metric(probe) == ("linear.test_acc", 0.8)
    assert primary_metric({"knn": {"top1": 0.5}}) == ("knn.top1", 0.5)
    assert primary_metric({}) is None


def test_sections_of_one_modality_keep_their_own_methods_and_folders(tmp_path: Path) -> None:
    suite = {
        "graph": {**SUITE["graph"], "seeds": 1, "exclude": ["dgi"]},
        "small-graph": {**SUITE["graph"], "modality": "graph", "seeds": 1, "methods": ["dgi"]},
    }
    logs: list[str] = []
    run_bench(suite, tmp_path, modalities=["graph"], methods=["dgi", "classical"], log=logs.append)
    assert (tmp_path / "small-graph" / "dgi" / "seed0" / "results.json").is_file()
    assert not (tmp_path / "graph" / "dgi").exists()  # excluded from that section
    assert {(r["modality"], r["method"]) for r in collect(tmp_path)} == {
        ("graph", "classical"),
        ("small-graph", "classical"),
        ("small-graph", "dgi"),
    }
    assert "## small-graph" in (tmp_path / "report.md").read_text()
    with pytest.raises(ValueError, match="did you mean .dgi."):
        run_bench({"g": {**SUITE["graph"], "modality": "graph", "methods": ["dgj"]}}, tmp_path)
