"""The graph modality: data loaders, GNN encoders, augmentations and methods (DGI, GRACE-style)."""

from mmssl.graph.augment import (
    GraphViews,
    SeededGenerators,
    drop_edges,
    mask_features,
    shuffle_features,
)
from mmssl.graph.data import degree_features, load, read_edge_list, stratified_masks
from mmssl.graph.encoders import GCN, GIN, make_activation, readout
from mmssl.graph.methods import DGI, GraphTwoView

__all__ = [
    "DGI",
    "GCN",
    "GIN",
    "GraphTwoView",
    "GraphViews",
    "SeededGenerators",
    "degree_features",
    "drop_edges",
    "load",
    "make_activation",
    "mask_features",
    "read_edge_list",
    "readout",
    "shuffle_features",
    "stratified_masks",
]
