"""mmssl: self-supervised learning for images, text and graphs.

Each objective is written once in :mod:`mmssl.core.objectives` and reused by every modality.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
