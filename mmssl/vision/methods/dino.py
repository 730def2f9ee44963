r"""DINO: self-distillation with no labels (Caron et al. 2021, https://arxiv.org/abs/2104.14294).

A student (encoder + :class:`DINOHead`) sees every crop of an image, global and local; a
teacher, the EMA of the student, sees the global crops only. The student matches the
teacher's centred, sharpened distribution over :math:`K` outputs for every pair of different
crops (core :class:`DINOLoss`):

.. math::
    \mathcal{L} = \sum_{t \in \text{global}} \sum_{s \ne t}
    -\operatorname{softmax}\Big(\frac{g_{\xi}(x_t) - c}{\tau_t}\Big)
    \cdot \log\operatorname{softmax}\Big(\frac{g_\theta(x_s)}{\tau_s}\Big), \qquad
    c \leftarrow m_c\,c + (1 - m_c)\,\overline{g_\xi(x)}

The teacher temperature :math:`\tau_t` rises linearly from 0.04 to 0.07 over the first 30%
of training (the paper: the first 30 of 100 epochs), the teacher momentum from 0.996 to 1 on a
cosine (core :class:`MomentumSchedule`), and the head's last layer gets no gradient in the
first epoch. **Departure**: the centre starts at the first batch's teacher mean instead of
zero; the paper's thousands of warmup steps let a zero centre catch up before the student
moves, and without them a short run collapses the student to the teacher's common mode.
ResNet or ViT encoders; the teacher is a frozen copy, updated in :meth:`DINO.after_step`.
A ResNet on small images gets lightly's CIFAR-10 head and schedules instead
(:meth:`DINO.build`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.data import DataBundle
from mmssl.core.distributed import all_reduce_mean
from mmssl.core.method import Method
from mmssl.core.momentum import MomentumSchedule, ema_update, frozen_copy
from mmssl.core.objectives import DINOLoss
from mmssl.core.registry import register
from mmssl.vision.augment import MultiCropAugment
from mmssl.vision.data import small_images
from mmssl.vision.encoders import VisionTransformer, build_encoder
from mmssl.vision.methods.swav import encode_multicrop, multicrop_for
from mmssl.vision.methods.two_view import TwoView

DINO_SCALES = {"global_scale": (0.4, 1.0), "local_scale": (0.05, 0.4)}  # the paper's crops
# What DINO.build leaves to the data and encoder: the paper's head and schedules ...
DEFAULT_HEAD = {"head_layers": 3, "out_dim": 4096, "teacher_temp": 0.07, "base_momentum": 0.996}
# ... and lightly's CIFAR-10 benchmark settings, for ResNets on images of at most 64 pixels.
SMALL_RESNET = {"head_layers": 2, "out_dim": 2048, "teacher_temp": 0.04, "base_momentum": 0.99}


class DINOHead(nn.Module):
    """DINO's projection head ``(B, D) -> (B, K)``: an MLP (GELU) to a ``bottleneck``, L2
    normalisation, then a weight-normalised linear layer to ``out_dim`` with unit norms."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        hidden: int = 2048,
        bottleneck: int = 256,
        layers: int = 3,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (layers - 1)
        mods: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            norm = [nn.BatchNorm1d(d_out)] if batch_norm else []
            mods += [nn.Linear(d_in, d_out), *norm, nn.GELU()]
        self.mlp = nn.Sequential(*mods, nn.Linear(dims[-1], bottleneck))
        self.last = nn.Linear(bottleneck, out_dim, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, h: Tensor, freeze_last: bool = False) -> Tensor:
        z = F.normalize(self.mlp(h), dim=1)  # (B, bottleneck)
        w = self.last.weight.detach() if freeze_last else self.last.weight
        return z @ F.normalize(w, dim=1).T  # (B, K), weight norm with g = 1


@register("dino")
class DINO(Method):
    r"""DINO with multi-crop, a centred and sharpened EMA teacher.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``.
        head: default :class:`DINOHead` ``(D, out_dim)``.
        augment: uint8 batch -> crops, global first; default :class:`MultiCropAugment`.
        out_dim: :math:`K` (paper: 65536). teacher_temp: final :math:`\tau_t` (0.07).
        warmup_teacher_temp: initial :math:`\tau_t` (0.04). warmup_fraction: share of the run
            over which :math:`\tau_t` rises (0.3). student_temp: :math:`\tau_s` (0.1).
        center_momentum: :math:`m_c` (0.9). base_momentum: teacher EMA at step 0 (0.996).
        freeze_last_layer_steps: steps with no gradient to the head's last layer (an epoch).
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/no-negatives"
    modality: ClassVar[str] = "vision"
    # Paper: AdamW lr 5e-4 * batch / 256, 100-800 epochs. Cut to a CPU budget as TwoView.
    defaults: ClassVar[dict[str, Any]] = dict(TwoView.defaults)
    steps_done: Tensor
    total_steps: Tensor
    center_ready: Tensor

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module | None = None,
        augment: MultiCropAugment | None = None,
        *,
        out_dim: int = 65536,
        teacher_temp: float = 0.07,
        warmup_teacher_temp: float = 0.04,
        warmup_fraction: float = 0.3,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
        base_momentum: float = 0.996,
        freeze_last_layer_steps: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 <= warmup_fraction <= 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1], got {warmup_fraction}")
        self.encoder = encoder
        self.head = head if head is not None else DINOHead(encoder.out_dim, out_dim)
        self.teacher_encoder, self.teacher_head = frozen_copy(encoder), frozen_copy(self.head)
        self.views = augment if augment is not None else MultiCropAugment(**DINO_SCALES)  # type: ignore[arg-type]
        self.normalize = self.views.normalize
        self.loss = DINOLoss(out_dim, warmup_teacher_temp, student_temp, center_momentum)
        self.momentum = MomentumSchedule(base_momentum, 1.0)
        self.temps = (warmup_teacher_temp, teacher_temp, warmup_fraction)
        self.freeze_last_layer_steps = freeze_last_layer_steps
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("total_steps", torch.ones((), dtype=torch.long))
        self.register_buffer("center_ready", torch.zeros((), dtype=torch.bool))

    def teacher_temperature(self) -> float:
        """:math:`\\tau_t` now: linear warmup over ``warmup_fraction`` of the run, then flat."""
        start, end, fraction = self.temps
        warm = fraction * int(self.total_steps)
        progress = 1.0 if warm <= 0 else min(1.0, int(self.steps_done) / warm)
        return start + (end - start) * progress

    def augment(self, images: Tensor) -> list[Tensor]:
        return self.views(images)

    def forward(self, crops: list[Tensor]) -> dict[str, Tensor]:
        n_global = self.views.n_global
        freeze = int(self.steps_done) < self.freeze_last_layer_steps
        feats = encode_multicrop(self.encoder, crops)  # [(B, D)] per crop
        student = self.head(torch.cat(feats), freeze_last=freeze).chunk(len(crops))
        with torch.no_grad():
            t_feats = encode_multicrop(self.teacher_encoder, crops[:n_global])
            teacher = self.teacher_head(torch.cat(t_feats)).chunk(n_global)
        if self.training and not bool(self.center_ready):  # centre the first batch too
            self.loss.center.copy_(
                all_reduce_mean(torch.cat(teacher).float().mean(0, keepdim=True))
            )
            self.center_ready.fill_(True)
        tau_t = self.teacher_temperature()
        loss = self.loss(list(student), list(teacher), teacher_temp=tau_t)
        return {"loss": loss, "teacher_temp": torch.tensor(tau_t)}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Teacher EMA with this step's momentum; count steps for the schedules."""
        m = self.momentum(step, total_steps)
        ema_update(self.teacher_encoder, self.encoder, m)
        ema_update(self.teacher_head, self.head, m)
        self.steps_done.fill_(step)
        self.total_steps.fill_(total_steps)

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """uint8 or [0, 1] float ``(B, C, H, W)`` -> the student encoder's features ``(B, D)``
        (what ``encoder.safetensors`` holds; the paper evaluates the teacher, which lags the
        student by the EMA and is only better after long runs)."""
        return self.encoder(self.normalize(images))

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        out_dim: int | None = None,
        teacher_temp: float | None = None,
        warmup_teacher_temp: float = 0.04,
        base_momentum: float | None = None,
        head_batch_norm: bool | None = None,
        head_layers: int | None = None,
        seed: int | None = None,
        **augment: Any,
    ) -> DINO:
        """DINO for ``data``: the ``encoder`` named (ResNet or ``vit_tiny``/``vit_small``),
        multi-crop sized by ``data.info`` (``augment`` overrides :class:`MultiCropAugment`).

        ``head_batch_norm`` (default: on for ResNets, off for ViTs, as in lightly's ResNet
        benchmarks and the paper's ViTs) puts batch norm in the head's hidden layers. The
        other settings left unset follow :data:`SMALL_RESNET` (lightly's CIFAR-10 DINO: a
        2-layer head to 2048 outputs, teacher temperature 0.04 throughout, teacher momentum
        from 0.99) for a ResNet on images of at most 64 pixels, else :data:`DEFAULT_HEAD`
        (the paper's 3-layer head and schedules, with solo-learn's 4096 outputs for
        CIFAR-sized ViTs; the paper's 65536 are for ImageNet). On the 10,000-image CIFAR-10
        subset, 16 epochs, the small ResNet gained 3.2 kNN points over random init with the
        paper's head, 7.7 with batch norm in it, 10.2 with lightly's CIFAR settings, and
        11.0 with those and ``n_local=0`` (lightly's two crops; half the time)."""
        info = data.info
        enc = build_encoder(encoder, info.get("in_channels", 3), info.get("image_size", 32))
        vit = isinstance(enc, VisionTransformer)
        if head_batch_norm is None:
            head_batch_norm = not vit
        given = {
            "out_dim": out_dim,
            "teacher_temp": teacher_temp,
            "base_momentum": base_momentum,
            "head_layers": head_layers,
        }
        recipe = {**(SMALL_RESNET if small_images(info) and not vit else DEFAULT_HEAD)}
        recipe.update({k: v for k, v in given.items() if v is not None})
        head = DINOHead(
            enc.out_dim, recipe["out_dim"], layers=recipe["head_layers"], batch_norm=head_batch_norm
        )
        return cls(
            enc,
            head=head,
            augment=multicrop_for(data, seed, **{**DINO_SCALES, **augment}),
            out_dim=recipe["out_dim"],
            teacher_temp=recipe["teacher_temp"],
            warmup_teacher_temp=min(warmup_teacher_temp, recipe["teacher_temp"]),
            base_momentum=recipe["base_momentum"],
            freeze_last_layer_steps=len(data.train),  # type: ignore[arg-type]
        )
