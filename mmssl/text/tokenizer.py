"""Tokenizers trained from scratch on the pretraining text, saved and loaded the Hugging Face way.

WordPiece is BERT's tokenizer (Wu et al. 2016, https://arxiv.org/abs/1609.08144; Devlin et al.
2019, https://arxiv.org/abs/1810.04805); byte-level BPE is GPT-2's / RoBERTa's. Both are trained
with the ``tokenizers`` library and wrapped as a :class:`~transformers.PreTrainedTokenizerFast`,
so ``save_pretrained(folder)`` writes a folder that ``AutoTokenizer.from_pretrained`` reads.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from pathlib import Path

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

from mmssl.core.data import DataError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)  # ids 0..4, so [PAD] is BertConfig's pad_token_id 0
HUB_HOST = "huggingface.co"


def _wrap(tok: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    """Add BERT's ``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]`` template and wrap for transformers."""
    cls_id, sep_id = tok.token_to_id(CLS), tok.token_to_id(SEP)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLS}:0 $A:0 {SEP}:0",
        pair=f"{CLS}:0 $A:0 {SEP}:0 $B:1 {SEP}:1",
        special_tokens=[(CLS, cls_id), (SEP, sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=UNK,
        pad_token=PAD,
        cls_token=CLS,
        sep_token=SEP,
        mask_token=MASK,
        model_max_length=model_max_length,
    )


def train_wordpiece(
    texts: Iterable[str],
    vocab_size: int = 8000,
    min_frequency: int = 2,
    lowercase: bool = True,
    *,
    model_max_length: int = 512,
) -> PreTrainedTokenizerFast:
    """Train a BERT WordPiece tokenizer on ``texts``.

    BERT's normaliser (clean-up, CJK spacing, optional lowercasing and accent stripping) and
    pre-tokeniser (split on whitespace and punctuation); special tokens ``[PAD] [UNK] [CLS] [SEP]
    [MASK]`` get ids 0 to 4; encoding adds ``[CLS] x [SEP]`` (and ``[CLS] a [SEP] b [SEP]``).

    Args:
        texts: the training text, any iterable of strings (read once).
        vocab_size: the final vocabulary size, special tokens and alphabet included.
        min_frequency: a pair must occur this often to be merged.
        lowercase: lowercase and strip accents (BERT-uncased).
        model_max_length: the length ``tokenizer(..., truncation=True)`` cuts to.
    """
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size must exceed {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}"
        )
    tok = Tokenizer(models.WordPiece(unk_token=UNK))
    tok.normalizer = normalizers.BertNormalizer(
        lowercase=lowercase, strip_accents=lowercase or None
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise DataError("tokenizer training text is empty; give a corpus with some words")
    # The trainer breaks frequency ties in hash order, so ids (and a few tokens at the size
    # cut-off) differ from run to run; mmssl.text.data caches the tokenizer per corpus. WordPiece
    # splits by longest match over the token set alone, so renumber it: specials, then sorted.
    rest = sorted(t for t in tok.get_vocab() if t not in SPECIAL_TOKENS)
    ordered = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *rest])}
    tok.model = models.WordPiece(ordered, unk_token=UNK)
    return _wrap(tok, model_max_length)


def train_bpe(
    texts: Iterable[str],
    vocab_size: int = 8000,
    min_frequency: int = 2,
    lowercase: bool = False,
    *,
    model_max_length: int = 512,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (GPT-2 / RoBERTa style) with BERT's special tokens.

    Every byte is in the alphabet, so no text is ever ``[UNK]``. Same special tokens, ids and
    ``[CLS] x [SEP]`` template as :func:`train_wordpiece`, so the two are interchangeable.
    """
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size must exceed {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}"
        )
    tok = Tokenizer(models.BPE(unk_token=UNK))
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return _wrap(tok, model_max_length)


def hub_online(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub can be reached (False at once under ``HF_HUB_OFFLINE=1``)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "") or os.environ.get(
        "HF_DATASETS_OFFLINE", "0"
    ) not in ("0", ""):
        return False
    try:
        socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def load_tokenizer(name_or_path: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved with ``save_pretrained`` (a folder), or any Hub tokenizer by name.

    Raises :class:`DataError` (one line) when the folder is not a tokenizer, or the name is
    not cached and the Hub is unreachable, or the tokenizer has no ``[MASK]``/pad token.
    """
    from transformers import AutoTokenizer

    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "tokenizer.json").is_file():
            raise DataError(
                f"tokenizer {path}: no tokenizer.json there; save one with tokenizer.save_pretrained({str(path)!r})"
            )
        tok = PreTrainedTokenizerFast.from_pretrained(str(path))
    else:
        try:
            tok = AutoTokenizer.from_pretrained(
                str(name_or_path), local_files_only=not hub_online()
            )
        except (OSError, ValueError) as e:
            raise DataError(
                f"tokenizer {name_or_path!r}: not a folder and not loadable from the Hub cache "
                f"(offline?) ({type(e).__name__}); pass a folder written by save_pretrained"
            ) from None
    if tok.mask_token_id is None or tok.pad_token_id is None:
        raise DataError(
            f"tokenizer {name_or_path!r} has no mask or pad token; masked language modelling needs both"
        )
    return unpadded(tok)


def unpadded(tok: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """``tok`` with no padding or truncation left on its Rust backend, returned.

    A call such as ``tok(texts, padding=True, truncation=True)`` leaves both set on the
    backend, ``save_pretrained`` writes them into ``tokenizer.json``, and a later
    ``backend_tokenizer.encode_batch`` (the packing path) would then pad every sentence with
    ``[PAD]`` ids. The wrapper's own calls set what they need each time, so clearing is safe."""
    tok.backend_tokenizer.no_padding()
    tok.backend_tokenizer.no_truncation()
    return tok
