"""Small gymnasium wrappers used by the env factory."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: Wrappers (exact types) that hand observations through unchanged, so a :class:`FrameSkip` above
#: them may leave skipped frames undrawn.
PASS_THROUGH_WRAPPERS: tuple[str, ...] = (
    "gymnasium.wrappers.common.TimeLimit",
    "gymnasium.wrappers.common.OrderEnforcing",
    "gymnasium.wrappers.common.PassiveEnvChecker",
    "stable_baselines3.common.monitor.Monitor",
    "relic_rl.environments.carracing.CarRacingV2Termination",
)


def skipping_env(env: gym.Env[Any, Any]) -> Any | None:
    """The innermost env if it can skip drawing observations (as ``FastCarRacing``) and every wrapper on
    the way is in :data:`PASS_THROUGH_WRAPPERS`; else None."""
    while isinstance(env, gym.Wrapper):
        if f"{type(env).__module__}.{type(env).__qualname__}" not in PASS_THROUGH_WRAPPERS:
            return None
        env = env.env
    methods = ("skip_next_observation", "render_skipped_observation")
    return env if all(callable(getattr(env, m, None)) for m in methods) else None


class FrameSkip(gym.Wrapper[Any, Any, Any, Any]):
    """Repeat each action ``skip`` times, summing rewards and stopping when the episode ends
    (rl-zoo3's ``FrameSkip``: no max-pool).

    When the env can leave frames undrawn (:func:`skipping_env`), the ``skip - 1`` unobserved frames are
    not drawn (an episode end inside the skip draws its frame); the results are identical either way.
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
        total_reward = 0.0
        for i in range(self.skip):
            undrawn = self._skipping if i < self.skip - 1 else None
            if undrawn is not None:
                undrawn.skip_next_observation()
            obs, reward, terminated, truncated, info = self.env.step(action)
            total_reward += float(reward)
            if terminated or truncated:
                if undrawn is not None:
                    obs = undrawn.render_skipped_observation()
                break
        return obs, total_reward, terminated, truncated, info


class AddChannelAxis(gym.ObservationWrapper[Any, Any, Any]):
    """Turn ``(H, W)`` observations (a 2-D ``Box``) into ``(H, W, 1)``: SB3 takes only 3-D images."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        space = env.observation_space
        if not (isinstance(space, spaces.Box) and len(space.shape) == 2):
            raise ValueError(f"AddChannelAxis needs a 2-D Box observation space, got {space}.")
        self.observation_space = spaces.Box(
            low=space.low[..., None], high=space.high[..., None], dtype=space.dtype
        )

    def observation(self, observation: Any) -> np.ndarray:
        return np.asarray(observation)[..., None]
