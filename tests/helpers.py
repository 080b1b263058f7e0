"""Shared test utilities: tiny pixel vector envs so SB3 + CNN tests run in seconds."""

from __future__ import annotations

from typing import Any

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


def metric_totals(extractor: Any, keys: tuple[str, ...] = ("aux_updates", "ema_updates")) -> dict[str, float]:
    """Running sums of ``keys`` over every ``pop_metrics()`` of ``extractor`` from now on
    (the ReLIC algorithm classes pop the metrics after every ``train()``)."""
    totals = dict.fromkeys(keys, 0.0)
    original = extractor.pop_metrics

    def pop() -> dict[str, float]:
        metrics = original()
        for key in totals:
            totals[key] += metrics[key]
        return metrics

    extractor.pop_metrics = pop
    return totals


def aux_batch_sizes(extractor: Any, hook: str = "aux_loss") -> list[int]:
    """The batch size (``online.shape[1]``) of every call of ``extractor``'s loss ``hook``
    (``aux_loss`` or ``relic_loss``) from now on."""
    sizes: list[int] = []
    original = getattr(extractor, hook)

    def recording(online: Any, target: Any) -> Any:
        sizes.append(online.shape[1])
        return original(online, target)

    setattr(extractor, hook, recording)
    return sizes
