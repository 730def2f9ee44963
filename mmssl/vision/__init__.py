"""Images: data, batched on-device augmentation, encoders and the vision methods."""

from mmssl.vision.augment import Normalize, SimCLRAugment
from mmssl.vision.data import load
from mmssl.vision.encoders import SmallResNet, build_encoder, resnet18_cifar, resnet50_cifar

__all__ = [
    "Normalize",
    "SimCLRAugment",
    "SmallResNet",
    "build_encoder",
    "load",
    "resnet18_cifar",
    "resnet50_cifar",
]
