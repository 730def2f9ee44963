"""Text methods; importing this package registers them with :mod:`mmssl.core.registry`."""

from mmssl.text.methods.clm import CLM
from mmssl.text.methods.electra import ELECTRA
from mmssl.text.methods.infoword import InfoWord
from mmssl.text.methods.mlm import MLM, MLMHead
from mmssl.text.methods.nsp import NSP
from mmssl.text.methods.plm import PLM
from mmssl.text.methods.simcse import SimCSE
from mmssl.text.methods.sop import SOP
from mmssl.text.methods.two_view import TextTwoView, TokenViews

__all__ = ["MLM", "MLMHead", "TextTwoView", "TokenViews"]
__all__ += ["CLM", "ELECTRA", "InfoWord", "NSP", "PLM", "SOP", "SimCSE"]
