"""benchmarks/compare.py: two bench runs, judged row by row against their seed noise."""

from __future__ import annotations

import json
from pathlib import Path


def _write(path: Path, rows: list[tuple[str, str, str, float, float]]) -> Path:
    keys = ("modality", "method", "family", "mean", "std")
    data = {"rows": [{**dict(zip(keys, r, strict=True)), "seeds": 3} for r in rows]}
    path.write_text(json.dumps(data))
    return path


def test_same_numbers_pass_and_a_shift_beyond_the_noise_fails(
    tmp_path: Path, load_benchmark
) -> None:
    compare = load_benchmark("compare")
    base = [
        ("vision", "simclr", "contrastive", 0.90, 0.01),
        ("vision", "vae", "generative", 0.85, 0.02),
        ("vision", "random-init", "baseline", 0.70, 0.03),
    ]
    a = _write(tmp_path / "a.json", base)
    lines, problems = compare.compare(a, _write(tmp_path / "b.json", base))
    assert problems == 0 and "3 of 3 rows within seed noise" in lines[-1]
    # simclr 90 -> 80: 10 points against 2 * sqrt((1 + 1) / 3) = 1.6; the winner becomes vae
    moved = [("vision", "simclr", "contrastive", 0.80, 0.01), *base[1:]]
    lines, problems = compare.compare(a, _write(tmp_path / "c.json", moved))
    assert problems == 2
    assert any("simclr" in line and "BEYOND" in line for line in lines)
    assert compare.main([str(a), str(tmp_path / "c.json")]) == 1
