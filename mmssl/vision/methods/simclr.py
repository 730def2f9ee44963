r"""SimCLR (Chen et al. 2020, https://arxiv.org/abs/2002.05709).

Two random views of each image, a shared encoder :math:`f`, a projection MLP :math:`g`, and
NT-Xent over the :math:`2B` projections :math:`z = g(f(x))`: each view must pick out the other
view of its own image among the batch. Probes use :math:`h = f(x)`, before the projector.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

from torch import nn

from mmssl.core.data import DataBundle
from mmssl.core.objectives import nt_xent
from mmssl.core.registry import register
from mmssl.vision.augment import SimCLRAugment
from mmssl.vision.encoders import build_encoder
from mmssl.vision.methods.two_view import TwoView, augment_for


def projection_head(dim: int, hidden: int, out: int) -> nn.Sequential:
    r"""SimCLR v1's projector :math:`g(h) = W_2\,\mathrm{ReLU}(W_1 h)`: ``(B, dim) -> (B, out)``."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


@register("simclr")
class SimCLR(TwoView):
    r"""SimCLR: :class:`TwoView` with NT-Xent at temperature ``temperature`` and SimCLR's head.

    Args:
        encoder: float normalised images ``(B, C, H, W)`` -> ``(B, D)``, with ``out_dim``.
        projector: default :func:`projection_head` ``D -> D -> proj_dim``.
        augment: uint8 batch -> two views; default :class:`SimCLRAugment` (CIFAR recipe).
        temperature: :math:`\tau` of NT-Xent (0.5 is the paper's CIFAR-10 value).
        proj_dim: output size of the default projector (128 in the paper).
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/discrimination"
    # defaults: inherited from TwoView (SimCLR's recipe cut to a CPU budget; see there)

    def __init__(
        self,
        encoder: nn.Module,
        projector: nn.Module | None = None,
        augment: SimCLRAugment | None = None,
        *,
        temperature: float = 0.5,
        proj_dim: int = 128,
    ) -> None:
        if not temperature > 0:
            raise ValueError(
                f"temperature must be > 0, got {temperature}; SimCLR uses 0.5 on CIFAR"
            )
        dim = encoder.out_dim
        projector = projector if projector is not None else projection_head(dim, dim, proj_dim)
        objective = partial(nt_xent, temperature=temperature, gather=True)
        super().__init__(encoder, objective, augment, projector, proj_dim=proj_dim)
        self.temperature = temperature

    @classmethod
    def build(
        cls,
        data: DataBundle,
        *,
        encoder: str = "small",
        temperature: float = 0.5,
        proj_dim: int = 128,
        seed: int | None = None,
        **augment: Any,
    ) -> SimCLR:
        """SimCLR for ``data``: the ``encoder`` named (``small``, ``resnet18``, ``resnet50``),
        SimCLR views sized by ``data.info``; ``augment`` overrides :class:`SimCLRAugment`."""
        enc = build_encoder(encoder, data.info.get("in_channels", 3))
        return cls(
            enc,
            augment=augment_for(data, seed, **augment),
            temperature=temperature,
            proj_dim=proj_dim,
        )
