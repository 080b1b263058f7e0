"""The CarRacing entry points behind relic-rl's ``CarRacing-v2`` and ``CarRacing-v3``
(imports Box2D and pygame).

Kept apart from :mod:`relic_rl.environments.carracing` so that importing relic-rl
never needs Box2D: gymnasium loads this module only when a CarRacing env is made, and
raises ``DependencyNotInstalled`` here exactly as it does for its own ``CarRacing-v3``.

Both entry points take gymnasium's ``CarRacing`` arguments plus ``renderer``:
``"fast"`` (default) builds :class:`~relic_rl.environments.fast_carracing.FastCarRacing`
(pixel-identical, about 2.5x faster), ``"stock"`` gymnasium's own class.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import gymnasium as gym
from gymnasium.envs.box2d.car_racing import CarRacing

from relic_rl.environments.carracing import CarRacingV2Termination
from relic_rl.environments.fast_carracing import FastCarRacing
from relic_rl.environments.renderer import use_fast_renderer


class _V2ScoreText(float):
    """A float that prints itself as gymnasium 0.29 drew the score (``"%04i" % score``).

    gymnasium 1.0 changed the score text in the bottom-left corner of every frame from
    ``"%04i" % reward`` (truncation toward zero: -0.1 -> ``0000``, 3.7 -> ``0003``) to
    ``f"{reward:04.0f}"`` (rounding: -0.1 -> ``-000``, 3.7 -> ``0004``). Those pixels are
    part of the observation, so a faithful v2 must draw the old text.
    """

    def __format__(self, format_spec: str) -> str:
        return f"{int(self):04d}"


class _V2ScoreMixin:
    """Draw the score text as v2 did: ``self.reward`` prints as :class:`_V2ScoreText`
    while a frame is rendered. Only the text changes; the physics, track generation,
    rewards and colours are v3's, which are otherwise v2's (see
    :mod:`relic_rl.environments.carracing`)."""

    reward: float

    def _render(self, mode: str) -> Any:
        score = self.reward
        self.reward = _V2ScoreText(score)
        try:
            return super()._render(mode)  # type: ignore[misc]
        finally:
            self.reward = score


class CarRacingV2Pixels(_V2ScoreMixin, CarRacing):
    """gymnasium's ``CarRacing`` (v3) drawing the score text as v2 did."""


class FastCarRacingV2Pixels(_V2ScoreMixin, FastCarRacing):
    """:class:`~relic_rl.environments.fast_carracing.FastCarRacing` drawing the score text
    as v2 did."""


def _build(renderer: str, stock: type[CarRacing], fast: type[CarRacing], **kwargs: Any) -> CarRacing:
    """``fast(**kwargs)`` when ``renderer="fast"`` and the fast renderer is usable here,
    else ``stock(**kwargs)``."""
    # A fallback is said once, by the main process (it builds an env first, also for
    # SubprocVecEnv); subprocess workers would each repeat it.
    in_worker = multiprocessing.parent_process() is not None
    return (fast if use_fast_renderer(renderer, warn=not in_worker) else stock)(**kwargs)


def make_carracing_v2(
    render_mode: str | None = None,
    verbose: bool = False,
    lap_complete_percent: float = 0.95,
    domain_randomize: bool = False,
    continuous: bool = True,
    renderer: str = "fast",
) -> gym.Env[Any, Any]:
    """Entry point of the compat ``CarRacing-v2``: v3's env drawing v2's score text,
    wrapped in :class:`~relic_rl.environments.carracing.CarRacingV2Termination`.

    The keyword arguments are those of gymnasium's ``CarRacing`` (explicit, so that a
    misspelled one raises a ``TypeError`` naming it), plus ``renderer``.

    :param render_mode: ``None``, ``"human"``, ``"rgb_array"`` or ``"state_pixels"``.
    :param verbose: print track generation messages.
    :param lap_complete_percent: fraction of tiles to visit before a lap counts.
    :param domain_randomize: random background and track colours on every reset.
    :param continuous: Box actions (steer, gas, brake) if True, else 5 discrete actions.
    :param renderer: ``"fast"`` (relic-rl's pixel-identical renderer; gymnasium's own on
        an unverified gymnasium release) or ``"stock"`` (gymnasium's).
    :return: the env.
    :raises EnvCreationError: for an unknown ``renderer``.
    """
    env = _build(
        renderer,
        CarRacingV2Pixels,
        FastCarRacingV2Pixels,
        render_mode=render_mode,
        verbose=verbose,
        lap_complete_percent=lap_complete_percent,
        domain_randomize=domain_randomize,
        continuous=continuous,
    )
    return CarRacingV2Termination(env)


def make_carracing_v3(
    render_mode: str | None = None,
    verbose: bool = False,
    lap_complete_percent: float = 0.95,
    domain_randomize: bool = False,
    continuous: bool = True,
    renderer: str = "fast",
) -> gym.Env[Any, Any]:
    """Entry point relic-rl's env factory uses for ``CarRacing-v3``: gymnasium's env with
    the renderer chosen by ``renderer`` (arguments as :func:`make_carracing_v2`).

    :return: :class:`~relic_rl.environments.fast_carracing.FastCarRacing` or gymnasium's
        ``CarRacing``.
    :raises EnvCreationError: for an unknown ``renderer``.
    """
    return _build(
        renderer,
        CarRacing,
        FastCarRacing,
        render_mode=render_mode,
        verbose=verbose,
        lap_complete_percent=lap_complete_percent,
        domain_randomize=domain_randomize,
        continuous=continuous,
    )


# gymnasium reads the render modes of an entry point from its `metadata`.
make_carracing_v2.metadata = CarRacing.metadata  # type: ignore[attr-defined]
make_carracing_v3.metadata = CarRacing.metadata  # type: ignore[attr-defined]
