"""Finding, reading and type-checking the YAML presets shipped with relic-rl.

Two folders of YAML presets travel with the package:

* ``agents/``: hyperparameters per algorithm, keyed by env id (``agents/ppo.yaml``);
* ``envs/``: env construction and preprocessing per env family (``envs/carracing.yaml``).

In a source checkout they sit at the repository root next to ``relic_rl/``; in an
installed wheel they are shipped inside the package as ``relic_rl/_presets/<kind>``
(see ``[tool.hatch.build.targets.wheel.force-include]`` in ``pyproject.toml``).
:func:`presets_dir` finds whichever exists.

The helpers here are deliberately generic so that every preset reader shares them:
:func:`load_yaml` reads one file into a mapping, and :func:`dataclass_from_dict`
turns a mapping into a (frozen) dataclass, rejecting unknown keys and values of the
wrong type with one-paragraph messages. Every problem with a preset raises
:class:`PresetError`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
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
    """Return the folder that holds the ``kind`` presets.

    Looks first inside the installed package (``relic_rl/_presets/<kind>``, where the
    wheel puts them) and then next to the package in a source checkout
    (``<repo>/<kind>``).

    :param kind: ``"agents"`` or ``"envs"``.
    :return: the existing folder.
    :raises PresetError: if ``kind`` is unknown or neither folder exists.
    """
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
    """Read a YAML file whose top level is a mapping.

    :param path: the file to read.
    :return: the mapping (an empty file gives ``{}``).
    :raises PresetError: if the file does not exist, is not valid YAML, or its top level
        is not a mapping with string keys.
    """
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
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PresetError(
            f"{path}: invalid YAML{where}: {problem}. Check the indentation and quoting there."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PresetError(
            f"{path}: the top level must be a mapping of `key: value` lines, but it is a "
            f"{type(data).__name__} ({_short_repr(data)})."
        )
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise PresetError(f"{path}: top-level keys must be strings, got {bad_keys!r}.")
    return data


def dataclass_from_dict(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """Build the dataclass ``cls`` from a mapping, checking keys and value types.

    Keys must be field names of ``cls`` (fields with ``init=False`` excluded); an unknown
    key raises an error that lists the valid keys, and a field without a default must
    be present. Each value is checked against the field's annotation and converted
    where YAML cannot express the type directly:

    * ``int``: an int (not a bool), or a float or numeric string with an integral value
      (PyYAML reads ``1e6`` as the string ``"1e6"``, YAML 1.1 needs ``1.0e6``);
    * ``float``: an int, a float or a numeric string such as ``"3e-4"``; returned as float;
    * ``bool``, ``str``: exactly that type (``"true"`` is not a bool);
    * ``pathlib.Path``: a string;
    * ``tuple[X, ...]`` / ``tuple[X, Y]`` / ``list[X]``: a YAML list (converted to the
      annotated container, so frozen dataclasses get hashable tuples);
    * ``dict[K, V]`` / ``Mapping[K, V]``: a YAML mapping (copied);
    * ``X | None`` / ``Optional[X]`` / ``Union[...]``: ``None`` or the first member that fits;
    * ``Literal[...]``: one of the listed values;
    * a nested dataclass: a YAML mapping, converted recursively (``where`` grows as
      ``where.key``);
    * ``Any`` and ``object``: anything.

    Errors raised by the dataclass itself (``__post_init__`` validation raising
    ``ValueError`` or ``TypeError``) are re-raised as :class:`PresetError` prefixed with
    ``where``.

    :param cls: the dataclass type to build.
    :param data: the mapping to read, e.g. from :func:`load_yaml`.
    :param where: where the mapping came from, for messages (``"envs/atari.yaml"``).
    :return: an instance of ``cls``.
    :raises PresetError: on unknown or missing keys, values of the wrong type, or when
        the dataclass rejects the values.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"dataclass_from_dict expects a dataclass type, got {cls!r}.")
    if not isinstance(data, Mapping):
        raise PresetError(
            f"{where}: expected a mapping of `key: value` entries for {cls.__name__}, "
            f"got {type(data).__name__} ({_short_repr(data)})."
        )
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    unknown = [k for k in data if k not in names]
    if unknown:
        listing = ", ".join(repr(k) for k in unknown)
        raise PresetError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {listing} for {cls.__name__}. "
            f"Valid keys: {', '.join(names)}."
        )
    missing = [
        f.name
        for f in fields
        if f.name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise PresetError(f"{where}: missing required key(s) {', '.join(missing)} for {cls.__name__}.")
    try:
        hints = typing.get_type_hints(cls)
    except Exception as e:  # pragma: no cover - a broken annotation is a programming error
        raise TypeError(f"Cannot resolve the annotations of {cls.__name__}: {e}") from e
    kwargs = {name: _convert(value, hints.get(name, Any), f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except PresetError as e:
        raise PresetError(f"{where}: {e}") from None
    except (ValueError, TypeError) as e:
        raise PresetError(f"{where}: {e}") from None


def _short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(annotation: Any) -> str:
    """A readable name for a type annotation (``int``, ``tuple[int, int] | None``...)."""
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def _mismatch(value: Any, annotation: Any, key: str, hint: str = "") -> PresetError:
    """The error for ``value`` not fitting ``annotation`` at ``key``."""
    extra = f" {hint}" if hint else ""
    return PresetError(
        f"{key}: expected {_type_name(annotation)}, got {_short_repr(value)} ({type(value).__name__}).{extra}"
    )


def as_number(value: Any) -> float | None:
    """``value`` as a float if it is an int, a float or a numeric string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against ``annotation`` and convert it (see :func:`dataclass_from_dict`)."""
    if annotation is Any or annotation is object:
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)

    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        members = [m for m in args if m is not type(None)]
        if len(members) == 1:
            # Optional[X]: X's own message is the most precise one (e.g. a list of the wrong length).
            return _convert(value, members[0], key)
        for member in members:
            try:
                return _convert(value, member, key)
            except PresetError:
                continue
        raise _mismatch(value, annotation, key)

    if origin is Literal:
        for allowed in args:
            if value == allowed and type(value) is type(allowed):
                return value
        raise PresetError(
            f"{key}: expected one of {', '.join(repr(a) for a in args)}, got {_short_repr(value)}."
        )

    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _mismatch(value, annotation, key, "Write it as a YAML list, e.g. [1, 2].")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise PresetError(
                    f"{key}: expected a list of {len(args)} items ({_type_name(annotation)}), "
                    f"got {len(value)} items: {_short_repr(value)}."
                )
            return tuple(
                _convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        item_type = args[0] if args else Any
        items = [_convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items

    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _mismatch(value, annotation, key, "Write it as a YAML mapping of `key: value` lines.")
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        return {
            _convert(k, key_type, f"{key} (key {k!r})"): _convert(v, value_type, f"{key}.{k}")
            for k, v in value.items()
        }

    if annotation in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _mismatch(value, annotation, key, "Write it as a YAML list.")
        return annotation(value)

    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return dataclass_from_dict(annotation, value, key)

    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _mismatch(value, annotation, key, "Use true or false (unquoted).")

    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = as_number(value)
        if number is not None and math.isfinite(number) and number.is_integer():
            return int(number)
        raise _mismatch(value, annotation, key)

    if annotation is float:
        number = as_number(value)
        if number is not None:
            return number
        raise _mismatch(value, annotation, key)

    if annotation is str:
        if isinstance(value, str):
            return value
        raise _mismatch(value, annotation, key, "Quote it if it is meant as text.")

    if annotation is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise _mismatch(value, annotation, key)

    if annotation is type(None):
        if value is None:
            return None
        raise _mismatch(value, annotation, key)

    if isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        raise _mismatch(value, annotation, key)

    # Annotations this helper does not know (TypeVars, Callables...) are passed through.
    return value
