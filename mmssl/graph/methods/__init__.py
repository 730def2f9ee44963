"""Graph self-supervised methods; importing this package registers them."""

from mmssl.graph.methods.dgi import DGI
from mmssl.graph.methods.two_view import GraphTwoView

__all__ = ["DGI", "GraphTwoView"]
