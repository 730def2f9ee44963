r"""Graph auto-encoders, GAE and VGAE (Kipf & Welling 2016, https://arxiv.org/abs/1611.07308).

A GCN encoder maps the graph to node latents :math:`Z` ``(N, D)``; the inner-product decoder
:math:`p(A_{uv} = 1 \mid z_u, z_v) = \sigma(z_u^\top z_v)` reconstructs the edges. The
reconstruction log-likelihood is estimated on the graph's (training) edges :math:`E` and as many
sampled non-edges :math:`E^-` (negative sampling, as PyG's recipe; the paper weights the dense
adjacency instead):

.. math::
    \log p(A \mid Z) \approx \frac{1}{|E|}\sum_{(u,v) \in E} \log\sigma(z_u^\top z_v)
    + \frac{1}{|E^-|}\sum_{(u,v) \in E^-} \log\big(1 - \sigma(z_u^\top z_v)\big).

GAE minimises :math:`-\log p(A \mid Z)` with :math:`Z = \mathrm{GCN}(X, A)`. VGAE has the
posterior :math:`q(z_i \mid X, A) = \mathcal{N}(\mu_i, \operatorname{diag}\sigma_i^2)`, with
:math:`\mu` and :math:`\log\sigma^2` two GCN heads on one shared layer, and minimises the
negative ELBO with the paper's KL weight :math:`1/N`:

.. math::
    \mathcal{L} = -\log p(A \mid Z) + \frac{1}{N}\cdot\frac{1}{N}\sum_{i}
    \mathrm{KL}\big(q(z_i \mid X, A)\,\|\,\mathcal{N}(0, I)\big), \qquad Z \sim q.

Both embed nodes by :math:`\mu` (GAE: :math:`Z`). For the paper's link prediction, load the
graph with ``task="link"`` (``--data-opt task=link``): training then sees only the training edges
and the probe scores held-out edges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.nn import GCNConv
from torch_geometric.utils import add_self_loops, negative_sampling

from mmssl.core.data import DataBundle, DataError
from mmssl.core.method import Method
from mmssl.core.objectives import bernoulli_log_likelihood, gaussian_elbo_terms, reparameterize
from mmssl.core.registry import register
from mmssl.graph.augment import SeededGenerators
from mmssl.graph.encoders import GCN

__all__ = ["GAE", "VGAE", "GCNEncoder", "inner_product"]


def inner_product(z: Tensor, edge_index: Tensor) -> Tensor:
    """The inner-product decoder's logits :math:`z_u^\\top z_v`: pairs ``(2, E)`` -> ``(E,)``."""
    return (z[edge_index[0]] * z[edge_index[1]]).sum(dim=-1)


class GCNEncoder(nn.Module):
    """The paper's encoder: a ReLU GCN layer, then linear GCN head(s) on the same (cached)
    normalised adjacency. ``data`` -> ``z`` ``(N, out_dim)``, or with ``variational=True``
    ``(mu, logvar)``, each ``(N, out_dim)``, ``logvar`` :math:`= \\log\\sigma^2`."""

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 32,
        out_dim: int = 16,
        *,
        variational: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.hidden = GCN(in_dim, hidden_dim, 1, "relu", dropout)
        self.dropout = nn.Dropout(dropout)
        self.mu = GCNConv(hidden_dim, out_dim, normalize=False)
        self.logvar = GCNConv(hidden_dim, out_dim, normalize=False) if variational else None
        self.out_dim = out_dim

    def forward(self, data: Any) -> Tensor | tuple[Tensor, Tensor]:
        h = self.dropout(self.hidden(data))  # (N, hidden_dim)
        ei, ew = self.hidden.normalized_adjacency(data.edge_index, h.shape[0])
        mu = self.mu(h, ei, ew)  # (N, out_dim)
        return mu if self.logvar is None else (mu, self.logvar(h, ei, ew))


@register("gae")
class GAE(Method):
    """Graph auto-encoder.

    Args:
        encoder: PyG ``Data`` -> ``z`` ``(N, D)``.
        decoder: ``(z (N, D), pairs (2, E)) -> logits (E,)``; default the inner product.
        negative_sampler: ``(edge_index, num_nodes, num) -> (2, num)`` non-edges; PyG's
            ``negative_sampling`` draws from Python's ``random``, which the trainer seeds.
        num_negatives: sampled non-edges per edge.
    """

    family: ClassVar[str] = "generative"
    kind: ClassVar[str] = "auto-encoding"
    modality: ClassVar[str] = "graph"
    variational: ClassVar[bool] = False
    # The paper: Adam, lr 0.01, 200 epochs, full batch, no weight decay.
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 200,
        "lr": 0.01,
        "optimizer": "adam",
        "weight_decay": 0.0,
        "batch_size": 0,
        "warmup_epochs": 0,
        "schedule": "constant",
        # The paper's benchmark: link prediction on an 85/5/10 edge split of the raw features
        # (override with --data-opt task=node for node classification).
        "data_options": {"task": "link", "normalize": False},
    }

    def __init__(
        self,
        encoder: nn.Module,
        decoder: Callable[[Tensor, Tensor], Tensor] = inner_product,
        negative_sampler: Callable[..., Tensor] = negative_sampling,
        *,
        num_negatives: float = 1.0,
    ) -> None:
        super().__init__()
        if num_negatives <= 0:
            raise ValueError(f"num_negatives must be > 0, got {num_negatives}; the paper uses 1")
        self.encoder, self.decoder = encoder, decoder
        self.negative_sampler, self.num_negatives = negative_sampler, num_negatives

    def recon_loss(self, z: Tensor, edge_index: Tensor) -> Tensor:
        """:math:`-\\log p(A \\mid Z)` on the edges ``(2, E)`` and sampled non-edges; scalar."""
        n = z.shape[0]
        known, _ = add_self_loops(edge_index, num_nodes=n)  # self-loops are never negatives
        neg = self.negative_sampler(known, n, int(self.num_negatives * edge_index.shape[1]))
        pos_logits, neg_logits = self.decoder(z, edge_index), self.decoder(z, neg)  # (E,), (E-,)
        pos_ll = bernoulli_log_likelihood(pos_logits, torch.ones_like(pos_logits)).mean()
        neg_ll = bernoulli_log_likelihood(neg_logits, torch.zeros_like(neg_logits)).mean()
        return -(pos_ll + neg_ll)

    def forward(self, batch: Any) -> dict[str, Tensor]:
        return {"loss": self.recon_loss(self.encoder(batch), batch.edge_index)}

    @classmethod
    def build(
        cls,
        data: DataBundle,
        hidden_dim: int = 32,
        latent_dim: int = 16,
        *,
        dropout: float = 0.0,
        **kw: Any,
    ) -> GAE:
        """The paper's GCN encoder 32-16 sized for a node-level ``data``; ``kw`` go to ``cls``."""
        if data.info.get("level", "node") != "node":
            raise ValueError(
                f"{cls.__name__} embeds nodes: give a node-level graph (cora, karate, an edge "
                f"list), not the graph set {data.name!r}"
            )
        graphs = data.train if isinstance(data.train, (list, tuple)) else []
        if any(g.edge_index.numel() == 0 for g in graphs):
            raise DataError(
                f"{cls.__name__} reconstructs edges and the graph {data.name!r} has none; "
                "give a graph with edges, or a method that needs none (dgi, grace, graphmae)"
            )
        encoder = GCNEncoder(
            data.info["num_features"],
            hidden_dim,
            latent_dim,
            variational=cls.variational,
            dropout=dropout,
        )
        return cls(encoder, **kw)


@register("vgae")
class VGAE(GAE):
    """Variational graph auto-encoder.

    Args:
        encoder: PyG ``Data`` -> ``(mu, logvar)``, each ``(N, D)``.
        kl_weight: weight of the mean node KL; ``None`` is the paper's :math:`1/N`.
        seed: seeds the reparameterisation noise.
        decoder, negative_sampler, num_negatives: as :class:`GAE`.
    """

    kind: ClassVar[str] = "variational"
    variational: ClassVar[bool] = True

    def __init__(
        self,
        encoder: nn.Module,
        decoder: Callable[[Tensor, Tensor], Tensor] = inner_product,
        negative_sampler: Callable[..., Tensor] = negative_sampling,
        *,
        num_negatives: float = 1.0,
        kl_weight: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(encoder, decoder, negative_sampler, num_negatives=num_negatives)
        if kl_weight is not None and kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0 or None (the paper's 1/N), got {kl_weight}")
        self.kl_weight = kl_weight
        self.generators = SeededGenerators(seed)

    def elbo(self, data: Any) -> tuple[dict[str, Tensor], Tensor]:
        """``({"loss": -ELBO, "recon", "kl"}, z (N, D))``: the terms and the sampled latents."""
        mu, logvar = self.encoder(data)  # (N, D) each
        z = reparameterize(mu, logvar, self.generators(mu.device))  # (N, D)
        beta = self.kl_weight if self.kl_weight is not None else 1.0 / mu.shape[0]
        recon_ll = -self.recon_loss(z, data.edge_index)  # scalar log p(A | Z)
        return gaussian_elbo_terms(recon_ll, mu, logvar, beta=beta), z

    def forward(self, batch: Any) -> dict[str, Tensor]:
        return self.elbo(batch)[0]

    @torch.no_grad()
    def embed(self, inputs: Any) -> Tensor:
        """The posterior means :math:`\\mu` ``(N, D)``."""
        return self.encoder(inputs)[0]
