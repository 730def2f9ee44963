"""The command line end to end on the offline default data: run folder, resume, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from mmssl.cli import main


def test_list_json_has_every_foundation_method(capsys):
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {(r["modality"], r["name"]) for r in rows}
    assert {("graph", "dgi"), ("vision", "simclr"), ("text", "mlm")} <= names
    assert all(r["family"] and r["kind"] for r in rows)
    assert main(["list"]) == 0
    assert "dgi" in capsys.readouterr().out


def test_pretrain_writes_the_run_folder_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "pretrain",
        "graph",
        "--method",
        "dgi",
        "--epochs",
        "4",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    for name in ("config.yaml", "metrics.jsonl", "encoder.safetensors", "results.json"):
        assert (out / name).is_file(), name
    assert (out / "checkpoints" / "latest.pt").is_file()
    res = json.loads((out / "results.json").read_text())
    for key in (
        "method",
        "modality",
        "family",
        "kind",
        "dataset",
        "seed",
        "epochs",
        "train_seconds",
        "peak_memory_mb",
    ):
        assert key in res, key
    assert res["method"] == "dgi" and res["dataset"] == "karate" and res["epochs"] == 4
    assert 0.0 <= res["probe"]["linear"]["test_acc"] <= 1.0 and "random_init" in res
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["train"]["epochs"] == 4 and cfg["method"] == "dgi"

    # a second run into the same folder must not overwrite it silently
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    # resuming a finished run to a longer budget continues from its checkpoint
    assert (
        main(
            [
                "pretrain",
                "graph",
                "--out",
                str(out),
                "--resume",
                "--epochs",
                "6",
                "--no-progress",
                "--probe",
                "none",
            ]
        )
        == 0
    )
    assert json.loads((out / "results.json").read_text())["epochs"] == 6
    assert main(["probe", str(out)]) == 0
    assert "linear" in capsys.readouterr().out
    # probing again with --baseline scores random init as the run did, fold by fold under CV
    assert main(["probe", str(out), "--baseline"]) == 0
    again = json.loads(capsys.readouterr().out.splitlines()[0])
    fresh = res["random_init"]["linear"]
    assert again["random_init"]["linear"]["test_acc"] == pytest.approx(fresh["test_acc"])
    # a given test split is compared example by example; printed without the per-example string
    assert again["vs_random_init"]["examples"] == len(fresh["test_correct"])
    assert "test_correct" not in again["probe"]["linear"]
    assert main(["probe", str(out), "--baseline", "--probe", "logreg-cv"]) == 0
    printed = capsys.readouterr().out
    gain = json.loads(printed.splitlines()[0])["vs_random_init"]
    assert len(gain["fold_gains"]) == gain["folds"] and "against random init" in printed
    assert res["baseline_encoder"] == "random init"


def test_gain_line_names_the_baseline(capsys):
    """A method continued from a saved encoder is compared with that encoder, and says so."""
    from mmssl.cli import _print_gain

    gain = {"metric": "linear.test_acc", "gain": 0.012, "better": 9, "worse": 3}
    _print_gain(
        {
            "baseline_encoder": "its starting encoder runs/mlm/encoder",
            "vs_random_init": {**gain, "examples": 50, "p": 0.07},
        }
    )
    line = capsys.readouterr().out
    assert line.startswith("against its starting encoder runs/mlm/encoder (linear.test_acc): +1.20")
    assert "random init" not in line


@pytest.mark.parametrize(
    "args,message",
    [
        (["pretrain", "graph", "--method", "dgii"], "did you mean 'dgi'"),
        (
            ["pretrain", "vision", "--method", "simclr", "--data", "/nonexistent/images"],
            "/nonexistent/images",
        ),
        (["pretrain", "graph", "--optimizer", "adam", "--lr", "-1"], "lr must be > 0"),
        (
            ["pretrain", "graph", "--method-opt", "nonsense_option=3", "--epochs", "1"],
            "nonsense_option",
        ),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message, capsys, tmp_path):
    assert main([*args, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


# ---- crash safety: a killed run resumes to the same weights ------------------------------------


STALL = Path(__file__).with_name("cli_stall_worker.py")


def _run_until(args, ready: Path, at_step: int, sleep_s: float, sig: int) -> tuple[int, str]:
    """Run the CLI in a fresh interpreter with DGI stalled from ``at_step``; send ``sig`` once
    it gets there; exit code and stderr. (A fresh process, not a fork: forking a process whose
    OpenMP pool is running can hang the child.)"""
    cmd = [sys.executable, str(STALL), str(ready), str(at_step), str(sleep_s), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.exists(), "the child never reached the step to interrupt"
        child.send_signal(sig)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode, err


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run / "encoder.safetensors")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_uninterrupted_weights(sig, tmp_path, monkeypatch, capsys):
    def args(out: Path, *extra: str) -> list[str]:
        return ["pretrain", "graph", "--out", str(out), "--max-steps", "12", "--no-progress"] + [
            "--checkpoint-every",
            "4",
            "--probe",
            "none",
            *extra,
        ]

    assert main(args(tmp_path / "full")) == 0
    ready = tmp_path / "ready"
    # SIGKILL: the child hangs in step 7 (last checkpoint: step 4); SIGTERM: it slows down from
    # step 7, and the handler lets the step finish, checkpoints and exits with 130
    part = tmp_path / "part"
    code, err = _run_until(args(part), ready, 7, 60.0 if sig == signal.SIGKILL else 0.2, sig)
    ckpts = part / "checkpoints"
    latest = torch.load(ckpts / "latest.pt", weights_only=False)
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL and latest["step"] == 4
    else:
        ours = [line for line in err.splitlines() if line.startswith("mmssl:")]
        assert code == 130 and len(ours) == 1 and "Traceback" not in err, err
        assert f"stopped by signal {int(signal.SIGTERM)} at step {latest['step']}" in err
        written = ckpts / f"step_{latest['step']:08d}.pt"
        assert f"checkpoint: {written}" in err and "--resume" in err
        assert latest["step"] >= 7  # written at the signal, not the step-4 checkpoint
    assert not [p for p in ckpts.iterdir() if ".tmp" in p.name]  # never half-written
    assert main(args(part, "--resume")) == 0
    assert "resumed from" in capsys.readouterr().out
    full, resumed = _weights(tmp_path / "full"), _weights(part)
    assert full.keys() == resumed.keys()
    for k in full:
        torch.testing.assert_close(resumed[k], full[k], rtol=0, atol=1e-6)


def test_knn_monitor_scores_every_n_epochs_into_metrics(tmp_path):
    out = tmp_path / "run"
    args = ["pretrain", "vision", "--method", "simclr", "--epochs", "2", "--batch-size", "256"]
    args += ["--knn-every", "1", "--out", str(out), "--no-progress", "--no-baseline"]
    assert main(args) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in records if "knn_top1" in r]
    assert [r["epoch"] for r in scored] == [1, 2]
    assert all(0.0 < r["knn_top1"] <= 1.0 for r in scored)
    # the last monitor score is the final probe's: same frozen encoder, same kNN
    res = json.loads((out / "results.json").read_text())
    assert scored[-1]["knn_top1"] == pytest.approx(res["probe"]["knn"]["top1"])
    assert yaml.safe_load((out / "config.yaml").read_text())["knn_every"] == 1


def test_knn_monitor_rejects_a_negative_interval(capsys):
    assert main(["pretrain", "vision", "--knn-every", "-1", "--no-progress"]) == 2
    assert "--knn-every must be >= 0" in capsys.readouterr().err


def test_knn_monitor_scores_a_transductive_graph_probe(tmp_path):
    # KarateClub's probe is one graph cut into train and test by node masks
    out = tmp_path / "run"
    args = ["pretrain", "graph", "--method", "dgi", "--epochs", "2", "--knn-every", "2"]
    assert main([*args, "--out", str(out), "--no-progress", "--no-baseline"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "knn_top1" in r] == [2]


def test_knn_monitor_without_labels_is_refused_before_the_run_folder_is_written(tmp_path, capsys):
    edges = tmp_path / "g.txt"
    edges.write_text("0 1\n1 2\n2 0\n")  # an edge list with no labels: nothing to score
    out = tmp_path / "run"
    args = ["pretrain", "graph", "--data", str(edges), "--knn-every", "1", "--probe", "none"]
    assert main([*args, "--out", str(out), "--no-progress"]) != 0
    assert "--knn-every" in capsys.readouterr().err
    assert not (out / "config.yaml").exists()
