"""Env family presets (``envs/*.yaml``, schema in ``envs/README.md``): which wrappers an env id gets."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relic_rl.presets import PresetError, dataclass_from_dict, load_yaml, presets_dir

DEFAULT_FAMILY = "default"
#: What AtariWrapper does itself, with the values that leave it to AtariWrapper.
_ATARI_WRAPPER_DOES: dict[str, Any] = {"frame_skip": 1, "resize": None, "grayscale": False}


@dataclass(frozen=True)
class EnvPreset:
    """How to build and preprocess the envs of one family (one ``envs/<family>.yaml``).

    Applied innermost first (see :mod:`relic_rl.environments.factory`): Monitor -> ``atari_wrapper`` ->
    ``frame_skip`` -> ``resize`` -> ``grayscale``; ``frame_stack`` on the vectorised env.

    :param family: must equal the YAML file's stem.
    :param match: case-sensitive ``fnmatch`` patterns of env ids without a ``module:`` prefix.
    :param description: one line for summaries.
    :param frame_skip: repeat each action this many times, summing rewards; 1 with ``atari_wrapper``.
    :param resize: ``[height, width]`` to resize image observations to, or ``None``.
    :param grayscale: convert RGB observations to one gray channel (channel axis kept).
    :param frame_stack: consecutive observations stacked along the channel axis (1: none).
    :param atari_wrapper: apply SB3's ``AtariWrapper`` (noop reset, episodic life, fire reset and reward
        clipping; it also skips, resizes and grays itself).
    :param atari_wrapper_kwargs: keyword arguments for ``AtariWrapper``.
    :param env_kwargs: default ``gym.make`` keyword arguments; the user's override them key by key.
    """

    family: str
    match: tuple[str, ...]
    description: str = ""
    frame_skip: int = 1
    resize: tuple[int, int] | None = None
    grayscale: bool = False
    frame_stack: int = 1
    atari_wrapper: bool = False
    atari_wrapper_kwargs: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.family:
            raise PresetError("`family` must be a non-empty name.")
        if not self.match or not all(isinstance(p, str) and p for p in self.match):
            raise PresetError(
                f"family {self.family!r}: `match` must be a non-empty list of glob patterns, "
                f"got {list(self.match)!r}."
            )
        for name in ("frame_skip", "frame_stack"):
            if (value := getattr(self, name)) < 1:
                raise PresetError(f"family {self.family!r}: `{name}` must be >= 1, got {value}.")
        if self.resize is not None and min(self.resize) < 1:
            raise PresetError(
                f"family {self.family!r}: `resize` must be [height, width] with positive sizes, "
                f"got {list(self.resize)}."
            )
        if self.atari_wrapper:
            # Doing AtariWrapper's own preprocessing twice would silently change it.
            if doubled := [name for name, off in _ATARI_WRAPPER_DOES.items() if getattr(self, name) != off]:
                raise PresetError(
                    f"family {self.family!r}: `atari_wrapper: true` already does frame skipping, "
                    f"resizing and grayscale, so {', '.join(doubled)} must be left at "
                    "frame_skip: 1, resize: null, grayscale: false (set AtariWrapper's own "
                    "options in `atari_wrapper_kwargs` instead)."
                )
        elif self.atari_wrapper_kwargs:
            raise PresetError(
                f"family {self.family!r}: `atari_wrapper_kwargs` is set but `atari_wrapper` is false."
            )

    def matches(self, env_id: str) -> bool:
        """Whether ``env_id`` (with or without a ``module:`` prefix) belongs to this family."""
        return any(fnmatch.fnmatchcase(strip_module(env_id), pattern) for pattern in self.match)


def strip_module(env_id: str) -> str:
    """``"pkg.mod:MyEnv-v0"`` -> ``"MyEnv-v0"`` (gymnasium's ``module:EnvId`` syntax); else unchanged."""
    return env_id.split(":", 1)[-1]


def load_env_presets(directory: str | Path | None = None) -> dict[str, EnvPreset]:
    """Every ``*.yaml`` in ``directory`` (None: the shipped ``envs`` folder) by family, in file-name order.

    :raises PresetError: on a malformed file, a ``family`` other than the file name, or no ``default.yaml``.
    """
    folder = Path(directory) if directory is not None else presets_dir("envs")
    if not folder.is_dir():
        raise PresetError(f"Env preset folder {folder} does not exist.")
    presets: dict[str, EnvPreset] = {}
    for path in sorted(folder.glob("*.yaml")):
        where = f"{folder.name}/{path.name}"
        preset = dataclass_from_dict(EnvPreset, load_yaml(path), where)
        if preset.family != path.stem:
            raise PresetError(
                f"{where}: `family: {preset.family}` must match the file name; rename the file to "
                f"{preset.family}.yaml or set `family: {path.stem}`."
            )
        presets[preset.family] = preset
    if DEFAULT_FAMILY not in presets:
        raise PresetError(
            f"{folder} has no {DEFAULT_FAMILY}.yaml; it is the fallback family for env ids that no "
            "other family matches."
        )
    return presets


def family_for(env_id: str, presets_path: str | Path | None = None) -> EnvPreset:
    """The preset of the one non-default family matching ``env_id``, else ``default``.

    :param presets_path: folder of env preset YAML files; ``None`` uses the shipped ``envs`` folder.
    :raises PresetError: if two families claim ``env_id`` or the presets are invalid.
    """
    presets = load_env_presets(presets_path)
    candidates = [p for name, p in presets.items() if name != DEFAULT_FAMILY and p.matches(env_id)]
    if len(candidates) > 1:
        names = ", ".join(f"{p.family} ({list(p.match)})" for p in candidates)
        raise PresetError(
            f"Env id {env_id!r} matches several env families: {names}. Make their `match` patterns "
            "in the envs/ presets disjoint."
        )
    return candidates[0] if candidates else presets[DEFAULT_FAMILY]
