"""Text: tokenizers, corpora, BERT encoders and the text methods (MLM, two-view).

With no dataset name, :func:`load` reads the offline default corpus that ships with Python
(``pydoc_data.topics``, the language reference's help texts).
"""

from mmssl.text.data import Corpus, load, read_corpus, read_text
from mmssl.text.encoders import SIZES, TextEncoder, bert, mean_pool
from mmssl.text.methods import MLM, MLMHead, TextTwoView, TokenViews
from mmssl.text.tokenizer import SPECIAL_TOKENS, load_tokenizer, train_bpe, train_wordpiece

__all__ = [
    "MLM",
    "SIZES",
    "SPECIAL_TOKENS",
    "Corpus",
    "MLMHead",
    "TextEncoder",
    "TextTwoView",
    "TokenViews",
    "bert",
    "load",
    "load_tokenizer",
    "mean_pool",
    "read_corpus",
    "read_text",
    "train_bpe",
    "train_wordpiece",
]
