"""Smoke test of benchmarks/throughput.py (issue 8): each comparison runs a few tiny steps.

Timings here mean nothing; the test only checks that both sides train, alternate and report.
"""

from __future__ import annotations

import math

import pytest
import torch


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("throughput")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSSL_CACHE", str(tmp_path / "cache"))


def tiny_args(bench, tmp_path, *extra: str):
    flags = ["--device", "cpu", "--steps", "2", "--rounds", "2", "--warmup", "1"]
    return bench.parse([*flags, "--data-root", str(tmp_path), *extra])


def check(result: dict) -> None:
    for side in ("ref", "mmssl"):
        assert result[side]["rate"] > 0 and len(result[side]["round_rates"]) == 2
    assert math.isfinite(result["ratio"]) and result["ratio"] > 0
    assert result["step_efficiency"] > 0


def test_graph_dgi_against_pyg(bench, tmp_path):
    args = tiny_args(bench, tmp_path, "--scale", "1,2")
    result = bench.run_task("graph", args, name="karate")  # ships with PyG
    check(result)
    assert set(result["scale"]) == {"1.0", "2.0"}
    assert result["scale"]["2.0"]["mmssl_epoch_s"] > 0


def test_text_mlm_against_hf_trainer(bench, tmp_path):
    words = "the a cat dog sat ran on under mat log quickly slowly red blue".split()
    g = torch.Generator().manual_seed(0)
    lines = [
        " ".join(words[i] for i in torch.randint(len(words), (12,), generator=g).tolist())
        for _ in range(200)
    ]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n")
    args = tiny_args(bench, tmp_path, "--text-batch", "4", "--block", "16")
    check(bench.run_task("text", args, source=str(corpus)))


def test_vision_simclr_against_lightly(bench, tmp_path):
    pytest.importorskip(
        "lightly", reason="the vision reference needs lightly: pip install '.[bench]'"
    )
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 8), ("test", 2)):
        for cls in ("a", "b"):
            d = tmp_path / "imgs" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                pixels = torch.randint(256, (32, 32, 3), generator=g, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(d / f"{i}.png")
    args = tiny_args(bench, tmp_path, "--vision-batch", "4", "--workers", "0", "--encoder", "small")
    check(bench.run_task("vision", args, folder=tmp_path / "imgs"))


def test_step_profile_times_every_part_of_the_step(monkeypatch, load_benchmark):
    module = load_benchmark("step_profile")
    flags = ["--data", "digits", "--device", "cpu", "--precision", "fp32", "--encoder", "small"]
    r = module.main([*flags, "--batch", "32", "--steps", "2", "--warmup", "1"])
    for key in ("step_ms", "fetch_copy_ms", "augment_ms", "fwd_bwd_ms", "optimizer_ms"):
        assert math.isfinite(r[key]) and r[key] > 0, key
    # SmallResNet on 32x32 digits: tens of MFLOPs an image, forward and backward of two views
    assert 0.005 < r["gflop_per_image"] < 1.0
    # the step's rate is set against a square matrix product's at the same precision
    assert r["matmul_tflops"] > 0
    assert r["peak_fraction"] == pytest.approx(r["tflops_in_step"] / r["matmul_tflops"])
    assert r["conv_fraction"] == pytest.approx(r["tflops_in_step"] / r["conv_tflops"])
    assert r["images_per_s"] == pytest.approx(32 / (r["step_ms"] / 1e3))
