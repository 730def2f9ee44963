"""The training loop's mechanics on a tiny regression method (the loop knows no real method)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from mmssl.core.data import DataError
from mmssl.core.distributed import SyncBatchNorm, convert_sync_batchnorm
from mmssl.core.method import Method, SeededGenerators
from mmssl.core.trainer import (
    LARS,
    TrainConfig,
    Trainer,
    TrainingError,
    atomic_save,
    is_out_of_memory,
    peak_memory_mb,
    reset_peak_memory,
    warmup_cosine,
)


class Regress(Method):
    family = "generative"
    kind = "auto-encoding"

    def __init__(
        self, bad_at: int | None = None, crash_at: int | None = None, seeded: bool = False
    ) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 1)
        self.noise = torch.Generator().manual_seed(0)
        # lazily made per-device generators (what most methods hold) instead of a plain one
        self.generators = SeededGenerators(0) if seeded else None
        self.calls = 0
        self.bad_at = bad_at
        self.crash_at = crash_at

    def augment(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        x, y = batch
        gen = self.generators(x.device) if self.generators is not None else self.noise
        return x + 0.01 * torch.randn(x.shape, generator=gen), y

    def forward(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        self.calls += 1
        if self.crash_at is not None and self.calls >= self.crash_at:
            raise RuntimeError("simulated crash")
        x, y = batch
        loss = (self.encoder(x).squeeze(1) - y).pow(2).mean()
        if self.bad_at is not None and self.calls >= self.bad_at:
            loss = loss * float("nan")
        return {"loss": loss, "mae": (self.encoder(x).squeeze(1) - y).abs().mean()}


def batches(n: int = 8, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([1.0, -2.0, 0.5, 3.0])
    out = []
    for _ in range(n):
        x = torch.randn(16, 4, generator=g)
        out.append((x, x @ w))
    return out


def make(cfg: TrainConfig, out=None, **kw) -> Trainer:
    torch.manual_seed(0)
    return Trainer(Regress(**kw), batches(), cfg, out_dir=out)


def test_loss_goes_down_and_metrics_are_logged(tmp_path):
    t = make(
        TrainConfig(epochs=20, lr=0.05, optimizer="adam", log_every=4, progress=False), tmp_path
    )
    summary = t.fit()
    lines = [l for l in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    first, last = (
        eval(lines[0].replace("null", "None"))["loss"],
        eval(lines[-1].replace("null", "None"))["loss"],
    )
    assert last < 0.1 * first
    assert summary["steps"] == 160 and summary["epochs"] == 20
    assert (tmp_path / "checkpoints" / "latest.pt").exists()


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd", "lars"])
def test_every_optimizer_trains(optimizer):
    lr = {"lars": 0.9, "sgd": 0.02}.get(optimizer, 0.05)
    t = make(TrainConfig(epochs=15, lr=lr, optimizer=optimizer, progress=False))
    before = sum(float(t.method(b)["loss"].detach()) for b in batches())
    t.fit()
    after = sum(float(t.method(b)["loss"].detach()) for b in batches())
    # LARS moves each weight by about eta * |w| per step: slow on purpose, so a weaker bar
    assert after < (0.95 if optimizer == "lars" else 0.5) * before


@pytest.mark.parametrize("seeded", [False, True])
def test_resume_matches_uninterrupted_run(tmp_path, seeded):
    cfg = TrainConfig(
        epochs=6,
        lr=0.05,
        optimizer="adamw",
        checkpoint_every=5,
        keep_checkpoints=10,
        progress=False,
    )
    full = make(cfg, tmp_path / "full", seeded=seeded)
    full.fit()
    # a run that crashes in step 22 (mid-epoch), resumed from its step-20 checkpoint
    part = make(cfg, tmp_path / "part", crash_at=22, seeded=seeded)
    with pytest.raises(RuntimeError, match="simulated crash"):
        part.fit()
    resumed = make(cfg, tmp_path / "part", seeded=seeded)
    assert resumed.load_checkpoint(tmp_path / "part" / "checkpoints" / "step_00000020.pt")
    assert resumed.step == 20
    resumed.fit()
    for a, b in zip(full.method.parameters(), resumed.method.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_nan_loss_names_step_and_checkpoint(tmp_path):
    t = make(TrainConfig(epochs=5, checkpoint_every=4, progress=False), tmp_path, bad_at=11)
    with pytest.raises(
        TrainingError, match=r"at step 10 .*step_00000008\.pt|at step 10 .*latest\.pt"
    ):
        t.fit()


class PoisonAfter(Regress):
    """Finite losses, but after ``at`` steps one weight turns NaN (an overflowing update)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def after_step(self, step: int, total_steps: int) -> None:
        if step == self.at:
            with torch.no_grad():
                self.encoder.weight[0, 0] = float("nan")


def test_broken_weights_never_overwrite_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=5, checkpoint_every=4, progress=False)
    t = Trainer(PoisonAfter(at=8), batches(), cfg, out_dir=tmp_path)
    with pytest.raises(TrainingError, match=r"not finite at step 8 .*latest\.pt"):
        t.fit()
    state = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=False)
    assert state["step"] == 4 and torch.isfinite(state["method"]["encoder.weight"]).all()
    assert not (tmp_path / "checkpoints" / "step_00000008.pt").exists()


def test_warmup_then_cosine():
    f = warmup_cosine(10, 110)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0, abs=1e-9)
    assert warmup_cosine(0, 10, "constant")(7) == 1.0


def test_lars_scales_update_by_trust_ratio():
    w = nn.Parameter(torch.full((3,), 2.0))
    opt = LARS([w], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.1)
    w.grad = torch.full((3,), 4.0)
    opt.step()
    # update = lr * eta * |w| / |g| * g = 0.1 * 0.5 * 4 = 0.2
    torch.testing.assert_close(w.data, torch.full((3,), 1.8))


def test_early_stopping_restores_best():
    t = make(TrainConfig(epochs=200, lr=0.05, optimizer="adam", patience=3, progress=False))
    s = t.fit()
    assert s["stopped_early"] and s["epochs"] < 200


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        Trainer(Regress(), batches(), TrainConfig(precision="fp16", device="cpu"))
    with pytest.raises(ValueError, match="lr must be > 0"):
        TrainConfig(lr=0.0)


def test_bf16_autocast_on_cpu_trains():
    t = make(TrainConfig(epochs=3, lr=0.05, optimizer="adam", precision="bf16", progress=False))
    s = t.fit()
    assert math.isfinite(s["train_seconds"])


def infinite_from_step_6(t: Trainer) -> Trainer:
    """``t``'s method returns an infinite loss from its 7th call (step 6) on."""
    forward = t.method.forward

    def blow_up(batch):
        out = forward(batch)
        return {**out, "loss": out["loss"] * math.inf} if t.method.calls >= 7 else out

    t.method.forward = blow_up
    return t


def test_infinite_loss_stops_naming_step_and_checkpoint(tmp_path):
    t = infinite_from_step_6(
        make(TrainConfig(epochs=5, checkpoint_every=4, progress=False), tmp_path)
    )
    with pytest.raises(TrainingError, match=r"loss is inf at step 6 \(last good checkpoint: .*"):
        t.fit()
    assert torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=False)["step"] == 4


def test_lazy_loss_check_names_the_first_bad_step_and_keeps_the_good_checkpoint(tmp_path):
    """As on CUDA: losses are read only at logs, checkpoints and epoch ends, so training runs
    on past a bad step, but the error names that step and no later checkpoint is written."""
    cfg = TrainConfig(epochs=5, checkpoint_every=4, log_every=100, progress=False)
    t = infinite_from_step_6(make(cfg, tmp_path))
    t.lazy_loss_check = True
    with pytest.raises(TrainingError, match=r"loss is inf at step 6 \(last good checkpoint: .*"):
        t.fit()
    assert t.step == 8  # ran on to the next checkpoint, which found the bad loss
    assert torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=False)["step"] == 4
    assert not (tmp_path / "checkpoints" / "step_00000008.pt").exists()


def test_lazy_loss_check_trains_like_the_eager_one(tmp_path):
    cfg = TrainConfig(epochs=3, lr=0.05, optimizer="adam", progress=False)
    eager, lazy = make(cfg, tmp_path / "a"), make(cfg, tmp_path / "b")
    lazy.lazy_loss_check = True
    a, b = eager.fit(), lazy.fit()
    assert a["steps"] == b["steps"]
    for p, q in zip(eager.method.parameters(), lazy.method.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_checkpoint_is_never_half_written(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "latest.pt"
    atomic_save({"step": 1}, path)

    def dies_mid_write(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(OSError, match="No space left"):
        atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path)["step"] == 1  # the old checkpoint, whole
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]  # no temporary left behind


def test_checkpoints_by_the_clock_survive_a_crash(tmp_path, monkeypatch):
    """With no step cadence, a run still checkpoints every ``checkpoint_minutes``: a crash (here
    a raised error, as a stand-in for SIGKILL) leaves the last timed checkpoint behind."""
    clock = {"now": 0.0}
    monkeypatch.setattr("mmssl.core.trainer.time.monotonic", lambda: clock["now"])

    def tick(self, batch, _forward=Regress.forward):
        clock["now"] += 70.0  # each step "takes" 70 s: a 2-minute cadence saves every 2nd step
        return _forward(self, batch)

    monkeypatch.setattr(Regress, "forward", tick)
    cfg = TrainConfig(epochs=3, progress=False, checkpoint_minutes=2.0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        make(cfg, tmp_path / "timed", crash_at=12).fit()
    assert (
        torch.load(tmp_path / "timed" / "checkpoints" / "latest.pt", weights_only=False)["step"]
        == 10
    )
    off = TrainConfig(epochs=3, progress=False, checkpoint_minutes=None)
    with pytest.raises(RuntimeError, match="simulated crash"):
        make(off, tmp_path / "off", crash_at=12).fit()
    assert not (tmp_path / "off" / "checkpoints").exists()
    with pytest.raises(ValueError, match="checkpoint_minutes must be >= 0"):
        TrainConfig(checkpoint_minutes=-1.0)


def test_unreadable_checkpoint_is_one_line_naming_it(tmp_path):
    t = make(TrainConfig(epochs=1, progress=False), tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.pt").write_bytes(b"truncated by a dying disk")
    with pytest.raises(DataError, match=r"latest\.pt is unreadable .*delete it") as err:
        t.load_checkpoint()
    assert "\n" not in str(err.value)


def test_no_batch_at_all_is_a_data_error():
    with pytest.raises(DataError, match="yields no batch.*lower --batch-size"):
        Trainer(Regress(), [], TrainConfig(progress=False))


@pytest.mark.parametrize(
    "err,oom",
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), True),
        (RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: 8 GB"), True),
        (RuntimeError("shapes cannot be multiplied"), False),
    ],
)
def test_out_of_memory_names_the_batch_size_to_try(err, oom):
    assert is_out_of_memory(err) is oom
    data = torch.utils.data.DataLoader(torch.randn(64, 4), batch_size=16, drop_last=True)

    class Boom(Regress):
        def forward(self, batch):
            raise err

        def augment(self, batch):
            return batch

    t = Trainer(Boom(), data, TrainConfig(epochs=1, progress=False))
    if oom:
        with pytest.raises(TrainingError, match=r"at step 0 .* rerun with --batch-size 8 "):
            t.fit()
    else:
        with pytest.raises(RuntimeError, match="shapes"):
            t.fit()


def test_sync_bn_is_an_option_and_a_no_op_in_one_process():
    cfg = TrainConfig(sync_bn=True, epochs=1, progress=False)
    t = Trainer(Regress(), batches(), cfg)
    assert t.fit()["steps"] == 8  # one process: nothing to synchronise, nothing converted
    bn = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    synced = convert_sync_batchnorm(bn)
    assert isinstance(synced[1], SyncBatchNorm) and synced[1].weight is bn[1].weight
    x = torch.randn(8, 3)
    torch.testing.assert_close(synced[1](x), nn.functional.batch_norm(x, None, None, training=True))


def test_peak_memory_is_per_run_after_a_reset():
    import os

    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("resetting the resident high-water mark needs Linux's /proc/self/clear_refs")
    cpu = torch.device("cpu")
    big = torch.ones(300 * 2**20 // 4)  # 300 MB, touched
    high = peak_memory_mb(cpu)
    del big
    reset_peak_memory(cpu)
    assert peak_memory_mb(cpu) < high - 200  # a later run no longer reports this one's peak


class ConvRegress(Method):
    family = "generative"
    kind = "auto-encoding"

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten())

    def forward(self, batch: Tensor) -> Tensor:
        return self.encoder(batch).square().mean()


def test_channels_last_trains_equally_and_exports_plain_weights(tmp_path):
    from safetensors.torch import load_file

    from mmssl.pretrain import save_encoder

    data = [torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    runs = {}
    for nhwc in (False, True):
        torch.manual_seed(0)
        method = ConvRegress()
        cfg = TrainConfig(epochs=1, progress=False, channels_last=nhwc, optimizer="sgd", lr=0.1)
        Trainer(method, data, cfg).fit()
        conv = method.encoder[0].weight
        assert conv.is_contiguous(memory_format=torch.channels_last) == nhwc
        assert conv.is_contiguous() != nhwc  # 3 input channels: the two layouts differ
        save_encoder(method, tmp_path, data=None)
        runs[nhwc] = load_file(tmp_path / "encoder.safetensors")
        assert method.encoder[0].weight.is_contiguous(memory_format=torch.channels_last) == nhwc
    for k, v in runs[False].items():
        torch.testing.assert_close(runs[True][k], v, atol=1e-5, rtol=1e-5)
    assert TrainConfig().channels_last is None  # auto: on with CUDA only
