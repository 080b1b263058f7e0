"""Finding, reading and type-checking the YAML presets shipped with relic-rl.

``agents/<algo>.yaml`` holds hyperparameters keyed by env id, ``envs/<family>.yaml`` env
construction and preprocessing. Every problem with a preset raises :class:`PresetError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

import relic_rl
from relic_rl.errors import UserError

PresetKind = Literal["agents", "envs"]
PRESET_KINDS: tuple[str, ...] = ("agents", "envs")

T = TypeVar("T")


class PresetError(UserError):
    """A preset or config file (or a mapping built from one) is missing, malformed or invalid."""


def presets_dir(kind: PresetKind) -> Path:
    """The ``kind`` preset folder: the wheel's ``relic_rl/_presets/<kind>``, else a checkout's ``<kind>/``."""
    if kind not in PRESET_KINDS:
        raise PresetError(f"Unknown preset kind {kind!r}; expected one of {list(PRESET_KINDS)}.")
    package_dir = Path(relic_rl.__file__).resolve().parent
    candidates = (package_dir / "_presets" / kind, package_dir.parent / kind)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    tried = " and ".join(str(c) for c in candidates)
    raise PresetError(
        f"Cannot find the {kind!r} preset folder: looked in {tried}. In a source checkout the folder "
        f"`{kind}/` must sit next to `relic_rl/`; in an installed package it is shipped as "
        f"`relic_rl/_presets/{kind}`. Reinstall relic-rl (pip install --force-reinstall relic-rl) "
        "or run from a complete checkout."
    )


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping with string keys (an empty file gives ``{}``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PresetError(f"{path}: file not found.") from None
    except OSError as e:
        raise PresetError(f"{path}: cannot read the file ({e.strerror or e}).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PresetError(
            f"{path}: invalid YAML{where}: {problem}. Check the indentation and quoting there."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PresetError(
            f"{path}: the top level must be a mapping of `key: value` lines, but it is a "
            f"{type(data).__name__} ({short_repr(data)})."
        )
    if bad_keys := [k for k in data if not isinstance(k, str)]:
        raise PresetError(f"{path}: top-level keys must be strings, got {bad_keys!r}.")
    return data


def dataclass_from_dict(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """Build the dataclass ``cls`` from a mapping (``where`` in messages), converting values by annotation.

    ``int`` also takes integral floats and numeric strings (PyYAML reads ``1e6`` as a string), ``float``
    numeric strings; ``bool`` and ``str`` must be exactly that; lists become the annotated tuple or
    list; unions take ``None`` or the first member that fits; nested dataclasses are converted too.
    Unknown or missing keys, wrong types and the dataclass's own ValueError/TypeError raise PresetError.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"dataclass_from_dict expects a dataclass type, got {cls!r}.")
    if not isinstance(data, Mapping):
        raise PresetError(
            f"{where}: expected a mapping of `key: value` entries for {cls.__name__}, "
            f"got {type(data).__name__} ({short_repr(data)})."
        )
    fields = [f for f in dataclasses.fields(cls) if f.init]
    check_keys(data, [f.name for f in fields], where, cls.__name__)
    missing = [f.name for f in fields if f.name not in data and f.default is f.default_factory is MISSING]
    if missing:
        raise PresetError(f"{where}: missing required key(s) {', '.join(missing)} for {cls.__name__}.")
    try:
        hints = typing.get_type_hints(cls)
    except Exception as e:  # pragma: no cover - a broken annotation is a programming error
        raise TypeError(f"Cannot resolve the annotations of {cls.__name__}: {e}") from e
    kwargs = {name: _convert(value, hints.get(name, Any), f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # PresetError is a ValueError
        raise PresetError(f"{where}: {e}") from None


def check_keys(data: Mapping[str, Any], valid: Sequence[str], where: str, what: str) -> None:
    """PresetError naming the keys of ``data`` that are not in ``valid``, and listing ``valid``."""
    if unknown := [k for k in data if k not in valid]:
        listing = ", ".join(repr(k) for k in unknown)
        raise PresetError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {listing} for {what}. "
            f"Valid keys: {', '.join(valid)}."
        )


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def _mismatch(value: Any, annotation: Any, key: str, hint: str = "") -> PresetError:
    extra = f" {hint}" if hint else ""
    return PresetError(
        f"{key}: expected {_type_name(annotation)}, got {short_repr(value)} ({type(value).__name__}).{extra}"
    )


def as_number(value: Any) -> float | None:
    """``value`` as a float if it is an int, a float or a numeric string; else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value.strip())
    return None


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """``value`` checked against ``annotation`` and converted (see :func:`dataclass_from_dict`)."""
    if annotation is Any or annotation is object:
        return value
    origin = typing.get_origin(annotation) or annotation  # a bare `list` or `dict` is its own origin
    args = typing.get_args(annotation)
    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        members = [m for m in args if m is not type(None)]
        for member in members:
            try:
                return _convert(value, member, key)
            except PresetError:
                if len(members) == 1:  # Optional[X]: X's own message is the most precise one
                    raise
        raise _mismatch(value, annotation, key)
    if origin is Literal:
        if any(value == allowed and type(value) is type(allowed) for allowed in args):
            return value
        raise PresetError(
            f"{key}: expected one of {', '.join(repr(a) for a in args)}, got {short_repr(value)}."
        )
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _mismatch(value, annotation, key, "Write it as a YAML list, e.g. [1, 2].")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise PresetError(
                    f"{key}: expected a list of {len(args)} items ({_type_name(annotation)}), "
                    f"got {len(value)} items: {short_repr(value)}."
                )
            return tuple(
                _convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        item_type = args[0] if args else Any
        items = [_convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _mismatch(value, annotation, key, "Write it as a YAML mapping of `key: value` lines.")
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        return {
            _convert(k, key_type, f"{key} (key {k!r})"): _convert(v, value_type, f"{key}.{k}")
            for k, v in value.items()
        }
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return dataclass_from_dict(annotation, value, key)
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = as_number(value)
        if number is not None and math.isfinite(number) and number.is_integer():
            return int(number)
    elif annotation is float:
        number = as_number(value)
        if number is not None:
            return number
    elif annotation is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif isinstance(annotation, type):  # bool, str, None and other classes: exactly that type
        if isinstance(value, annotation):
            return value
    else:  # annotations this helper does not know (TypeVars, Callables...) are passed through
        return value
    raise _mismatch(value, annotation, key, _HINTS.get(annotation, ""))


#: What to add to a type mismatch's message, by annotation.
_HINTS: dict[Any, str] = {bool: "Use true or false (unquoted).", str: "Quote it if it is meant as text."}
