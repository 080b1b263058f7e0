"""Tiny, fast pixel envs for tests across relic-rl.

Importing this module registers:

* ``FakePixel-v0``: :class:`FakePixelEnv`, ``uint8`` images ``(H, W, C)`` (default
  40x40x3, just above the 36x36 minimum of Stable-Baselines3's ``NatureCNN``);
* ``FakeVectorObs-v0``: :class:`FakeVectorObsEnv`, a flat float ``Box`` observation
  (the non-image error path).

With the repository root on ``PYTHONPATH`` both can be made by id from anywhere,
subprocess workers included: ``gym.make("tests.fake_pixel_env:FakePixel-v0")`` or
``python -m relic_rl.train --env tests.fake_pixel_env:FakePixel-v0``.

The task of :class:`FakePixelEnv` is learnable from pixels: every frame shows a bright
square in the left or the right half of the image (chosen at random each step), and
the best action points to that side. With discrete actions, action 0 means "left" and
1 "right" (reward 1 when right, 0 otherwise); with continuous actions in [-1, 1]^d,
the reward is ``1 - |a_i - target| / 2`` averaged over the dimensions, with target -1
for left and +1 for right. Everything is drawn with the env's own ``np_random``, so
``reset(seed=s)`` fixes the whole episode given the actions.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

FAKE_PIXEL_ID = "FakePixel-v0"
FAKE_VECTOR_ID = "FakeVectorObs-v0"


class FakePixelEnv(gym.Env[np.ndarray, Any]):
    """A deterministic-given-seed image env: find the side of the bright square.

    :param height: image height (>= 8).
    :param width: image width (>= 8, even).
    :param channels: image channels (1 or more; the square is bright in every channel).
    :param continuous: Box actions in [-1, 1]^``action_dim`` if True, else ``Discrete(2)``.
    :param action_dim: size of the continuous action.
    :param episode_length: steps per episode; the last one returns ``truncated=True``.
    :param render_mode: None or ``"rgb_array"`` (returns the current observation).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        height: int = 40,
        width: int = 40,
        channels: int = 3,
        continuous: bool = True,
        action_dim: int = 2,
        episode_length: int = 50,
        render_mode: str | None = None,
    ) -> None:
        if height < 8 or width < 8 or width % 2:
            raise ValueError(
                f"FakePixelEnv needs height, width >= 8 and an even width, got {height}x{width}."
            )
        if channels < 1 or action_dim < 1 or episode_length < 1:
            raise ValueError("FakePixelEnv needs channels, action_dim and episode_length >= 1.")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"FakePixelEnv supports render_mode None or 'rgb_array', got {render_mode!r}.")
        self.height, self.width, self.channels = height, width, channels
        self.continuous = continuous
        self.episode_length = episode_length
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (height, width, channels), dtype=np.uint8)
        self.action_space: spaces.Space[Any] = (
            spaces.Box(-1.0, 1.0, (action_dim,), dtype=np.float32) if continuous else spaces.Discrete(2)
        )
        self._side = 0  # 0: square on the left, 1: on the right
        self._t = 0
        self._frame = np.zeros(self.observation_space.shape, dtype=np.uint8)

    def _draw(self) -> np.ndarray:
        """A dim textured background with a bright square in the chosen half."""
        rng = self.np_random
        frame = rng.integers(0, 64, size=self.observation_space.shape, dtype=np.uint8)
        self._side = int(rng.integers(2))
        size = max(2, min(self.height, self.width) // 4)
        half = self.width // 2
        row = int(rng.integers(0, self.height - size + 1))
        col = int(rng.integers(0, half - size + 1)) + self._side * half
        frame[row : row + size, col : col + size, :] = 255
        self._frame = frame
        return frame.copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``seed`` fixes all its frames."""
        super().reset(seed=seed)
        self._t = 0
        return self._draw(), {}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Score the action against the current frame, then draw the next one."""
        if self.continuous:
            target = 1.0 if self._side == 1 else -1.0
            a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
            reward = float(np.mean(1.0 - np.abs(a - target) / 2.0))
        else:
            reward = 1.0 if int(action) == self._side else 0.0
        info = {"side": self._side}
        self._t += 1
        truncated = self._t >= self.episode_length
        return self._draw(), reward, False, truncated, info

    def render(self) -> np.ndarray | None:
        """The current frame when ``render_mode="rgb_array"``."""
        return self._frame.copy() if self.render_mode == "rgb_array" else None


class FakeVectorObsEnv(gym.Env[np.ndarray, Any]):
    """A state-vector env (flat float32 ``Box(8,)``, ``Discrete(2)``), for non-image errors.

    :param episode_length: steps per episode.
    """

    metadata = {"render_modes": []}

    def __init__(self, episode_length: int = 20) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (8,), dtype=np.float32)
        self.action_space: spaces.Space[Any] = spaces.Discrete(2)
        self.episode_length = episode_length
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode."""
        super().reset(seed=seed)
        self._t = 0
        return self.np_random.uniform(-1, 1, 8).astype(np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """One step."""
        self._t += 1
        obs = self.np_random.uniform(-1, 1, 8).astype(np.float32)
        return obs, float(action), False, self._t >= self.episode_length, {}


def register_fake_envs() -> None:
    """Register ``FakePixel-v0`` and ``FakeVectorObs-v0`` unless already registered.

    The entry points are the classes themselves, so this module may be imported as
    ``tests.fake_pixel_env`` or as ``fake_pixel_env`` without clashing.
    """
    if FAKE_PIXEL_ID not in gym.registry:
        gym.register(id=FAKE_PIXEL_ID, entry_point=FakePixelEnv)  # type: ignore[arg-type]
    if FAKE_VECTOR_ID not in gym.registry:
        gym.register(id=FAKE_VECTOR_ID, entry_point=FakeVectorObsEnv)  # type: ignore[arg-type]


register_fake_envs()
