"""The one contract every self-supervised method follows, whatever the modality."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

FAMILIES = ("generative", "contrastive", "generative-contrastive")


class SeededGenerators:
    """One ``torch.Generator`` per device, each seeded with ``seed``, created on first use.

    What a method holds for its masks, corruptions and views. The trainer checkpoints every
    generator made so far (:meth:`state_dict`); a state loaded before a device's generator
    exists is applied when it is made, so a resumed run draws the same numbers.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._gens: dict[str, torch.Generator] = {}
        self._pending: dict[str, Tensor] = {}

    def __call__(self, device: torch.device | str) -> torch.Generator:
        key = str(torch.device(device))
        if key not in self._gens:
            gen = torch.Generator(device=device).manual_seed(self.seed)
            if key in self._pending:
                gen.set_state(self._pending.pop(key))
            self._gens[key] = gen
        return self._gens[key]

    def state_dict(self) -> dict[str, Tensor]:
        return {key: gen.get_state() for key, gen in self._gens.items()}

    def load_state_dict(self, states: dict[str, Tensor]) -> None:
        for key, state in states.items():
            if key in self._gens:
                self._gens[key].set_state(state.cpu())
            else:
                self._pending[key] = state.cpu()


class Method(nn.Module):
    """Base class of every method.

    A method is assembled from parts passed to its constructor (encoder, heads, objective,
    augmentation or corruption), with the paper's defaults. The trainer knows nothing else
    about it than the four calls below.

    Class attributes:
        family: ``"generative"``, ``"contrastive"`` or ``"generative-contrastive"``.
        kind: the taxonomy's kind, e.g. ``"instance-instance/discrimination"``.
        modality: ``"vision"``, ``"text"`` or ``"graph"``.
        defaults: training settings from the paper for this method (``epochs``, ``lr``,
            ``batch_size``, ``optimizer``, ``weight_decay``, ``warmup_epochs``, ...), used by
            the CLI where the user gives none.
    """

    family: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def augment(self, batch: Any) -> Any:
        """Make views, masks or corruptions from a batch already on the device.

        The trainer calls this under ``torch.no_grad()`` before :meth:`forward`; it is the
        batched on-device augmentation step. Default: the batch unchanged.
        """
        return batch

    def forward(self, batch: Any) -> Tensor | dict[str, Tensor]:  # pragma: no cover - abstract
        """Return the training loss, or a dict with ``"loss"`` and any scalars to log."""
        raise NotImplementedError

    @torch.no_grad()
    def embed(self, inputs: Any) -> Tensor:
        """The frozen representation probes use, shape ``(B, D)`` (or ``(N, D)`` for nodes)."""
        return self.encoder(inputs)  # type: ignore[attr-defined]

    def after_step(self, step: int, total_steps: int) -> None:
        """Momentum updates, queues and schedules after each optimizer step. Default no-op."""

    @torch.no_grad()
    def evaluate(self, data: Any) -> dict[str, float]:
        """Method-specific held-out metrics (masked-token accuracy, ELBO, bits per dimension).

        Given the run's :class:`~mmssl.core.data.DataBundle`; default: none.
        """
        return {}

    @torch.no_grad()
    def save_artifacts(self, out: Path, data: Any) -> list[str]:
        """Write files a person would rather look at into the run folder ``out`` (sample and
        reconstruction grids of generative methods), after training; return their names
        relative to ``out``. Given the run's :class:`~mmssl.core.data.DataBundle`; default: none.
        """
        return []

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups for the optimizer; by default no weight decay on biases and norms.

        A group may set ``weight_decay`` and ``lr_scale`` (its peak learning rate is
        ``lr_scale`` times the run's; the schedule scales every group alike)."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
        groups = [{"params": decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0, "lars_exclude": True})
        return groups


def loss_and_scalars(out: Tensor | dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
    """Split a method's output into the loss to minimise and the scalars to log, still as
    detached tensors: reading them (``float``) waits for the device, so the trainer reads them
    only when it logs."""
    if isinstance(out, Tensor):
        return out, {"loss": out.detach()}
    if "loss" not in out:
        raise KeyError("a method's forward must return a tensor or a dict with a 'loss' key")
    scalars = {k: v.detach() for k, v in out.items() if isinstance(v, Tensor) and v.numel() == 1}
    return out["loss"], scalars


def loss_and_logs(out: Tensor | dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
    """Split a method's output into the loss to minimise and the scalars to log, as floats."""
    loss, scalars = loss_and_scalars(out)
    return loss, {k: float(v) for k, v in scalars.items()}


class TwoViewMethod(Method):
    """The generic two-view method: augment twice, encode, project, apply any objective.

    Works for every modality: the modality supplies ``views`` (a batched on-device augmentation
    that returns two views of a batch) and an encoder that maps a view to ``(B, D)``. Any
    objective callable ``objective(z1, z2) -> loss`` plugs in, a user's own included::

        def my_loss(z1, z2):
            return (1 - F.cosine_similarity(z1, z2)).mean() + z1.var(0).sub(1).abs().mean()

        method = TwoViewMethod(encoder, objective=my_loss, views=SimCLRAugment(32), dim=512)

    Args:
        encoder: ``view -> (B, D)``.
        objective: ``(z1 (B, P), z2 (B, P)) -> scalar``.
        views: ``batch -> (view1, view2)``, run on the device under no_grad.
        projector: head applied after the encoder; ``None`` builds a 2-layer MLP when ``dim`` is
            given, else uses the identity.
        dim: the encoder's output size ``D``, to size the default projector.
        proj_dim: the projector's output size ``P``.
    """

    family: ClassVar[str] = "contrastive"
    kind: ClassVar[str] = "instance-instance/discrimination"

    def __init__(
        self,
        encoder: nn.Module,
        objective: Any,
        views: Any,
        projector: nn.Module | None = None,
        *,
        dim: int | None = None,
        proj_dim: int = 128,
    ) -> None:
        super().__init__()
        if not callable(objective):
            raise TypeError(
                f"objective must be callable (z1, z2) -> loss, got {type(objective).__name__}"
            )
        self.encoder = encoder
        self.objective = objective
        self.views = views
        if projector is None:
            projector = (
                nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, proj_dim))
                if dim is not None
                else nn.Identity()
            )
        self.projector = projector

    def augment(self, batch: Any) -> Any:
        return self.views(batch)

    def forward(self, batch: Any) -> Tensor:
        v1, v2 = batch
        z1 = self.projector(self.encoder(v1))  # (B, P)
        z2 = self.projector(self.encoder(v2))  # (B, P)
        return self.objective(z1, z2)
