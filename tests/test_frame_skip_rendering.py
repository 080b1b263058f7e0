"""Frame skipping without drawing the skipped frames: the CarRacing pipeline is unchanged.

With the CarRacing family preset's frame skip k, relic-rl's fast renderer steps the
physics of the k - 1 skipped frames without drawing them. Here the whole preprocessed
pipeline (``make_vec_env``: Monitor, FrameSkip, resize, grayscale, frame stack, transpose)
is run in lockstep with gymnasium's own renderer, which draws every frame, and every
observation, reward, done flag and info (terminal observations included) must be equal.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("Box2D")
pygame = pytest.importorskip("pygame")

from gymnasium.envs.box2d.car_racing import CarRacing  # noqa: E402

from relic_rl.environments import (  # noqa: E402
    FastCarRacing,
    FrameSkip,
    family_for,
    fast_render_supported,
    make_vec_env,
)
from relic_rl.environments.wrappers import skipping_env  # noqa: E402

pytestmark = [
    pytest.mark.carracing,
    pytest.mark.skipif(
        not fast_render_supported(warn=False),
        reason=f"relic-rl's fast renderer is not verified for gymnasium {gym.__version__}",
    ),
]


def _frame_skip(venv: Any, index: int = 0) -> FrameSkip:
    env = venv.unwrapped.envs[index]
    while not isinstance(env, FrameSkip):
        env = env.env
    return env


def _actions(
    rng: np.random.Generator, continuous: bool, episodes: np.ndarray, ages: np.ndarray
) -> np.ndarray:
    """Per env: even episodes drive straight on steady gas (the car leaves the playfield after
    ~270 frames: terminated), odd ones alternate random actions and gas with a little steering
    in phases of 20 agent steps."""
    steady = episodes % 2 == 0
    random_phase = (ages // 20) % 2 == 0
    n_envs = len(episodes)
    if continuous:
        out = rng.uniform([-1.0, 0.0, 0.0], [1.0, 1.0, 1.0], size=(n_envs, 3))
        gentle = np.stack([rng.normal(0.0, 0.1, n_envs), np.full(n_envs, 0.4), np.zeros(n_envs)], axis=1)
        out = np.where(random_phase[:, None], out, gentle)
        out[steady] = (0.0, 0.5, 0.0)
        return out.astype(np.float32)
    return np.where(steady, 3, np.where(random_phase, rng.integers(0, 5, size=n_envs), 3))


def _same(a: Any, b: Any, what: str) -> None:
    assert type(a) is type(b), what
    if isinstance(a, dict):
        # Monitor's episode record holds the wall-clock time "t", which no two runs share.
        keys = sorted(set(a) - {"t"})
        assert keys == sorted(set(b) - {"t"}), what
        for key in keys:
            _same(a[key], b[key], f"{what}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{what}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, what
        if not np.array_equal(a, b):
            pytest.fail(f"{what}: {int((a != b).sum())} values differ")
    else:
        assert a == b, what


def _run_pipeline_lockstep(
    env_id: str,
    *,
    seed: int,
    steps: int,
    frame_skip: int,
    n_envs: int = 2,
    continuous: bool = True,
    domain_randomize: bool = False,
    render_mode: str | None = None,
    max_episode_steps: int | None = None,
) -> dict[str, int]:
    """Step the default (fast, skipping) and the stock pipeline with the same actions and
    compare everything; return how the episodes ended."""
    preset = dataclasses.replace(family_for(env_id), frame_skip=frame_skip)
    kwargs: dict[str, Any] = {"continuous": continuous, "domain_randomize": domain_randomize}
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    fast = make_vec_env(env_id, n_envs=n_envs, seed=seed, preset=preset, env_kwargs=kwargs)
    stock = make_vec_env(
        env_id, n_envs=n_envs, seed=seed, preset=preset, env_kwargs={**kwargs, "renderer": "stock"}
    )
    counts = {"episodes": 0, "terminated": 0, "inside_skip": 0, "frames": 0}
    try:
        assert all(isinstance(e, FastCarRacing) for e in fast.get_attr("unwrapped"))
        assert not any(isinstance(e, FastCarRacing) for e in stock.get_attr("unwrapped"))
        assert _frame_skip(fast).skips_drawing and not _frame_skip(stock).skips_drawing
        _same(fast.reset(), stock.reset(), "reset")
        rng = np.random.default_rng(seed)
        episodes, ages = np.zeros(n_envs, dtype=int), np.zeros(n_envs, dtype=int)
        for t in range(steps):
            actions = _actions(rng, continuous, episodes, ages)
            out_fast, out_stock = fast.step(actions), stock.step(actions)
            for name, a, b in zip(("obs", "rewards", "dones", "infos"), out_fast, out_stock, strict=True):
                _same(a, b, f"step {t}: {name}")
            if render_mode == "rgb_array":
                _same(fast.get_images(), stock.get_images(), f"step {t}: rgb_array frames")
                counts["frames"] += n_envs
            elif render_mode == "human":
                for i, (a, b) in enumerate(
                    zip(fast.get_attr("unwrapped"), stock.get_attr("unwrapped"), strict=True)
                ):
                    window_a, window_b = pygame.surfarray.array3d(a.surf), pygame.surfarray.array3d(b.surf)
                    _same(window_a, window_b, f"step {t}: env {i} window")
                counts["frames"] += n_envs
            ages += 1
            for i, (info, done) in enumerate(zip(out_stock[3], out_stock[2], strict=True)):
                if done:
                    episodes[i] += 1
                    ages[i] = 0
                    counts["episodes"] += 1
                    counts["terminated"] += not info.get("TimeLimit.truncated", False)
                    counts["inside_skip"] += info["episode"]["l"] % frame_skip != 0
    finally:
        fast.close()
        stock.close()
    return counts


@pytest.mark.parametrize(
    ("env_id", "seed", "frame_skip", "continuous", "domain_randomize"),
    [
        ("CarRacing-v2", 0, 2, True, False),  # the preset
        ("CarRacing-v3", 1, 3, False, True),
        ("CarRacing-v2", 2, 3, True, True),
    ],
)
def test_pipeline_observations_equal_the_stock_renderer(
    env_id: str, seed: int, frame_skip: int, continuous: bool, domain_randomize: bool
) -> None:
    # Short episodes (301 frames) put many resets, zoom-in phases and episode ends inside a
    # skip into 2 x 400 agent steps.
    counts = _run_pipeline_lockstep(
        env_id,
        seed=seed,
        steps=400,
        frame_skip=frame_skip,
        continuous=continuous,
        domain_randomize=domain_randomize,
        max_episode_steps=301,
    )
    assert counts["episodes"] >= 4 and counts["inside_skip"] >= 1, counts
    if continuous:  # full gas leaves the playfield; discrete gas (0.2) is too slow for that
        assert counts["terminated"] >= 1, counts


def test_pipeline_with_the_preset_episode_limit() -> None:
    # The registered 1000-step limit and frame skip 2: 1,200 agent steps, truncations at the
    # end of a skip, terminations anywhere.
    counts = _run_pipeline_lockstep("CarRacing-v3", seed=5, steps=1200, frame_skip=2, n_envs=1)
    assert counts["episodes"] >= 2, counts


@pytest.mark.parametrize("render_mode", ["rgb_array", "human"])
def test_pipeline_render_modes_are_unchanged(render_mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    # "human" windows tick at the env's 50 FPS, so this run is short.
    counts = _run_pipeline_lockstep(
        "CarRacing-v2",
        seed=6,
        steps=60,
        n_envs=1,
        frame_skip=3,
        render_mode=render_mode,
        max_episode_steps=100,
    )
    assert counts["inside_skip"] >= 1 and counts["frames"] == 60, counts


def test_skipped_frames_are_not_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[str] = []
    original = FastCarRacing._render_road

    def counting(self: FastCarRacing, *args: Any) -> None:
        drawn.append("frame")
        original(self, *args)

    monkeypatch.setattr(FastCarRacing, "_render_road", counting)
    venv = make_vec_env("CarRacing-v2", n_envs=1, seed=0)
    try:
        venv.reset()
        drawn.clear()
        for _ in range(10):
            venv.step(np.array([[0.0, 0.1, 0.0]], dtype=np.float32))
        assert len(drawn) == 10  # one frame per agent step, not frame_skip (2) frames
    finally:
        venv.close()


def test_only_pass_through_wrappers_allow_skipping() -> None:
    env = gym.make("CarRacing-v3")  # gymnasium's class: cannot skip
    assert skipping_env(env) is None
    fast = gym.wrappers.TimeLimit(FastCarRacing(), 50)
    assert skipping_env(fast) is fast.unwrapped
    assert FrameSkip(fast, 2).skips_drawing and not FrameSkip(fast, 1).skips_drawing
    # An observation wrapper in between needs every frame.
    resized = gym.wrappers.ResizeObservation(FastCarRacing(), (64, 64))
    assert skipping_env(resized) is None and not FrameSkip(resized, 2).skips_drawing
    assert not isinstance(env.unwrapped, FastCarRacing) and isinstance(env.unwrapped, CarRacing)


def test_reset_cancels_a_pending_skip() -> None:
    fast, stock = FastCarRacing(), CarRacing()
    fast.reset(seed=3)
    fast.skip_next_observation()
    # A reset before the skipped step (e.g. after an exception) must draw its observation.
    obs_fast, _ = fast.reset(seed=4)
    obs_stock, _ = stock.reset(seed=4)
    assert np.array_equal(obs_fast, obs_stock)
    assert fast.render_skipped_observation() is fast.state
