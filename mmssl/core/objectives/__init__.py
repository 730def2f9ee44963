"""Every objective of the toolkit, written once and shared by all modalities."""

from mmssl.core.objectives.contrastive import info_nce, nt_xent
from mmssl.core.objectives.masked import (
    IGNORE_INDEX,
    mask_tokens,
    masked_cross_entropy,
    masked_mse,
    random_mask,
    scaled_cosine_error,
)
from mmssl.core.objectives.mutual_info import (
    BilinearDiscriminator,
    DotDiscriminator,
    donsker_varadhan_loss,
    jensen_shannon_loss,
    nce_loss,
)

__all__ = [
    "IGNORE_INDEX",
    "BilinearDiscriminator",
    "DotDiscriminator",
    "donsker_varadhan_loss",
    "info_nce",
    "jensen_shannon_loss",
    "mask_tokens",
    "masked_cross_entropy",
    "masked_mse",
    "nce_loss",
    "nt_xent",
    "random_mask",
    "scaled_cosine_error",
]
