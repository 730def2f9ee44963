"""Issue 8: mmssl's training throughput against the reference implementations, in one process.

Each task trains the same model on the same data, batch size and precision twice: once with the
reference recipe, once with mmssl's method driven by mmssl's own :class:`~mmssl.core.trainer.Trainer`.
After a warmup of each, the two alternate (ref, mmssl, ref, mmssl, ... for ``--rounds`` rounds of
``--steps`` steps), so a noisy machine slows both alike; the ratio of the median round rates is
printed.

    pip install -e '.[bench]'        # lightly; PyG and transformers are mmssl dependencies
    python benchmarks/throughput.py [--task vision|graph|text] [--steps 50] [--rounds 3] \\
        [--precision fp32|bf16] [--device cuda] [--data-root $MMSSL_DATA] [--json out.json] \\
        [--scale 1,2,4] [--accuracy]

* **vision**: SimCLR, torchvision ResNet-18 with the CIFAR stem (mmssl's ``build_encoder`` on
  both sides, same initial weights), batch 128, CIFAR-10 train images. Reference: lightly's README
  recipe: ``SimCLRTransform(input_size=32, cj_strength=0.5, gaussian_blur=0.0)`` in a DataLoader
  with 2 workers over the image folder, ``SimCLRProjectionHead(512, 512, 128, batch_norm=False)``
  (mmssl's head has no batch norm: same model), ``NTXentLoss(0.5)``, SGD. mmssl: cached uint8
  tensors, batched on-device views, same SGD. Images/s. **Target: mmssl >= 1.3x lightly.**
* **graph**: DGI on Cora. Reference: PyG's ``DeepGraphInfomax`` example (``GCNConv(F, 512,
  cached=True)`` + PReLU, row permutation, sigmoid of the mean, Adam 1e-3). ms per epoch (one
  full-graph step). **Target: mmssl <= 0.5x PyG's time at equal accuracy** (``--accuracy``
  trains both 300 epochs and probes both with the same logistic regression; PyG's recipe reached
  82.6% on this data).
* **text**: MLM, BERT 4 layers x 256 (4 heads, FFN 1024), batch 128, 64-token blocks of the
  SentEval sentences (MR+SUBJ+TREC+SST-2), mmssl's WordPiece tokenizer on both sides. Reference:
  HF ``run_mlm.py``'s default path: ``group_texts`` blocks, ``DataCollatorForLanguageModeling(0.15)``,
  ``BertForMaskedLM`` and the HF ``Trainer`` itself (its defaults: fused AdamW, grad clip 1.0);
  mmssl clips at 1.0 too. Tokens/s. **Target: mmssl >= 1.5x HF.**

For each mmssl side, *step efficiency* = time of the method's forward + backward alone on one
prepared batch (no loading, augmentation, masking or optimizer) / mmssl's full step time.
**Target (vision): >= 0.9**, i.e. mmssl's step within 10% of the model-only time.

Peak memory: on CUDA, ``max_memory_allocated`` during each side's rounds (it includes the other
side's resident weights, so ``step MB`` is the growth over the start of the round); on the CPU,
the process's peak RSS (shared by both sides). ``--scale 1,2,4`` times one epoch of each side on
1x/2x/4x the data (vision: a quarter, half and all of the images; graph: Cora tiled disjointly;
text: the blocks repeated). Notes: the reference's workers keep up to 4 batches ready while mmssl
runs, which favours the reference slightly; mmssl's trainer is driven in rounds by handing it a
re-iterable of exactly ``n`` batches and ``total_steps = n`` (no mmssl code is patched).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from mmssl.core.data import to_device
from mmssl.core.trainer import TrainConfig, Trainer

SENTEVAL = ("mr", "subj", "trec", "sst2")
TARGETS = {
    "vision": "mmssl/ref >= 1.3",
    "graph": "mmssl/ref time <= 0.5",
    "text": "mmssl/ref >= 1.5",
}
After = Callable[[int], None]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str) -> Any:
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def cycle(loader: Iterable[Any]) -> Iterable[Any]:
    while True:
        yield from loader


class Feed:
    """What mmssl's trainer iterates: exactly ``n`` batches per pass from an endless loader."""

    def __init__(self, loader: Iterable[Any], count: Callable[[Any], int]) -> None:
        self.loader, self.count, self.n, self.items = loader, count, 1, 0
        self._it = iter(cycle(loader))

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterable[Any]:
        for _ in range(self.n):
            batch = next(self._it)
            self.items += self.count(batch)
            yield batch


class Mmssl:
    """mmssl's side: a method, its loader and its trainer, run ``n`` steps at a time."""

    def __init__(
        self, method: nn.Module, loader: Any, count: Callable[[Any], int], cfg: TrainConfig
    ) -> None:
        self.feed = Feed(loader, count)
        self.epoch_steps = len(loader)
        self.trainer = Trainer(method, self.feed, cfg)

    @property
    def items(self) -> int:
        return self.feed.items

    def run(self, n: int) -> None:
        t = self.trainer
        t.step = t.epoch = 0
        t.total_steps = t.steps_per_epoch = self.feed.n = n
        t.fit()

    def model_only(self, n: int) -> float:
        """Seconds per forward + backward of the method on one already-prepared batch."""
        t, model = self.trainer, self.trainer.model
        self.feed.n = 1
        batch = to_device(next(iter(self.feed)), t.device)
        with torch.no_grad():
            batch = t.accelerator.unwrap_model(model).augment(batch)

        def once() -> None:
            model.zero_grad(set_to_none=True)
            with t.accelerator.autocast():
                out = model(batch)
            (out if isinstance(out, Tensor) else out["loss"]).backward()

        once()
        sync(t.device)
        start = time.perf_counter()
        for _ in range(n):
            once()
        sync(t.device)
        return (time.perf_counter() - start) / n


def alternate(ref: Any, mm: Mmssl, device: torch.device, warmup: int, steps, rounds: int) -> dict:
    """ref warmup, mmssl warmup, then ``rounds`` x (ref round, mmssl round); the reference drives
    (its loop, or HF's Trainer) and calls back after every step. ``steps``: int or (ref, mmssl)."""
    n_ref, n_mm = steps if isinstance(steps, tuple) else (steps, steps)
    res: dict[str, dict[str, list]] = {
        s: {"s": [], "items": [], "mb": []} for s in ("ref", "mmssl")
    }
    clock = {"t": 0.0, "items": 0, "mem": 0}

    def mem_start() -> None:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            clock["mem"] = torch.cuda.memory_allocated(device)

    def record(side: str, seconds: float, items: int) -> None:
        res[side]["s"].append(seconds)
        res[side]["items"].append(items)
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device)
            res[side]["mb"].append((peak / 2**20, (peak - clock["mem"]) / 2**20))

    def after(step: int) -> None:
        k, r = divmod(step - warmup, n_ref)
        if step < warmup or r or k > rounds:
            return
        sync(device)
        if k > 0:
            record("ref", time.perf_counter() - clock["t"], ref.items - clock["items"])
        if k == 0:
            mm.run(warmup)
        else:
            mem_start()
            start, items = time.perf_counter(), mm.items
            mm.run(n_mm)
            sync(device)
            record("mmssl", time.perf_counter() - start, mm.items - items)
        mem_start()
        clock["t"], clock["items"] = time.perf_counter(), ref.items

    ref.drive(warmup + rounds * n_ref, after)
    out: dict[str, Any] = {}
    for side, r in res.items():
        rates = [i / s for i, s in zip(r["items"], r["s"], strict=True)]
        out[side] = {
            "rate": statistics.median(rates),
            "round_rates": rates,
            "step_s": statistics.median(r["s"]) / (n_ref if side == "ref" else n_mm),
            "epoch_s": statistics.median(r["s"]),
        }
        if r["mb"]:
            out[side]["peak_mb"] = max(m[0] for m in r["mb"])
            out[side]["step_mb"] = max(m[1] for m in r["mb"])
    out["ratio"] = out["mmssl"]["rate"] / out["ref"]["rate"]
    return out


# ------------------------------------------------------------------------------------ vision
def cifar_folder(root: Path) -> Path:
    return root / "cifar10" if (root / "cifar10" / "train").is_dir() else root


class LightlySimCLR:
    """lightly's README recipe: PIL transforms in DataLoader workers, lightly's head and loss."""

    def __init__(self, folder: Path, encoder: nn.Module, args: Any, n_images: int | None) -> None:
        import torchvision
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead
        from lightly.transforms import SimCLRTransform

        from mmssl.vision.augment import CIFAR10_MEAN, CIFAR10_STD

        norm = {"mean": list(CIFAR10_MEAN), "std": list(CIFAR10_STD)}
        tf = SimCLRTransform(input_size=32, cj_strength=0.5, gaussian_blur=0.0, normalize=norm)
        ds = torchvision.datasets.ImageFolder(str(folder / "train"), transform=tf)
        if n_images is not None:
            ds = Subset(ds, torch.randperm(len(ds))[:n_images].tolist())
        cuda = args.device.type == "cuda"
        self.loader = DataLoader(
            ds,
            args.vision_batch,
            shuffle=True,
            drop_last=True,
            num_workers=args.workers,
            pin_memory=cuda,
            persistent_workers=args.workers > 0,
        )
        self.epoch_steps = len(self.loader)
        head = SimCLRProjectionHead(encoder.out_dim, encoder.out_dim, 128, batch_norm=False)
        self.model = nn.Sequential(encoder, head).to(args.device)
        self.criterion = NTXentLoss(temperature=0.5)
        self.opt = torch.optim.SGD(
            self.model.parameters(), lr=0.03, momentum=0.9, weight_decay=5e-4
        )
        self.args, self.items = args, 0

    def drive(self, n: int, after: After) -> None:
        dev, batches = self.args.device, iter(cycle(self.loader))
        for i in range(n):
            (x0, x1), _ = next(batches)
            x0, x1 = x0.to(dev, non_blocking=True), x1.to(dev, non_blocking=True)
            with autocast(dev, self.args.precision):
                loss = self.criterion(self.model(x0), self.model(x1))
            loss.backward()
            self.opt.step()
            self.opt.zero_grad()
            self.items += x0.shape[0]
            after(i + 1)


def vision_pair(args: Any, scale: float = 1.0, folder: Path | None = None) -> tuple[Any, Mmssl]:
    from mmssl.vision import data as vision_data
    from mmssl.vision.methods.simclr import SimCLR

    folder = folder or cifar_folder(args.data_root)
    n = None  # scale: the fraction of the training images to use
    if scale != 1.0:
        n = int(scale * sum(1 for _ in (folder / "train").glob("*/*")))
    data = vision_data.load(str(folder), batch_size=args.vision_batch, subset=n)
    torch.manual_seed(0)
    method = SimCLR.build(data, encoder=args.encoder, seed=0)
    ref = LightlySimCLR(folder, copy.deepcopy(method.encoder), args, n)
    cfg = _cfg(args, optimizer="sgd", lr=0.03, momentum=0.9, weight_decay=5e-4)
    return ref, Mmssl(method, data.train, lambda b: b.shape[0], cfg)


def _cfg(args: Any, **kw: Any) -> TrainConfig:
    return TrainConfig(
        epochs=1, schedule="constant", precision=args.precision, device=args.device.type,
        progress=False, log_every=10**9, channels_last=args.channels_last,
        compile=args.compile, **kw,
    )  # fmt: skip


# ------------------------------------------------------------------------------------- graph
class _PyGEncoder(nn.Module):
    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.conv, self.prelu = GCNConv(in_dim, hidden, cached=True), nn.PReLU(hidden)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.prelu(self.conv(x, edge_index))


def _sigmoid_mean(z: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    return torch.sigmoid(z.mean(dim=0))


def _permute_rows(x: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
    return x[torch.randperm(x.size(0), device=x.device)], edge_index


class PyGDGI:
    """PyG's DeepGraphInfomax example, one full-graph step per epoch."""

    def __init__(self, graph: Any, args: Any, hidden: int = 512) -> None:
        from torch_geometric.nn import DeepGraphInfomax

        enc = _PyGEncoder(graph.num_features, hidden)
        self.model = DeepGraphInfomax(hidden, enc, _sigmoid_mean, _permute_rows).to(args.device)
        self.x, self.ei = graph.x.to(args.device), graph.edge_index.to(args.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.args, self.items, self.epoch_steps = args, 0, 1

    def drive(self, n: int, after: After) -> None:
        for i in range(n):
            self.model.train()
            self.opt.zero_grad()
            with autocast(self.args.device, self.args.precision):
                loss = self.model.loss(*self.model(self.x, self.ei))
            loss.backward()
            self.opt.step()
            loss.item()  # the example returns it every epoch
            self.items += 1
            after(i + 1)

    @torch.no_grad()
    def embed(self) -> Tensor:
        self.model.eval()
        return self.model.encoder(self.x, self.ei)


def graph_pair(
    args: Any, scale: float = 1.0, name: str = "cora", seed: int = 0
) -> tuple[PyGDGI, Mmssl]:
    from torch_geometric.data import Batch, Data

    from mmssl.graph import data as graph_data
    from mmssl.graph.methods.dgi import DGI

    data = graph_data.load(name, str(args.data_root))
    graph = data.train[0]
    if scale != 1.0:  # k disjoint copies: one graph, k components
        b = Batch.from_data_list([graph] * int(scale))
        graph = Data(x=b.x, edge_index=b.edge_index, num_nodes=b.num_nodes)
    torch.manual_seed(seed)
    method = DGI.build(data, seed=seed)
    ref = PyGDGI(graph, args)
    return ref, Mmssl(method, [graph], lambda b: 1, _cfg(args, optimizer="adam", lr=1e-3))


def probe_accuracy(z: Tensor, y: Tensor, masks: dict[str, Tensor]) -> float:
    """The same logistic regression for both sides (PyG's ``DeepGraphInfomax.test``)."""
    from sklearn.linear_model import LogisticRegression

    z, y = z.float().cpu().numpy(), y.numpy()
    tr, te = masks["train"].numpy(), masks["test"].numpy()
    return float(LogisticRegression(max_iter=150).fit(z[tr], y[tr]).score(z[te], y[te]))


def dgi_accuracy(
    args: Any, epochs: int = 300, name: str = "cora", seeds: int = 1
) -> dict[str, list[float]]:
    """Test accuracy of both sides after ``epochs`` full-graph steps, one value per seed."""
    from mmssl.graph import data as graph_data

    probe = graph_data.load(name, str(args.data_root)).probe
    y, masks = probe.splits["all"][0][1], probe.masks
    out: dict[str, list[float]] = {"ref": [], "mmssl": []}
    for seed in range(seeds):
        ref, mm = graph_pair(args, name=name, seed=seed)
        ref.drive(epochs, lambda step: None)
        mm.run(epochs)
        method = mm.trainer.accelerator.unwrap_model(mm.trainer.model)
        z_mm = method.embed(to_device(mm.feed.loader[0], mm.trainer.device))
        out["ref"].append(probe_accuracy(ref.embed(), y, masks))
        out["mmssl"].append(probe_accuracy(z_mm, y, masks))
    return out


# -------------------------------------------------------------------------------------- text
class HFMaskedLM:
    """HF ``run_mlm.py``'s default path with the HF ``Trainer``; a callback reports each step."""

    def __init__(self, texts: list[str], tok: Any, config: Any, args: Any, repeat: int) -> None:
        import datasets
        import transformers as hf

        datasets.disable_progress_bars()
        block = args.block

        def group_texts(batch: dict[str, list]) -> dict[str, list]:
            cat = {k: sum(batch[k], []) for k in batch}
            total = len(cat["input_ids"]) // block * block
            return {k: [v[i : i + block] for i in range(0, total, block)] for k, v in cat.items()}

        ds = datasets.Dataset.from_dict({"text": texts})
        ds = ds.map(
            lambda b: tok(b["text"], return_special_tokens_mask=True),
            batched=True,
            remove_columns=["text"],
        )
        ds = ds.map(group_texts, batched=True)
        if repeat > 1:
            ds = datasets.concatenate_datasets([ds] * repeat)
        collator = hf.DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
        side = self

        def counting(features: list[dict]) -> dict[str, Tensor]:
            batch = collator(features)
            side.items += batch["input_ids"].numel()
            return batch

        class Boundary(hf.TrainerCallback):
            def on_step_end(self, targs: Any, state: Any, control: Any, **kw: Any) -> None:
                side.after(state.global_step)

        targs = hf.TrainingArguments(
            output_dir=str(Path(tempfile.gettempdir()) / "mmssl-throughput-hf"),
            per_device_train_batch_size=args.text_batch,
            max_steps=1,
            learning_rate=1e-3,
            weight_decay=0.01,
            logging_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            bf16=args.precision == "bf16",
            use_cpu=args.device.type == "cpu",
            seed=0,
        )
        model = hf.BertForMaskedLM(copy.deepcopy(config))
        self.trainer = hf.Trainer(
            model=model,
            args=targs,
            train_dataset=ds,
            data_collator=counting,
            callbacks=[Boundary()],
        )
        self.epoch_steps = len(self.trainer.get_train_dataloader())
        self.items, self.after = 0, None

    def drive(self, n: int, after: After) -> None:
        self.after, self.trainer.args.max_steps = after, n
        self.trainer.train()


def text_pair(args: Any, scale: float = 1.0, source: str | None = None) -> tuple[Any, Mmssl]:
    from mmssl.text import data as text_data
    from mmssl.text.methods.mlm import MLM

    root = str(args.data_root)
    names = SENTEVAL if source is None else (source,)
    opts = {"corpus": "+".join(names)} if source is None else {}
    data = text_data.load(names[0], root, batch_size=args.text_batch, max_length=args.block, **opts)
    texts = [s for n in names for d in text_data.read_corpus(n, root).documents for s in d]
    loader, k = data.train, int(scale)
    if k > 1:
        rows = text_data.Rows(loader.dataset.rows * k)
        loader = DataLoader(
            rows, args.text_batch, shuffle=True, collate_fn=loader.collate_fn,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
    torch.manual_seed(0)
    method = MLM.build(data, "mini", seed=0)
    ref = HFMaskedLM(texts, data.info["tokenizer"], method.encoder.model.config, args, k)
    cfg = _cfg(args, optimizer="adamw", lr=1e-3, weight_decay=0.01, grad_clip=1.0)
    return ref, Mmssl(method, loader, lambda b: b["input_ids"].numel(), cfg)


# -------------------------------------------------------------------------------------- main
TASKS = {
    "vision": (vision_pair, "lightly", "images/s"),
    "graph": (graph_pair, "PyG", "epochs/s"),
    "text": (text_pair, "HF Trainer", "tokens/s"),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_task(task: str, args: Any, **pair_kw: Any) -> dict[str, Any]:
    """Alternating rounds, step efficiency, and optionally epoch time at several data scales."""
    make, ref_name, unit = TASKS[task]
    ref, mm = make(args, **pair_kw)
    out = alternate(ref, mm, args.device, args.warmup, args.steps, args.rounds)
    out["model_only_s"] = mm.model_only(args.steps)
    out["step_efficiency"] = out["model_only_s"] / out["mmssl"]["step_s"]
    out["peak_rss_mb"] = peak_rss_mb()
    out["reference"] = ref_name
    out["unit"] = unit
    if task == "graph":
        out["ratio"] = 1 / out["ratio"]  # time per epoch, mmssl / ref
    del ref, mm
    for s in args.scale:  # vision: a fraction of the images, the largest scale = all of them
        f = s / max(args.scale) if task == "vision" else s
        ref, mm = make(args, scale=f, **pair_kw)
        r = alternate(ref, mm, args.device, 1, (ref.epoch_steps, mm.epoch_steps), 1)
        out.setdefault("scale", {})[str(s)] = {
            "ref_epoch_s": r["ref"]["epoch_s"],
            "mmssl_epoch_s": r["mmssl"]["epoch_s"],
        }
    if task == "graph" and args.accuracy:
        out["accuracy"] = dgi_accuracy(args, seeds=args.accuracy_seeds, **pair_kw)
    return out


def report(task: str, r: dict[str, Any], args: Any) -> None:
    print(
        f"\n== {task}: {args.precision}, {args.device}, {args.rounds} rounds x {args.steps} steps"
        + (f", mmssl channels_last={args.channels_last}" if args.channels_last is not None else "")
        + (", mmssl under torch.compile" if args.compile else "")
    )
    for side in ("ref", "mmssl"):
        s = r[side]
        name = r["reference"] if side == "ref" else "mmssl"
        rate = (
            f"{1000 / s['rate']:.2f} ms/epoch"
            if task == "graph"
            else f"{s['rate']:.1f} {r['unit']}"
        )
        mem = f"  peak {s['peak_mb']:.0f} MB (step {s['step_mb']:.0f} MB)" if "peak_mb" in s else ""
        rounds = ", ".join(f"{x:.1f}" for x in s["round_rates"])
        print(f"  {name:<11} {rate:>20}   per round [{rounds}]{mem}")
    what = "time/epoch mmssl/ref" if task == "graph" else "throughput mmssl/ref"
    print(f"  ratio ({what}): {r['ratio']:.2f}   target: {TARGETS[task]}")
    print(
        f"  step efficiency: model fwd+bwd {1000 * r['model_only_s']:.1f} ms / mmssl step "
        f"{1000 * r['mmssl']['step_s']:.1f} ms = {r['step_efficiency']:.2f}"
    )
    if args.device.type == "cpu":
        print(f"  peak RSS of the process so far: {r['peak_rss_mb']:.0f} MB (both sides)")
    if task == "text":
        print("  reference driven by the HF Trainer itself (train() with a step callback)")
    for s, e in r.get("scale", {}).items():
        print(f"  scale {s}x: epoch {e['ref_epoch_s']:.2f} s ref, {e['mmssl_epoch_s']:.2f} s mmssl")
    if "accuracy" in r:
        a = {k: (statistics.mean(v), statistics.pstdev(v)) for k, v in r["accuracy"].items()}
        print(
            f"  Cora test accuracy after 300 epochs, {len(r['accuracy']['ref'])} seed(s): "
            f"ref {a['ref'][0]:.3f} ± {a['ref'][1]:.3f}, mmssl {a['mmssl'][0]:.3f} ± "
            f"{a['mmssl'][1]:.3f}"
        )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=[*TASKS, "all"], default="all")
    p.add_argument("--steps", type=int, default=50, help="steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-root", default=os.environ.get("MMSSL_DATA", "../shared/data"))
    p.add_argument("--json", help="write the results here")
    p.add_argument("--scale", default="", help="e.g. 1,2,4: also time one epoch at each scale")
    p.add_argument("--accuracy", action="store_true", help="graph: also 300 epochs + probe each")
    p.add_argument("--accuracy-seeds", type=int, default=3, help="seeds for --accuracy")
    p.add_argument("--vision-batch", type=int, default=128)
    p.add_argument("--text-batch", type=int, default=128)
    p.add_argument("--block", type=int, default=64, help="tokens per text block")
    p.add_argument("--workers", type=int, default=2, help="lightly's DataLoader workers")
    p.add_argument("--encoder", default="resnet18")
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mmssl's TrainConfig.channels_last (default: the library's, on with CUDA only)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="mmssl's TrainConfig.compile (torch.compile; the reference stays eager, as its "
        "recipe runs)",
    )
    args = p.parse_args(argv)
    args.device, args.data_root = torch.device(args.device), Path(args.data_root).expanduser()
    args.scale = [float(s) for s in args.scale.split(",") if s]
    if any(s <= 0 for s in args.scale):
        p.error("--scale factors must be > 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    torch.manual_seed(0)
    results = {}
    for task in TASKS if args.task == "all" else [args.task]:
        results[task] = run_task(task, args)
        report(task, results[task], args)
    if args.json:
        meta = {"device": str(args.device), "precision": args.precision, "torch": torch.__version__}
        if args.device.type == "cuda":
            meta["gpu"] = torch.cuda.get_device_name(args.device)
        Path(args.json).write_text(json.dumps({"meta": meta, **results}, indent=2))
    return results


if __name__ == "__main__":
    main()
