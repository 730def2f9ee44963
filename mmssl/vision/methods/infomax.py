r"""The parts Deep InfoMax and AMDIM share: local feature maps taken from an encoder's stages,
the critics' 1x1-conv embedding, and the score matrix of every global against every local
feature of a batch (Hjelm et al. 2019, https://arxiv.org/abs/1808.06670; Bachman et al. 2019,
https://arxiv.org/abs/1906.00910).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmssl.core.objectives import DotDiscriminator
from mmssl.vision.encoders import ResNetCIFAR

__all__ = ["EmbeddingHead", "encode_with_maps", "local_global_scores", "stage_outputs"]

SHORTCUT_INIT = 0.01  # the reference code's shortcut: identity plus U(-0.01, 0.01) noise


def stage_outputs(encoder: nn.Module, image_shape: Sequence[int]) -> list[tuple[str, tuple]]:
    """The encoder's stage outputs, finest first: ``[(module name, (C, H, W)), ...]``.

    A stage output is the last module at each spatial resolution, found by one dry run on
    zeros of ``image_shape`` ``(C, H, W)``. Works for an encoder with an ``nn.Sequential``
    named ``features`` (:class:`~mmssl.vision.encoders.SmallResNet`) and the CIFAR ResNets.
    """
    if isinstance(getattr(encoder, "features", None), nn.Sequential):
        names = [f"features.{n}" for n, _ in encoder.features.named_children()]
    elif isinstance(encoder, ResNetCIFAR):
        names = [f"net.layer{i}" for i in range(1, 5)]
    else:
        raise ValueError(
            f"{type(encoder).__name__} has no convolutional stages to take local feature maps "
            "from; use the small or resnet encoders"
        )
    param = next(encoder.parameters())
    x = torch.zeros(2, *image_shape, device=param.device, dtype=param.dtype)
    was_training = encoder.training
    encoder.eval()  # the dry run must not touch batch-norm statistics
    with torch.no_grad():
        _, maps = encode_with_maps(encoder, x, names)
    encoder.train(was_training)
    shapes = [(n, tuple(m.shape[1:])) for n, m in zip(names, maps, strict=True) if m.ndim == 4]
    last = len(shapes) - 1
    return [s for i, s in enumerate(shapes) if i == last or shapes[i + 1][1][1:] != s[1][1:]]


def encode_with_maps(
    encoder: nn.Module, x: Tensor, layers: Sequence[str]
) -> tuple[Tensor, list[Tensor]]:
    """``encoder(x)`` ``(B, D)`` and the outputs of its submodules named ``layers``, in order.

    Forward hooks live only for this call, so no state is kept between calls.
    """
    modules = dict(encoder.named_modules())
    found: dict[str, Tensor] = {}
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: found.update({name: out})
        )
        for name in layers
    ]
    try:
        y = encoder(x)
    finally:
        for h in handles:
            h.remove()
    return y, [found[name] for name in layers]


class EmbeddingHead(nn.Module):
    r"""The critics' embedding :math:`\psi(c) = W_s c + W_2\,\mathrm{ReLU}(\mathrm{BN}(W_1 c))`,
    a 1x1-conv network applied at every position (DIM's ``MI1x1ConvNet``, AMDIM's fake-RKHS
    embedding).

    ``(B, C, H, W) -> (B, out_dim, H, W)``, or ``(B, C) -> (B, out_dim)`` for global vectors.
    The shortcut :math:`W_s` starts near the identity.

    Args:
        in_dim: input channels. out_dim: embedding size.
        layer_norm: LayerNorm over channels at the end (DIM: on; AMDIM: off).
    """

    def __init__(self, in_dim: int, out_dim: int, *, layer_norm: bool = True) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_dim, out_dim, 1, bias=False),
            nn.BatchNorm2d(out_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_dim, out_dim, 1),
        )
        self.shortcut = nn.Conv2d(in_dim, out_dim, 1, bias=False)
        self.norm = nn.LayerNorm(out_dim) if layer_norm else nn.Identity()
        with torch.no_grad():
            w = self.shortcut.weight  # (out_dim, in_dim, 1, 1)
            w.uniform_(-SHORTCUT_INIT, SHORTCUT_INIT)
            idx = torch.arange(min(in_dim, out_dim))
            w[idx, idx] = 1.0

    def forward(self, x: Tensor) -> Tensor:
        flat = x.ndim == 2
        if flat:
            x = x[:, :, None, None]  # (B, C, 1, 1)
        h = self.block(x) + self.shortcut(x)  # (B, E, H, W)
        h = self.norm(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # normalised over E
        return h.flatten(1) if flat else h


def local_global_scores(
    g: Tensor, local: Tensor, temperature: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Score every global vector against every local position of every image.

    Args:
        g: ``(B, E)`` global embeddings. local: ``(B, E, H, W)`` local embeddings.
        temperature: scores are dot products divided by it (float32, core :class:`DotDiscriminator`).

    Returns:
        ``scores`` ``(B, B * H * W)`` (column ``j * H * W + p``: image ``j``, position ``p``) and
        ``pos_mask`` ``(B, B * H * W)``, True where the local features are of the same image.
    """
    b, e, h, w = local.shape
    flat = local.flatten(2).transpose(1, 2).reshape(b * h * w, e)  # (B * H * W, E)
    scores = DotDiscriminator(temperature)(g, flat)  # (B, B * H * W)
    pos = torch.eye(b, dtype=torch.bool, device=g.device).repeat_interleave(h * w, dim=1)
    return scores, pos
