"""Small gymnasium wrappers used by the env factory."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: Wrappers that hand a step's observation through unchanged: a :class:`FrameSkip` above
#: only these may leave skipped frames undrawn (an observation wrapper in between would
#: need every frame). Matched by exact type, subclasses may transform.
PASS_THROUGH_WRAPPERS: tuple[str, ...] = (
    "gymnasium.wrappers.common.TimeLimit",
    "gymnasium.wrappers.common.OrderEnforcing",
    "gymnasium.wrappers.common.PassiveEnvChecker",
    "stable_baselines3.common.monitor.Monitor",
    "relic_rl.environments.carracing.CarRacingV2Termination",
)


def _qualified_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def skipping_env(env: gym.Env[Any, Any]) -> Any | None:
    """The innermost env of ``env`` if it can skip drawing observations
    (``skip_next_observation`` / ``render_skipped_observation``, as
    :class:`~relic_rl.environments.fast_carracing.FastCarRacing` has) and every wrapper
    on the way hands observations through unchanged (:data:`PASS_THROUGH_WRAPPERS`);
    else None."""
    while isinstance(env, gym.Wrapper):
        if _qualified_name(env) not in PASS_THROUGH_WRAPPERS:
            return None
        env = env.env
    has_skip = callable(getattr(env, "skip_next_observation", None))
    return env if has_skip and callable(getattr(env, "render_skipped_observation", None)) else None


class FrameSkip(gym.Wrapper[Any, Any, Any, Any]):
    """Repeat each action ``skip`` times and return the sum of the rewards.

    Stops early when the episode terminates or is truncated, and returns the last
    observation and ``info`` (the convention of rl-zoo3's ``FrameSkip``, used by its
    tuned CarRacing preset). Unlike Atari's ``MaxAndSkipEnv`` there is no max-pool.

    Only the last frame of a skip is observed, so when the env can leave frames undrawn
    (relic-rl's :class:`~relic_rl.environments.fast_carracing.FastCarRacing`, see
    :func:`skipping_env`) the ``skip - 1`` frames before it are stepped without being
    drawn, and a frame at which the episode ends inside the skip is drawn then. What the
    wrapper returns is the same either way (observations bit for bit).

    :param env: the env to wrap.
    :param skip: number of env steps per agent step (>= 1; 1 changes nothing).
    """

    def __init__(self, env: gym.Env[Any, Any], skip: int) -> None:
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 1:
            raise ValueError(f"FrameSkip: `skip` must be an int >= 1, got {skip!r}.")
        super().__init__(env)
        self.skip = skip
        self._skipping = skipping_env(env) if skip > 1 else None

    @property
    def skips_drawing(self) -> bool:
        """Whether the skipped frames are stepped without being drawn."""
        return self._skipping is not None

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step ``skip`` times (fewer if the episode ends) with the same action."""
        total_reward = 0.0
        base = self._skipping
        for i in range(self.skip):
            unobserved = base is not None and i < self.skip - 1
            if unobserved:
                assert base is not None
                base.skip_next_observation()
            obs, reward, terminated, truncated, info = self.env.step(action)
            total_reward += float(reward)
            if terminated or truncated:
                if unobserved:
                    assert base is not None
                    obs = base.render_skipped_observation()
                break
        return obs, total_reward, terminated, truncated, info


class AddChannelAxis(gym.ObservationWrapper[Any, Any, Any]):
    """Turn ``(H, W)`` image observations into ``(H, W, 1)`` so image pipelines see a
    channel axis (Stable-Baselines3 treats only 3-D ``Box`` spaces as images).

    :param env: an env whose observation space is a 2-D ``Box``.
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        space = env.observation_space
        if not (isinstance(space, spaces.Box) and len(space.shape) == 2):
            raise ValueError(f"AddChannelAxis needs a 2-D Box observation space, got {space}.")
        self.observation_space = spaces.Box(
            low=space.low[..., None],
            high=space.high[..., None],
            dtype=space.dtype,
        )

    def observation(self, observation: Any) -> np.ndarray:
        """Add a trailing channel axis."""
        return np.asarray(observation)[..., None]
