"""DeepCluster: whitening, k-means pseudo-labels, classifier reset, reclustering, smoke run."""

from __future__ import annotations

import pytest
import torch

from mmssl.core import registry
from mmssl.pretrain import load_data
from mmssl.vision.methods import DeepCluster
from mmssl.vision.methods.deepcluster import pca_whiten


@pytest.fixture()
def digits():
    return load_data("vision", None, None, batch_size=64)


def test_pca_whiten():
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(0)) * torch.arange(1, 9)
    z = pca_whiten(x, 4)
    assert z.shape == (500, 4)
    assert torch.allclose(z.norm(dim=1), torch.ones(500), atol=1e-5)
    raw = pca_whiten(x, 8) * (8**0.5)  # before normalisation the components have unit variance
    assert raw.var(0).max() < 3.0


def test_registered_clusters_and_reset(digits):
    cls = registry.get("vision", "deepcluster")
    assert cls is DeepCluster and cls.family == "contrastive"
    assert cls.kind == "instance-instance/clustering"
    torch.manual_seed(0)
    m = cls.build(digits, seed=0)
    n = digits.info["num_train"]
    assert m.num_clusters == 100 and m.images.shape[0] == n  # 10 x the 10 digit classes
    assert m.pca_dim == m.encoder.out_dim // 4 == 64  # a quarter of the small ResNet's 256
    assert cls.build(digits, pca_dim=256).pca_dim == 256
    assert m.recluster_every == 2 * len(digits.train)  # 19-step epochs: every 2 (>= 32 steps)
    w0 = m.classifier.weight.clone()
    x, y = m.augment(next(iter(digits.train)))  # clusters first
    assert not bool(m.stale) and x.shape == (64, 3, 16, 16) and y.shape == (64,)
    assert m.labels.min() >= 0 and m.labels.max() < 100 and m.labels.unique().numel() > 50
    assert (
        not torch.equal(m.classifier.weight, w0)
        and float(m.classifier.weight.detach().std()) < 0.02
    )
    m.after_step(m.recluster_every - 1, 1000)
    assert not bool(m.stale)
    m.after_step(m.recluster_every, 1000)
    assert bool(m.stale)
    labels = m.cluster()
    m.eval()
    z = pca_whiten(m.embed(m.images), m.pca_dim)
    sim = z @ z.T
    same = labels[:, None] == labels[None, :]
    assert sim[same].mean() > sim[~same].mean() + 0.3  # clusters group nearby features


def test_loss_finite_and_decreasing(digits):
    torch.manual_seed(0)
    m = DeepCluster.build(digits, seed=0)
    with torch.no_grad():
        batch = m.augment(next(iter(digits.train)))
    opt = torch.optim.Adam([p for g in m.param_groups() for p in g["params"]], lr=1e-3)
    losses = []
    for _ in range(6):
        loss = m(batch)["loss"]
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.5, losses
