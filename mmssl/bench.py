"""``mmssl bench``: every registered method of a modality, one encoder, one budget, one report.

A suite is, per section (a modality, or a named section with a ``modality`` key, such as
``graph-level`` for the methods that embed whole graphs), a dataset, the training settings every
method shares (the budget: steps x batch size), the encoder options every method's ``build``
gets, the probe and the seeds; ``methods`` lists a section's methods (default: every registered
method of the modality) and ``exclude`` leaves some out.
Each (method, seed) is a *cell*: an ordinary run folder ``<out>/<section>/<method>/seed<N>``
made by :func:`mmssl.pretrain.pretrain`, so a cell can be inspected, probed again or resumed
like any run. A cell with a ``results.json`` is done and is never rerun; a cell with
checkpoints and no results resumes from them. Two baselines are cells too: ``random-init``
(the suite's encoder, untrained, same probe) and ``classical`` (raw pixels, TF-IDF over the
tokens, or raw node features pooled per graph).

:func:`report` reads the cells back and writes ``results.json``, ``report.md`` (tables grouped
by family and kind, and which family wins) and PNG plots (see :mod:`mmssl.bench_plots`).
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import statistics
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from mmssl.core import registry
from mmssl.core.data import ProbeData
from mmssl.core.evaluate import run_probe
from mmssl.core.method import Method

__all__ = ["SUITES", "BASELINES", "load_suite", "primary_metric", "report", "run_bench"]

BASELINES = ("random-init", "classical")
# Generic carriers for a user's objective, not methods with a paper of their own.
SKIP = {"two-view"}

# Budgets. ``quick`` is sized to finish for all three modalities in about 30 minutes on a
# 2-core CPU; ``full`` is sized for one GPU. ``train`` overrides every method's own defaults
# so that all methods get the same steps and batch size; ``method_options`` fix the encoder
# (passed to a method's ``build`` when it accepts the option); ``per_method`` adds options for
# one method only (for example a structure-only method's own input features).
# ``notes`` (method -> text) are printed under a section's table.
GCC_ON_CORA = (
    "structure only (no node features, so that it transfers across graphs). Cora's topics are "
    "barely visible in structure alone: a logistic regression on one-hot node degrees scores "
    "10% on the public split (7 classes, 20 training nodes each). GCC's own setting is the "
    "graph-level section"
)
MAE_ENCODER = (
    "a ViT-tiny (MAE drops the masked patch tokens, which needs a ViT), not the section's "
    "small CNN; its random-init row is the CNN's"
)
SUITES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "graph": {
            "data": "cora",
            "data_options": {"task": "node"},
            "train": {"max_steps": 50, "patience": None},
            "method_options": {},
            "exclude": ["graphcl", "infograph"],  # whole-graph embeddings: graph-level below
            "seeds": 3,
            "probe": None,
            "reference": "dgi",
            "notes": {"gcc": GCC_ON_CORA},
        },
        "graph-level": {
            "modality": "graph",
            "data": "mutag",
            "methods": ["dgi", "gcc", "gpt-gnn", "graphcl", "infograph"],
            "train": {"max_steps": 60, "batch_size": 128, "patience": None},
            "method_options": {},
            "seeds": 3,
            "probe": None,  # the data's own: RBF SVM, 10-fold CV
            "reference": "infograph",
        },
        "text": {
            "data": "mr",
            # 5 folds at one C: the full SentEval probe (10 folds x an inner search over C) costs
            # little for the methods' 128-wide embeddings but minutes for TF-IDF's vocabulary-
            # wide features; and 32-token rows (MR's sentences average about 22 words)
            "data_options": {"probe_folds": 5, "probe_c": 1.0, "max_length": 32},
            "train": {"max_steps": 60, "batch_size": 64, "warmup_epochs": 0},
            "method_options": {"size": "tiny"},
            "seeds": 3,
            "probe": None,
            "reference": "mlm",
        },
        "vision": {
            "data": "digits",
            "train": {"max_steps": 45, "batch_size": 64, "warmup_epochs": 0},
            "method_options": {"encoder": "small"},
            "per_method": {
                "mae": {"encoder": "vit_tiny"},  # MAE drops ViT patch tokens
                # a 4x4 grid of non-overlapping 4-pixel patches (the default 7x7 overlapping
                # grid puts 49 patches an image through the encoder: 12x a SimCLR step)
                "cpc": {"stride": 4, "steps": 2},
            },
            "seeds": 3,
            "probe": "knn",
            "reference": "simclr",
            "notes": {"mae": MAE_ENCODER, "cpc": "a 4x4 grid of 4-pixel patches, 2 rows ahead"},
        },
    },
    "full": {
        "graph": {
            "data": "cora",
            "data_options": {"task": "node"},
            "train": {"epochs": 500, "patience": None},
            "method_options": {},
            "exclude": ["graphcl", "infograph"],
            "seeds": 5,
            "probe": None,
            "reference": "dgi",
        },
        "graph-level": {
            "modality": "graph",
            "data": "proteins",
            "methods": ["dgi", "gcc", "gpt-gnn", "graphcl", "infograph"],
            "train": {"epochs": 20, "batch_size": 128, "patience": None},
            "method_options": {},
            "seeds": 5,
            "probe": None,
            "reference": "infograph",
        },
        "text": {
            "data": "mr+subj+brown",
            "train": {"epochs": 20, "batch_size": 128},
            "method_options": {"size": "mini"},
            "seeds": 3,
            "probe": None,
            "reference": "mlm",
        },
        "vision": {
            "data": "cifar10",
            "train": {"epochs": 200, "batch_size": 128, "precision": "bf16"},
            "method_options": {"encoder": "resnet18"},
            "per_method": {"mae": {"encoder": "vit_small"}},
            "seeds": 3,
            "probe": "knn",
            "reference": "simclr",
        },
    },
}


def load_suite(name_or_path: str) -> dict[str, dict[str, Any]]:
    """A built-in budget (``quick``, ``full``) or a YAML file of the same shape."""
    if name_or_path in SUITES:
        return copy.deepcopy(SUITES[name_or_path])
    path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"bench config {name_or_path!r} is neither {' nor '.join(SUITES)} nor a YAML file"
        )
    suite = yaml.safe_load(path.read_text()) or {}
    bad = [
        k
        for k, spec in (suite.items() if isinstance(suite, dict) else [])
        if not isinstance(spec, dict) or section_modality(k, spec) not in registry.MODALITIES
    ]
    if bad or not suite or not isinstance(suite, dict):
        raise ValueError(
            f"bench config {path}: top-level keys must be modalities "
            f"({', '.join(registry.MODALITIES)}) or sections with a 'modality' key, got "
            f"{sorted(bad) if bad else 'nothing'}"
        )
    return suite


def section_modality(section: str, spec: dict[str, Any]) -> str:
    """The modality a suite section trains (its ``modality`` key, else its name)."""
    return str(spec.get("modality", section))


def section_methods(section: str, spec: dict[str, Any]) -> list[str]:
    """A section's methods: its ``methods`` list, else every registered method of its modality
    but the generic carriers, less its ``exclude`` list."""
    modality = section_modality(section, spec)
    names = spec.get("methods") or [n for n in registry.primary_names(modality) if n not in SKIP]
    for name in names:
        registry.get(modality, name)  # an unknown name fails here, with the closest suggested
    return [n for n in names if n not in set(spec.get("exclude", []))]


def _accepted(cls: type[Method], options: dict[str, Any]) -> dict[str, Any]:
    """The options ``cls.build`` accepts (all of them when it takes ``**kwargs``)."""
    params = inspect.signature(cls.build).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


# ---------------------------------------------------------------- classical baselines


class RawFeatures(Method):
    """The classical baseline as a method with nothing to train: raw pixels (vision), TF-IDF of
    the tokens (text), raw node features, mean- and sum-pooled per graph (graph-level)."""

    family = "baseline"
    kind = "classical"

    def __init__(self, modality: str, vocab_size: int = 0) -> None:
        super().__init__()
        self.modality_name = modality
        self.vocab_size = vocab_size
        self.register_buffer("idf", torch.ones(max(vocab_size, 1)))

    def _counts(self, inputs: dict[str, Tensor]) -> Tensor:
        ids = inputs["input_ids"]
        ids = ids.reshape(ids.shape[0], -1)  # (B, T) or (B, C*T) for chunked documents
        counts = torch.zeros(ids.shape[0], self.vocab_size, device=ids.device)
        counts.scatter_add_(1, ids, torch.ones_like(ids, dtype=counts.dtype))  # (B, V)
        counts[:, :5] = 0  # special tokens ([PAD], [UNK], [CLS], [SEP], [MASK])
        return counts

    def fit_idf(self, probe: ProbeData) -> None:
        df = torch.zeros(self.vocab_size)
        n = 0
        for batches in probe.splits.values():
            for inputs, _ in batches:
                df += (self._counts(inputs) > 0).float().sum(0)
                n += int(inputs["input_ids"].shape[0])
        self.idf = torch.log((1 + n) / (1 + df)) + 1  # (V,) smoothed, as scikit-learn's

    @torch.no_grad()
    def embed(self, inputs: Any) -> Tensor:
        if self.modality_name == "vision":
            return inputs.float().flatten(1) / 255.0  # (B, C*H*W)
        if self.modality_name == "text":
            tf = torch.log1p(self._counts(inputs)) * self.idf.to(inputs["input_ids"].device)
            return torch.nn.functional.normalize(tf, dim=1)  # (B, V)
        x = inputs.x.float()  # (N, F)
        graph = getattr(inputs, "batch", None)
        if graph is None:
            return x
        from mmssl.graph.encoders import readout

        g = inputs.num_graphs
        return torch.cat([readout(x, graph, "mean", g), readout(x, graph, "sum", g)], 1)


# ---------------------------------------------------------------- running the cells


def _cell_config(
    modality: str, spec: dict[str, Any], method: str, seed: int, data_root: str | None
) -> dict[str, Any]:
    from mmssl.pretrain import resolve_config

    cls = registry.get(modality, method)
    options = {**spec.get("method_options", {}), **spec.get("per_method", {}).get(method, {})}
    cfg = resolve_config(
        modality,
        method,
        data=spec.get("data"),
        data_root=data_root,
        seed=seed,
        train={**spec.get("train", {}), "progress": False},
        method_options=_accepted(cls, options),
        data_options=dict(spec.get("data_options", {})),
        probe=spec.get("probe"),
        baseline=False,
    )
    return cfg


def _run_baseline(
    modality: str, spec: dict[str, Any], which: str, seed: int, data_root: str | None, out: Path
) -> dict[str, Any]:
    from mmssl.core.trainer import seed_everything
    from mmssl.pretrain import load_data

    seed_everything(seed)
    data_opts = dict(spec.get("data_options", {}))
    if "batch_size" in spec.get("train", {}):
        data_opts.setdefault("batch_size", spec["train"]["batch_size"])
    data = load_data(modality, spec.get("data"), data_root, seed=seed, **data_opts)
    if data.probe is None:
        raise ValueError(f"{modality} bench data {spec.get('data')!r} has no labels to probe")
    if which == "random-init":
        ref = spec.get("reference")
        cls = registry.get(modality, ref)
        torch.manual_seed(seed)
        method: nn.Module = cls.build(data, **_accepted(cls, spec.get("method_options", {})))
        family, kind = "baseline", f"random init ({ref}'s encoder)"
    else:
        method = RawFeatures(modality, int(data.info.get("vocab_size", 0)))
        if modality == "text":
            method.fit_idf(data.probe)
        family, kind = "baseline", "classical"
    t0 = time.perf_counter()
    probe = run_probe(method, data.probe, spec.get("probe"), seed=seed)
    results = {
        "method": which,
        "modality": modality,
        "family": family,
        "kind": kind,
        "dataset": data.name,
        "seed": seed,
        "epochs": 0,
        "steps": 0,
        "train_seconds": 0.0,
        "peak_memory_mb": 0.0,
        "probe": probe,
        "probe_seconds": round(time.perf_counter() - t0, 2),
    }
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "results.json", results)
    return results


def run_bench(
    suite: dict[str, dict[str, Any]],
    out: str | Path,
    *,
    data_root: str | None = None,
    modalities: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
    seeds: int | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Run every missing cell of ``suite`` under ``out``, then write the report.

    A cell that fails is recorded in its folder's ``error.txt`` and in the report; the others go
    on. Finished cells (with ``results.json``) are skipped, so an interrupted bench resumes.
    """
    from mmssl.core.trainer import Interrupted
    from mmssl.pretrain import pretrain

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(methods) if methods else None
    chosen = list(suite)
    if modalities:
        modalities = list(modalities)
        chosen = [
            k for k in suite if k in modalities or section_modality(k, suite[k]) in modalities
        ]
        if not chosen:
            raise ValueError(
                f"the bench config has no section for {', '.join(modalities)} ({', '.join(suite)})"
            )
    for section in chosen:
        spec = suite[section]
        modality = section_modality(section, spec)
        names = section_methods(section, spec) + list(BASELINES)
        if wanted:
            names = [n for n in names if n in wanted]
        n_seeds = seeds or int(spec.get("seeds", 3))
        cells = [(name, seed) for seed in range(n_seeds) for name in names]
        for i, (name, seed) in enumerate(cells, 1):
            cell = out / section / name / f"seed{seed}"
            if (cell / "results.json").is_file():
                continue
            t0 = time.perf_counter()
            log(f"[{section} {i}/{len(cells)}] {name} seed {seed} ...")
            try:
                if name in BASELINES:
                    _run_baseline(modality, spec, name, seed, data_root, cell)
                else:
                    cfg = _cell_config(modality, spec, name, seed, data_root)
                    resume = (cell / "checkpoints" / "latest.pt").is_file()
                    pretrain(cfg, cell, resume=resume)
                (cell / "error.txt").unlink(missing_ok=True)
                log(f"    done in {time.perf_counter() - t0:.0f} s")
            except (KeyboardInterrupt, Interrupted):
                raise  # stopped by the user or a signal (the cell is checkpointed): stop the suite
            except Exception as err:  # one failing method must not sink the suite
                cell.mkdir(parents=True, exist_ok=True)
                (cell / "error.txt").write_text(traceback.format_exc())
                log(f"    FAILED: {type(err).__name__}: {err}")
    return report(out, suite)


# ---------------------------------------------------------------- the report

PREFER = ("test_acc", "top1", "acc", "accuracy", "test_auc")


def primary_metric(probe: dict[str, Any]) -> tuple[str, float] | None:
    """The probe's headline number, e.g. ``("linear.test_acc", 0.82)``."""
    flat = {
        f"{proto}.{k}": float(v)
        for proto, metrics in probe.items()
        if isinstance(metrics, dict)
        for k, v in metrics.items()
        if isinstance(v, (int, float))
    }
    for want in PREFER:
        for key, value in flat.items():
            if key.endswith("." + want):
                return key, value
    return None


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def collect(out: Path) -> list[dict[str, Any]]:
    """One row per (section, method): the cells' results, aggregated over seeds. A row's
    ``modality`` is its section's name (``graph``, ``graph-level``, ...)."""
    rows = []
    sections = (p for p in out.iterdir() if p.is_dir() and p.name != "plots")
    for modality_dir in sorted(sections):
        for method_dir in sorted(p for p in modality_dir.iterdir() if p.is_dir()):
            cells = [
                json.loads(p.read_text()) for p in sorted(method_dir.glob("seed*/results.json"))
            ]
            errors = sorted(p.parent.name for p in method_dir.glob("seed*/error.txt"))
            if not cells and not errors:
                continue
            metric_name, values = None, []
            for c in cells:
                m = primary_metric(c.get("probe", {}))
                if m:
                    metric_name, _ = m
                    values.append(m[1])
            first = cells[0] if cells else {}
            mean, std = _mean_std(values)
            rows.append(
                {
                    "modality": modality_dir.name,
                    "method": method_dir.name,
                    "family": first.get("family", "?"),
                    "kind": first.get("kind", "?"),
                    "metric": metric_name,
                    "mean": mean,
                    "std": std,
                    "values": values,
                    "seeds": len(values),
                    "failed": errors,
                    "train_seconds": _mean_std([c["train_seconds"] for c in cells])[0],
                    "peak_memory_mb": _mean_std([c["peak_memory_mb"] for c in cells])[0],
                    "steps": first.get("steps"),
                    "eval": first.get("eval"),
                }
            )
    return rows


def _options(options: dict[str, Any] | None) -> str:
    return " (" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")" if options else ""


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "failed"
    scale = 100.0 if mean <= 1.0 else 1.0
    return f"{mean * scale:.1f} ± {std * scale:.1f}"


def _gap(top: dict[str, Any], other: dict[str, Any]) -> tuple[float, str]:
    """``top``'s lead over ``other`` in points, and whether it is beyond twice the seed std."""
    scale = 100 if top["mean"] <= 1 else 1
    gap = (top["mean"] - other["mean"]) * scale
    noise = max(top["std"], other["std"]) * scale
    return gap, "beyond" if gap > 2 * noise else "within"


def _winner(rows: list[dict[str, Any]]) -> str:
    """Which family wins: the best method of each family, and the gap between them."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["family"] == "baseline" or math.isnan(r["mean"]):
            continue
        if r["family"] not in best or r["mean"] > best[r["family"]]["mean"]:
            best[r["family"]] = r
    if not best:
        return "no method finished."
    ranked = sorted(best.values(), key=lambda r: -r["mean"])
    top = ranked[0]
    text = f"**{top['family']}** wins with {top['method']} ({_fmt(top['mean'], top['std'])})"
    for other in ranked[1:]:
        gap, verdict = _gap(top, other)
        text += (
            f"; the best {other['family']} method, {other['method']}, is {gap:.1f} points "
            f"behind ({verdict} twice the seed std)"
        )
    rand = next((r for r in rows if r["method"] == "random-init"), None)
    if rand is not None and not math.isnan(rand["mean"]):
        gap, verdict = _gap(top, rand)
        text += (
            f". Against the same encoder at random init ({_fmt(rand['mean'], rand['std'])}), "
            f"{top['method']} is {gap:+.1f} points ({verdict} twice the seed std)"
        )
    return text + "."


def _family_table(rows: list[dict[str, Any]]) -> list[str]:
    """One line per family: its methods, the best of them and the mean over them."""
    lines = [
        "| family | methods | best method | best probe | mean over methods | train s (mean) |",
        "|---|---|---|---|---|---|",
    ]
    families = sorted({r["family"] for r in rows}, key=lambda f: (f == "baseline", f))
    for fam in families:
        done = [r for r in rows if r["family"] == fam and not math.isnan(r["mean"])]
        if not done:
            lines.append(f"| {fam} | 0 | | failed | | |")
            continue
        best = max(done, key=lambda r: r["mean"])
        mean, std = _mean_std([r["mean"] for r in done])
        secs = statistics.fmean(r["train_seconds"] for r in done)
        lines.append(
            f"| {fam} | {len(done)} | {best['method']} | {_fmt(best['mean'], best['std'])} | "
            f"{_fmt(mean, std)} | {secs:.0f} |"
        )
    return lines


def report(out: str | Path, suite: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Aggregate the cells under ``out`` into ``results.json``, ``report.md`` and plots."""
    from mmssl import bench_plots

    out = Path(out)
    rows = collect(out)
    lines = ["# mmssl bench report", ""]
    if suite:
        lines += ["Budgets (shared by every method of a section):", ""]
        for modality, spec in suite.items():
            lines.append(
                f"- **{modality}**: data `{spec.get('data')}`{_options(spec.get('data_options'))}, "
                f"training `{spec.get('train')}`, "
                f"encoder `{spec.get('method_options')}`, probe `{spec.get('probe') or 'default'}`"
            )
        lines.append("")
    for modality in sorted({r["modality"] for r in rows}):
        mrows = [r for r in rows if r["modality"] == modality]
        metric = next((r["metric"] for r in mrows if r["metric"]), "?")
        lines += [f"## {modality}", "", f"Probe metric: `{metric}` (mean ± std over seeds).", ""]
        lines.append(_winner(mrows))
        lines += ["", "By family (the ± of the mean over methods is across methods):", ""]
        lines += _family_table(mrows)
        lines += ["", "| family | kind | method | probe | seeds | train s | peak MB |"]
        lines.append("|---|---|---|---|---|---|---|")
        order = {"generative": 0, "contrastive": 1, "generative-contrastive": 2, "baseline": 3}
        for r in sorted(mrows, key=lambda r: (order.get(r["family"], 9), r["kind"], -r["mean"])):
            fail = f" ({len(r['failed'])} failed)" if r["failed"] else ""
            lines.append(
                f"| {r['family']} | {r['kind']} | {r['method']} | {_fmt(r['mean'], r['std'])}"
                f"{fail} | {r['seeds']} | {r['train_seconds']:.0f} | {r['peak_memory_mb']:.0f} |"
            )
        notes = (suite or {}).get(modality, {}).get("notes", {})
        if notes:
            lines += ["Notes:", ""] + [f"- **{m}**: {text}" for m, text in notes.items()] + [""]
        lines.append("")
    plots = bench_plots.make_all(out, rows)
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(out)})" for p in plots] + [""]
    (out / "report.md").write_text("\n".join(lines))
    summary = {"suite": suite, "rows": rows}
    _write_json(out / "results.json", summary)
    return summary
