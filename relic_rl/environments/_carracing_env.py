"""The entry points of relic-rl's ``CarRacing-v2`` and ``CarRacing-v3`` (import Box2D and pygame).

Apart from :mod:`relic_rl.environments.carracing` so that importing relic-rl never needs Box2D; a
missing Box2D raises ``DependencyNotInstalled`` here as for gymnasium's own ``CarRacing-v3``.
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
    """A float formatting as gymnasium 0.29 drew the score, ``"%04i"`` (-0.1 -> ``0000``, 3.7 -> ``0003``)."""

    def __format__(self, format_spec: str) -> str:
        return f"{int(self):04d}"


class _V2ScoreMixin:
    """Draw the score text as v2 did (``self.reward`` is a :class:`_V2ScoreText` while rendering)."""

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
    """:class:`~relic_rl.environments.fast_carracing.FastCarRacing` drawing the score text as v2 did."""


#: gymnasium's ``CarRacing`` arguments, in the order the two entry points pass them to :func:`_build`.
_CARRACING_ARGS = ("render_mode", "verbose", "lap_complete_percent", "domain_randomize", "continuous")


def _build(renderer: str, stock: type[CarRacing], fast: type[CarRacing], *args: Any) -> CarRacing:
    # A fallback is said once, by the main process (it builds an env first, also for
    # SubprocVecEnv); subprocess workers would each repeat it.
    in_worker = multiprocessing.parent_process() is not None
    cls = fast if use_fast_renderer(renderer, warn=not in_worker) else stock
    # By keyword: the stock class is also what runs on gymnasium versions not verified here.
    return cls(**dict(zip(_CARRACING_ARGS, args, strict=True)))


def make_carracing_v2(
    render_mode: str | None = None,
    verbose: bool = False,
    lap_complete_percent: float = 0.95,
    domain_randomize: bool = False,
    continuous: bool = True,
    renderer: str = "fast",
) -> gym.Env[Any, Any]:
    """The compat ``CarRacing-v2``: v3 drawing v2's score text, in ``CarRacingV2Termination``.

    gymnasium's ``CarRacing`` arguments (explicit, so a misspelled one raises a ``TypeError`` naming it),
    plus ``renderer`` (``"fast"`` or ``"stock"``; :class:`EnvCreationError` for others).
    """
    args = (render_mode, verbose, lap_complete_percent, domain_randomize, continuous)
    return CarRacingV2Termination(_build(renderer, CarRacingV2Pixels, FastCarRacingV2Pixels, *args))


def make_carracing_v3(
    render_mode: str | None = None,
    verbose: bool = False,
    lap_complete_percent: float = 0.95,
    domain_randomize: bool = False,
    continuous: bool = True,
    renderer: str = "fast",
) -> gym.Env[Any, Any]:
    """The factory's ``CarRacing-v3`` with the chosen renderer (as :func:`make_carracing_v2`)."""
    args = (render_mode, verbose, lap_complete_percent, domain_randomize, continuous)
    return _build(renderer, CarRacing, FastCarRacing, *args)


# gymnasium reads the render modes of an entry point from its `metadata`.
make_carracing_v2.metadata = CarRacing.metadata  # type: ignore[attr-defined]
make_carracing_v3.metadata = CarRacing.metadata  # type: ignore[attr-defined]
