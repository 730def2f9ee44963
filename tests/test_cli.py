"""The command line end to end on the offline default data: run folder, resume, errors."""

from __future__ import annotations

import json

import pytest
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
