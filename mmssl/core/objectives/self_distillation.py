r"""Objectives without negatives, where a student predicts a (momentum or stop-grad) teacher:
BYOL, SimSiam, BGRL and DINO."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.distributed import all_reduce_mean
from mmssl.core.objectives._common import check_pair, check_positive, check_unit, full_precision


@full_precision
def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    r"""SimSiam's negative cosine similarity with stop-gradient on the target
    (Chen and He 2021, https://arxiv.org/abs/2011.10566):

    .. math::
        \mathcal{D}(p, z) = -\frac{1}{B}\sum_b
        \frac{p_b}{\lVert p_b\rVert_2}\cdot\frac{\mathrm{sg}(z_b)}{\lVert z_b\rVert_2}

    Symmetrise in the method: ``0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))``.

    Args:
        p: ``(B, D)`` predictor outputs. z: ``(B, D)`` targets (detached here).

    Returns:
        scalar in ``[-1, 1]``, float32.
    """
    check_pair(p, z, "p and z")
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=1).mean()


@full_precision
def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    r"""BYOL's normalised mean squared error (Grill et al. 2020, https://arxiv.org/abs/2006.07733),
    target detached:

    .. math::
        \mathcal{L} = \frac{1}{B}\sum_b \Big\lVert \bar p_b - \overline{\mathrm{sg}(z_b)}
        \Big\rVert_2^2 = \frac{1}{B}\sum_b \big(2 - 2\cos(p_b, z_b)\big)

    Args:
        p: ``(B, D)`` online predictions. z: ``(B, D)`` target projections.

    Returns:
        scalar in ``[0, 4]``, float32.
    """
    check_pair(p, z, "p and z")
    return (2.0 - 2.0 * F.cosine_similarity(p.float(), z.detach().float(), dim=1)).mean()


def _as_list(x: Tensor | Sequence[Tensor]) -> list[Tensor]:
    return [x] if isinstance(x, Tensor) else list(x)


class DINOLoss(nn.Module):
    r"""DINO's self-distillation cross-entropy with a centred, sharpened teacher
    (Caron et al. 2021, https://arxiv.org/abs/2104.14294).

    For teacher crop :math:`t` and student crop :math:`s \ne t`:

    .. math::
        \mathcal{L} = \frac{1}{|\mathcal{P}|}\sum_{(t, s) \in \mathcal{P}} \frac{1}{B}\sum_b
        -\operatorname{softmax}\Big(\frac{g_t(x_b) - c}{\tau_t}\Big)
        \cdot \log\operatorname{softmax}\Big(\frac{g_s(x_b)}{\tau_s}\Big)

    and after each training call the centre moves toward the teacher's batch mean,
    averaged over processes: :math:`c \leftarrow m c + (1 - m)\,\bar g_t`.

    Multi-crop: the teacher sees the global crops, which must come first in the student's
    list, so teacher crop ``i`` and student crop ``i`` are the same view and are skipped.

    Args:
        out_dim: size ``K`` of the head's output.
        teacher_temp: :math:`\tau_t` (0.04; DINO warms it up to 0.07 by passing
            ``teacher_temp=`` to :meth:`forward`).
        student_temp: :math:`\tau_s`.
        center_momentum: :math:`m`.
    """

    center: Tensor

    def __init__(
        self,
        out_dim: int,
        teacher_temp: float = 0.04,
        student_temp: float = 0.1,
        center_momentum: float = 0.9,
    ) -> None:
        super().__init__()
        if out_dim < 1:
            raise ValueError(f"out_dim must be >= 1, got {out_dim}; DINO uses 65536")
        check_positive("teacher_temp", teacher_temp, "DINO uses 0.04 to 0.07")
        check_positive("student_temp", student_temp, "DINO uses 0.1")
        check_unit("center_momentum", center_momentum, "DINO uses 0.9")
        self.out_dim = out_dim
        self.teacher_temp = teacher_temp
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    @full_precision
    def forward(
        self,
        student: Tensor | Sequence[Tensor],
        teacher: Tensor | Sequence[Tensor],
        *,
        teacher_temp: float | None = None,
    ) -> Tensor:
        """Student crops ``[(B, K), ...]`` and teacher crops ``[(B, K), ...]`` -> scalar.

        Updates the centre (when the module is in training mode) after computing the loss.
        """
        students, teachers = _as_list(student), _as_list(teacher)
        tau_t = self.teacher_temp if teacher_temp is None else teacher_temp
        check_positive("teacher_temp", tau_t, "DINO uses 0.04 to 0.07")
        for x in students + teachers:
            if x.ndim != 2 or x.shape[1] != self.out_dim or x.shape[0] != students[0].shape[0]:
                raise ValueError(
                    f"every crop must be (B, {self.out_dim}) with one B, got {tuple(x.shape)}"
                )
        if len(students) * len(teachers) - min(len(students), len(teachers)) == 0:
            raise ValueError(
                "no (teacher, student) pair of different views: pass >= 2 student crops, "
                "the teacher's global crops first"
            )
        targets = [
            F.softmax((t.detach().float() - self.center) / tau_t, dim=1) for t in teachers
        ]  # each (B, K)
        log_probs = [F.log_softmax(s.float() / self.student_temp, dim=1) for s in students]
        terms = [
            (-q * log_p).sum(dim=1).mean()
            for i, q in enumerate(targets)
            for j, log_p in enumerate(log_probs)
            if i != j
        ]
        if self.training:
            self.update_center(torch.cat(teachers))
        return torch.stack(terms).mean()

    @torch.no_grad()
    def update_center(self, teacher: Tensor) -> None:
        """Move the centre toward the mean of ``teacher`` ``(N, K)`` over all processes."""
        batch_center = all_reduce_mean(teacher.detach().float().mean(dim=0, keepdim=True))
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1.0 - self.center_momentum)
