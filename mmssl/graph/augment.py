"""Batched, on-device graph augmentations and corruptions.

Each function takes a PyG ``Data``/``Batch`` already on its device and returns a new one that
shares every untouched tensor with the input (a shallow copy; the input is never modified).
Randomness comes from the ``generator`` argument: with the same seeded generator the same
call gives the same view. A generator on another device than the data (a CPU generator for
CUDA data) is fine: the random numbers are drawn on the generator's device and moved.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["GraphViews", "SeededGenerators", "drop_edges", "mask_features", "shuffle_features"]


class SeededGenerators:
    """One ``torch.Generator`` per device, each seeded with ``seed``, created on first use."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._gens: dict[str, torch.Generator] = {}

    def __call__(self, device: torch.device | str) -> torch.Generator:
        key = str(torch.device(device))
        if key not in self._gens:
            self._gens[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._gens[key]


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    if generator is None:
        return torch.rand(n, device=device)
    return torch.rand(n, generator=generator, device=generator.device).to(device)  # (n,)


def _check_p(p: float, what: str) -> None:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{what} probability must be in [0, 1), got {p}")


def shuffle_features(data: Any, generator: torch.Generator | None = None) -> Any:
    """DGI's corruption (https://arxiv.org/abs/1809.10341): permute the rows of ``x``.

    The graph is kept, so node :math:`i` gets the features of another node; ``x`` ``(N, F)``.
    """
    n = data.x.shape[0]
    device = data.x.device
    if generator is None:
        perm = torch.randperm(n, device=device)
    else:
        perm = torch.randperm(n, generator=generator, device=generator.device).to(device)  # (N,)
    out = copy.copy(data)
    out.x = data.x[perm]  # (N, F)
    return out


def drop_edges(data: Any, p: float, generator: torch.Generator | None = None) -> Any:
    """Remove each (directed) edge independently with probability ``p`` (GRACE's edge removal).

    Edge-level tensors (``edge_attr``, ``edge_weight``) are cut with the same mask.
    """
    _check_p(p, "edge drop")
    e = data.edge_index.shape[1]
    keep = _rand(e, generator, data.edge_index.device) >= p  # (E,)
    out = copy.copy(data)
    out.edge_index = data.edge_index[:, keep]  # (2, E')
    for key in ("edge_attr", "edge_weight"):
        value = getattr(data, key, None)
        if isinstance(value, Tensor) and value.shape[0] == e:
            setattr(out, key, value[keep])
    return out


def mask_features(
    data: Any, p: float, generator: torch.Generator | None = None, *, per_node: bool = False
) -> Any:
    """Zero feature dimensions with probability ``p`` (GRACE's feature masking).

    By default one mask over the ``F`` columns is shared by all nodes, as in GRACE
    (https://arxiv.org/abs/2006.04131); ``per_node=True`` draws an ``(N, F)`` mask instead.
    """
    _check_p(p, "feature mask")
    n, f = data.x.shape
    if per_node:
        keep = (_rand(n * f, generator, data.x.device) >= p).view(n, f)  # (N, F)
    else:
        keep = (_rand(f, generator, data.x.device) >= p).view(1, f)  # (1, F)
    out = copy.copy(data)
    out.x = data.x * keep.to(data.x.dtype)  # (N, F)
    return out


class GraphViews:
    """Two augmented views of a graph batch: edge dropping then feature masking, per view.

    Defaults are GRACE's Cora setting (https://arxiv.org/abs/2006.04131): edges dropped with
    probability 0.2 / 0.4 and feature columns masked with 0.3 / 0.4 in view 1 / view 2.

    Args:
        drop_edge: the edge-drop probability of each view.
        mask_feature: the feature-mask probability of each view.
        seed: seeds the generator (one per device), so views are reproducible.
    """

    def __init__(
        self,
        drop_edge: Sequence[float] = (0.2, 0.4),
        mask_feature: Sequence[float] = (0.3, 0.4),
        *,
        seed: int = 0,
    ) -> None:
        if len(drop_edge) != 2 or len(mask_feature) != 2:
            raise ValueError(
                "drop_edge and mask_feature take one probability per view, e.g. (0.2, 0.4)"
            )
        for p in (*drop_edge, *mask_feature):
            _check_p(p, "augmentation")
        self.drop_edge, self.mask_feature = tuple(drop_edge), tuple(mask_feature)
        self.generators = SeededGenerators(seed)

    def __call__(self, data: Any) -> tuple[Any, Any]:
        g = self.generators(data.x.device)
        return tuple(  # type: ignore[return-value]
            mask_features(drop_edges(data, pe, g), pf, g)
            for pe, pf in zip(self.drop_edge, self.mask_feature, strict=True)
        )

    def __repr__(self) -> str:
        return f"GraphViews(drop_edge={self.drop_edge}, mask_feature={self.mask_feature})"
