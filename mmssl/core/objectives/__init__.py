"""Every objective of the toolkit, written once and shared by all modalities."""

from mmssl.core.objectives.autoregressive import CPCPredictor, cpc_loss, next_token_loss
from mmssl.core.objectives.clustering import kmeans, sinkhorn_knopp, swav_loss
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
from mmssl.core.objectives.pretext import (
    all_rotations,
    hamming_permutations,
    pretext_loss,
    rotate_batch,
    rotation_targets,
    shuffle_tiles,
)
from mmssl.core.objectives.redundancy import barlow_twins_loss, vicreg_loss, vicreg_terms
from mmssl.core.objectives.self_distillation import DINOLoss, byol_loss, negative_cosine
from mmssl.core.objectives.variational import (
    bernoulli_log_likelihood,
    discretized_logistic_log_likelihood,
    gaussian_elbo,
    gaussian_elbo_terms,
    gaussian_kl,
    gaussian_log_likelihood,
    reparameterize,
)

__all__ = [
    "IGNORE_INDEX",
    "BilinearDiscriminator",
    "CPCPredictor",
    "DINOLoss",
    "DotDiscriminator",
    "all_rotations",
    "barlow_twins_loss",
    "bernoulli_log_likelihood",
    "byol_loss",
    "cpc_loss",
    "discretized_logistic_log_likelihood",
    "donsker_varadhan_loss",
    "gaussian_elbo",
    "gaussian_elbo_terms",
    "gaussian_kl",
    "gaussian_log_likelihood",
    "hamming_permutations",
    "info_nce",
    "jensen_shannon_loss",
    "kmeans",
    "mask_tokens",
    "masked_cross_entropy",
    "masked_mse",
    "nce_loss",
    "negative_cosine",
    "next_token_loss",
    "nt_xent",
    "pretext_loss",
    "random_mask",
    "reparameterize",
    "rotate_batch",
    "rotation_targets",
    "scaled_cosine_error",
    "shuffle_tiles",
    "sinkhorn_knopp",
    "swav_loss",
    "vicreg_loss",
    "vicreg_terms",
]
