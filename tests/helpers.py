"""Shared test utilities: tiny pixel vector envs so SB3 + CNN tests run in seconds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecTransposeImage


class _TmpImg(gym.Env):
    def __init__(self, continuous: bool = True) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (40, 40, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32) if continuous else gym.spaces.Discrete(3)
        self.t = 0

    def reset(self, seed=None, options=None):  # type: ignore[no-untyped-def]
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.integers(0, 255, (40, 40, 3), dtype=np.uint8), {}

    def step(self, a):  # type: ignore[no-untyped-def]
        self.t += 1
        obs = self.np_random.integers(0, 255, (40, 40, 3), dtype=np.uint8)
        return obs, float(np.sum(a)), False, self.t >= 20, {}


def image_vec_env(n_envs: int = 1, continuous: bool = True, seed: int = 0) -> VecEnv:
    """A channels-first 40x40 RGB vector env with a Box (continuous) or Discrete action space."""
    env = DummyVecEnv([lambda: _TmpImg(continuous) for _ in range(n_envs)])
    env.seed(seed)
    return VecTransposeImage(env)
