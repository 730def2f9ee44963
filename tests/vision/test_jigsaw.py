"""Jigsaw on tiny real data (sklearn digits): registration, the puzzle, learning."""

from __future__ import annotations

import pytest
import torch

from mmssl.core import registry
from mmssl.pretrain import load_data
from mmssl.vision.augment import random_crop, to_float
from mmssl.vision.encoders import SmallResNet
from mmssl.vision.methods import Jigsaw
from mmssl.vision.methods.jigsaw import standardize
from mmssl.vision.methods.pirl import jigsaw_cells


@pytest.fixture(scope="module")
def digits():
    return load_data("vision", None, None, batch_size=32, image_size=32)


def _tiny(digits, **kw) -> Jigsaw:
    torch.manual_seed(0)
    return Jigsaw.build(digits, num_permutations=24, hidden=64, tile_dim=32, seed=0, **kw)


def test_registered_and_built(digits):
    cls = registry.get("vision", "jigsaw")
    assert cls is Jigsaw and cls.family == "contrastive" and cls.modality == "vision"
    assert cls.kind == "context-instance/relative-position"
    m = _tiny(digits)
    assert (m.cell, m.tile, m.hflip_prob) == (10, 8, 0.0)  # 64/75 of a 10 px cell; digits
    assert cls.defaults["data_options"] == {"image_size": 32}  # 4 px tiles at 16 px
    assert m.permutations.shape == (24, 9) and m.classifier[-1].out_features == 24
    assert torch.equal(m.permutations, _tiny(digits).permutations)  # fixed by the seed
    with pytest.raises(ValueError, match="tile_size"):
        Jigsaw(SmallResNet(), 32, tile_size=11)
    assert Jigsaw(SmallResNet(widths=(8,)), 16, num_permutations=10).tile == 4


def test_tiles_are_the_grid_in_the_target_order(digits):
    m = _tiny(digits)
    images = next(iter(digits.train))
    state = m.generator.get_state()
    tiles, targets = m.augment(images)
    assert tiles.shape == (32, 9, 3, 8, 8) and targets.shape == (32,)
    # Redo the cuts with the same random numbers, unshuffled: tile i is cell P[y, i]'s.
    g = torch.Generator().manual_seed(0)
    g.set_state(state)
    x = random_crop(to_float(images), 30, generator=g)
    cells = jigsaw_cells(x, 3).flatten(0, 1)
    grid = standardize(random_crop(cells, 8, generator=g)).unflatten(0, (32, 9))
    for b in range(32):
        order = m.permutations[targets[b]]
        assert torch.allclose(tiles[b], grid[b, order])
    means = tiles.mean((2, 3, 4))
    assert means.abs().max() < 1e-4  # every tile standardised on its own


def test_loss_finite_decreasing_and_embed(digits, fixed_batch_losses):
    m = _tiny(digits)
    losses = fixed_batch_losses(m, next(iter(digits.train)))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[0] == pytest.approx(3.18, abs=0.5)  # about log 24 at the start
    assert losses[-1] < losses[0] - 0.5, losses
    m.eval()
    x, _ = next(iter(digits.probe.splits["test"]))
    z = m.embed(x[:8])
    assert z.shape == (8, m.encoder.out_dim) and torch.isfinite(z).all()
    assert torch.allclose(z, m.embed(x[:8].float() / 255), atol=1e-4)
