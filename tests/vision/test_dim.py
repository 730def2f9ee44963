"""Deep InfoMax: the shared local-global parts against naive loops, and a smoke run on digits."""

from __future__ import annotations

import pytest
import torch

from mmssl.core import registry
from mmssl.core.objectives import jensen_shannon_loss
from mmssl.vision.data import load
from mmssl.vision.encoders import SmallResNet, resnet18_cifar, vit_tiny
from mmssl.vision.methods import DIM
from mmssl.vision.methods.infomax import (
    EmbeddingHead,
    encode_with_maps,
    local_global_scores,
    stage_outputs,
)


@pytest.fixture(scope="module")
def digits():
    return load("digits", batch_size=64, seed=0)


def test_registered_under_both_names():
    assert registry.get("vision", "dim") is DIM
    assert registry.get("vision", "deepinfomax") is DIM
    assert DIM.family == "contrastive" and DIM.kind == "context-instance/mutual-information"


def test_stage_outputs():
    small = stage_outputs(SmallResNet(), (3, 32, 32))
    assert small == [
        ("features.3", (32, 16, 16)),
        ("features.4", (64, 8, 8)),
        ("features.5", (128, 4, 4)),
        ("features.6", (256, 2, 2)),
    ]
    deeper = stage_outputs(SmallResNet(blocks=2), (3, 16, 16))  # last block of each stage
    assert [n for n, _ in deeper] == ["features.4", "features.6", "features.8", "features.10"]
    assert [s for _, s in stage_outputs(resnet18_cifar(), (3, 32, 32))][1] == (128, 16, 16)
    with pytest.raises(ValueError, match="no convolutional stages"):
        stage_outputs(vit_tiny(), (3, 32, 32))


def test_encode_with_maps_matches_running_the_stages():
    torch.manual_seed(0)
    enc = SmallResNet().eval()
    x = torch.randn(4, 3, 16, 16)
    y, (m,) = encode_with_maps(enc, x, ["features.4"])
    assert torch.allclose(y, enc(x)) and torch.allclose(m, enc.features[:5](x))
    assert not any(mod._forward_hooks for mod in enc.modules())  # hooks removed


def test_local_global_scores_against_a_loop():
    torch.manual_seed(0)
    g, local = torch.randn(3, 5), torch.randn(3, 5, 2, 2)
    scores, pos = local_global_scores(g, local, temperature=2.0)
    assert scores.shape == pos.shape == (3, 12)
    for i in range(3):
        for j in range(3):
            for p in range(4):
                expected = g[i] @ local[j].flatten(1)[:, p] / 2.0
                assert torch.allclose(scores[i, j * 4 + p], expected, atol=1e-5)
                assert bool(pos[i, j * 4 + p]) == (i == j)


def test_embedding_head_shapes_and_identity_shortcut():
    head = EmbeddingHead(8, 16)
    assert head(torch.randn(4, 8)).shape == (4, 16)
    assert head(torch.randn(4, 8, 3, 3)).shape == (4, 16, 3, 3)
    w = head.shortcut.weight[:8, :, 0, 0]
    assert torch.equal(torch.diag(w), torch.ones(8)) and (w - torch.eye(8)).abs().max() <= 0.01


@pytest.mark.parametrize("estimator", ["jsd", "nce", "dv"])
def test_loss_finite_and_decreasing(digits, estimator, fixed_batch_losses):
    torch.manual_seed(0)
    m = DIM.build(digits, mi_units=128, estimator=estimator, seed=0)
    losses = fixed_batch_losses(m, next(iter(digits.train)), steps=6)
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0] - 0.1, losses


def test_default_is_the_jsd_over_the_local_global_scores(digits):
    torch.manual_seed(0)
    m = DIM.build(digits, mi_units=64, seed=0).eval()
    assert m.local_layer == "features.4" and m.estimator == "jsd"
    x = m.augment(next(iter(digits.train)))
    assert x.dtype == torch.float32 and x.shape == (64, 3, 16, 16)
    with torch.no_grad():
        y, (c,) = encode_with_maps(m.encoder, x, ["features.4"])
        scores, pos = local_global_scores(m.global_head(y), m.local_head(c))
        assert torch.allclose(m(x)["loss"], jensen_shannon_loss(scores, pos))
    images, _ = next(iter(digits.probe.splits["test"]))
    assert m.embed(images[:5]).shape == (5, 256)


def test_augmented_views_and_checks(digits):
    torch.manual_seed(0)
    m = DIM.build(digits, mi_units=32, augment=True, local_layer="features.3", seed=0)
    batch = next(iter(digits.train))
    assert not torch.equal(m.augment(batch), m.normalize(batch))  # a SimCLR view, not the image
    assert m.local_head.shortcut.in_channels == 32
    with pytest.raises(ValueError, match="estimator"):
        DIM(SmallResNet(), estimator="mine")
    with pytest.raises(ValueError, match="out of range"):
        DIM(SmallResNet(), local_layer=4)
    with pytest.raises(ValueError, match="not a stage output"):
        DIM(SmallResNet(), local_layer="features.1")
