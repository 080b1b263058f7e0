"""Env family presets: which wrappers an env id gets, read from ``envs/*.yaml``.

Each YAML file in the ``envs`` preset folder (see :func:`relic_rl.presets.presets_dir`)
describes one env *family* as an :class:`EnvPreset`. :func:`family_for` maps an env id
to its family by glob patterns; ``envs/README.md`` documents the schema.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relic_rl.presets import PresetError, dataclass_from_dict, load_yaml, presets_dir

DEFAULT_FAMILY = "default"


@dataclass(frozen=True)
class EnvPreset:
    """How to build and preprocess the envs of one family (one ``envs/<family>.yaml``).

    The wrappers are applied in this order (innermost first): ``gym.make(id,
    **env_kwargs)`` -> Monitor -> ``atari_wrapper`` -> ``frame_skip`` -> ``resize`` ->
    ``grayscale``; then, on the vectorised env, ``frame_stack`` and the transpose to
    channels-first.

    :param family: name of the family; must equal the YAML file's stem.
    :param match: glob patterns (``fnmatch``, case-sensitive) of the env ids of this
        family, matched against the id without a ``module:`` prefix, e.g.
        ``["CarRacing-*"]`` or ``["ALE/*", "*NoFrameskip-v4"]``.
    :param description: one line for summaries.
    :param frame_skip: repeat each action this many times, summing the rewards
        (1 = no skip). Must be 1 when ``atari_wrapper`` is on (it skips itself).
    :param resize: ``[height, width]`` to resize image observations to, or ``None``.
    :param grayscale: convert RGB observations to one gray channel (channel axis kept).
    :param frame_stack: number of consecutive observations stacked along the channel
        axis (1 = no stacking).
    :param atari_wrapper: apply Stable-Baselines3's ``AtariWrapper`` (noop reset, frame
        skip 4 with max-pool, episodic life, fire reset, 84x84 gray, reward clipping).
    :param atari_wrapper_kwargs: keyword arguments for ``AtariWrapper``.
    :param env_kwargs: default keyword arguments for ``gym.make``; the user's
        ``env_kwargs`` override them key by key.
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
        if self.frame_skip < 1:
            raise PresetError(f"family {self.family!r}: `frame_skip` must be >= 1, got {self.frame_skip}.")
        if self.frame_stack < 1:
            raise PresetError(f"family {self.family!r}: `frame_stack` must be >= 1, got {self.frame_stack}.")
        if self.resize is not None and min(self.resize) < 1:
            raise PresetError(
                f"family {self.family!r}: `resize` must be [height, width] with positive sizes, "
                f"got {list(self.resize)}."
            )
        if self.atari_wrapper:
            # AtariWrapper already skips frames, resizes and converts to gray; doing any of
            # these twice would silently change the preprocessing.
            doubled = [
                name
                for name, value in (
                    ("frame_skip", self.frame_skip != 1),
                    ("resize", self.resize is not None),
                    ("grayscale", self.grayscale),
                )
                if value
            ]
            if doubled:
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
        bare_id = strip_module(env_id)
        return any(fnmatch.fnmatchcase(bare_id, pattern) for pattern in self.match)


def strip_module(env_id: str) -> str:
    """``"pkg.mod:MyEnv-v0"`` -> ``"MyEnv-v0"`` (gymnasium's ``module:EnvId`` syntax); else unchanged."""
    return env_id.split(":", 1)[1] if ":" in env_id else env_id


def load_env_presets(directory: str | Path | None = None) -> dict[str, EnvPreset]:
    """Read every ``*.yaml`` in the env preset folder.

    :param directory: folder to read; ``None`` uses :func:`relic_rl.presets.presets_dir`
        ``("envs")``.
    :return: presets by family name, in file-name order.
    :raises PresetError: on a malformed file, a ``family`` that differs from the file
        name, or a folder without ``default.yaml``.
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
    """The preset of the family that ``env_id`` belongs to.

    Every family other than ``default`` is tried; ``default`` is the fallback when none
    matches. An id matched by two non-default families is ambiguous and an error, so
    the result never depends on file order.

    :param env_id: a gymnasium env id, optionally ``module:EnvId``.
    :param presets_path: folder of env preset YAML files (tests); ``None`` uses the
        shipped ``envs`` folder.
    :return: the family's preset.
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
    if candidates:
        return candidates[0]
    return presets[DEFAULT_FAMILY]
