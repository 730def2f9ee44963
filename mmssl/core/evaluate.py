"""Frozen-encoder evaluation: feature extraction, kNN, linear probe, cross-validated sklearn probes.

Every protocol takes features and labels, so it serves images, sentences, nodes and graphs alike;
the ``link`` protocol scores held-out edges of a graph by the inner product of node embeddings.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmssl.core.data import DataError, ProbeData, to_device

PROTOCOLS = ("linear", "knn", "logreg-cv", "svm-cv", "link")


@torch.no_grad()
def extract_features(
    method: nn.Module, probe: ProbeData, device: Any = "cpu"
) -> dict[str, tuple[Tensor, Tensor]]:
    """Run ``method.embed`` over every split; returns split -> ``(features (N, D), labels (N,))``.

    For transductive data (``probe.masks``) the single ``all`` split is embedded once and cut by
    the masks. Features are float32 on the CPU.
    """
    was_training = method.training
    method.eval()
    out: dict[str, tuple[Tensor, Tensor]] = {}
    try:
        for split, batches in probe.splits.items():
            feats, labels = [], []
            for inputs, y in batches:
                z = method.embed(to_device(inputs, device))
                feats.append(z.float().cpu())
                labels.append(torch.as_tensor(y).cpu())
            if not feats:
                raise DataError(f"probe split {split!r} is empty; give labelled data for it")
            out[split] = (torch.cat(feats), torch.cat(labels))
    finally:
        method.train(was_training)
    if probe.masks:
        x, y = out.pop("all")
        for split, mask in probe.masks.items():
            m = mask.cpu().bool()
            out[split] = (x[m], y[m])
    return out


def _labels_ok(*ys: Tensor) -> None:
    for y in ys:
        if y.numel() == 0:
            raise DataError(
                "the probe has no labelled examples; pass data with labels or use --probe none"
            )
        if (y < 0).any():
            raise DataError(
                "the probe has unlabelled examples (label < 0); drop them or use --probe none"
            )


@torch.no_grad()
def knn_top1(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> float:
    """Weighted kNN top-1 of Wu et al. 2018 (https://arxiv.org/abs/1805.01978).

    Cosine similarity to the ``k`` nearest training features; each neighbour votes for its class
    with weight ``exp(sim / temperature)``.
    """
    _labels_ok(train_y, test_y)
    k = min(k, train_x.shape[0])
    n_cls = int(max(train_y.max(), test_y.max())) + 1
    bank = F.normalize(train_x.float(), dim=1)  # (N, D)
    correct = 0
    for i in range(0, test_x.shape[0], chunk):
        q = F.normalize(test_x[i : i + chunk].float(), dim=1)  # (b, D)
        sim, idx = (q @ bank.T).topk(k, dim=1)  # (b, k)
        votes = torch.zeros(q.shape[0], n_cls)
        votes.scatter_add_(1, train_y[idx].long(), (sim / temperature).exp())
        correct += int((votes.argmax(1) == test_y[i : i + chunk]).sum())
    return correct / test_x.shape[0]


def _standardize(train: Tensor, *others: Tensor) -> list[Tensor]:
    mean, std = train.mean(0, keepdim=True), train.std(0, keepdim=True).clamp_min(1e-6)
    return [(t - mean) / std for t in (train, *others)]


def linear_probe(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor] | None = None,
    *,
    epochs: int = 300,
    lr: float = 0.01,
    weight_decay: float = 0.0,
    batch_size: int = 1024,
    patience: int | None = 30,
    standardize: bool = True,
    l2_normalize: bool = False,
    val_fraction: float = 0.1,
    device: Any = "cpu",
    seed: int = 0,
) -> dict[str, float]:
    """A linear classifier on frozen, standardised features, trained in torch on ``device``.

    Adam with full or mini-batches; early stopping on the validation loss (a ``val_fraction``
    of train when none is given) restores the best epoch's weights. ``patience=None`` trains
    the fixed ``epochs`` and keeps the last weights, and ``standardize=False`` keeps the raw
    features: together with ``lr=0.01`` that is DGI's node-classification protocol.
    ``l2_normalize=True`` scales every feature vector to unit length first (GRACE's protocol).

    Returns ``{"val_acc", "test_acc", "epochs", "test_correct"}``; ``test_correct`` is one
    character per test example, ``"1"`` where the prediction was right, so that two encoders
    probed on the same split can be compared example by example (:func:`paired_gain`).
    """
    (xtr, ytr), (xte, yte) = train, test
    _labels_ok(ytr, yte)
    g = torch.Generator().manual_seed(seed)
    if val is None:
        perm = torch.randperm(xtr.shape[0], generator=g)
        n_val = max(1, int(val_fraction * xtr.shape[0]))
        val = (xtr[perm[:n_val]], ytr[perm[:n_val]])
        xtr, ytr = xtr[perm[n_val:]], ytr[perm[n_val:]]
    xva, yva = val
    xtr, xva, xte = xtr.float(), xva.float(), xte.float()
    if l2_normalize:
        xtr, xva, xte = (F.normalize(t, dim=1) for t in (xtr, xva, xte))
    if standardize:
        xtr, xva, xte = _standardize(xtr, xva, xte)
    n_cls = int(max(ytr.max(), yva.max(), yte.max())) + 1
    torch.manual_seed(seed)
    clf = nn.Linear(xtr.shape[1], n_cls).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=lr, weight_decay=weight_decay)
    xtr, ytr, xva, yva, xte, yte = (
        t.to(device) for t in (xtr, ytr.long(), xva, yva.long(), xte, yte.long())
    )

    def acc(x: Tensor, y: Tensor) -> float:
        with torch.no_grad():
            return float((clf(x).argmax(1) == y).float().mean())

    best_loss, best_state, best_epoch, waited = float("inf"), None, 0, 0
    for epoch in range(epochs):
        perm = torch.randperm(xtr.shape[0], generator=g).to(device)
        for i in range(0, xtr.shape[0], batch_size):
            b = perm[i : i + batch_size]
            loss = F.cross_entropy(clf(xtr[b]), ytr[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            val_loss = float(F.cross_entropy(clf(xva), yva))
        if patience is None:  # a fixed number of epochs: keep the last weights
            best_epoch = epoch + 1
        elif val_loss < best_loss:  # early stopping on the validation loss, not its coarse accuracy
            best_loss, best_epoch, waited = val_loss, epoch + 1, 0
            best_state = copy.deepcopy(clf.state_dict())
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        clf.load_state_dict(best_state)
    with torch.no_grad():
        right = (clf(xte).argmax(1) == yte).cpu().tolist()
    return {
        "val_acc": acc(xva, yva),
        "test_acc": sum(right) / len(right),
        "epochs": best_epoch,
        "test_correct": "".join("1" if r else "0" for r in right),
    }


def _cv(
    estimator: Any,
    x: Tensor,
    y: Tensor,
    folds: int,
    seed: int,
    grid: dict[str, list[Any]],
    standardize: bool = True,
) -> dict[str, Any]:
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _labels_ok(y)
    xn, yn = x.float().numpy(), y.numpy()
    min_count = int(np.bincount(yn).min(initial=0) if yn.size else 0)
    folds = min(folds, max(2, int(np.bincount(yn)[np.bincount(yn) > 0].min())))
    if min_count == 0 and folds < 2:
        raise DataError("cross-validation needs at least 2 examples of every class")
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    inner = StratifiedKFold(n_splits=min(5, folds), shuffle=True, random_state=seed)
    steps = [StandardScaler(), estimator] if standardize else [estimator]
    model = make_pipeline(*steps)
    if all(len(v) == 1 for v in grid.values()):  # nothing to pick: no inner search
        model.set_params(**{k: v[0] for k, v in grid.items()})
    else:
        model = GridSearchCV(model, grid, cv=inner, n_jobs=1)
    scores = cross_val_score(model, xn, yn, cv=outer, n_jobs=1)
    # the outer folds depend on the labels and the seed only, so two encoders probed with the
    # same seed are scored on the same folds: fold_acc pairs them (paired_gain)
    return {
        "acc": float(scores.mean()),
        "std": float(scores.std()),
        "folds": folds,
        "fold_acc": [float(a) for a in scores],
    }


def paired_gain(probe: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any] | None:
    r"""The gain of ``probe`` over ``baseline`` (two :func:`run_probe` results with the same
    seed, so the same folds or the same test split), compared pairwise; ``None`` where the
    protocol keeps nothing to pair (kNN, link prediction).

    - Cross-validated protocols (``fold_acc``), fold by fold: ``t`` is the paired t statistic
      with Nadeau and Bengio's correction for k-fold cross-validation (Machine Learning 52,
      2003): the folds' training sets overlap, so the variance of the mean difference is
      :math:`(1/k + 1/(k-1))\,s^2` rather than :math:`s^2/k`. ``p`` is its one-sided p-value
      (Student's t, :math:`k-1` degrees of freedom) for "the gain is positive".
    - A given test split (``test_correct``), example by example: the exact McNemar test.
      ``better`` counts the examples only ``probe`` got right, ``worse`` those only
      ``baseline`` got right; ``p`` is the one-sided binomial p-value of ``better`` among
      ``better + worse`` discordant examples at one half.
    """
    from scipy.stats import binom
    from scipy.stats import t as student_t

    for protocol, res in probe.items():
        base = baseline.get(protocol)
        if not isinstance(res, dict) or not isinstance(base, dict):
            continue
        a, b = res.get("fold_acc"), base.get("fold_acc")
        if a and b and len(a) == len(b) >= 2:
            d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
            k = len(d)
            var = d.var(ddof=1) * (1.0 / k + 1.0 / (k - 1))
            if var > 0:
                t = float(d.mean() / np.sqrt(var))
            else:  # every fold gained the same: certain, or no difference at all
                t = float(np.sign(d.mean()) * np.inf) if d.mean() != 0 else 0.0
            return {
                "metric": f"{protocol}.acc",
                "test": "corrected paired t",
                "gain": float(d.mean()),
                "fold_gains": d.tolist(),
                "folds_better": int((d > 0).sum()),
                "folds": k,
                "t": t,
                "p": float(student_t.sf(t, k - 1)),
            }
        a, b = res.get("test_correct"), base.get("test_correct")
        if a and b and len(a) == len(b):
            better = sum(x == "1" and y == "0" for x, y in zip(a, b, strict=True))
            worse = sum(x == "0" and y == "1" for x, y in zip(a, b, strict=True))
            n = better + worse
            return {
                "metric": f"{protocol}.test_acc",
                "test": "exact McNemar",
                "gain": (better - worse) / len(a),
                "better": better,
                "worse": worse,
                "examples": len(a),
                "p": float(binom.sf(better - 1, n, 0.5)) if n else 0.5,
            }
    return None


NEWTON_MAX_DIM = 2048  # features up to which logreg_cv uses Newton's method


def logreg_cv(
    x: Tensor,
    y: Tensor,
    *,
    folds: int = 10,
    seed: int = 0,
    cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
) -> dict[str, Any]:
    """SentEval-style logistic regression on standardised features: ``folds``-fold CV with an
    inner 5-fold search over the inverse regularisation ``cs`` (one value: no inner search)."""
    from sklearn.linear_model import LogisticRegression

    # The same convex problem either way. For two classes (MR, SUBJ, SST-2), Newton steps on the
    # (D x D) Hessian reach the optimum in a few iterations where lbfgs needs hundreds on
    # real, ill-conditioned embeddings (MR: 0.03 s against 2.1 s a fit). TF-IDF's D is too wide
    # for a Hessian, and the multinomial Hessian (DK x DK) makes Newton slower than lbfgs.
    binary = int(torch.unique(y).numel()) <= 2
    solver = "newton-cholesky" if binary and x.shape[1] <= NEWTON_MAX_DIM else "lbfgs"
    return _cv(
        LogisticRegression(max_iter=2000, solver=solver),
        x,
        y,
        folds,
        seed,
        {"logisticregression__C": [float(c) for c in cs]},
    )


def svm_cv(
    x: Tensor,
    y: Tensor,
    *,
    folds: int = 10,
    seed: int = 0,
    kernel: str = "rbf",
    standardize: bool = False,
) -> dict[str, Any]:
    """Graph-classification protocol of InfoGraph and GraphCL's released code: an SVM (RBF
    kernel, ``gamma="scale"``) on the raw embeddings, C in 1e-3..1e3 picked by an inner 5-fold
    search, accuracy over an outer ``folds``-fold CV. ``kernel="linear"`` and
    ``standardize=True`` give a linear SVM on standardised features instead (much slower to fit
    at large C on PROTEINS: tens of minutes against seconds)."""
    from sklearn.svm import SVC

    grid = {"svc__C": [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]}
    return _cv(SVC(kernel=kernel), x, y, folds, seed, grid, standardize)


@torch.no_grad()
def link_prediction(method: nn.Module, probe: ProbeData, device: Any = "cpu") -> dict[str, float]:
    r"""Link prediction of VGAE (Kipf & Welling 2016, https://arxiv.org/abs/1611.07308).

    For every split (``val``, ``test``) of ``(graph, edge_label)``, ``method.embed(graph)`` gives
    node embeddings ``z`` ``(N, D)`` from the training edges only, and each held-out pair
    ``(u, v)`` of ``graph.edge_label_index`` ``(2, E)`` is scored by
    :math:`\sigma(z_u^\top z_v)`, against ``edge_label`` ``(E,)`` (1: edge, 0: non-edge). Any
    node-level method works. The ranking metrics are computed on the logits :math:`z_u^\top z_v`:
    the sigmoid is monotone, so AUC and AP are the same, without float32 saturating to ties.

    Returns:
        ``{"<split>_auc", "<split>_ap"}`` for every split (ROC AUC, average precision).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    was_training = method.training
    method.eval()
    out: dict[str, float] = {}
    try:
        for split, batches in probe.splits.items():
            scores, labels = [], []
            for inputs, y in batches:
                graph = to_device(inputs, device)
                z = method.embed(graph).float()  # (N, D)
                u, v = graph.edge_label_index  # (E,), (E,)
                scores.append((z[u] * z[v]).sum(-1).cpu())  # (E,) logits of sigmoid(z_u . z_v)
                labels.append(torch.as_tensor(y).cpu())
            s, t = torch.cat(scores).numpy(), torch.cat(labels).numpy()
            if len(np.unique(t)) != 2:
                raise DataError(f"link split {split!r} needs both edges and non-edges")
            out[f"{split}_auc"] = float(roc_auc_score(t, s))
            out[f"{split}_ap"] = float(average_precision_score(t, s))
    finally:
        method.train(was_training)
    return out


def run_probe(
    method: nn.Module,
    probe: ProbeData,
    protocol: str | None = None,
    *,
    device: Any = "cpu",
    seed: int = 0,
    knn_k: int = 200,
) -> dict[str, dict[str, float]]:
    """Extract frozen features and score them with ``protocol`` (default: the data's own).

    Returns ``{protocol: {metric: value}}``, e.g. ``{"linear": {"val_acc": .8, "test_acc": .82}}``.
    """
    protocol = protocol or probe.protocol
    if protocol not in PROTOCOLS:
        raise ValueError(
            f"unknown probe protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)} or none"
        )
    opts = probe.options.get(protocol, {})
    if (protocol == "link") != (probe.protocol == "link"):
        raise DataError(
            "the link probe needs held-out edges: load the graph with task='link' "
            "(--data-opt task=link)"
            if protocol == "link"
            else f"this data was loaded for link prediction: its only probe is 'link', not {protocol!r}"
        )
    if protocol == "link":
        return {"link": link_prediction(method, probe, device=device, **opts)}
    cv = protocol in ("logreg-cv", "svm-cv")
    if not cv and not {"train", "test"} <= probe.split_names:
        raise DataError(
            f"the {protocol} probe needs 'train' and 'test' splits, got {sorted(probe.split_names)}"
        )
    feats = extract_features(method, probe, device)
    if cv:
        x, y = torch.cat([f[0] for f in feats.values()]), torch.cat([f[1] for f in feats.values()])
        fn = logreg_cv if protocol == "logreg-cv" else svm_cv
        return {protocol: fn(x, y, seed=seed, **opts)}
    if protocol == "knn":
        return {"knn": {"top1": knn_top1(*feats["train"], *feats["test"], **{"k": knn_k, **opts})}}
    return {"linear": _linear_with_grid(feats, device=device, seed=seed, **opts)}


def _linear_with_grid(
    feats: dict[str, tuple[Tensor, Tensor]],
    *,
    grid: dict[str, list[Any]] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """The linear probe; with ``grid``, every combination is trained and the one with the best
    validation accuracy is reported (its settings included), so the test split picks nothing."""
    combos: list[dict[str, Any]] = [{}]
    for key, values in (grid or {}).items():
        combos = [{**c, key: v} for c in combos for v in values]
    best: dict[str, float] | None = None
    for combo in combos:
        res = linear_probe(feats["train"], feats["test"], feats.get("val"), **{**kwargs, **combo})
        res.update({k: float(v) for k, v in combo.items()})
        if best is None or res["val_acc"] > best["val_acc"]:
            best = res
    assert best is not None
    return best
