"""``CarRacing-v2`` on gymnasium >= 1.0, which only registers ``CarRacing-v3``.

Published CarRacing results (and rl-zoo3's tuned presets) use ``CarRacing-v2``;
gymnasium 1.0 renamed it to v3 and ``gym.make("CarRacing-v2")`` now raises
``DeprecatedEnv``. Comparing gymnasium 0.29.1's ``car_racing.py`` (the last with v2)
with 1.x's v3 line by line, the env code differs in exactly these ways:

1. **Lap completion** (all tiles visited, or ``lap_complete_percent`` of them and back
   on the start tile): v2 returned ``truncated=True`` ("should not be treated as a
   failure but like a timeout"); v3 returns ``terminated=True``. With value
   bootstrapping this changes the learning target at the end of every finished lap.
2. **info**: v2 always returned ``{}``; v3 adds ``info["lap_finished"]`` (True on lap
   completion, False when the car leaves the playfield).
3. **Score text in the observation**: the number drawn in the bottom-left corner of
   every frame was ``"%04i" % reward`` (truncated) in v2 and is ``f"{reward:04.0f}"``
   (rounded, ``-000`` for small negatives) in v3, so some observation pixels differ.
4. Not a difference in behaviour: v3 casts continuous actions to float64 before
   applying them (NumPy 2 promotion); float32 actions give the same values either way.

Everything else (physics, track generation, rewards including -100 for leaving the
playfield, colours and ``domain_randomize``, the ``continuous`` switch and its 5
discrete actions, ``lap_complete_percent``, the 1000-step limit and reward threshold
900) is unchanged. Docstring edits in v3 swapped the names of discrete actions 1 and
2 ("steer left/right"); the code that applies them is the same.

:func:`register_carracing_v2` registers a ``CarRacing-v2`` that restores all three
differences: the v3 env class drawing the v2 score text
(``relic_rl.environments._carracing_env``) inside :class:`CarRacingV2Termination`.

**Renderer.** relic-rl's ``CarRacing-v2`` and the ``CarRacing-v3`` its env factory builds
(:func:`make_target`) render with
:class:`~relic_rl.environments.fast_carracing.FastCarRacing`, which gives bit-identical
frames about 2.5x faster. The env kwarg ``renderer="stock"`` selects gymnasium's own
renderer (``renderer="fast"`` is the default; :mod:`relic_rl.environments.renderer` decides
and says when it falls back). ``gym.make("CarRacing-v3")`` outside relic-rl's factory is
left untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from relic_rl.environments.errors import EnvCreationError
from relic_rl.environments.renderer import (
    DEFAULT_RENDERER,
    RENDERERS,
    VERIFIED_GYMNASIUM,
    check_renderer,
    fast_render_supported,
    renderer_status,
)

# Renderer selection lives in relic_rl.environments.renderer; its names are re-exported.
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

    * lap completed: v3's ``terminated=True`` becomes ``terminated=False,
      truncated=True``;
    * car off the playfield: ``terminated=True`` as in both versions, plus
      ``truncated=True`` if the lap was completed in the same step (v2 reported both);
    * ``info["lap_finished"]`` (added in v3) is removed, so ``info`` is ``{}`` as in v2.

    The wrapper reads v3's ``info["lap_finished"]``; for the rare step where the lap is
    completed and the car leaves the playfield at once (v3 then reports
    ``lap_finished=False``) it checks the env's own lap condition
    (``tile_visited_count == len(track) or new_lap``, exactly v2's test) when the
    unwrapped env exposes it. Steps whose ``info`` has no ``lap_finished`` pass through.

    :param env: a CarRacing-v3 env (or anything reporting ``info["lap_finished"]``).
    """

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and translate v3's episode-end signals to v2's."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "lap_finished" not in info:
            return obs, reward, terminated, truncated, info
        info = dict(info)
        lap_finished = info.pop("lap_finished")
        if lap_finished:
            # Only the lap ended the episode: v2 called that a truncation.
            return obs, reward, False, True, info
        # Off the playfield: a real termination in both versions.
        return obs, reward, terminated, bool(truncated or self._lap_condition()), info

    def _lap_condition(self) -> bool:
        """v2's lap test on the unwrapped env's state; False if the env does not expose it."""
        env = self.env.unwrapped
        if getattr(env, "new_lap", False):
            return True
        track = getattr(env, "track", None)
        visited = getattr(env, "tile_visited_count", None)
        return track is not None and visited is not None and visited == len(track)


def _registered_entry_point(env_id: str) -> Any:
    """The entry point registered for ``env_id``, or None when it is not registered."""
    spec = gym.registry.get(env_id)
    return None if spec is None else spec.entry_point


def register_carracing_v2() -> bool:
    """Make ``gym.make("CarRacing-v2")`` work on every supported gymnasium.

    If gymnasium registers a native ``CarRacing-v2`` (before 1.0) nothing is done.
    Otherwise ``CarRacing-v2`` is registered as v3's env class drawing v2's score text,
    inside :class:`CarRacingV2Termination`, with v3's ``max_episode_steps`` (1000),
    ``reward_threshold`` (900) and default kwargs. Box2D is not imported here. Calling
    it again does nothing more. Subprocess workers must call it too (the env factory
    does).

    :return: True when ``CarRacing-v2`` is relic-rl's compat env (registered now or
        earlier), False when it is gymnasium's own.
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

    ``CarRacing-v3`` registered by gymnasium itself becomes a copy of its spec whose entry
    point is relic-rl's (:data:`V3_ENTRY_POINT`: fast renderer by default, ``renderer``
    kwarg accepted); the id, episode limit and reward threshold stay gymnasium's. Every
    other id (including ``CarRacing-v2``, whose compat entry point already is relic-rl's,
    and ids with a ``module:`` prefix) is returned unchanged.
    """
    if env_id != CARRACING_V3_ID:
        return env_id
    spec = gym.registry.get(CARRACING_V3_ID)
    if spec is None or spec.entry_point != GYMNASIUM_V3_ENTRY_POINT:
        return env_id
    return dataclasses.replace(spec, entry_point=V3_ENTRY_POINT)


def uses_relic_carracing(env_id: str) -> bool:
    """Whether relic-rl's factory builds ``env_id`` with a relic-rl CarRacing entry point
    (so the ``renderer`` env kwarg applies): ``CarRacing-v2`` (also with a ``module:``
    prefix, which gymnasium resolves to the same registration) or plain ``CarRacing-v3``."""
    name = env_id.split(":", 1)[1] if ":" in env_id else env_id
    return is_carracing_v2_compat(name) or not isinstance(make_target(env_id), str)


def renderer_note(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> str | None:
    """The line for a run's start summary saying how CarRacing is rendered
    (:func:`~relic_rl.environments.renderer.renderer_status`).

    :param env_id: the run's env id.
    :param env_kwargs: the run's env kwargs (``renderer`` is read from them).
    :return: the note, or None for envs other than relic-rl's CarRacing or an invalid
        ``renderer`` (env creation reports that).
    """
    if not uses_relic_carracing(env_id):
        return None
    return renderer_status((env_kwargs or {}).get("renderer", DEFAULT_RENDERER))


def is_carracing_v2_compat(env_id: str = CARRACING_V2_ID) -> bool:
    """Whether ``env_id`` is ``CarRacing-v2`` and resolves to relic-rl's compat env."""
    return env_id == CARRACING_V2_ID and _registered_entry_point(CARRACING_V2_ID) == COMPAT_ENTRY_POINT


def carracing_compat_note(env_id: str | None = None) -> str | None:
    """The line for a run's start summary when the compat ``CarRacing-v2`` is in use.

    :param env_id: the run's env id; any id other than ``CarRacing-v2`` gives None.
        ``None`` asks only whether the compat env is registered.
    :return: the note, or None when gymnasium's own v2 is used or another env runs.
    """
    if env_id is not None and env_id != CARRACING_V2_ID:
        return None
    if not is_carracing_v2_compat():
        return None
    major_minor = ".".join(gym.__version__.split(".")[:2])
    return (
        f"{CARRACING_V2_ID} is not registered by gymnasium {major_minor}; using {CARRACING_V3_ID} with "
        "v2's termination semantics (lap completion -> truncated) and v2's score text."
    )
