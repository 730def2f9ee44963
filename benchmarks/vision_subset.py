"""Issue 5/6 table: every vision method on a class-balanced CIFAR-10 subset, one encoder, one
budget, kNN top-1 on the CIFAR-10 test images against the same encoder at random init.

    python benchmarks/vision_subset.py --data-root ../shared/data --out runs/vision-subset \
        [--methods byol,simclr] [--subset 10000] [--epochs 8] [--lr 2e-3] [--encoder small] \
        [--linear]

Each method runs through :func:`mmssl.pretrain.pretrain` (the same path as ``mmssl pretrain``)
with its own paper defaults for everything the flags don't fix. Finished runs are skipped, so
the script resumes. ``--linear`` adds the linear probe of each encoder and of its random
init (cached per run in ``linear.json``). Prints a markdown table and writes ``table.md``,
``table.json`` and ``gains.png`` (each method's gain over random init); ``--report-only``
makes them from the runs already finished in ``--out``, training nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mmssl.core import registry
from mmssl.core.evaluate import run_probe
from mmssl.core.trainer import Interrupted
from mmssl.pretrain import load_run, pretrain, resolve_config


def linear_probes(run: Path) -> dict[str, float]:
    """Linear-probe test accuracy of a finished run's encoder and of the same encoder at random
    init (the method rebuilt with the run's seed), cached in ``linear.json``."""
    cached = run / "linear.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    method, data, cfg = load_run(run)
    seed, dev = cfg["seed"], "cuda" if torch.cuda.is_available() else "cpu"

    def probe(m: torch.nn.Module) -> float:
        scores = run_probe(m.to(dev), data.probe, "linear", device=dev, seed=seed)
        return scores["linear"]["test_acc"]

    trained = probe(method)
    torch.manual_seed(seed)
    base = probe(registry.get("vision", cfg["method"]).build(data, **cfg["method_options"]))
    out = {"linear": trained, "linear_random_init": base}
    cached.write_text(json.dumps(out))
    return out


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--out", default="runs/vision-subset")
    p.add_argument("--methods", help="comma-separated (default: every registered vision method)")
    p.add_argument("--subset", type=int, default=10000)
    p.add_argument("--epochs", type=int, help="default: each method's own CPU-sized default")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="default: each method's own CPU-sized default")
    p.add_argument("--encoder", default="small")
    p.add_argument("--precision", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--linear", action="store_true", help="also the linear probe (both rows)")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: the table and plot of the runs already finished in --out",
    )
    args = p.parse_args()
    names = (
        args.methods.split(",")
        if args.methods
        else [n for n in registry.primary_names("vision") if n != "two-view"]
    )
    out = Path(args.out)
    rows = []
    for name in names:
        run = out / name
        res_path = run / "results.json"
        if not res_path.is_file():
            if args.report_only:
                continue
            train = {
                "progress": False,
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "precision": args.precision,
            }
            cfg = resolve_config(
                "vision",
                name,
                data="cifar10",
                data_root=args.data_root,
                seed=args.seed,
                train=train,
                # MAE drops ViT patch tokens: it keeps its own ViT
                method_options={} if name == "mae" else {"encoder": args.encoder},
                data_options={"subset": args.subset},
                probe="knn",
            )
            t0 = time.perf_counter()
            try:
                pretrain(cfg, run, resume=(run / "checkpoints" / "latest.pt").is_file())
            except Interrupted:
                raise  # stopped by a signal: the run is checkpointed, the table resumes later
            except Exception as err:  # keep going: one broken method must not hide the others
                print(f"{name}: FAILED {type(err).__name__}: {err}", flush=True)
                rows.append({"method": name, "error": f"{type(err).__name__}: {err}"})
                continue
            print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
        r = json.loads(res_path.read_text())
        knn, base = r["probe"]["knn"]["top1"], r["random_init"]["knn"]["top1"]
        lin = linear_probes(run) if args.linear else {}
        rows.append(
            {
                **lin,
                "method": name,
                "family": r["family"],
                "kind": r["kind"],
                "epochs": r["epochs"],
                "knn": knn,
                "random_init": base,
                "gain": knn - base,
                "train_seconds": r["train_seconds"],
                "device": r["device"],
                "eval": r.get("eval"),
            }
        )
    lines = [
        "| method | family | kind | epochs | kNN top-1 | random init | gain | linear | random init "
        "| train s | device |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | failed: {r['error'][:80]} | | | | | | | | | |")
            continue
        lines.append(
            f"| {r['method']} | {r['family']} | {r['kind']} | {r['epochs']} | "
            f"{100 * r['knn']:.2f} | {100 * r['random_init']:.2f} | {100 * r['gain']:+.2f} | "
            f"{_pct(r.get('linear'))} | {_pct(r.get('linear_random_init'))} | "
            f"{r['train_seconds']:.0f} | {r['device']} |"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "table.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))
    plot = plot_gains([r for r in rows if "error" not in r], out / "gains.png")
    if plot:
        print(f"plot: {plot}")


def plot_gains(rows: list[dict], path: Path, bar: float = 10.0) -> Path | None:
    """Horizontal bars of each method's gain over its random init (kNN, and linear when probed),
    in points, sorted by the kNN gain, with the ``bar`` issue 5 asks of its methods."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["gain"])
    ys = range(len(rows))
    knn = [100 * r["gain"] for r in rows]
    lin = [100 * (r["linear"] - r["linear_random_init"]) if "linear" in r else 0.0 for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(rows) + 1.2))
    ax.barh([y + 0.2 for y in ys], knn, height=0.4, label="kNN top-1")
    if any("linear" in r for r in rows):
        ax.barh([y - 0.2 for y in ys], lin, height=0.4, label="linear")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.axvline(bar, color="grey", linestyle="--", linewidth=0.8, label=f"+{bar:g} points")
    ax.set_yticks(list(ys), [f"{r['method']} ({r['epochs']} ep)" for r in rows])
    ax.set_xlabel("points over the same encoder at random init (CIFAR-10 test images)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
