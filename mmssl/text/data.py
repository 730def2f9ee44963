"""Text data: read a corpus, train (or load) a tokenizer, pack pretraining blocks, build the probe.

``load(name, root)`` understands:

- ``None``: the offline default, the Python reference's help texts that ship with Python itself
  (:mod:`pydoc_data.topics`, 79 topics, about 65k words). Probe: which help topic a paragraph
  comes from (topics with at least 20 paragraphs, 22 classes), 10-fold logistic regression.
- ``brown``: the Brown Corpus (``root/nltk_data/corpora/brown``): 500 documents, tags stripped;
  probe: genre of each document (15 classes), logistic regression with CV.
- ``movie-reviews``: ``root/nltk_data/corpora/movie_reviews/{pos,neg}``, 2,000 documents; probe:
  polarity of each review, logistic regression with CV.
- SentEval tasks (``root/senteval/...``, Conneau & Kiela 2018, https://arxiv.org/abs/1803.05449):
  ``mr`` and ``subj`` (10-fold logistic regression), ``trec`` and ``sst2`` (their given splits,
  linear probe).
- a local file: ``.txt`` (blank-line-separated blocks are documents, lines are sentences; no blank
  lines: one sentence per line), ``.jsonl``/``.json``/``.csv``/``.parquet`` (a ``text`` column or
  ``text_column=``; a ``label`` column, or ``label_column=``, becomes a CV probe), or a folder of
  ``.txt`` documents (sub-folder names are labels).
- any other name: a Hugging Face Hub dataset, when the Hub can be reached.

``root`` defaults to ``$MMSSL_DATA``. The pretraining text is the chosen dataset's own text (its
labels are never used); ``corpus="senteval+brown"`` pretrains on MR+SUBJ+TREC+SST2+Brown+movie
reviews instead (any ``+``-joined list of the names above works too), still probing ``name``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from mmssl.core.data import DataBundle, DataError, ProbeData, cache_dir, did_you_mean
from mmssl.text.tokenizer import hub_online, load_tokenizer, train_bpe, train_wordpiece, unpadded

NAMED = {
    "brown": "nltk_data/corpora/brown",
    "movie-reviews": "nltk_data/corpora/movie_reviews",
    "mr": "senteval/MR",
    "subj": "senteval/SUBJ",
    "trec": "senteval/TREC",
    "sst2": "senteval/SST2",
}
MARKER = {
    "brown": "cats.txt",
    "movie-reviews": "pos",
    "mr": "rt-polarity.pos",
    "subj": "subj.objective",
    "trec": "TREC.train",
    "sst2": "stsa.binary.train",
}  # a file that proves the folder is right
MIXES = {"senteval+brown": ("mr", "subj", "trec", "sst2", "brown", "movie-reviews")}
OPTIONS = {
    "corpus",
    "text_column",
    "label_column",
    "heldout_fraction",
    "pack",
    "min_frequency",
    "lowercase",
    "tokenizer_type",
    "probe_chunks",
    "probe_folds",
    "probe_c",
    "split",
    "num_workers",
}
TABLE_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
PYDOC_MIN_PARAGRAPHS, PYDOC_MIN_WORDS = 20, 5
CACHE_MIN_TEXTS = 1000  # smaller corpora are tokenised afresh each time


@dataclass
class Corpus:
    """Raw text: pretraining ``documents`` (lists of sentences) and labelled probe ``splits``.

    ``splits`` maps ``all`` or ``train``/``val``/``test`` to ``(texts, labels)``; ``documents``
    says whether probe texts are whole documents (embedded as chunks) or sentences.
    """

    documents: list[list[str]]
    splits: dict[str, tuple[list[str], list[int]]] = field(default_factory=dict)
    protocol: str = "logreg-cv"
    probe_documents: bool = False


def read_text(path: Path) -> str:
    """Decode a file as UTF-8, else Windows-1252 (the SentEval files' real "latin-1"), else latin-1."""
    raw = path.read_bytes()
    for enc in ("utf-8", "cp1252"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _lines(path: Path) -> list[str]:
    return [s for s in (line.strip() for line in read_text(path).splitlines()) if s]


def _find(root: str | None, name: str) -> Path:
    base = root or os.environ.get("MMSSL_DATA")
    if not base:
        raise DataError(
            f"{name}: no data folder; pass --data-root (the folder holding {NAMED[name]}) or set MMSSL_DATA"
        )
    sub = Path(NAMED[name])
    for cand in (Path(base) / sub, Path(base) / sub.name, Path(base)):
        if (cand / MARKER[name]).exists():
            return cand
    raise DataError(
        f"{name}: {MARKER[name]} not found under {Path(base) / sub}; point --data-root at the folder holding {sub}"
    )


def _sentences(pos: list[str], neg: list[str]) -> Corpus:
    texts, labels = pos + neg, [1] * len(pos) + [0] * len(neg)
    return Corpus([[t] for t in texts], {"all": (texts, labels)})


def _brown(d: Path) -> Corpus:
    cats = dict(line.split()[:2] for line in _lines(d / "cats.txt"))
    genres = sorted(set(cats.values()))
    docs, texts, labels = [], [], []
    for fid, genre in sorted(cats.items()):
        sents = [
            " ".join(tok.rsplit("/", 1)[0] for tok in line.split()) for line in _lines(d / fid)
        ]
        sents = [s.replace("``", '"').replace("''", '"') for s in sents if s]
        docs.append(sents)
        texts.append(" ".join(sents))
        labels.append(genres.index(genre))
    return Corpus(docs, {"all": (texts, labels)}, probe_documents=True)


def _folder(d: Path) -> Corpus:
    """``.txt`` documents (lines = sentences); files inside sub-folders are labelled by the sub-folder."""
    files = sorted(p for p in d.rglob("*.txt") if p.is_file())
    docs = [(p, _lines(p)) for p in files]
    docs = [(p, s) for p, s in docs if s]
    if not docs:
        raise DataError(
            f"text folder {d}: no non-empty .txt files; put one document per .txt file there"
        )
    classes = sorted({p.parent.name for p, _ in docs if p.parent != d})
    splits = {}
    if classes and all(p.parent != d for p, _ in docs):
        splits = {
            "all": ([" ".join(s) for _, s in docs], [classes.index(p.parent.name) for p, _ in docs])
        }
    return Corpus([s for _, s in docs], splits, probe_documents=True)


def _trec(d: Path) -> Corpus:
    parts = {s: [line.split(" ", 1) for line in _lines(d / f"TREC.{s}")] for s in ("train", "test")}
    coarse = sorted({lab.split(":")[0] for rows in parts.values() for lab, _ in rows})
    splits = {
        s: ([t for _, t in rows], [coarse.index(lab.split(":")[0]) for lab, _ in rows])
        for s, rows in parts.items()
    }
    return Corpus([[t] for s in splits.values() for t in s[0]], splits, protocol="linear")


def _sst2(d: Path) -> Corpus:
    splits = {}
    for split, fname in (("train", "train"), ("val", "dev"), ("test", "test")):
        rows = [line.split(" ", 1) for line in _lines(d / f"stsa.binary.{fname}")]
        splits[split] = ([t for _, t in rows], [int(lab) for lab, _ in rows])
    return Corpus([[t] for s in splits.values() for t in s[0]], splits, protocol="linear")


def _pydoc() -> Corpus:
    from pydoc_data.topics import topics

    docs = {
        k: [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
        for k, text in topics.items()
    }
    paras = {k: [p for p in d if len(p.split()) >= PYDOC_MIN_WORDS] for k, d in docs.items()}
    names = [k for k, ps in paras.items() if len(ps) >= PYDOC_MIN_PARAGRAPHS]
    texts = [p for k in names for p in paras[k]]
    labels = [i for i, k in enumerate(names) for _ in paras[k]]
    return Corpus(list(docs.values()), {"all": (texts, labels)})


def _table(rows: Any, what: str, options: dict[str, Any]) -> Corpus:
    col, lab = options.get("text_column", "text"), options.get("label_column", "label")
    if col not in rows.column_names:
        raise DataError(
            f"{what}: no {col!r} column (columns: {', '.join(rows.column_names)}); pass text_column=<name>"
        )
    pairs = [
        (str(t).strip(), i) for i, t in enumerate(rows[col]) if t is not None and str(t).strip()
    ]
    if not pairs:
        raise DataError(f"{what}: the {col!r} column is empty; give rows with text")
    splits = {}
    if lab in rows.column_names:
        raw = [rows[lab][i] for _, i in pairs]
        classes = sorted(set(raw), key=str)
        splits = {"all": ([t for t, _ in pairs], [classes.index(v) for v in raw])}
    return Corpus([[t] for t, _ in pairs], splits)


def _local(path: Path, options: dict[str, Any]) -> Corpus:
    if path.is_dir():
        return _folder(path)
    if path.suffix in TABLE_FORMATS:
        import datasets

        if path.stat().st_size == 0:
            raise DataError(f"text file {path} is empty; give rows with a text column")
        rows = datasets.load_dataset(
            TABLE_FORMATS[path.suffix], data_files=str(path), split="train"
        )
        return _table(rows, f"text file {path}", options)
    blocks = re.split(r"\n[ \t]*\n", read_text(path).replace("\r\n", "\n"))
    docs = [[s.strip() for s in b.splitlines() if s.strip()] for b in blocks]
    docs = [d for d in docs if d]
    if not docs:
        raise DataError(
            f"text file {path} is empty; give one sentence per line or blank-line-separated documents"
        )
    return Corpus(docs if len(docs) > 1 else [[s] for s in docs[0]])


def _hub(name: str, options: dict[str, Any]) -> Corpus:
    known = ", ".join(NAMED)
    hint = did_you_mean(name, [*NAMED, *MIXES])
    if not hub_online():
        raise DataError(
            f"text dataset {name!r}: not {known}, not an existing file, and the Hub is offline; "
            f"{hint}pass a local file"
        )
    import datasets

    try:
        rows = datasets.load_dataset(name, split=options.get("split", "train"))
    except Exception as e:  # noqa: BLE001 - any Hub failure becomes one line
        raise DataError(
            f"text dataset {name!r}: could not load it from the Hub ({type(e).__name__}); {hint}check the name"
        ) from None
    return _table(rows, f"Hub dataset {name}", options)


def read_corpus(name: str | None, root: str | None = None, **options: Any) -> Corpus:
    """The raw :class:`Corpus` for a name, path or Hub dataset (no tokenisation)."""
    if name is None:
        return _pydoc()
    key = name.lower()
    if key in NAMED:
        d = _find(root, key)
        if key == "brown":
            return _brown(d)
        if key == "movie-reviews":
            return _folder(d)
        if key == "mr":
            return _sentences(_lines(d / "rt-polarity.pos"), _lines(d / "rt-polarity.neg"))
        if key == "subj":  # SentEval: objective = 1
            return _sentences(_lines(d / "subj.objective"), _lines(d / "subj.subjective"))
        return _trec(d) if key == "trec" else _sst2(d)
    path = Path(name).expanduser()
    if path.exists():
        return _local(path, options)
    if path.suffix in (".txt", *TABLE_FORMATS) or name.startswith(("/", ".", "~")):
        raise DataError(f"text file or folder {path} does not exist; check the path")
    return _hub(name, options)


class Rows(Dataset):
    """Token-id rows (1-D LongTensors) for a DataLoader."""

    def __init__(self, rows: list[Tensor]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Tensor:
        return self.rows[i]


class Collate:
    """Pad rows to the longest: ``{input_ids, attention_mask, special_tokens_mask}``, each ``(B, T)``."""

    def __init__(self, pad_id: int, special_ids: list[int]) -> None:
        self.pad_id, self.special = pad_id, torch.tensor(special_ids)

    def __call__(self, rows: list[Tensor]) -> dict[str, Tensor]:
        ids = torch.nn.utils.rnn.pad_sequence(
            rows, batch_first=True, padding_value=self.pad_id
        )  # (B, T)
        att = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            att[i, : len(r)] = 1
        return {
            "input_ids": ids,
            "attention_mask": att,
            "special_tokens_mask": torch.isin(ids, self.special),
        }


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        for t in part if isinstance(part, list) else [str(part)]:
            h.update(t.encode("utf-8", "replace") + b"\n")
    return h.hexdigest()[:16]


def _tokenizer(
    texts_hash: str, texts: list[str], vocab_size: int, tokenizer: str | None, opts: dict[str, Any]
) -> Any:
    """Load ``tokenizer``, or train a WordPiece/BPE one on ``texts`` (cached by the corpus hash)."""
    if tokenizer is not None:
        return load_tokenizer(tokenizer)
    kind, min_freq, lower = (
        opts.get("tokenizer_type", "wordpiece"),
        opts.get("min_frequency", 2),
        opts.get("lowercase", True),
    )
    if kind not in ("wordpiece", "bpe"):
        raise ValueError(f"tokenizer_type must be 'wordpiece' or 'bpe', got {kind!r}")
    folder = (
        cache_dir() / "tokenizers" / f"{kind}-{vocab_size}-{_digest(texts_hash, min_freq, lower)}"
    )
    if (folder / "tokenizer.json").exists():
        return load_tokenizer(folder)
    train = {"wordpiece": train_wordpiece, "bpe": train_bpe}[kind]
    tok = train(texts, vocab_size=vocab_size, min_frequency=min_freq, lowercase=lower)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tok.save_pretrained(str(tmp))
    try:
        os.replace(tmp, folder)
    except OSError:  # another process saved it first
        shutil.rmtree(tmp, ignore_errors=True)
    return tok


def _ids(tok: Any, texts: list[str]) -> list[list[int]]:
    """Token ids without special tokens, straight from the Rust tokenizer (no length warnings),
    neither padded nor cut (an earlier padded call leaves both set on the backend)."""
    backend = unpadded(tok).backend_tokenizer
    return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]


def _token_ids(tok: Any, texts: list[str], key: str) -> tuple[Tensor, Tensor]:
    """Every sentence's ids, flat ``(N,)``, and the sentence lengths; cached by ``key`` when large."""
    path = cache_dir() / "text-ids" / f"{key}.pt"
    if path.exists():
        return torch.load(path)
    ids = _ids(tok, texts)
    out = (
        torch.tensor([t for x in ids for t in x], dtype=torch.long),
        torch.tensor([len(x) for x in ids]),
    )
    if len(texts) > CACHE_MIN_TEXTS:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        torch.save(out, tmp)
        os.replace(tmp, path)
    return out


def _rows(
    flat: Tensor,
    lengths: Tensor,
    doc_sizes: list[int],
    order: list[int],
    *,
    cls: int,
    sep: int,
    max_length: int,
    pack: bool,
) -> list[Tensor]:
    """Pack the documents, in ``order``, into ``[CLS] ... [SEP]`` blocks of ``max_length`` tokens
    (a ``[SEP]`` ends each document), or with ``pack=False`` make one ``[CLS] sentence [SEP]`` row
    per sentence, truncated. Shuffling the documents first keeps a file's label order (MR lists
    all positive sentences first) out of the blocks."""
    sents = flat.split(lengths.tolist())
    starts = [0, *itertools.accumulate(doc_sizes)]
    docs = [sents[starts[i] : starts[i + 1]] for i in range(len(doc_sizes))]
    cls_t, sep_t = torch.tensor([cls]), torch.tensor([sep])
    if not pack:
        return [
            torch.cat([cls_t, x[: max_length - 2], sep_t]) for i in order for x in docs[i] if len(x)
        ]
    stream = torch.cat([t for i in order for t in (*docs[i], sep_t)])
    body = max_length - 2
    return [torch.cat([cls_t, stream[j : j + body], sep_t]) for j in range(0, len(stream), body)]


def _encode(
    tok: Any, texts: list[str], max_length: int, documents: bool, chunks: int
) -> dict[str, Tensor]:
    if not documents:
        enc = tok(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    body = max_length - 2
    ids = torch.full((len(texts), chunks, max_length), tok.pad_token_id)  # (B, C, T)
    for b, x in enumerate(_ids(tok, texts)):
        for c, j in enumerate(range(0, max(1, min(len(x), chunks * body)), body)):  # >= 1 chunk
            piece = [tok.cls_token_id, *x[j : j + body], tok.sep_token_id]
            ids[b, c, : len(piece)] = torch.tensor(piece)
    att = (ids != tok.pad_token_id).long()
    return {"input_ids": ids, "attention_mask": att}


def _probe(
    tok: Any,
    corpus: Corpus,
    batch_size: int,
    max_length: int,
    chunks: int,
    probe_options: dict[str, dict[str, Any]],
) -> ProbeData | None:
    if not corpus.splits:
        return None
    bs = max(1, batch_size // chunks) if corpus.probe_documents else batch_size
    splits = {}
    for split, (texts, labels) in corpus.splits.items():
        y = torch.tensor(labels)
        splits[split] = [
            (
                _encode(tok, texts[i : i + bs], max_length, corpus.probe_documents, chunks),
                y[i : i + bs],
            )
            for i in range(0, len(texts), bs)
        ]
    return ProbeData(splits=splits, protocol=corpus.protocol, options=probe_options)


def load(
    name: str | None,
    root: str | None,
    *,
    batch_size: int = 128,
    seed: int = 0,
    max_length: int = 64,
    vocab_size: int = 8000,
    tokenizer: str | None = None,
    **options: Any,
) -> DataBundle:
    """Load a text dataset for pretraining and probing (see the module docstring for names).

    Args:
        name: dataset name, local file or folder, Hub name, or ``None`` for the offline default.
        root: folder holding ``senteval/`` and ``nltk_data/`` (default ``$MMSSL_DATA``).
        batch_size: rows per training and probe batch.
        seed: shuffling and the held-out split.
        max_length: tokens per row (``[CLS]`` and ``[SEP]`` included).
        vocab_size: WordPiece vocabulary trained on the pretraining text.
        tokenizer: a saved tokenizer folder or Hub name to use instead of training one.
        options: ``corpus`` (``"senteval+brown"`` or ``+``-joined names), ``pack`` (True: packed
            blocks; False: one sentence per row), ``heldout_fraction`` (0.02), ``min_frequency``,
            ``lowercase``, ``tokenizer_type`` (``wordpiece``/``bpe``), ``probe_chunks`` (8
            chunks per probe document), ``probe_folds`` (10) and ``probe_c`` (one inverse
            regularisation, or a list searched by inner CV; default 0.01..10) of the
            ``logreg-cv`` probe, ``text_column``, ``label_column``, ``split``, ``num_workers``.

    Returns:
        :class:`DataBundle` whose ``train`` yields ``{input_ids, attention_mask,
        special_tokens_mask}`` (``(B, T)``; masking happens in the method), ``probe`` holds
        ``(inputs, labels)`` batches, and ``info`` has ``vocab_size``, ``pad_token_id``,
        ``mask_token_id``, ``cls_token_id``, ``sep_token_id``, ``special_token_ids``,
        ``tokenizer``, ``max_length``, ``heldout`` (batches for masked-token accuracy) and
        ``heldout_majority_acc`` (accuracy of always guessing the most frequent training token).
    """
    unknown = set(options) - OPTIONS
    if unknown:
        raise ValueError(
            f"unknown text data option(s) {sorted(unknown)}: choose from {sorted(OPTIONS)}"
        )
    if max_length < 3:
        raise ValueError(f"max_length must be at least 3 ([CLS] token [SEP]), got {max_length}")
    corpus = read_corpus(name, root, **options)
    docs = corpus.documents
    mix = options.get("corpus")
    if mix:
        names = MIXES.get(mix, tuple(mix.split("+")))
        docs = [d for n in names for d in read_corpus(n, root, **options).documents]
    texts = [s for d in docs for s in d]
    if not texts:
        raise DataError(f"text dataset {name}: no text to pretrain on; give non-empty documents")
    texts_hash = _digest(texts)
    tok = _tokenizer(texts_hash, texts, vocab_size, tokenizer, options)
    flat, lengths = _token_ids(tok, texts, _digest(texts_hash, tok.backend_tokenizer.to_str()))
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(docs), generator=g).tolist()
    rows = _rows(
        flat,
        lengths,
        [len(d) for d in docs],
        order,
        cls=tok.cls_token_id,
        sep=tok.sep_token_id,
        max_length=max_length,
        pack=options.get("pack", True),
    )
    perm = torch.randperm(len(rows), generator=g).tolist()
    frac = options.get("heldout_fraction", 0.02)
    n_held = max(1, round(frac * len(rows))) if frac > 0 and len(rows) >= 2 else 0
    held, train = [rows[i] for i in perm[:n_held]], [rows[i] for i in perm[n_held:]]
    special = sorted(set(tok.all_special_ids))
    collate = Collate(tok.pad_token_id, special)
    loader = DataLoader(
        Rows(train),
        batch_size=batch_size,
        shuffle=True,
        generator=g,
        collate_fn=collate,
        num_workers=options.get("num_workers", 0),
    )
    heldout = [collate(held[i : i + batch_size]) for i in range(0, len(held), batch_size)]
    counts = torch.bincount(torch.cat(train), minlength=len(tok))
    counts[special] = 0
    top = int(counts.argmax())
    held_ids = torch.cat(held) if held else torch.empty(0, dtype=torch.long)
    held_ids = held_ids[~torch.isin(held_ids, torch.tensor(special))]
    info = {
        "vocab_size": len(tok),
        "pad_token_id": tok.pad_token_id,
        "mask_token_id": tok.mask_token_id,
        "cls_token_id": tok.cls_token_id,
        "sep_token_id": tok.sep_token_id,
        "special_token_ids": special,
        "tokenizer": tok,
        "max_length": max_length,
        "heldout": heldout,
        "heldout_majority_acc": float((held_ids == top).float().mean())
        if held_ids.numel()
        else 0.0,
        "num_train_rows": len(train),
        "num_train_tokens": int(sum(len(r) for r in train)),
    }
    cv: dict[str, Any] = {}
    if "probe_folds" in options:
        cv["folds"] = int(options["probe_folds"])
    if "probe_c" in options:  # one value or several (searched by inner CV)
        c = options["probe_c"]
        cv["cs"] = [float(v) for v in (c if isinstance(c, (list, tuple)) else [c])]
    probe_options = {"logreg-cv": cv} if cv else {}
    probe = _probe(
        tok, corpus, batch_size, max_length, options.get("probe_chunks", 8), probe_options
    )
    return DataBundle(name=name or "pydoc", modality="text", train=loader, probe=probe, info=info)
