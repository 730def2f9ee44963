"""``mmssl probe --data``: a text run's encoder probed on another SentEval task."""

from __future__ import annotations

import json

from mmssl.cli import main


def test_probe_a_text_run_on_another_dataset(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["pretrain", "text", "--method", "mlm", "--data", "mr", "--data-root", str(data_root)]
    args += ["--data-opt", "vocab_size=1000", "--data-opt", "max_length=16"]
    args += ["--data-opt", "probe_folds=2", "--method-opt", "size=tiny", "--max-steps", "2"]
    args += ["--batch-size", "16", "--probe", "none", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["probe", str(out), "--data", "subj", "--baseline"]) == 0
    printed = capsys.readouterr().out
    res = json.loads(printed.splitlines()[0])
    # SUBJ's cross-validated probe, on the encoder and at random init, paired fold by fold
    assert res["probe"]["logreg-cv"]["folds"] == 2 and "logreg-cv" in res["random_init"]
    assert res["vs_random_init"]["folds"] == 2 and "against random init" in printed
