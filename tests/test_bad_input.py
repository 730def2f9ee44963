"""Bad input through the command line: each exits non-zero with one line on stderr that names
the input and the fix, and leaves what an earlier run wrote untouched. Odd but usable input
(grayscale or RGBA images, latin-1 text, isolated nodes, self-loops) trains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmssl.cli import main

FAST = ["--no-progress", "--no-baseline", "--seed", "0"]
TINY_VISION = ["--method", "simclr", "--data-opt", "image_size=8", "--max-steps", "2"]
TINY_TEXT = ["--method", "mlm", "--data-opt", "vocab_size=60", "--data-opt", "max_length=16"]
TINY_TEXT += ["--method-opt", "size=tiny", "--max-steps", "2", "--batch-size", "4"]


@pytest.fixture(autouse=True)
def _offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSSL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MMSSL_DATA", raising=False)


def fails(args: list[str], capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    """Run the CLI, expect exit 2 and one stderr line holding every ``expected`` text."""
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("mmssl: error: ")
    for text in expected:
        assert text in err, (text, err)
    return err


def _image(path: Path, shape: tuple[int, ...], seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)).save(path)


# ---- missing, empty or unusable data ------------------------------------------------------------


@pytest.mark.parametrize("modality", ["vision", "text", "graph"])
def test_missing_data_folder(modality, tmp_path, capsys):
    missing = str(tmp_path / "no-such-folder")
    fails(
        ["pretrain", modality, "--data", missing, "--out", str(tmp_path / "r"), *FAST],
        capsys,
        missing,
    )
    assert not (tmp_path / "r").exists()  # nothing made for a run that never started


@pytest.mark.parametrize(
    "modality,fix",
    [
        ("vision", "put <class>/*.jpg"),
        ("text", "put one document per .txt"),
        ("graph", "edge-list"),
    ],
)
def test_empty_data_folder(modality, fix, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    fails(
        ["pretrain", modality, "--data", str(empty), "--out", str(tmp_path / "r"), *FAST],
        capsys,
        str(empty),
        fix,
    )


def test_folder_of_corrupt_jpegs(tmp_path, capsys):
    bad = tmp_path / "imgs" / "cat" / "broken.jpg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.warns(UserWarning, match="broken.jpg"):
        fails(
            ["pretrain", "vision", "--data", str(tmp_path / "imgs"), "--out", str(tmp_path / "r")]
            + FAST,
            capsys,
            "no readable images",
            "broken.jpg",
            "check the files",
        )


def test_odd_images_and_a_corrupt_one_train_and_warn_in_one_line(tmp_path, capsys):
    root = tmp_path / "imgs"
    for i, shape in enumerate([(9, 13), (12, 7, 4), (30, 11, 3), (8, 8, 3)]):  # gray, RGBA, odd
        _image(root / ["a", "b"][i % 2] / f"{i}.png", shape, i)
    (root / "a" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out = tmp_path / "r"
    args = ["pretrain", "vision", "--data", str(root), "--out", str(out), *FAST, *TINY_VISION]
    with pytest.warns(UserWarning, match="bad.jpg"):
        assert main([*args, "--batch-size", "2", "--probe", "none"]) == 0
    assert (out / "encoder.safetensors").is_file()
    import warnings

    with pytest.warns(UserWarning) as record:
        warnings.warn("one\nwarning", UserWarning, stacklevel=1)
    from mmssl.cli import _one_line_warning

    assert _one_line_warning(record[0].message, UserWarning) == "mmssl: warning: one warning\n"


def test_text_file_with_only_blank_lines(tmp_path, capsys):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\t\n\n")
    fails(
        ["pretrain", "text", "--data", str(blank), "--out", str(tmp_path / "r"), *FAST],
        capsys,
        str(blank),
        "is empty",
        "one sentence per line",
    )


def test_latin1_utf8_and_empty_documents_train(tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "utf8.txt").write_text("caf\u00e9 na\u00efve r\u00e9sum\u00e9\nsecond line\n" * 3)
    (folder / "latin1.txt").write_bytes("clich\u00e9s pile up\n\n\n".encode("latin-1") * 3)
    (folder / "empty.txt").write_text("")
    (folder / "blank.txt").write_text("\n\n  \n")
    out = tmp_path / "r"
    args = ["pretrain", "text", "--data", str(folder), "--out", str(out), *FAST, *TINY_TEXT]
    assert main([*args, "--probe", "none"]) == 0
    assert json.loads((out / "results.json").read_text())["steps"] == 2


# ---- names: suggest the closest ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args,suggestion",
    [
        (["pretrain", "graph", "--method", "dgii"], "did you mean 'dgi'"),
        (["pretrain", "vision", "--method", "simclrr"], "did you mean 'simclr'"),
        (["pretrain", "graph", "--data", "karat"], "did you mean 'karate'"),
        (["pretrain", "vision", "--data", "cifar1"], "did you mean 'cifar10'"),
        (["pretrain", "text", "--data", "sst"], "did you mean 'sst2'"),
    ],
)
def test_unknown_name_suggests_the_closest(args, suggestion, tmp_path, capsys):
    fails([*args, "--out", str(tmp_path / "r"), *FAST], capsys, suggestion, args[-1])


# ---- graphs -----------------------------------------------------------------------------------


def test_graph_with_self_loops_and_isolated_nodes_trains(tmp_path, capsys):
    edges = tmp_path / "g.txt"
    edges.write_text("a b\nb c\nc c\na a\nc d\n")  # self-loops on a and c
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{n} {i % 2}\n" for i, n in enumerate("abcdefgh")))  # e-h: isolated
    out = tmp_path / "r"
    args = ["pretrain", "graph", "--data", str(edges), "--out", str(out), "--epochs", "2", *FAST]
    assert main([*args, "--data-opt", f"labels={labels}", "--probe", "knn"]) == 0
    assert "knn" in json.loads((out / "results.json").read_text())["probe"]


def test_edge_list_without_edges(tmp_path, capsys):
    empty = tmp_path / "g.txt"
    empty.write_text("# no edges here\n")
    fails(
        ["pretrain", "graph", "--data", str(empty), "--out", str(tmp_path / "r"), *FAST],
        capsys,
        str(empty),
        "no edges",
        "'source target' pair per line",
    )


def test_gae_on_a_graph_without_edges(tmp_path, capsys):
    edges = tmp_path / "g.txt"
    edges.write_text("0 1\n")
    fails(
        ["pretrain", "graph", "--method", "gae", "--data", str(edges)]
        + ["--out", str(tmp_path / "r"), *FAST],
        capsys,
        "1 edges is too small for the link split",
        "give a larger graph",
    )


# ---- probes and batch sizes -------------------------------------------------------------------


def test_probe_asked_for_data_without_labels(tmp_path, capsys):
    flat = tmp_path / "flat"
    for i in range(4):
        _image(flat / f"{i}.png", (8, 8, 3), i)
    out = tmp_path / "r"
    base = ["pretrain", "vision", "--data", str(flat), "--out", str(out), *FAST, *TINY_VISION]
    fails([*base, "--probe", "linear"], capsys, "--probe linear", "no labels", "--probe none")
    assert not out.exists()
    # unlabelled data trains without a probe, and probing the run afterwards says why it cannot
    assert main([*base, "--batch-size", "2"]) == 0
    assert json.loads((out / "results.json").read_text())["probe"] == {}
    fails(["probe", str(out)], capsys, str(out), "no labels to probe", "labelled data")


def test_batch_size_larger_than_the_dataset(tmp_path, capsys):
    root = tmp_path / "imgs"
    for i in range(4):
        _image(root / f"{i}.png", (8, 8, 3), i)
    out = tmp_path / "r"
    args = ["pretrain", "vision", "--data", str(root), "--out", str(out), *FAST, *TINY_VISION]
    with pytest.warns(UserWarning, match="batch_size 512 > 4 images; using 4"):
        assert main([*args, "--batch-size", "512"]) == 0
    assert json.loads((out / "results.json").read_text())["steps"] == 2
    text = tmp_path / "t.txt"
    text.write_text("a few words here\nand a few more\n")
    out = tmp_path / "t"
    args = ["pretrain", "text", "--data", str(text), "--out", str(out), *FAST, *TINY_TEXT]
    assert main([*args, "--batch-size", "1000"]) == 0  # one short batch per epoch


# ---- training failures: NaN, out of memory; nothing written is lost ---------------------------


def _graph_run(tmp_path: Path, *extra: str) -> list[str]:
    return ["pretrain", "graph", "--out", str(tmp_path / "r"), *FAST, "--probe", "none", *extra]


def _break_dgi_after(monkeypatch: pytest.MonkeyPatch, calls: int, error: Exception | None) -> None:
    """DGI's loss turns NaN (``error=None``) or raises ``error`` from its ``calls``-th step on."""
    from mmssl.graph.methods.dgi import DGI

    forward, seen = DGI.forward, {"n": 0}

    def broken(self, batch):
        seen["n"] += 1
        out = forward(self, batch)
        if seen["n"] >= calls:
            if error is not None:
                raise error
            if isinstance(out, dict):
                return {**out, "loss": out["loss"] * float("nan")}
            return out * float("nan")
        return out

    monkeypatch.setattr(DGI, "forward", broken)


def test_nan_loss_stops_naming_step_and_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    _break_dgi_after(monkeypatch, 6, None)
    ckpt = tmp_path / "r" / "checkpoints"
    fails(
        _graph_run(tmp_path, "--max-steps", "10", "--checkpoint-every", "2"),
        capsys,
        "loss is nan at step 5",
        f"last good checkpoint: {ckpt / 'step_00000004.pt'}",
        "lower --lr",
    )
    state = torch.load(ckpt / "latest.pt", weights_only=False)  # the checkpoint is intact
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["method"].values() if v.is_floating_point())


def test_out_of_memory_says_which_batch_size_to_try(tmp_path, capsys, monkeypatch):
    _break_dgi_after(monkeypatch, 2, torch.cuda.OutOfMemoryError("CUDA out of memory."))
    fails(
        _graph_run(tmp_path, "--max-steps", "4", "--checkpoint-every", "1"),
        capsys,
        "out of memory at step 1",
        "last good checkpoint",
        "--batch-size 512",  # the whole graph is one batch: sample mini-batches
    )
    from mmssl.core.trainer import Trainer

    class Loader(list):
        batch_size = 64

    t = Trainer.__new__(Trainer)
    t.train = Loader()
    assert "rerun with --batch-size 32" in t._smaller_batch_hint()


def test_bad_flags_on_resume_leave_the_run_untouched(tmp_path, capsys):
    assert main(_graph_run(tmp_path, "--epochs", "2")) == 0
    run = tmp_path / "r"
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    fails(_graph_run(tmp_path, "--resume", "--data", "karat"), capsys, "did you mean 'karate'")
    fails(_graph_run(tmp_path, "--resume", "--lr", "-1"), capsys, "lr must be > 0")
    fails(_graph_run(tmp_path), capsys, "--resume")  # a second run must not overwrite it
    after = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    assert after == before


def test_probe_on_data_shaped_unlike_the_run(tmp_path, capsys):
    # a run on KarateClub (34 one-hot features) probed on an edge list with other features:
    # one line naming the run and the data, not a state-dict traceback
    edges = tmp_path / "edges.txt"
    edges.write_text("0 1\n1 2\n2 3\n3 0\n")
    out = tmp_path / "r"
    args = ["pretrain", "graph", "--method", "dgi", "--out", str(out), *FAST, "--epochs", "1"]
    assert main([*args, "--probe", "none"]) == 0
    fails(["probe", str(out), "--data", str(edges)], capsys, str(out), "does not fit", str(edges))
