"""One pretraining run end to end: data, method, trainer, probes, and the run folder.

The CLI and the benchmark both call :func:`pretrain`. The run folder receives ``config.yaml``
(enough to rerun with ``mmssl pretrain --config``), ``metrics.jsonl``, ``checkpoints/``,
``encoder.safetensors`` and ``results.json``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from mmssl.core import registry
from mmssl.core.data import DataBundle, DataError
from mmssl.core.evaluate import paired_gain, run_probe
from mmssl.core.method import Method
from mmssl.core.trainer import TrainConfig, Trainer, seed_everything

TRAIN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)}
DATA_KEYS = ("batch_size",)  # method defaults that the data loader, not the trainer, consumes


def load_data(modality: str, data: Any, data_root: str | None, **options: Any) -> DataBundle:
    """Call ``mmssl.<modality>.data.load``."""
    if modality not in registry.MODALITIES:
        raise ValueError(
            f"unknown modality {modality!r}: choose one of {', '.join(registry.MODALITIES)}"
        )
    loader = importlib.import_module(f"mmssl.{modality}.data")
    return loader.load(data, data_root, **options)


def resolve_config(
    modality: str,
    method: str,
    *,
    data: str | None = None,
    data_root: str | None = None,
    seed: int = 0,
    train: dict[str, Any] | None = None,
    method_options: dict[str, Any] | None = None,
    data_options: dict[str, Any] | None = None,
    probe: str | None = None,
    baseline: bool = True,
    knn_every: int = 0,
) -> dict[str, Any]:
    """Merge the trainer's defaults, the method's paper defaults and the user's settings.

    ``knn_every``: score the encoder with the kNN probe every this many epochs during training
    (0: never); the scores go to ``metrics.jsonl`` and the progress bar."""
    if knn_every < 0:
        raise ValueError(f"--knn-every must be >= 0 (epochs between kNN scores), got {knn_every}")
    cls = registry.get(modality, method)
    defaults = dict(cls.defaults)
    method_data_opts = dict(defaults.pop("data_options", {}))  # e.g. VGAE's link-prediction task
    merged = {**defaults, **{k: v for k, v in (train or {}).items() if v is not None}}
    unknown = set(merged) - TRAIN_KEYS - set(DATA_KEYS)
    if unknown:
        raise ValueError(
            f"unknown training settings {sorted(unknown)}; valid: {sorted(TRAIN_KEYS)}"
        )
    data_opts = {**method_data_opts, **(data_options or {})}
    for key in DATA_KEYS:
        if key in merged:
            data_opts.setdefault(key, merged.pop(key))
    merged["seed"] = seed
    train_cfg = dataclasses.asdict(TrainConfig(**merged))
    return {
        "modality": modality,
        "method": method,
        "data": data,
        "data_root": data_root,
        "seed": seed,
        "train": train_cfg,
        "method_options": dict(method_options or {}),
        "data_options": data_opts,
        "probe": probe,
        "baseline": baseline,
        "knn_every": knn_every,
    }


def default_out(cfg: dict[str, Any]) -> Path:
    data = Path(str(cfg["data"])).name if cfg["data"] else "default"
    return Path("runs") / cfg["modality"] / f"{cfg['method']}-{data}-seed{cfg['seed']}"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def save_encoder(method: Method, out: Path, data: DataBundle) -> None:
    """``encoder.safetensors`` always; a Hugging Face folder (and tokenizer) when the encoder has one."""
    from safetensors.torch import save_model

    encoder = getattr(method, "encoder", method)
    tmp = out / ".encoder.safetensors.tmp"
    nhwc = any(p.dim() == 4 and not p.is_contiguous() for p in encoder.parameters())
    if nhwc:  # trained channels-last: safetensors stores contiguous tensors only
        encoder.to(memory_format=torch.contiguous_format)
    save_model(encoder, str(tmp))
    if nhwc:
        encoder.to(memory_format=torch.channels_last)
    os.replace(tmp, out / "encoder.safetensors")
    if hasattr(encoder, "save_pretrained"):
        encoder.save_pretrained(out / "encoder")
        tok = data.info.get("tokenizer")
        if tok is not None and hasattr(tok, "save_pretrained"):
            if hasattr(tok, "backend_tokenizer"):  # no probe call's padding in tokenizer.json
                from mmssl.text.tokenizer import unpadded

                unpadded(tok)
            tok.save_pretrained(out / "encoder")


def knn_monitor(method: Method, data: DataBundle, every: int) -> Any:
    """An ``on_epoch_end`` callback: every ``every`` epochs, the kNN top-1 (k = 200) of the
    frozen encoder on ``data``'s probe splits, logged as ``knn_top1``."""
    if data.probe is None or not {"train", "test"} <= data.probe.split_names:
        raise DataError(
            f"--knn-every: dataset {data.name!r} has no labelled train and test splits to score; "
            "give labelled data or drop --knn-every"
        )

    def on_epoch_end(trainer: Trainer, epoch: int) -> dict[str, float]:
        if epoch % every:
            return {}
        t0 = time.perf_counter()
        top1 = run_probe(method, data.probe, "knn", device=trainer.device)["knn"]["top1"]
        return {"knn_top1": top1, "knn_seconds": time.perf_counter() - t0}

    return on_epoch_end


def pretrain(
    cfg: dict[str, Any], out: str | Path | None = None, *, resume: bool = False
) -> dict[str, Any]:
    """Run one resolved config (see :func:`resolve_config`); returns what ``results.json`` holds."""
    out = Path(out) if out is not None else default_out(cfg)
    ckpt = out / "checkpoints" / "latest.pt"
    if ckpt.exists() and not resume:
        raise FileExistsError(
            f"run folder {out} already holds checkpoints: pass --resume to continue it, or choose another --out"
        )
    train_cfg = TrainConfig(**{**cfg["train"], "betas": tuple(cfg["train"]["betas"])})
    seed = cfg["seed"]
    seed_everything(seed, train_cfg.deterministic)
    data = load_data(
        cfg["modality"], cfg["data"], cfg["data_root"], seed=seed, **cfg["data_options"]
    )
    probe = cfg.get("probe")
    if probe not in (None, "none") and data.probe is None:
        raise DataError(
            f"--probe {probe}: dataset {data.name!r} has no labels to probe; "
            "give labelled data (<folder>/<class>/...) or --probe none"
        )
    cls = registry.get(cfg["modality"], cfg["method"])
    torch.manual_seed(seed)
    method = cls.build(data, **cfg["method_options"])

    every = cfg.get("knn_every") or 0
    monitor = knn_monitor(method, data, every) if every else None

    # written only once the inputs are known good: a bad flag never clobbers a run's config
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".config.yaml.tmp"
    tmp.write_text(yaml.safe_dump(_jsonable(cfg), sort_keys=False))
    os.replace(tmp, out / "config.yaml")
    trainer = Trainer(method, data.train, train_cfg, out_dir=out, on_epoch_end=monitor)
    if resume and trainer.load_checkpoint():
        print(f"resumed from {ckpt} at step {trainer.step}")
    summary = trainer.fit()
    save_encoder(method, out, data)

    results: dict[str, Any] = {
        "method": cfg["method"],
        "modality": cfg["modality"],
        "family": cls.family,
        "kind": cls.kind,
        "dataset": data.name,
        "probe_dataset": data.info.get("probe_data", data.name),
        "seed": seed,
        "epochs": summary["epochs"],
        "steps": summary["steps"],
        "stopped_early": summary["stopped_early"],
        "train_seconds": round(summary["train_seconds"], 2),
        "peak_memory_mb": round(summary["peak_memory_mb"], 1),
        "device": str(trainer.device),
        "encoder_params": sum(p.numel() for p in getattr(method, "encoder", method).parameters()),
        "probe": {},
    }
    evaluation = method.evaluate(data)
    if evaluation:
        results["eval"] = evaluation
    artifacts = method.save_artifacts(out, data)
    if artifacts:
        results["artifacts"] = artifacts
    if probe != "none" and data.probe is not None:
        t0 = time.perf_counter()
        results["probe"] = run_probe(method, data.probe, probe, device=trainer.device, seed=seed)
        results["probe_seconds"] = round(time.perf_counter() - t0, 2)
        if cfg.get("baseline", True):
            results.update(
                random_init_baseline(cfg, data, results["probe"], probe, device=trainer.device)
            )
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(_jsonable(results), indent=2))
    os.replace(tmp, out / "results.json")
    return results


def random_init_baseline(
    cfg: dict[str, Any],
    data: DataBundle,
    scores: dict[str, Any],
    protocol: str | None,
    *,
    device: torch.device,
) -> dict[str, Any]:
    """Probe the run's encoder at random init (built from the run's seed and method options)
    with ``protocol``; returns ``random_init`` and, where ``scores`` can be paired (per-fold
    accuracies or per-example test results), ``vs_random_init`` (see
    :func:`~mmssl.core.evaluate.paired_gain`), and ``baseline_encoder``, what that encoder is: "random
    init", or the starting encoder of a method continued from one (``pretrained=``)."""
    seed = cfg["seed"]
    torch.manual_seed(seed)
    cls = registry.get(cfg["modality"], cfg["method"])
    fresh = cls.build(data, **cfg["method_options"]).to(device)
    start = cfg["method_options"].get("pretrained")
    out: dict[str, Any] = {
        "baseline_encoder": f"its starting encoder {start}" if start else "random init",
        "random_init": run_probe(fresh, data.probe, protocol, device=device, seed=seed),
    }
    fresh_eval = fresh.evaluate(data)
    if fresh_eval:
        out["random_init"]["eval"] = fresh_eval
    gain = paired_gain(scores, out["random_init"])
    if gain is not None:
        out["vs_random_init"] = gain
    return out


def load_run(
    run_dir: str | Path, data_name: str | None = None
) -> tuple[Method, DataBundle, dict[str, Any]]:
    """Rebuild a run's method from its ``config.yaml`` with ``checkpoints/latest.pt`` loaded,
    and its data; returns ``(method, data, config)``.

    ``data_name`` replaces the run's dataset (the data options stay), to probe its encoder on
    another labelled dataset of the same modality; a text run keeps its own tokenizer."""
    run = Path(run_dir)
    cfg_path, ckpt = run / "config.yaml", run / "checkpoints" / "latest.pt"
    if not cfg_path.is_file() or not ckpt.is_file():
        raise FileNotFoundError(
            f"{run} is not a run folder (needs config.yaml and checkpoints/latest.pt)"
        )
    cfg = yaml.safe_load(cfg_path.read_text())
    options = dict(cfg["data_options"])
    if data_name is not None:
        cfg["data"] = data_name
        if cfg["modality"] == "text" and (run / "encoder" / "tokenizer.json").is_file():
            options.setdefault("tokenizer", str(run / "encoder"))
    data = load_data(cfg["modality"], cfg["data"], cfg["data_root"], seed=cfg["seed"], **options)
    torch.manual_seed(cfg["seed"])
    method = registry.get(cfg["modality"], cfg["method"]).build(data, **cfg["method_options"])
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["method"]
    try:
        method.load_state_dict(state)
    except RuntimeError as err:  # another dataset's shapes (features, channels, vocabulary)
        reason = str(err).strip().splitlines()[-1].strip()
        raise ValueError(
            f"run {run}: its checkpoint does not fit the method built for data "
            f"{cfg['data']!r} ({reason}); probe on data shaped like the run's own"
        ) from err
    return method, data, cfg


def probe_run(
    run_dir: str | Path,
    protocol: str | None = None,
    *,
    device: str | None = None,
    baseline: bool = False,
    data_name: str | None = None,
) -> dict[str, Any]:
    """Probe the encoder of a finished (or interrupted) run again, with any protocol, on its
    own dataset or on ``data_name`` (see :func:`load_run`).

    Rebuilds the method from the run's ``config.yaml`` and loads ``checkpoints/latest.pt``.
    Returns the protocol's scores; with ``baseline``, ``{"probe": scores, "random_init": ...,
    "vs_random_init": ...}`` as in ``results.json``.
    """
    method, data, cfg = load_run(run_dir, data_name)
    if data.probe is None:
        raise DataError(
            f"run {run_dir}: its dataset {data.name!r} has no labels to probe; "
            "probe a run pretrained on labelled data"
        )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    scores = run_probe(method.to(dev), data.probe, protocol, device=dev, seed=cfg["seed"])
    if not baseline:
        return scores
    return {"probe": scores, **random_init_baseline(cfg, data, scores, protocol, device=dev)}
