"""Probes against naive references and on data whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch

from mmssl.core.data import DataError, ProbeData
from mmssl.core.evaluate import (
    extract_features,
    knn_top1,
    linear_probe,
    logreg_cv,
    paired_gain,
    run_probe,
    svm_cv,
)


def naive_knn(train_x, train_y, test_x, k, t):
    correct = 0
    for q, label in zip(test_x, test_y_global, strict=True):
        sims = [float(torch.nn.functional.cosine_similarity(q, x, dim=0)) for x in train_x]
        order = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        votes: dict[int, float] = {}
        for i in order:
            votes[int(train_y[i])] = votes.get(int(train_y[i]), 0.0) + math.exp(sims[i] / t)
        correct += max(votes, key=votes.get) == int(label)
    return correct / len(test_x)


test_y_global = None


@pytest.mark.parametrize("k,t,seed", [(1, 0.1, 0), (5, 0.07, 1), (20, 0.5, 2), (200, 0.1, 3)])
def test_knn_matches_naive_loop(k, t, seed):
    global test_y_global
    g = torch.Generator().manual_seed(seed)
    train_x, test_x = torch.randn(60, 8, generator=g), torch.randn(25, 8, generator=g)
    train_y, test_y = (
        torch.randint(0, 4, (60,), generator=g),
        torch.randint(0, 4, (25,), generator=g),
    )
    test_y_global = test_y
    expected = naive_knn(train_x, train_y, test_x, min(k, 60), t)
    assert knn_top1(train_x, train_y, test_x, test_y, k=k, temperature=t, chunk=7) == pytest.approx(
        expected
    )


def blobs(n: int, seed: int, sep: float = 4.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centers = torch.randn(3, 10, generator=g) * sep
    return centers[y] + torch.randn(n, 10, generator=g), y


def test_linear_probe_separates_blobs_and_not_noise():
    (xtr, ytr), (xte, yte) = blobs(300, 0), blobs(300, 0)
    res = linear_probe((xtr, ytr), (xte, yte), epochs=100)
    assert res["test_acc"] > 0.95
    right = res["test_correct"]  # one character per test example
    assert len(right) == 300 and right.count("1") / 300 == pytest.approx(res["test_acc"])
    noise = torch.randn(300, 10)
    res = linear_probe((noise, ytr), (torch.randn(300, 10), yte), epochs=100)
    assert res["test_acc"] < 0.6


def test_cv_probes():
    x, y = blobs(120, 1)
    assert logreg_cv(x, y, folds=5)["acc"] > 0.95
    assert svm_cv(x, y, folds=5)["acc"] > 0.95
    assert logreg_cv(torch.randn(120, 10), y, folds=5)["acc"] < 0.7
    # one C: no inner search; a C so small that the classifier barely moves off chance
    assert logreg_cv(x, y, folds=5, cs=[1.0])["acc"] > 0.95
    assert logreg_cv(x, y, folds=5, cs=[1e-6])["acc"] < logreg_cv(x, y, folds=5)["acc"]


def test_paired_gain_compares_two_encoders_on_the_same_folds():
    x, y = blobs(120, 1)
    good = {"logreg-cv": logreg_cv(x, y, folds=5, seed=3)}
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    noisy = {"logreg-cv": logreg_cv(x + 6 * noise, y, folds=5, seed=3)}
    folds = good["logreg-cv"]["fold_acc"]
    assert len(folds) == 5 and sum(folds) / 5 == pytest.approx(good["logreg-cv"]["acc"])
    gain = paired_gain(good, noisy)
    a, b = good["logreg-cv"]["fold_acc"], noisy["logreg-cv"]["fold_acc"]
    assert gain["fold_gains"] == pytest.approx([u - v for u, v in zip(a, b, strict=True)])
    assert gain["gain"] > 0 and gain["folds"] == 5 and gain["metric"] == "logreg-cv.acc"
    # Nadeau-Bengio: the variance of the mean is (1/k + 1/(k-1)) s^2, not s^2 / k
    d = torch.tensor(gain["fold_gains"], dtype=torch.float64)
    t = float(d.mean() / (d.var() * (1 / 5 + 1 / 4)).sqrt())
    assert gain["folds_better"] == 5 and gain["t"] == pytest.approx(t) and gain["p"] < 0.05
    # the other way round: the same gain negated, and no evidence of a positive one
    assert paired_gain(noisy, good)["gain"] == pytest.approx(-gain["gain"])
    assert paired_gain(noisy, good)["p"] > 0.5
    # identical encoders: no gain and no evidence either way (not NaN)
    same = {"logreg-cv": {"fold_acc": [0.7, 0.8, 0.75]}}
    tie = paired_gain(same, same)
    assert tie["gain"] == 0.0 and tie["t"] == 0.0 and tie["p"] == pytest.approx(0.5)
    # a given test split pairs example by example (exact McNemar)
    a = {"linear": {"test_acc": 0.8, "test_correct": "1111111101"}}
    b = {"linear": {"test_acc": 0.5, "test_correct": "1100001111"}}
    mc = paired_gain(a, b)
    assert (mc["better"], mc["worse"], mc["examples"]) == (4, 1, 10)
    assert mc["gain"] == pytest.approx(0.3) and mc["p"] == pytest.approx(6 / 32)
    assert paired_gain(b, a)["p"] == pytest.approx(31 / 32)
    # the other protocols have no folds to pair
    assert paired_gain({"knn": {"top1": 0.9}}, {"knn": {"top1": 0.5}}) is None


class Identity(torch.nn.Module):
    def embed(self, x):
        return x


def test_run_probe_transductive_masks_and_errors():
    x, y = blobs(90, 2)
    masks = {
        "train": torch.arange(90) < 40,
        "val": (torch.arange(90) >= 40) & (torch.arange(90) < 50),
        "test": torch.arange(90) >= 50,
    }
    probe = ProbeData(splits={"all": [(x, y)]}, masks=masks, protocol="linear")
    feats = extract_features(Identity(), probe)
    assert feats["train"][0].shape == (40, 10) and feats["test"][1].shape == (40,)
    assert run_probe(Identity(), probe)["linear"]["test_acc"] > 0.9
    assert run_probe(Identity(), probe, "knn")["knn"]["top1"] > 0.9
    with pytest.raises(ValueError, match="unknown probe protocol"):
        run_probe(Identity(), probe, "svm")
    unlabelled = ProbeData(
        splits={"train": [(x, -torch.ones(90, dtype=torch.long))], "test": [(x, y)]}
    )
    with pytest.raises(DataError, match="unlabelled"):
        run_probe(Identity(), unlabelled, "knn")


def test_fixed_length_probe_and_grid_chosen_on_validation():
    (xtr, ytr), (xva, yva), (xte, yte) = blobs(200, 3), blobs(60, 3), blobs(200, 3)
    res = linear_probe(
        (xtr, ytr), (xte, yte), (xva, yva), epochs=7, patience=None, standardize=False
    )
    assert res["epochs"] == 7
    masks = {
        "train": torch.zeros(460, dtype=torch.bool),
        "val": torch.zeros(460, dtype=torch.bool),
        "test": torch.zeros(460, dtype=torch.bool),
    }
    masks["train"][:200], masks["val"][200:260], masks["test"][260:] = True, True, True
    probe = ProbeData(
        splits={"all": [(torch.cat([xtr, xva, xte]), torch.cat([ytr, yva, yte]))]},
        masks=masks,
        options={
            "linear": {"patience": None, "grid": {"weight_decay": [0.0, 10.0], "epochs": [5, 50]}}
        },
    )
    res = run_probe(Identity(), probe)["linear"]
    feats = extract_features(Identity(), probe)
    for wd in (0.0, 10.0):
        for epochs in (5, 50):
            other = linear_probe(
                feats["train"],
                feats["test"],
                feats["val"],
                weight_decay=wd,
                epochs=epochs,
                patience=None,
            )
            assert res["val_acc"] >= other["val_acc"]
    assert res["weight_decay"] in (0.0, 10.0) and res["epochs"] in (5, 50)


def test_l2_normalized_probe_ignores_each_vector_length():
    # Every vector is rescaled by a random factor in [0.01, 100]: L2-normalised, the probe
    # sees exactly the same inputs and must give exactly the same accuracy.
    (xtr, ytr), (xva, yva), (xte, yte) = blobs(200, 4), blobs(60, 4), blobs(200, 4)
    g = torch.Generator().manual_seed(0)
    scale = [torch.rand(len(x), 1, generator=g) * 100 + 0.01 for x in (xtr, xva, xte)]
    kw = {"epochs": 50, "patience": None, "standardize": False, "l2_normalize": True}
    plain = linear_probe((xtr, ytr), (xte, yte), (xva, yva), **kw)
    scaled = linear_probe((xtr * scale[0], ytr), (xte * scale[2], yte), (xva * scale[1], yva), **kw)
    assert scaled["test_acc"] == pytest.approx(plain["test_acc"], abs=1e-6)
