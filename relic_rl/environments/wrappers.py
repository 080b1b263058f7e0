"""Small gymnasium wrappers used by the env factory."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class FrameSkip(gym.Wrapper[Any, Any, Any, Any]):
    """Repeat each action ``skip`` times and return the sum of the rewards.

    Stops early when the episode terminates or is truncated, and returns the last
    observation and ``info`` (the convention of rl-zoo3's ``FrameSkip``, used by its
    tuned CarRacing preset). Unlike Atari's ``MaxAndSkipEnv`` there is no max-pool.

    :param env: the env to wrap.
    :param skip: number of env steps per agent step (>= 1; 1 changes nothing).
    """

    def __init__(self, env: gym.Env[Any, Any], skip: int) -> None:
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 1:
            raise ValueError(f"FrameSkip: `skip` must be an int >= 1, got {skip!r}.")
        super().__init__(env)
        self.skip = skip

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step ``skip`` times (fewer if the episode ends) with the same action."""
        total_reward = 0.0
        for _ in range(self.skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total_reward += float(reward)
            if terminated or truncated:
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
