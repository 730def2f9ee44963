"""The modality-independent core: objectives, the Method contract, trainer, evaluation."""

from mmssl.core.data import DataBundle, DataError, ProbeData
from mmssl.core.method import Method, TwoViewMethod
from mmssl.core.registry import available, get, register

__all__ = [
    "DataBundle",
    "DataError",
    "Method",
    "ProbeData",
    "TwoViewMethod",
    "available",
    "get",
    "register",
]
