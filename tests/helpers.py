"""Shared test utilities: tiny pixel vector envs so SB3 + CNN tests run in seconds."""

from __future__ import annotations

from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecTransposeImage

from tests.fake_pixel_env import FakePixelEnv


def image_vec_env(
    n_envs: int = 1, continuous: bool = True, seed: int = 0, episode_length: int = 20
) -> VecEnv:
    """Channels-first 40x40 RGB :class:`FakePixelEnv` copies, Box or Discrete actions."""
    env = DummyVecEnv(
        [lambda: FakePixelEnv(continuous=continuous, episode_length=episode_length) for _ in range(n_envs)]
    )
    env.seed(seed)
    return VecTransposeImage(env)


#: Modules to forget (with ``import Box2D`` blocked) to simulate an install without Box2D.
BOX2D_MODULES = (
    "gymnasium.envs.box2d",
    "relic_rl.environments._carracing_env",
    "relic_rl.environments.fast_carracing",
    "Box2D",
)
