"""The ablation grid: ``--grid KEY=V1,V2`` specs, their values, and the cells they expand into.

``KEY=VALUES`` splits on ``;`` only when ``VALUES`` contains one (``augmentation=shift,intensity;crop(36)``
is two specs), otherwise on commas outside brackets (``augmentation=shift,crop(36,4)`` is two values,
``critic_hidden_dims=[256,256],[512]`` two lists). Each value is YAML, as in ``relic_rl.train
--hyperparams`` (``0.1``, ``true``, ``[256]``, ``shift``); numeric strings YAML 1.1 leaves as strings
(``1e-3``) are floats.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from relic_rl.config import ReLICConfig
from relic_rl.errors import UserError

__all__ = [
    "AUX_KEY",
    "BASELINE_VARIANT",
    "CURL_UNUSED",
    "CURL_VARIANT",
    "KL_KEY",
    "RELIC_FIELDS",
    "RESERVED_KEYS",
    "Cell",
    "GridError",
    "assemble_grid",
    "expand_cells",
    "format_value",
    "normalize_value",
    "parse_grid_specs",
    "same_value",
    "split_values",
    "to_yaml_text",
]

KL_KEY = "kl_weight"
AUX_KEY = "aux"
BASELINE_VARIANT = "baseline (no aux)"
CURL_VARIANT = "curl"
#: ReLIC config fields that can be swept (``enabled`` and ``objective`` are ``--aux``'s job).
RELIC_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(ReLICConfig) if f.name not in ("enabled", "objective")
)
#: ReLIC fields that CURL does not read: CURL cells carry only the other axes.
CURL_UNUSED: frozenset[str] = frozenset({"kl_weight", "temperature", "divergence", "normalize"})
_RELIC_TYPES = typing.get_type_hints(ReLICConfig)
#: Keys that are not grid axes, and what to use instead.
RESERVED_KEYS: dict[str, str] = {
    "seed": "use --seeds",
    "aux": "use --baseline for the no-aux variant, or --aux relic curl none",
    "enabled": "use --baseline for the no-aux variant",
    "objective": "use --aux relic curl none",
    **dict.fromkeys(("env", "env_id"), "use --env (one env per ablation)"),
    **dict.fromkeys(("total_timesteps", "n_timesteps"), "use --total-timesteps (one budget per ablation)"),
}
_OPENING, _CLOSING = "([{", ")]}"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._=+-]+")
# float() also accepts "nan", "infinity" and "1_000"; only plain decimal/scientific numbers count.
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")
#: ``aux`` -> (prefix of the cell name, of the variant name); ReLIC cells have neither.
_PREFIXES = {"none": ("baseline", BASELINE_VARIANT), "curl": ("curl", CURL_VARIANT)}


class GridError(UserError):
    """A grid that cannot be run: malformed, empty, repeated or contradictory values."""


def split_values(text: str) -> list[str]:
    """Split the ``VALUES`` of ``KEY=VALUES`` (rules in the module docstring) into stripped strings;
    GridError on unbalanced brackets or an empty value (a stray separator)."""
    separator = ";" if ";" in text else ","
    items: list[str] = []
    depth, start = 0, 0
    for i, char in enumerate(text):
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth -= 1
            if depth < 0:
                raise GridError(f"unbalanced brackets in {text!r}: {char!r} at position {i} closes nothing")
        elif char == separator and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise GridError(f"unbalanced brackets in {text!r}: a bracket is never closed")
    items.append(text[start:])
    values = [item.strip() for item in items]
    if not all(values):
        raise GridError(f"empty value in {text!r} (check for a stray {separator!r})")
    return values


def normalize_value(key: str, value: Any) -> Any:
    """Coerce ``value`` (as YAML read it) to the type grid key ``key`` expects: ``1`` -> ``1.0`` for
    float ReLIC fields, numeric strings (``1e-3``) -> float, tuples -> lists."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str):
        return float(value) if _NUMBER.fullmatch(value) and math.isfinite(float(value)) else value
    if _RELIC_TYPES.get(key) is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def parse_value(key: str, text: str) -> Any:
    """Read one value as YAML and normalise it (:func:`normalize_value`)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise GridError(f"{key}: cannot read the value {text!r} as YAML ({problem})") from None
    return normalize_value(key, value)


def to_yaml_text(value: Any) -> str:
    """One-line YAML for ``value`` that :func:`yaml.safe_load` reads back as ``value``."""
    return yaml.safe_dump(value, default_flow_style=True, width=math.inf).strip().removesuffix("...").strip()


def format_value(value: Any) -> str:
    """``value`` as written in variant names: ``1.0``, ``shift,intensity``, ``[256, 256]``."""
    if isinstance(value, str):
        return value
    return repr(value) if isinstance(value, float) else to_yaml_text(value)


def same_value(a: Any, b: Any) -> bool:
    """Whether two values as YAML reads them are the same (``true`` is not ``1``)."""
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def _check_distinct(what: str, values: Sequence[Any]) -> None:
    for i, value in enumerate(values):
        if any(same_value(value, earlier) for earlier in values[:i]):
            raise GridError(
                f"{what} repeats the value {format_value(value)} ({[format_value(v) for v in values]}); "
                "each value may appear once."
            )


def parse_grid_specs(specs: Sequence[str]) -> dict[str, list[Any]]:
    """Parse ``--grid`` specs into ``{key: [values]}`` in order; ``relic.<field>`` aliases ``<field>``.
    GridError on a malformed spec, a key given twice, an empty or repeated value, or a reserved key
    (``seed``, ``aux``, ...); the others are checked by :func:`relic_rl.ablation.plan.make_plan`."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        key = key.strip()
        key = key.removeprefix("relic.") if key.removeprefix("relic.") in RELIC_FIELDS else key
        if not sep or not key:
            raise GridError(f"--grid {spec!r} is not of the form KEY=V1,V2 (e.g. temperature=0.1,0.5).")
        if key in RESERVED_KEYS:
            raise GridError(f"--grid {spec!r}: {key!r} cannot be a grid axis; {RESERVED_KEYS[key]}.")
        if key in grid:
            raise GridError(f"--grid gives {key!r} twice; list all its values in one KEY=V1,V2 spec.")
        if not text.strip():
            raise GridError(f"--grid {spec!r} has no values; write {key}=V1,V2.")
        try:
            values = [parse_value(key, item) for item in split_values(text)]
        except GridError as err:
            raise GridError(f"--grid {spec!r}: {err}.") from None
        _check_distinct(f"--grid {key}", values)
        grid[key] = values
    return grid


def assemble_grid(
    kl_weights: Sequence[float] | None, grid: Mapping[str, list[Any]], preset_kl_weight: float | None
) -> dict[str, list[Any]]:
    """The full grid: the KL axis (``kl_weights``, else ``[preset_kl_weight, 0]``) first, then ``grid``;
    GridError on contradictory or repeated KL values."""
    if KL_KEY in grid:
        if kl_weights is not None:
            raise GridError(
                f"--kl-weights and --grid {KL_KEY}=... both set the KL axis; give the values in one of them."
            )
        return dict(grid)
    if kl_weights is not None:
        values = [float(w) for w in kl_weights]
        _check_distinct("--kl-weights", values)
    elif preset_kl_weight is None:
        raise GridError("the preset kl_weight is unknown; pass --kl-weights explicitly.")
    elif float(preset_kl_weight) == 0.0:
        raise GridError(
            "the preset kl_weight is 0, so the default KL axis (preset value and 0) has one value; "
            "pass --kl-weights explicitly, e.g. --kl-weights 1 0."
        )
    else:
        values = [float(preset_kl_weight), 0.0]
    return {KL_KEY: values, **grid}


@dataclass(frozen=True)
class Cell:
    """One training run of the ablation: a variant (a point of the grid) and a seed. ``name``: its
    folder under ``OUT/runs/`` (safe, unique); ``variant``: display name (``"kl_weight=1.0,
    temperature=0.5"``); ``params``: the grid values plus ``aux`` (``relic``, ``curl`` or ``none``)."""

    name: str
    variant: str
    params: dict[str, Any]
    seed: int

    @property
    def is_baseline(self) -> bool:
        return self.params.get(AUX_KEY) == "none"

    @property
    def aux(self) -> str:
        """``"relic"``, ``"curl"`` or ``"none"`` (the ``--aux`` of its run)."""
        return str(self.params.get(AUX_KEY, "relic"))

    @property
    def grid_params(self) -> dict[str, Any]:
        """``params`` without ``aux``."""
        return {k: v for k, v in self.params.items() if k != AUX_KEY}

    def to_yaml(self) -> dict[str, Any]:
        """The ``cell.yaml`` mapping read by :mod:`relic_rl.report`."""
        return {"variant": self.variant, "params": dict(self.params), "seed": self.seed}


def _name_part(key: str, value: Any) -> str:
    raw = f"{key}={format_value(value)}"
    safe = _SAFE_NAME.sub("-", raw).strip("-")[:60]
    if safe != raw:  # something was replaced or cut: keep names unique with a digest of the original
        safe = f"{safe}-{hashlib.sha1(raw.encode()).hexdigest()[:6]}"
    return safe


def expand_cells(
    grid: Mapping[str, list[Any]],
    seeds: Sequence[int],
    baseline: bool,
    relic: bool = True,
    curl: bool = False,
) -> list[Cell]:
    """All cells, seed-major, so that an ablation stopped early has complete comparisons for its first
    seeds. The baseline has one variant per combination of the non-ReLIC axes, CURL one per combination
    of the axes it reads (not :data:`CURL_UNUSED`); without ``relic`` ``grid`` may be empty (one
    variant). GridError on an empty grid or repeated seeds."""
    if (relic and not grid) or any(not values for values in grid.values()):
        raise GridError("the grid is empty: every axis needs at least one value.")
    if not (relic or baseline or curl):
        raise GridError("no variants: the grid has neither ReLIC variants nor the baseline nor CURL.")
    if not relic:
        read = set(RELIC_FIELDS) - CURL_UNUSED if curl else set()
        unread = [k for k in grid if k in RELIC_FIELDS and k not in read]
        if unread:
            unaffected = "CURL or the no-aux baseline" if curl else "the no-aux baseline"
            raise GridError(
                f"the ReLIC field(s) {', '.join(unread)} cannot be axes of a grid without ReLIC variants "
                f"(they do not affect {unaffected}); remove them or add the ReLIC variants."
            )
    if not seeds:
        raise GridError("no seeds: pass --seeds, e.g. --seeds 0 1 2.")
    _check_distinct("--seeds", list(seeds))
    variants: list[tuple[dict[str, Any], str]] = []
    for aux, wanted, axes in (
        ("relic", relic, list(grid)),
        ("curl", curl, [k for k in grid if k not in CURL_UNUSED]),
        ("none", baseline, [k for k in grid if k not in RELIC_FIELDS]),
    ):
        if wanted:
            points = itertools.product(*(grid[k] for k in axes))
            variants += [(dict(zip(axes, point, strict=True)), aux) for point in points]
    cells: list[Cell] = []
    for seed in seeds:
        for params, aux in variants:
            name_prefix, variant_prefix = _PREFIXES.get(aux, ("", ""))
            parts = [name_prefix, *(_name_part(k, v) for k, v in params.items()), f"seed={seed}"]
            words = [variant_prefix, *(f"{k}={format_value(v)}" for k, v in params.items())]
            name, variant = "__".join(filter(None, parts)), ", ".join(filter(None, words))
            cells.append(Cell(name, variant, {**params, AUX_KEY: aux}, seed))
    names = [c.name for c in cells]
    if len(set(names)) != len(names):  # values written alike ('true' and true) or a digest collision
        raise GridError(
            f"two cells would share a folder name: {sorted(n for n in names if names.count(n) > 1)}"
        )
    return cells
