"""Does one bench run reproduce another within seed noise?

    python benchmarks/compare.py benchmarks/quick/results.json bench/results.json

Reads two ``results.json`` files written by ``mmssl bench`` and prints, per section and method,
both means, the difference, and the noise it is judged against: twice the standard error of
the difference of two means over ``n`` seeds, ``2 * sqrt((s_a^2 + s_b^2) / n)``, with ``s``
each run's seed std (at least ``--floor`` points, so that a row whose seeds happen to agree
is not held to zero). It also checks that each section's winning family is the same. Exits 1
when a row is beyond the noise or a winner changed, so it can gate a re-run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any


def _rows(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    data = json.loads(path.read_text())
    return {(r["modality"], r["method"]): r for r in data["rows"] if not math.isnan(r["mean"])}


def _winner(rows: dict[tuple[str, str], dict[str, Any]], section: str) -> str | None:
    best = None
    for (sec, _), r in rows.items():
        if sec == section and r["family"] != "baseline":
            if best is None or r["mean"] > best["mean"]:
                best = r
    return best["family"] if best else None


def compare(a: Path, b: Path, floor: float = 0.5) -> tuple[list[str], int]:
    """Table lines and the number of problems (rows beyond the noise, changed winners)."""
    ra, rb = _rows(a), _rows(b)
    lines = [
        "| section | method | run A | run B | B - A | noise | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    problems = 0
    for key in sorted(set(ra) & set(rb)):
        x, y = ra[key], rb[key]
        scale = 100.0 if max(x["mean"], y["mean"]) <= 1.0 else 1.0
        n = max(1, min(x["seeds"], y["seeds"]))
        noise = max(floor, 2 * scale * math.sqrt((x["std"] ** 2 + y["std"] ** 2) / n))
        diff = (y["mean"] - x["mean"]) * scale
        ok = abs(diff) <= noise
        problems += not ok
        lines.append(
            f"| {key[0]} | {key[1]} | {x['mean'] * scale:.1f} ± {x['std'] * scale:.1f} | "
            f"{y['mean'] * scale:.1f} ± {y['std'] * scale:.1f} | {diff:+.1f} | {noise:.1f} | "
            f"{'within' if ok else 'BEYOND'} |"
        )
    missing = sorted(set(ra) ^ set(rb))
    if missing:
        lines.append("")
        lines.append("rows in only one run: " + ", ".join(f"{s}/{m}" for s, m in missing))
    lines.append("")
    for section in sorted({s for s, _ in ra} & {s for s, _ in rb}):
        wa, wb = _winner(ra, section), _winner(rb, section)
        problems += wa != wb
        lines.append(f"- {section}: winning family {wa} in A, {wb} in B")
    within = sum(line.endswith("within |") for line in lines)
    lines.append(f"\n{within} of {len(set(ra) & set(rb))} rows within seed noise")
    return lines, problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path, help="results.json of the reference run")
    p.add_argument("b", type=Path, help="results.json of the new run")
    p.add_argument("--floor", type=float, default=0.5, help="smallest noise band, in points")
    args = p.parse_args(argv)
    for path in (args.a, args.b):
        if not path.is_file():
            p.error(f"{path} not found: give the results.json that `mmssl bench` wrote")
    lines, problems = compare(args.a, args.b, args.floor)
    print("\n".join(lines))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
