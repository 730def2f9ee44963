"""Vision methods; importing this package registers them."""

from mmssl.vision.methods.simclr import SimCLR, projection_head
from mmssl.vision.methods.two_view import TwoView, augment_for

__all__ = ["SimCLR", "TwoView", "augment_for", "projection_head"]
