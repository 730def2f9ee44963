"""SwAV and multi-crop: crop shapes, prototypes (normalised, frozen first), smoke on digits."""

from __future__ import annotations

import pytest
import torch

from mmssl.core import registry
from mmssl.pretrain import load_data
from mmssl.vision.augment import MultiCropAugment
from mmssl.vision.encoders import SmallResNet
from mmssl.vision.methods import SwAV, multicrop_for


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=32)


def test_multicrop_shapes_and_seeding():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    crops = MultiCropAugment(seed=0)(images)  # the default: 2x32 + 6x16
    assert [tuple(c.shape) for c in crops] == [(4, 3, 32, 32)] * 2 + [(4, 3, 16, 16)] * 6
    assert not torch.equal(crops[0], crops[1])  # each crop its own random parameters
    again = MultiCropAugment(seed=0)(images)
    assert all(torch.equal(a, b) for a, b in zip(crops, again, strict=True))
    with pytest.raises(ValueError, match="local_scale"):
        MultiCropAugment(local_scale=(0.5, 0.2))


def test_multicrop_for_sizes(digits):
    views = multicrop_for(digits, seed=0)
    assert views.n_global == 2 and len(views.crops) == 2  # 8 px local crops dropped on digits
    assert views.crops[0] == (16, (0.25, 1.0))  # digits' min_scale hint
    views = multicrop_for(digits, seed=0, n_local=4)
    assert [s for s, _ in views.crops] == [16, 16, 8, 8, 8, 8]


def test_registered_prototypes_and_smoke(digits):
    cls = registry.get("vision", "swav")
    assert cls is SwAV and cls.family == "contrastive"
    assert cls.kind == "instance-instance/clustering"
    torch.manual_seed(0)
    m = cls.build(digits, num_prototypes=300, n_local=2)
    assert m.freeze_prototypes_steps == len(digits.train)
    assert torch.allclose(m.prototypes.weight.norm(dim=1), torch.ones(300))
    with torch.no_grad():
        crops = m.augment(next(iter(digits.train)))
    assert len(crops) == 4
    opt = torch.optim.Adam([p for g in m.param_groups() for p in g["params"]], lr=1e-3)
    losses = []
    for step in range(6):
        loss = m(crops)["loss"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        if step == 0:
            assert m.prototypes.weight.grad is None  # frozen during the first epoch
        opt.step()
        m.after_step(step + 1, 100)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.1, losses
    assert torch.allclose(m.prototypes.weight.norm(dim=1), torch.ones(300), atol=1e-5)
    assert m.embed(crops[0]).shape == (32, m.encoder.out_dim)


def test_queue_joins_sinkhorn_once_full():
    torch.manual_seed(0)
    m = SwAV(SmallResNet(widths=(8, 16)), num_prototypes=20, queue_size=8)
    assert len(m.queues) == 2
    crops = m.augment(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
    m(crops)
    assert int(m.queues[0].ptr) == 4  # enqueued this batch's global-crop projections
    m.after_step(2, 10)  # 2 steps of 4 fill the queue of 8: from now on Sinkhorn uses it
    assert torch.isfinite(m(crops)["loss"])
