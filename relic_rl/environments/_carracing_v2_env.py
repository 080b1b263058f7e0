"""The CarRacing class behind relic-rl's ``CarRacing-v2`` (imports Box2D and pygame).

Kept apart from :mod:`relic_rl.environments.carracing` so that importing relic-rl
never needs Box2D: gymnasium loads this module only when ``CarRacing-v2`` is made,
and raises ``DependencyNotInstalled`` here exactly as it does for ``CarRacing-v3``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.box2d.car_racing import CarRacing

from relic_rl.environments.carracing import CarRacingV2Termination


class _V2ScoreText(float):
    """A float that prints itself as gymnasium 0.29 drew the score (``"%04i" % score``).

    gymnasium 1.0 changed the score text in the bottom-left corner of every frame from
    ``"%04i" % reward`` (truncation toward zero: -0.1 -> ``0000``, 3.7 -> ``0003``) to
    ``f"{reward:04.0f}"`` (rounding: -0.1 -> ``-000``, 3.7 -> ``0004``). Those pixels are
    part of the observation, so a faithful v2 must draw the old text.
    """

    def __format__(self, format_spec: str) -> str:
        return f"{int(self):04d}"


class CarRacingV2Pixels(CarRacing):
    """gymnasium's ``CarRacing`` (v3) drawing the score text as v2 did.

    Only the text is changed; the physics, track generation, rewards and colours are
    the v3 code, which is otherwise identical to v2 (see
    :mod:`relic_rl.environments.carracing`).
    """

    def _render(self, mode: str) -> Any:
        score = self.reward
        self.reward = _V2ScoreText(score)
        try:
            return super()._render(mode)
        finally:
            self.reward = score


def make_carracing_v2(
    render_mode: str | None = None,
    verbose: bool = False,
    lap_complete_percent: float = 0.95,
    domain_randomize: bool = False,
    continuous: bool = True,
) -> gym.Env[Any, Any]:
    """Entry point of the compat ``CarRacing-v2``: :class:`CarRacingV2Pixels` wrapped in
    :class:`~relic_rl.environments.carracing.CarRacingV2Termination`.

    The keyword arguments are those of gymnasium's ``CarRacing`` (explicit, so that a
    misspelled one raises a ``TypeError`` naming it).

    :param render_mode: ``None``, ``"human"``, ``"rgb_array"`` or ``"state_pixels"``.
    :param verbose: print track generation messages.
    :param lap_complete_percent: fraction of tiles to visit before a lap counts.
    :param domain_randomize: random background and track colours on every reset.
    :param continuous: Box actions (steer, gas, brake) if True, else 5 discrete actions.
    :return: the env.
    """
    env = CarRacingV2Pixels(
        render_mode=render_mode,
        verbose=verbose,
        lap_complete_percent=lap_complete_percent,
        domain_randomize=domain_randomize,
        continuous=continuous,
    )
    return CarRacingV2Termination(env)


# gymnasium reads the render modes of an entry point from its `metadata`.
make_carracing_v2.metadata = CarRacing.metadata  # type: ignore[attr-defined]
