"""The Method contract, the generic two-view method and the registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmssl.core import registry
from mmssl.core.method import Method, TwoViewMethod, loss_and_logs


def test_two_view_takes_any_objective_and_learns():
    torch.manual_seed(0)
    calls = []

    def my_objective(z1, z2):  # a user's own few lines
        calls.append(z1.shape)
        return (z1 - z2).pow(2).mean() - 0.1 * z1.std(0).mean()

    def views(x):
        return x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)

    m = TwoViewMethod(nn.Linear(6, 4), my_objective, views, dim=4, proj_dim=3)
    x = torch.randn(32, 6)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    first = None
    for _ in range(20):
        loss = m(m.augment(x))
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert calls[0] == (32, 3) and float(loss) < first
    assert m.embed(x).shape == (32, 4)


def test_two_view_rejects_non_callable_objective():
    with pytest.raises(TypeError, match="objective must be callable"):
        TwoViewMethod(nn.Linear(2, 2), objective="infonce", views=lambda b: (b, b))


def test_loss_and_logs():
    loss, logs = loss_and_logs(
        {"loss": torch.tensor(2.0), "acc": torch.tensor(0.5), "vec": torch.ones(3)}
    )
    assert float(loss) == 2.0 and logs == {"loss": 2.0, "acc": 0.5}
    with pytest.raises(KeyError):
        loss_and_logs({"acc": torch.tensor(1.0)})


def test_register_validates_and_get_suggests():
    class Bad(Method):
        family = "magic"
        kind = "x"

    with pytest.raises(ValueError, match="family"):
        registry.register("bad", modality="vision")(Bad)

    class Good(Method):
        family = "contrastive"
        kind = "instance-instance/discrimination"

        @classmethod
        def build(cls, data, **kw):
            return cls()

    registry.register("zz-test-method", modality="graph")(Good)
    try:
        assert registry.get("graph", "zz-test-method") is Good
        with pytest.raises(ValueError, match="did you mean 'zz-test-method'"):
            registry.get("graph", "zz-test-methd")
        with pytest.raises(ValueError, match="unknown modality"):
            registry.get("audio", "x")
    finally:
        registry._REGISTRY["graph"].pop("zz-test-method")


def test_primary_names_list_each_method_once():
    names = registry.primary_names("vision")
    assert "moco" in names and "mocov1" not in names  # moco is mocov1's outer name
    classes = [registry.get("vision", n) for n in names]
    assert (
        len(set(classes))
        == len(classes)
        == len(set(registry.available("vision")["vision"].values()))
    )
