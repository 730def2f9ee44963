"""Vision methods; importing this package registers them."""

from mmssl.vision.methods.amdim import AMDIM
from mmssl.vision.methods.barlowtwins import BarlowTwins
from mmssl.vision.methods.bigan import BiGAN, JointDiscriminator
from mmssl.vision.methods.byol import BYOL, byol_views
from mmssl.vision.methods.cmc import CMC
from mmssl.vision.methods.cpc import CPC
from mmssl.vision.methods.dae import DAE
from mmssl.vision.methods.deepcluster import DeepCluster
from mmssl.vision.methods.dim import DIM
from mmssl.vision.methods.dino import DINO, DINOHead
from mmssl.vision.methods.heads import mlp_head
from mmssl.vision.methods.infomax import EmbeddingHead
from mmssl.vision.methods.instdisc import InstDisc
from mmssl.vision.methods.jigsaw import Jigsaw
from mmssl.vision.methods.mae import MAE
from mmssl.vision.methods.mocov1 import MoCo
from mmssl.vision.methods.mocov2 import MoCoV2
from mmssl.vision.methods.mocov3 import MoCoV3
from mmssl.vision.methods.pirl import PIRL
from mmssl.vision.methods.pixelcnn import PixelCNN
from mmssl.vision.methods.rotation import RotNet, crop_flip_for
from mmssl.vision.methods.simclr import SimCLR, projection_head
from mmssl.vision.methods.simclrv2 import SimCLRv2
from mmssl.vision.methods.simsiam import SimSiam
from mmssl.vision.methods.swav import SwAV, multicrop_for
from mmssl.vision.methods.two_view import TwoView, augment_for
from mmssl.vision.methods.vae import VAE
from mmssl.vision.methods.vicreg import VICReg

__all__ = [
    "AMDIM",
    "BYOL",
    "BarlowTwins",
    "BiGAN",
    "CMC",
    "CPC",
    "DAE",
    "DIM",
    "DINO",
    "DINOHead",
    "DeepCluster",
    "EmbeddingHead",
    "InstDisc",
    "Jigsaw",
    "JointDiscriminator",
    "MAE",
    "MoCo",
    "MoCoV2",
    "MoCoV3",
    "PIRL",
    "PixelCNN",
    "RotNet",
    "SimCLR",
    "SimCLRv2",
    "SimSiam",
    "SwAV",
    "TwoView",
    "VAE",
    "VICReg",
    "augment_for",
    "byol_views",
    "crop_flip_for",
    "mlp_head",
    "multicrop_for",
    "projection_head",
]
