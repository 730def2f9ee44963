"""Graph self-supervised methods; importing this package registers them."""

from mmssl.graph.methods.argva import ARGVA
from mmssl.graph.methods.bgrl import BGRL
from mmssl.graph.methods.dgi import DGI
from mmssl.graph.methods.gae import GAE, VGAE
from mmssl.graph.methods.gcc import GCC
from mmssl.graph.methods.gptgnn import GPTGNN
from mmssl.graph.methods.grace import GRACE
from mmssl.graph.methods.graphcl import GraphCL
from mmssl.graph.methods.graphmae import GraphMAE
from mmssl.graph.methods.infograph import InfoGraph
from mmssl.graph.methods.mvgrl import MVGRL
from mmssl.graph.methods.two_view import GraphTwoView

__all__ = [
    "ARGVA",
    "BGRL",
    "DGI",
    "GAE",
    "GCC",
    "GPTGNN",
    "GRACE",
    "GraphCL",
    "GraphMAE",
    "GraphTwoView",
    "InfoGraph",
    "MVGRL",
    "VGAE",
]
