"""Text methods; importing this package registers them with :mod:`mmssl.core.registry`."""

from mmssl.text.methods.mlm import MLM, MLMHead
from mmssl.text.methods.two_view import TextTwoView, TokenViews

__all__ = ["MLM", "MLMHead", "TextTwoView", "TokenViews"]
