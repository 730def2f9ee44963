"""Name -> method class, per modality, for the CLI, ``mmssl list`` and the benchmark."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from mmssl.core.method import FAMILIES, Method

MODALITIES = ("vision", "text", "graph")
_REGISTRY: dict[str, dict[str, type[Method]]] = {m: {} for m in MODALITIES}
M = TypeVar("M", bound=type[Method])


def register(name: str, modality: str | None = None) -> Callable[[M], M]:
    """Class decorator: make a :class:`Method` available to the CLI as ``name``.

    The class must define ``family``, ``kind`` and ``modality`` (or pass ``modality`` here) and
    a classmethod ``build(cls, data, **options) -> Method`` that assembles the paper's default
    parts for a :class:`~mmssl.core.data.DataBundle`.
    """

    def wrap(cls: M) -> M:
        mod = modality or cls.modality
        if mod not in MODALITIES:
            raise ValueError(
                f"register({name!r}): modality must be one of {MODALITIES}, got {mod!r}"
            )
        if cls.family not in FAMILIES:
            raise ValueError(f"register({name!r}): family must be one of {FAMILIES}")
        if not cls.kind:
            raise ValueError(f"register({name!r}): set the class attribute `kind`")
        if not hasattr(cls, "build"):
            raise ValueError(
                f"register({name!r}): define a classmethod build(cls, data, **options)"
            )
        cls.modality = mod
        _REGISTRY[mod][name] = cls
        return cls

    return wrap


def _load(modality: str) -> None:
    # Importing a modality's methods package registers its methods (explicit, not at mmssl import).
    importlib.import_module(f"mmssl.{modality}.methods")


def available(modality: str | None = None) -> dict[str, dict[str, type[Method]]]:
    """All registered methods, ``{modality: {name: class}}``."""
    mods = MODALITIES if modality is None else (modality,)
    for mod in mods:
        _load(mod)
    return {mod: dict(sorted(_REGISTRY[mod].items())) for mod in mods}


def primary_names(modality: str) -> list[str]:
    """One name per method class, sorted: a class registered under several names (stacked
    ``@register`` decorators, e.g. ``moco`` over ``mocov1``) keeps its outermost one."""
    _load(modality)
    outer = {cls: name for name, cls in _REGISTRY[modality].items()}  # the last registered wins
    return sorted(outer.values())


def get(modality: str, name: str) -> type[Method]:
    """The method class registered as ``name`` for ``modality``; a ValueError suggests the closest."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}: choose one of {', '.join(MODALITIES)}")
    methods = available(modality)[modality]
    if name not in methods:
        close = difflib.get_close_matches(name, list(methods), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"unknown {modality} method {name!r}: {hint}see `mmssl list` ({', '.join(methods)})"
        )
    return methods[name]


def resolve_callable(obj: Any, what: str = "objective") -> Callable[..., Any]:
    """A callable, or a ``"package.module:name"`` string naming one (how the CLI passes a user's
    own objective: ``--method-opt objective=mylosses:align_uniform``)."""
    if callable(obj):
        return obj
    if isinstance(obj, str) and ":" in obj:
        module, _, attr = obj.partition(":")
        try:
            found = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(
                f"{what} {obj!r} cannot be imported ({err}); give 'module:function' on PYTHONPATH"
            ) from err
        if callable(found):
            return found
    raise ValueError(f"{what} must be a callable or a 'module:function' string, got {obj!r}")
