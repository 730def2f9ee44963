"""The graph modality: data loaders, GNN encoders, augmentations and methods (DGI, GRACE-style)."""

from mmssl.graph.augment import (
    GraphViews,
    SeededGenerators,
    drop_edges,
    drop_nodes,
    mask_features,
    ppr_diffusion,
    rwr_subgraph,
    rwr_subgraphs,
    shuffle_features,
)
from mmssl.graph.data import degree_features, load, read_edge_list, stratified_masks
from mmssl.graph.encoders import (
    GAT,
    GCN,
    GIN,
    GraphSAGE,
    Readout,
    build_encoder,
    make_activation,
    readout,
)
from mmssl.graph.methods import DGI, GCC, GPTGNN, GraphTwoView

__all__ = [
    "DGI",
    "GAT",
    "GCC",
    "GCN",
    "GIN",
    "GPTGNN",
    "GraphSAGE",
    "GraphTwoView",
    "GraphViews",
    "Readout",
    "SeededGenerators",
    "build_encoder",
    "degree_features",
    "drop_edges",
    "drop_nodes",
    "load",
    "make_activation",
    "mask_features",
    "ppr_diffusion",
    "read_edge_list",
    "readout",
    "rwr_subgraph",
    "rwr_subgraphs",
    "shuffle_features",
    "stratified_masks",
]
