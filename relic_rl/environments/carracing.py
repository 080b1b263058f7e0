"""``CarRacing-v2`` on gymnasium >= 1.0, which only registers ``CarRacing-v3``.

Published CarRacing results (and rl-zoo3's presets) use v2. gymnasium 0.29.1's v2 and 1.x's v3 differ
in exactly: lap completion (``truncated`` in v2, ``terminated`` in v3, which changes the bootstrapped
target), ``info`` (v2: always ``{}``; v3 adds ``lap_finished``) and the score text in the observation
(v2 ``"%04i"``, truncated; v3 ``"{:04.0f}"``, rounded). Physics, tracks, rewards, the 1000-step limit
and the reward threshold are unchanged. :func:`register_carracing_v2` registers a v2 restoring all
three: v3 drawing v2's score text (``_carracing_env``) inside :class:`CarRacingV2Termination`.

relic-rl's v2 and the v3 its factory builds (:func:`make_target`) render with ``FastCarRacing`` unless
``renderer="stock"``; ``gym.make("CarRacing-v3")`` outside the factory is left untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from relic_rl.environments.errors import EnvCreationError
from relic_rl.environments.preset import strip_module
from relic_rl.environments.renderer import (
    DEFAULT_RENDERER,
    RENDERERS,
    VERIFIED_GYMNASIUM,
    check_renderer,
    fast_render_supported,
    renderer_status,
)

__all__ = [
    "CARRACING_V2_ID",
    "CARRACING_V3_ID",
    "COMPAT_ENTRY_POINT",
    "DEFAULT_RENDERER",
    "GYMNASIUM_V3_ENTRY_POINT",
    "RENDERERS",
    "V3_ENTRY_POINT",
    "VERIFIED_GYMNASIUM",
    "CarRacingV2Termination",
    "carracing_compat_note",
    "check_renderer",
    "fast_render_supported",
    "is_carracing_v2_compat",
    "make_target",
    "register_carracing_v2",
    "renderer_note",
    "uses_relic_carracing",
]

CARRACING_V2_ID = "CarRacing-v2"
CARRACING_V3_ID = "CarRacing-v3"
COMPAT_ENTRY_POINT = "relic_rl.environments._carracing_env:make_carracing_v2"
#: relic-rl's entry point for ``CarRacing-v3`` (gymnasium's env, renderer selectable).
V3_ENTRY_POINT = "relic_rl.environments._carracing_env:make_carracing_v3"
#: gymnasium's own registration of ``CarRacing-v3``, the one :func:`make_target` replaces.
GYMNASIUM_V3_ENTRY_POINT = "gymnasium.envs.box2d.car_racing:CarRacing"


class CarRacingV2Termination(gym.Wrapper[Any, Any, Any, Any]):
    """Give a CarRacing-v3 env the end-of-episode signals of CarRacing-v2.

    A completed lap gives ``terminated=False, truncated=True``; leaving the playfield stays
    ``terminated=True``, plus ``truncated=True`` if v2's lap test holds in the same step (v3 then says
    ``lap_finished=False``). ``info["lap_finished"]`` is removed; steps without it pass through.
    """

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "lap_finished" not in info:
            return obs, reward, terminated, truncated, info
        info = dict(info)
        if info.pop("lap_finished"):
            # Only the lap ended the episode: v2 called that a truncation.
            return obs, reward, False, True, info
        # Off the playfield: a real termination in both versions.
        return obs, reward, terminated, bool(truncated or self._lap_condition()), info

    def _lap_condition(self) -> bool:
        """v2's ``tile_visited_count == len(track) or new_lap``; False if the env does not expose it."""
        env = self.env.unwrapped
        if getattr(env, "new_lap", False):
            return True
        track = getattr(env, "track", None)
        visited = getattr(env, "tile_visited_count", None)
        return track is not None and visited is not None and visited == len(track)


def _registered_entry_point(env_id: str) -> Any:
    spec = gym.registry.get(env_id)
    return None if spec is None else spec.entry_point


def register_carracing_v2() -> bool:
    """Make ``gym.make("CarRacing-v2")`` work, registering the compat env with v3's spec if needed.

    Idempotent, does not import Box2D; subprocess workers must call it too (the env factory does).

    :return: True when ``CarRacing-v2`` is relic-rl's compat env, False when it is gymnasium's own.
    :raises EnvCreationError: if gymnasium registers neither v2 nor v3.
    """
    entry_point = _registered_entry_point(CARRACING_V2_ID)
    if entry_point is not None:
        return entry_point == COMPAT_ENTRY_POINT
    v3 = gym.registry.get(CARRACING_V3_ID)
    if v3 is None:
        raise EnvCreationError(
            f"gymnasium {gym.__version__} registers neither {CARRACING_V2_ID} nor {CARRACING_V3_ID}, "
            "so relic-rl cannot provide CarRacing-v2. Install a gymnasium release supported by "
            'relic-rl (pip install "relic-rl[box2d]").'
        )
    gym.register(
        id=CARRACING_V2_ID,
        entry_point=COMPAT_ENTRY_POINT,
        max_episode_steps=v3.max_episode_steps,
        reward_threshold=v3.reward_threshold,
        nondeterministic=v3.nondeterministic,
        kwargs=dict(v3.kwargs),
    )
    return True


def make_target(env_id: str) -> str | EnvSpec:
    """What relic-rl's env factory passes to ``gym.make`` for ``env_id``.

    gymnasium's own ``CarRacing-v3`` becomes a copy of its spec with :data:`V3_ENTRY_POINT`; every
    other id (``CarRacing-v2``, ``module:`` ids) is returned unchanged.
    """
    spec = gym.registry.get(CARRACING_V3_ID) if env_id == CARRACING_V3_ID else None
    if spec is None or spec.entry_point != GYMNASIUM_V3_ENTRY_POINT:
        return env_id
    return dataclasses.replace(spec, entry_point=V3_ENTRY_POINT)


def uses_relic_carracing(env_id: str) -> bool:
    """Whether the factory builds ``env_id`` with a relic-rl CarRacing entry point (``renderer`` applies)."""
    return is_carracing_v2_compat(strip_module(env_id)) or not isinstance(make_target(env_id), str)


def renderer_note(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> str | None:
    """How CarRacing is rendered, for the start summary; None for other envs or an invalid ``renderer``."""
    if not uses_relic_carracing(env_id):
        return None
    return renderer_status((env_kwargs or {}).get("renderer", DEFAULT_RENDERER))


def is_carracing_v2_compat(env_id: str = CARRACING_V2_ID) -> bool:
    """Whether ``env_id`` is ``CarRacing-v2`` and resolves to relic-rl's compat env."""
    return env_id == CARRACING_V2_ID and _registered_entry_point(CARRACING_V2_ID) == COMPAT_ENTRY_POINT


def carracing_compat_note(env_id: str | None = None) -> str | None:
    """The start summary's line when the compat ``CarRacing-v2`` is in use, else None.

    :param env_id: the run's env id; ``None`` asks only whether the compat env is registered.
    """
    if (env_id is not None and env_id != CARRACING_V2_ID) or not is_carracing_v2_compat():
        return None
    major_minor = ".".join(gym.__version__.split(".")[:2])
    return (
        f"{CARRACING_V2_ID} is not registered by gymnasium {major_minor}; using {CARRACING_V3_ID} with "
        "v2's termination semantics (lap completion -> truncated) and v2's score text."
    )
