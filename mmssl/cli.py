"""``mmssl``: pretrain, list and probe self-supervised methods from the shell."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

DEFAULT_METHOD = {"vision": "simclr", "text": "mlm", "graph": "dgi"}
PROBES = ("linear", "knn", "logreg-cv", "svm-cv", "link", "none")


def _key_value(text: str) -> tuple[str, Any]:
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip().replace("-", "_"), yaml.safe_load(value)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default only when it has one and its help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mmssl",
        description="Self-supervised pretraining for images, text and graphs: every objective "
        "written once, every family of methods behind one API.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pre = sub.add_parser(
        "pretrain",
        help="pretrain an encoder, checkpoint it, and probe it",
        description="Pretrain a method on a dataset, write the run folder (config.yaml, "
        "metrics.jsonl, checkpoints/, encoder.safetensors, results.json) and probe the frozen "
        "encoder against the same encoder at random init. With no --data, runs offline on data "
        "that ships with the installed packages (vision: scikit-learn's digits; graph: PyG's "
        "KarateClub; text: the Python reference texts in the standard library's pydoc_data).",
        formatter_class=_HelpFormatter,
    )
    pre.add_argument("modality", choices=("vision", "text", "graph"), help="what the data is")
    pre.add_argument("--method", help="method name (see `mmssl list`); default: simclr, mlm, dgi")
    pre.add_argument(
        "--data",
        help="dataset name (cifar10, digits, cora, karate, mutag, proteins, "
        "mr, subj, trec, sst2, brown, movie-reviews) or a local path",
    )
    pre.add_argument(
        "--data-root",
        default=os.environ.get("MMSSL_DATA"),
        help="folder holding the datasets (default: $MMSSL_DATA)",
    )
    pre.add_argument("--out", help="run folder (default: runs/<modality>/<method>-<data>-seed<N>)")
    pre.add_argument(
        "--config", help="a config.yaml from an earlier run; flags given here override it"
    )
    pre.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its latest checkpoint"
    )
    pre.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    g = pre.add_argument_group("training (unset: the method's paper defaults)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--optimizer", choices=("adam", "adamw", "sgd", "lars"))
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--warmup-epochs", type=float)
    g.add_argument("--schedule", choices=("cosine", "constant"))
    g.add_argument("--grad-clip", type=float, help="clip the gradient norm to this value")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="fp16 needs CUDA")
    g.add_argument(
        "--patience", type=int, help="stop when the epoch loss has not improved for N epochs"
    )
    g.add_argument(
        "--checkpoint-every", type=int, help="also checkpoint every N steps (always at the end)"
    )
    g.add_argument(
        "--checkpoint-minutes",
        type=float,
        help="also checkpoint when this many minutes have passed since the last one (default 5; "
        "0: off)",
    )
    g.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when present)")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the method")
    g.add_argument(
        "--deterministic", action="store_true", default=None, help="deterministic algorithms"
    )
    g.add_argument(
        "--sync-bn",
        action="store_true",
        default=None,
        help="multi-process runs: batch-norm statistics over every process's batch",
    )
    g.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="convolution weights and activations in NHWC layout (default: on with CUDA)",
    )
    g.add_argument(
        "--no-progress", dest="progress", action="store_false", default=None, help="no progress bar"
    )
    d = pre.add_argument_group("data and method options")
    d.add_argument(
        "--subset",
        type=int,
        help="pretrain on a seeded class-balanced subset of N training examples",
    )
    d.add_argument(
        "--data-opt",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option for the data loader (e.g. max_length=64), repeatable",
    )
    d.add_argument(
        "--method-opt",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option for the method's build (e.g. temperature=0.2), repeatable",
    )
    e = pre.add_argument_group("evaluation")
    e.add_argument(
        "--probe", choices=PROBES, help="probe protocol (default: the dataset's standard one)"
    )
    e.add_argument(
        "--knn-every",
        type=int,
        metavar="N",
        help="data with labelled train and test splits: kNN top-1 (k=200) of the frozen encoder every N epochs, "
        "written to metrics.jsonl and the progress bar (default 0: only at the end)",
    )
    e.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        default=None,
        help="skip probing the same encoder at random init",
    )

    pr = sub.add_parser(
        "probe",
        help="probe the encoder of an earlier run again",
        description="Rebuild a run's method from its config.yaml, load its latest checkpoint and "
        "score the frozen encoder with a probe protocol.",
    )
    pr.add_argument("run", help="the run folder")
    pr.add_argument(
        "--probe", choices=PROBES[:-1], help="protocol (default: the dataset's standard one)"
    )
    pr.add_argument("--device", help="cpu, cuda or cuda:N")
    pr.add_argument(
        "--data",
        help="probe on this labelled dataset instead of the run's own (same modality; a text "
        "run keeps its tokenizer), e.g. subj, trec or sst2 for a run pretrained with --data mr",
    )
    pr.add_argument(
        "--baseline",
        action="store_true",
        help="also probe the same encoder at random init and compare the two fold by fold "
        "(cross-validated probes) or test example by test example (a given split)",
    )

    ls = sub.add_parser(
        "list",
        help="list the registered methods",
        description="List every registered method with its modality, family and kind.",
    )
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.add_argument("--modality", choices=("vision", "text", "graph"))

    be = sub.add_parser(
        "bench",
        help="compare every method of each modality at the same budget",
        description="Pretrain every registered method of each modality with one encoder and one "
        "budget over several seeds, probe them the same way next to two baselines (the encoder "
        "at random init, and raw pixels / TF-IDF / raw node features), and write results.json, "
        "report.md (tables by family and kind, which family wins) and plots/. Finished cells "
        "are kept: rerunning an interrupted bench continues where it stopped.",
        formatter_class=_HelpFormatter,
    )
    budget = be.add_mutually_exclusive_group()
    budget.add_argument(
        "--quick",
        dest="suite",
        action="store_const",
        const="quick",
        help="the CPU budget (about 30 minutes for all three modalities on 2 cores)",
    )
    budget.add_argument(
        "--full", dest="suite", action="store_const", const="full", help="the one-GPU budget"
    )
    budget.add_argument("--config", dest="suite", help="a YAML suite (same shape as the built-ins)")
    be.add_argument(
        "--modality", action="append", choices=("vision", "text", "graph"), help="repeatable"
    )
    be.add_argument("--methods", help="comma-separated method names (default: all registered)")
    be.add_argument("--seeds", type=int, help="seeds per method (default: the suite's)")
    be.add_argument("--out", default="bench", help="the bench folder")
    be.add_argument(
        "--data-root",
        default=os.environ.get("MMSSL_DATA"),
        help="folder holding the datasets (default: $MMSSL_DATA)",
    )
    be.add_argument(
        "--report-only", action="store_true", help="rewrite the report from finished cells"
    )
    return p


def _list(args: argparse.Namespace) -> int:
    from mmssl.core.registry import available

    rows = [
        {
            "modality": mod,
            "name": name,
            "family": cls.family,
            "kind": cls.kind,
            "class": f"{cls.__module__}.{cls.__qualname__}",
        }
        for mod, methods in available(args.modality).items()
        for name, cls in methods.items()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    widths = [
        max(len(r[k]) for r in rows + [{k: k for k in rows[0]}])
        for k in ("modality", "name", "family")
    ]
    header = ("modality", "name", "family", "kind")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths + [0], strict=True)).rstrip())
    for r in rows:
        print(
            "  ".join(
                str(r[h]).ljust(w) for h, w in zip(header, widths + [0], strict=True)
            ).rstrip()
        )
    return 0


TRAIN_FLAGS = (
    "epochs",
    "max_steps",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "warmup_epochs",
    "schedule",
    "grad_clip",
    "precision",
    "patience",
    "checkpoint_every",
    "checkpoint_minutes",
    "device",
    "compile",
    "deterministic",
    "sync_bn",
    "channels_last",
    "progress",
)


def _pretrain(args: argparse.Namespace) -> int:
    import yaml

    from mmssl.pretrain import default_out, pretrain, resolve_config

    base: dict[str, Any] = {}
    config_path = args.config or (
        Path(args.out) / "config.yaml" if args.resume and args.out else None
    )
    if config_path is not None:
        if not Path(config_path).is_file():
            raise FileNotFoundError(
                f"config {config_path} does not exist; give the config.yaml of an earlier run"
            )
        base = yaml.safe_load(Path(config_path).read_text()) or {}
        if base.get("modality") not in (None, args.modality):
            raise ValueError(f"config {config_path} is for {base['modality']}, not {args.modality}")
    train = dict(base.get("train", {}))
    train.update({k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None})
    data_options = {**base.get("data_options", {}), **dict(args.data_opt)}
    if args.subset is not None:
        data_options["subset"] = args.subset
    cfg = resolve_config(
        args.modality,
        args.method or base.get("method") or DEFAULT_METHOD[args.modality],
        data=args.data if args.data is not None else base.get("data"),
        data_root=args.data_root if args.data_root is not None else base.get("data_root"),
        seed=args.seed if args.seed is not None else base.get("seed", 0),
        train=train,
        method_options={**base.get("method_options", {}), **dict(args.method_opt)},
        data_options=data_options,
        probe=args.probe or base.get("probe"),
        baseline=args.baseline if args.baseline is not None else base.get("baseline", True),
        knn_every=args.knn_every if args.knn_every is not None else base.get("knn_every", 0),
    )
    out = Path(args.out) if args.out else default_out(cfg)
    results = pretrain(cfg, out, resume=args.resume)
    print(f"run folder: {out}")
    print(
        f"trained {results['epochs']} epochs ({results['steps']} steps) in {results['train_seconds']:.0f} s"
    )
    for key in ("eval", "probe", "random_init"):
        if results.get(key):
            print(f"{key}: {json.dumps(_brief(results[key]))}")
    _print_gain(results)
    return 0


def _brief(scores: dict[str, Any]) -> dict[str, Any]:
    """Probe scores without the per-example correctness string (kept in results.json)."""
    return {
        k: _brief(v) if isinstance(v, dict) else v for k, v in scores.items() if k != "test_correct"
    }


def _print_gain(results: dict[str, Any]) -> None:
    gain = results.get("vs_random_init")
    if not gain:
        return
    base = results.get("baseline_encoder", "random init")
    head = f"against {base} ({gain['metric']}): {100 * gain['gain']:+.2f} points, "
    if "folds" in gain:
        print(
            head + f"better on {gain['folds_better']} of {gain['folds']} folds (corrected "
            f"paired t {gain['t']:.2f}, one-sided p {gain['p']:.3f})"
        )
    else:
        print(
            head + f"right where the baseline was wrong on {gain['better']} and the reverse on "
            f"{gain['worse']} of {gain['examples']} test examples (exact McNemar, one-sided "
            f"p {gain['p']:.3f})"
        )


def _probe(args: argparse.Namespace) -> int:
    from mmssl.pretrain import probe_run

    results = probe_run(
        args.run, args.probe, device=args.device, baseline=args.baseline, data_name=args.data
    )
    print(json.dumps(_brief(results)))
    _print_gain(results)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from mmssl.bench import load_suite, report, run_bench

    suite = load_suite(args.suite or "quick")
    if args.report_only:
        summary = report(args.out, suite)
    else:
        summary = run_bench(
            suite,
            args.out,
            data_root=args.data_root,
            modalities=args.modality,
            methods=args.methods.split(",") if args.methods else None,
            seeds=args.seeds,
        )
    failed = [f"{r['modality']}/{r['method']}" for r in summary["rows"] if r["failed"]]
    print(f"report: {Path(args.out) / 'report.md'}")
    if failed:
        print(
            f"mmssl: {len(failed)} methods had failed cells: {', '.join(failed)}", file=sys.stderr
        )
        return 1
    return 0


def _one_line(err: object) -> str:
    """The message on one line (a wrapped library error may span several)."""
    return " ".join(str(err).split())


def _one_line_warning(
    message: Warning | str, category: type[Warning], *args: Any, **kw: Any
) -> str:
    """Warnings as one line, like the errors: ``mmssl: warning: <message>``."""
    return f"mmssl: warning: {_one_line(message)}\n"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from mmssl.core.data import DataError
    from mmssl.core.trainer import Interrupted, TrainingError

    default_format, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    # torch_geometric's import trips torch's own deprecation of torch.jit.script: nothing a
    # user of mmssl can act on
    warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", FutureWarning)
    try:
        if args.command == "list":
            return _list(args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "probe":
            return _probe(args)
        return _pretrain(args)
    except Interrupted as err:
        print(f"mmssl: {_one_line(err)}", file=sys.stderr)
        return 130
    except (DataError, TrainingError, ValueError, OSError, TypeError, ImportError) as err:
        print(f"mmssl: error: {_one_line(err)}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = default_format


if __name__ == "__main__":
    sys.exit(main())
