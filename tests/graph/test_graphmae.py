"""GraphMAE: masks, re-masking, the scaled cosine error, smoke training, embeddings."""

from __future__ import annotations

import torch
from torch_geometric.nn import GATConv

from mmssl.core import registry
from mmssl.core.objectives import scaled_cosine_error
from mmssl.graph.data import load
from mmssl.graph.encoders import GAT
from mmssl.graph.methods.graphmae import GATDecoder, GraphMAE


def test_registered_with_paper_defaults() -> None:
    cls = registry.get("graph", "graphmae")
    assert cls is GraphMAE and cls.family == "generative" and cls.kind == "auto-encoding"
    assert cls.defaults["lr"] == 1e-3 and cls.defaults["weight_decay"] == 2e-4


def test_masks_are_seeded_and_sized() -> None:
    data = load("karate", None)
    graph = data.train[0]
    method = GraphMAE.build(data, hidden_dim=32, heads=4, seed=3)
    assert isinstance(method.encoder, GAT)
    _, corrupted, masked, token = method.augment(graph)
    assert int(masked.sum()) == 17  # round(0.5 * 34)
    assert bool((token <= masked).all())  # the token only ever replaces masked nodes
    assert torch.equal(corrupted.x[token], torch.zeros_like(corrupted.x[token]))
    assert torch.equal(corrupted.x[~masked], graph.x[~masked])
    again = GraphMAE.build(data, hidden_dim=32, heads=4, seed=3).augment(graph)[2]
    other = GraphMAE.build(data, hidden_dim=32, heads=4, seed=4).augment(graph)[2]
    assert torch.equal(masked, again) and not torch.equal(masked, other)


def test_loss_is_sce_on_masked_nodes_with_remasking() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = GraphMAE.build(data, hidden_dim=32, heads=4, dropout=0.0, attn_dropout=0.0, seed=0)
    with torch.no_grad():
        method.mask_token.normal_()
    batch = method.augment(data.train[0])
    graph, corrupted, masked, token = batch
    x_in = corrupted.x.clone()
    x_in[token] = method.mask_token.expand(int(token.sum()), -1)
    inputs = corrupted.clone()
    inputs.x = x_in
    rep = method.encoder_to_decoder(method.encoder(inputs))
    rep[masked] = 0.0
    recon = method.decoder(rep, graph.edge_index)
    expected = scaled_cosine_error(recon[masked], graph.x[masked], alpha=3.0)
    assert torch.allclose(method(batch)["loss"], expected, atol=1e-6)


def test_smoke_karate_loss_decreases() -> None:
    data = load("karate", None)
    torch.manual_seed(0)
    method = GraphMAE.build(data, hidden_dim=64, heads=4, seed=0)
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        with torch.no_grad():
            batch = method.augment(data.train[0])
        loss = method(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert method.mask_token.grad is not None
    method.eval()
    assert method.embed(data.train[0]).shape == (34, 64)


def test_decoder_equals_pyg_gatconv() -> None:
    graph = load("karate", None).train[0]
    torch.manual_seed(0)
    ours, ref = GATDecoder(16, 34).eval(), GATConv(16, 34, heads=1).eval()
    with torch.no_grad():
        ref.lin.weight.copy_(ours.lin.weight)
        ref.att_src.copy_(ours.att_src.view(1, 1, -1))
        ref.att_dst.copy_(ours.att_dst.view(1, 1, -1))
        ours.bias.normal_()
        ref.bias.copy_(ours.bias)
    h = torch.randn(34, 16)
    expected = ref(h, graph.edge_index)  # (N, F)
    assert torch.allclose(ours(h, graph.edge_index), expected, atol=1e-5)
    rows = torch.arange(34) % 3 == 0
    assert torch.allclose(ours(h, graph.edge_index, rows), expected[rows], atol=1e-5)


def test_attention_dropout_is_its_own_setting() -> None:
    """The paper's Cora run drops 20% of every layer's input but 10% of the attention."""
    graph = load("karate", None).train[0]
    method = GraphMAE.build(load("karate", None), hidden_dim=32, heads=4)
    assert [c.dropout for c in method.encoder.convs] == [0.1, 0.1]
    assert method.decoder.dropout == 0.2 and method.decoder.attn_dropout == 0.1
    # only the attention dropout on: two training passes differ, switched off they agree
    torch.manual_seed(0)
    for attn, differ in ((0.5, True), (0.0, False)):
        enc = GAT(34, 32, 2, 4, "prelu", 0.0, attn_dropout=attn).train()
        dec = GATDecoder(32, 34, 0.0, attn_dropout=attn).train()
        assert (not torch.equal(enc(graph), enc(graph))) is differ
        h = torch.randn(34, 32)
        assert (not torch.equal(dec(h, graph.edge_index), dec(h, graph.edge_index))) is differ
