"""FastCarRacing: the same frames, rewards and episode ends as gymnasium's CarRacing.

The stock env and the fast env are stepped in lockstep with the same seed and actions;
every observation, every ``rgb_array`` frame, every reward, ``terminated``,
``truncated`` and ``info`` must be equal.
"""

from __future__ import annotations

import inspect
import math
import pickle
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("Box2D")
pygame = pytest.importorskip("pygame")

from gymnasium.envs.box2d.car_racing import CarRacing  # noqa: E402
from gymnasium.wrappers import TimeLimit  # noqa: E402

import relic_rl  # noqa: E402
from relic_rl.environments import (  # noqa: E402
    EnvCreationError,
    FastCarRacing,
    carracing as carracing_module,
    fast_render_supported,
    make_vec_env,
    renderer as renderer_module,
    renderer_note,
)
from relic_rl.environments._carracing_env import make_carracing_v2  # noqa: E402
from relic_rl.environments.fast_carracing import rotate, to_screen  # noqa: E402

pytestmark = pytest.mark.carracing

# On other gymnasium releases FastCarRacing renders with gymnasium's code, and comparing it with
# the stock env would compare the stock renderer with itself. (Within the range, a failing
# arithmetic self-check is a test failure, see test_pygame_arithmetic_self_check_passes.)
needs_fast_renderer = pytest.mark.skipif(
    not fast_render_supported(warn=False),
    reason=f"relic-rl's fast renderer is not verified for gymnasium {gym.__version__}",
)
VERIFIED_VERSION = ".".join(map(str, carracing_module.VERIFIED_GYMNASIUM[0]))


# --------------------------------------------------------------------- arithmetic


def _pygame_rotate(points: np.ndarray, angle: float) -> np.ndarray:
    return np.array([tuple(pygame.math.Vector2(float(x), float(y)).rotate_rad(angle)) for x, y in points])


def _quarter_turn_angles() -> list[float]:
    """Angles at and around multiples of a quarter turn, where pygame special-cases."""
    offsets = (0.0, 1e-12, -1e-12, 5e-7, -5e-7, 9.99e-7, -9.99e-7, 1.01e-6, -1.01e-6, 2e-6, -2e-6, 1e-3)
    return [k * math.pi / 2 + d for k in range(-9, 10) for d in offsets]


def test_rotate_is_bit_identical_to_pygame_vector2() -> None:
    rng = np.random.default_rng(0)
    angles = [*rng.normal(0.0, 10.0, 300), *rng.uniform(-1e4, 1e4, 50), *_quarter_turn_angles()]
    for angle in angles:
        points = rng.normal(0.0, 400.0, (16, 2))
        expected = _pygame_rotate(points, float(angle))
        got = rotate(points, float(angle))
        # Compare the bit patterns: equal doubles, including the sign of zeros.
        assert np.array_equal(got.view(np.int64), expected.view(np.int64)), angle


@needs_fast_renderer
def test_pygame_arithmetic_self_check_passes() -> None:
    assert renderer_module._arithmetic_matches_pygame()
    assert FastCarRacing().fast_render is True


def test_to_screen_is_the_stock_expression() -> None:
    rng = np.random.default_rng(1)
    points = rng.normal(0.0, 300.0, (3, 4, 2))
    angle, zoom, translation = 0.7310585786300049, 16.2, (512.25, -37.5)
    got = to_screen(points, angle, zoom, translation)
    for poly, out in zip(points, got, strict=True):
        rotated = [pygame.math.Vector2(tuple(c)).rotate_rad(angle) for c in poly]
        stock = [(c[0] * zoom + translation[0], c[1] * zoom + translation[1]) for c in rotated]
        assert out.tolist() == [list(p) for p in stock]


# -------------------------------------------------------------------- lockstep runs


def _actions(rng: np.random.Generator, continuous: bool, episode: int) -> Iterator[Any]:
    """Actions for one episode. Even episodes drive straight on steady gas until the car
    leaves the playfield (terminated, reward -100, after ~300 steps); odd ones drive in
    random phases (random actions, gas with a little steering, braking while steering)
    until the time limit truncates them."""
    if episode % 2 == 0:
        while True:
            yield np.array([0.0, 0.3, 0.0], dtype=np.float32) if continuous else 3
    while True:
        phase = rng.integers(3)
        for _ in range(int(rng.integers(20, 120))):
            if continuous:
                if phase == 0:
                    yield rng.uniform([-1.0, 0.0, 0.0], [1.0, 1.0, 1.0]).astype(np.float32)
                elif phase == 1:
                    yield np.array([rng.normal(0.0, 0.05), 0.3, 0.0], dtype=np.float32)
                else:
                    yield np.array([rng.choice([-1.0, 1.0]), 0.0, 0.8], dtype=np.float32)
            elif phase == 0:
                yield int(rng.integers(5))
            else:
                yield 3 if phase == 1 else int(rng.choice([1, 2, 4]))


def _make_pair(v2: bool = False, **kwargs: Any) -> tuple[gym.Env[Any, Any], gym.Env[Any, Any]]:
    """(stock, fast) envs with the same arguments; ``v2``: relic-rl's CarRacing-v2 entry point
    (v2's score text and episode ends) with each renderer."""
    limit = kwargs.pop("max_episode_steps")
    if v2:
        stock, fast = (
            make_carracing_v2(renderer="stock", **kwargs),
            make_carracing_v2(renderer="fast", **kwargs),
        )
        assert isinstance(fast.unwrapped, FastCarRacing) and not isinstance(stock.unwrapped, FastCarRacing)
        return TimeLimit(stock, limit), TimeLimit(fast, limit)
    return TimeLimit(CarRacing(**kwargs), limit), TimeLimit(FastCarRacing(**kwargs), limit)


def _assert_same(stock: Any, fast: Any, what: str) -> None:
    assert type(stock) is type(fast), what
    if isinstance(stock, tuple):
        assert len(stock) == len(fast), what
        for i, (a, b) in enumerate(zip(stock, fast, strict=True)):
            _assert_same(a, b, f"{what}[{i}]")
    elif isinstance(stock, np.ndarray):
        assert stock.dtype == fast.dtype and stock.shape == fast.shape, what
        if not np.array_equal(stock, fast):
            differing = int(np.any(stock != fast, axis=-1).sum())
            pytest.fail(f"{what}: {differing} pixels differ")
    else:
        assert stock == fast, what


def _assert_same_step(stock: tuple[Any, ...], fast: tuple[Any, ...], where: str) -> None:
    names = ("obs", "reward", "terminated", "truncated", "info")
    for name, a, b in zip(names, stock, fast, strict=True):
        _assert_same(a, b, f"{where}: {name}")


def _run_lockstep(
    steps: int,
    seed: int,
    continuous: bool,
    domain_randomize: bool,
    render_mode: str | None,
    max_episode_steps: int = 400,
    lap_complete_percent: float = 0.95,
    v2: bool = False,
) -> dict[str, int]:
    """Step both envs ``steps`` times, compare everything, return counts of episode ends."""
    stock, fast = _make_pair(
        v2=v2,
        continuous=continuous,
        domain_randomize=domain_randomize,
        render_mode=render_mode,
        max_episode_steps=max_episode_steps,
        lap_complete_percent=lap_complete_percent,
    )
    rng = np.random.default_rng(seed)
    actions = _actions(rng, continuous, episode=0)
    counts = {"terminated": 0, "truncated": 0, "lap_finished": 0, "frames": 0}

    def compare_frames(where: str) -> None:
        if render_mode in ("rgb_array", "state_pixels"):
            _assert_same(stock.render(), fast.render(), f"{where}: render()")
            counts["frames"] += 1

    try:
        _assert_same(stock.reset(seed=seed), fast.reset(seed=seed), "reset")
        compare_frames("reset")
        for t in range(steps):
            action = next(actions)
            out_stock = stock.step(action)
            out_fast = fast.step(action)
            _assert_same_step(out_stock, out_fast, f"step {t}")
            compare_frames(f"step {t}")
            _, _, terminated, truncated, info = out_stock
            if terminated or truncated:
                counts["terminated"] += bool(terminated)
                counts["truncated"] += bool(truncated)
                counts["lap_finished"] += bool(info.get("lap_finished"))
                episodes = counts["terminated"] + counts["truncated"]
                actions = _actions(rng, continuous, episode=episodes)
                # Half of the domain-randomized resets keep the colours (reset option).
                options = {"randomize": bool(rng.integers(2))} if domain_randomize else None
                _assert_same(stock.reset(options=options), fast.reset(options=options), f"reset after {t}")
                compare_frames(f"reset after {t}")
    finally:
        stock.close()
        fast.close()
    return counts


@needs_fast_renderer
@pytest.mark.parametrize(
    ("seed", "continuous", "domain_randomize", "render_mode"),
    [
        (0, True, False, "rgb_array"),
        (1, False, True, "rgb_array"),
        (2, True, True, None),
        (3, False, False, "state_pixels"),
    ],
)
def test_same_observations_frames_rewards_and_episode_ends(
    seed: int, continuous: bool, domain_randomize: bool, render_mode: str | None
) -> None:
    counts = _run_lockstep(1000, seed, continuous, domain_randomize, render_mode)
    # The run must have crossed both kinds of episode end and the resets after them.
    assert counts["terminated"] >= 1 and counts["truncated"] >= 1, counts
    if render_mode is not None:
        assert counts["frames"] > 1000


@needs_fast_renderer
def test_carracing_v2_entry_point_same_frames_with_either_renderer() -> None:
    # relic-rl's CarRacing-v2: v2's score text (drawn through the fast renderer's text cache)
    # and v2's episode ends (a completed lap truncates).
    counts = _run_lockstep(800, 8, True, True, "rgb_array", v2=True)
    assert counts["terminated"] >= 1 and counts["truncated"] >= 1, counts


@needs_fast_renderer
@pytest.mark.parametrize("v2", [False, True])
def test_same_results_when_laps_complete(v2: bool) -> None:
    # lap_complete_percent=0: touching the start tile completes the lap on the first step.
    counts = _run_lockstep(40, 4, True, False, "rgb_array", lap_complete_percent=0.0, v2=v2)
    if v2:
        assert (counts["terminated"], counts["truncated"]) == (0, 40)  # v2: a lap is a truncation
    else:
        assert (counts["terminated"], counts["lap_finished"]) == (40, 40)


@needs_fast_renderer
def test_human_mode_draws_the_same_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    stock, fast = _make_pair(render_mode="human", max_episode_steps=40)
    try:
        rng = np.random.default_rng(5)
        _assert_same(stock.reset(seed=5), fast.reset(seed=5), "reset")
        for t in range(100):
            action = rng.uniform([-1.0, 0.0, 0.0], [1.0, 1.0, 1.0]).astype(np.float32)
            out_stock, out_fast = stock.step(action), fast.step(action)
            _assert_same_step(out_stock, out_fast, f"step {t}")
            stock_window = pygame.surfarray.array3d(stock.unwrapped.surf)
            fast_window = pygame.surfarray.array3d(fast.unwrapped.surf)
            _assert_same(stock_window, fast_window, f"step {t}: window")
            if out_stock[3]:  # time limit: reset both (twice in 100 steps)
                _assert_same(stock.reset(), fast.reset(), f"reset after {t}")
    finally:
        stock.close()
        fast.close()


@needs_fast_renderer
def test_frames_stay_identical_across_pygame_shutdowns() -> None:
    """Another component may shut pygame (or its font module) down and start it again
    between two frames; no font from before may be used afterwards."""
    stock = CarRacing(render_mode="rgb_array")
    fast = FastCarRacing(render_mode="rgb_array")
    rng = np.random.default_rng(9)
    _assert_same(stock.reset(seed=9), fast.reset(seed=9), "reset")
    shutdowns = [
        lambda: (pygame.quit(), pygame.init()),
        lambda: (pygame.font.quit(), pygame.font.init()),
        lambda: pygame.quit(),
        lambda: (pygame.quit(), pygame.init()),
    ]
    try:
        for round_, shutdown in enumerate([*shutdowns, None]):
            # 15 steps change the score text (-0.1 per step), so new texts must be rendered.
            for t in range(15):
                action = rng.uniform([-1.0, 0.0, 0.0], [1.0, 1.0, 1.0]).astype(np.float32)
                _assert_same_step(stock.step(action), fast.step(action), f"round {round_}, step {t}")
                _assert_same(stock.render(), fast.render(), f"round {round_}, step {t}: frame")
            if shutdown is not None:
                shutdown()
    finally:
        stock.close()
        fast.close()


# ------------------------------------------------------------------------ the class


@needs_fast_renderer
def test_fast_carracing_is_a_carracing_with_the_same_arguments() -> None:
    assert relic_rl.FastCarRacing is FastCarRacing
    assert issubclass(FastCarRacing, CarRacing)
    stock_params = list(inspect.signature(CarRacing.__init__).parameters)
    fast_params = list(inspect.signature(FastCarRacing.__init__).parameters)
    assert fast_params == stock_params
    env = FastCarRacing(continuous=False, domain_randomize=True, lap_complete_percent=0.5)
    assert env.fast_render is True
    assert env.action_space == gym.spaces.Discrete(5)
    assert (env.domain_randomize, env.lap_complete_percent) == (True, 0.5)
    clone = pickle.loads(pickle.dumps(env))
    assert type(clone) is FastCarRacing
    assert (clone.continuous, clone.domain_randomize, clone.lap_complete_percent) == (False, True, 0.5)


def test_render_before_reset_returns_none_like_stock() -> None:
    for cls in (CarRacing, FastCarRacing):
        assert cls(render_mode="rgb_array").render() is None


def test_version_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    low, high = carracing_module.VERIFIED_GYMNASIUM
    assert fast_render_supported(".".join(map(str, low)), warn=False)
    assert not fast_render_supported(".".join(map(str, high)), warn=False)
    assert not fast_render_supported(f"{high[0]}.{high[1]}.0rc1", warn=False)
    assert not fast_render_supported(f"{low[0]}.{low[1] - 1}.9", warn=False) if low[1] > 0 else True
    assert fast_render_supported(gym.__version__, warn=False) == (low <= _installed() < high)


def _installed() -> tuple[int, int, int]:
    major, minor, micro = (int(p) for p in gym.__version__.split(".")[:3])
    return major, minor, micro


def test_unverified_gymnasium_falls_back_to_the_stock_renderer_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    high = carracing_module.VERIFIED_GYMNASIUM[1]
    monkeypatch.setattr(gym, "__version__", ".".join(map(str, high)))
    monkeypatch.setattr(renderer_module, "_WARNED_UNSUPPORTED", False)
    with pytest.warns(RuntimeWarning, match=r"fast CarRacing renderer is verified for gymnasium >=.*<"):
        env = FastCarRacing()
    assert env.fast_render is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would fail here
        second = FastCarRacing()
        venv = make_vec_env("CarRacing-v3", n_envs=1, seed=0)
    try:
        assert type(venv.get_attr("unwrapped")[0]) is CarRacing  # the factory builds the stock env
        obs, _ = env.reset(seed=3)
        stock_obs, _ = CarRacing().reset(seed=3)
        _assert_same(stock_obs, obs, "fallback reset")
        note = renderer_note("CarRacing-v3")
        assert note is not None and "gymnasium's own renderer" in note and "verified" in note
    finally:
        venv.close()
        second.close()
        env.close()


@pytest.fixture
def pygame_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A verified gymnasium, but pygame arithmetic the fast renderer cannot reproduce
    (the self-check result faked), with its warning not yet given."""
    monkeypatch.setattr(gym, "__version__", VERIFIED_VERSION)
    monkeypatch.setattr(renderer_module, "_ARITHMETIC_OK", False)
    monkeypatch.setattr(renderer_module, "_WARNED_ARITHMETIC", False)


@pytest.mark.usefixtures("pygame_mismatch")
def test_platform_arithmetic_mismatch_falls_back_to_the_stock_renderer() -> None:
    with pytest.warns(RuntimeWarning, match="cannot reproduce this pygame build's Vector2 rotation"):
        env = FastCarRacing()
    assert env.fast_render is False
    note = renderer_note("CarRacing-v3")
    assert note is not None and "gymnasium's own renderer" in note
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once only
        venv = make_vec_env("CarRacing-v2", n_envs=1, seed=0)
    try:
        assert not isinstance(venv.get_attr("unwrapped")[0], FastCarRacing)
    finally:
        venv.close()
        env.close()


@pytest.mark.usefixtures("pygame_mismatch")
def test_the_factory_says_once_that_it_falls_back_on_a_pygame_mismatch() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            venv = make_vec_env("CarRacing-v3", n_envs=2, seed=0)
            assert not any(isinstance(e, FastCarRacing) for e in venv.get_attr("unwrapped"))
            venv.close()
    said = [w for w in caught if "cannot reproduce this pygame build" in str(w.message)]
    assert len(said) == 1


@pytest.mark.usefixtures("pygame_mismatch")
def test_subprocess_workers_do_not_repeat_the_fallback_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from relic_rl.environments import _carracing_env

    monkeypatch.setattr(_carracing_env.multiprocessing, "parent_process", lambda: object())  # a worker
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = _carracing_env.make_carracing_v3()
    assert type(env) is CarRacing
    monkeypatch.setattr(_carracing_env.multiprocessing, "parent_process", lambda: None)  # the main process
    with pytest.warns(RuntimeWarning, match="cannot reproduce this pygame build"):
        _carracing_env.make_carracing_v3()


def test_the_factory_says_once_that_it_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    high = carracing_module.VERIFIED_GYMNASIUM[1]
    monkeypatch.setattr(gym, "__version__", ".".join(map(str, high)))
    monkeypatch.setattr(renderer_module, "_WARNED_UNSUPPORTED", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            make_vec_env("CarRacing-v3", n_envs=2, seed=0).close()
        make_vec_env("CarRacing-v3", n_envs=1, seed=0, env_kwargs={"renderer": "stock"}).close()
    said = [w for w in caught if "fast CarRacing renderer is verified" in str(w.message)]
    assert len(said) == 1


# ------------------------------------------------------------------------- factory


@needs_fast_renderer
@pytest.mark.parametrize("env_id", ["CarRacing-v2", "CarRacing-v3"])
def test_factory_uses_the_fast_renderer_unless_stock_is_asked_for(env_id: str) -> None:
    for kwargs, fast in (({}, True), ({"renderer": "fast"}, True), ({"renderer": "stock"}, False)):
        venv = make_vec_env(env_id, n_envs=1, seed=0, env_kwargs=kwargs)
        try:
            unwrapped = venv.get_attr("unwrapped")[0]
            assert isinstance(unwrapped, CarRacing)
            assert isinstance(unwrapped, FastCarRacing) is fast, kwargs
            assert venv.get_attr("spec")[0].id == env_id
            assert venv.get_attr("spec")[0].max_episode_steps == 1000
        finally:
            venv.close()
        note = renderer_note(env_id, kwargs)
        assert note is not None and ("fast renderer" in note) is fast


@needs_fast_renderer
def test_factory_fast_and_stock_give_the_same_preprocessed_observations() -> None:
    observations = []
    for renderer in ("fast", "stock"):
        venv = make_vec_env("CarRacing-v2", n_envs=2, seed=7, env_kwargs={"renderer": renderer})
        rng = np.random.default_rng(7)
        frames = [venv.reset()]
        for _ in range(60):
            actions = rng.uniform([-1.0, 0.0, 0.0], [1.0, 1.0, 1.0], size=(2, 3)).astype(np.float32)
            frames.append(venv.step(actions)[0])
        venv.close()
        observations.append(np.stack(frames))
    assert observations[0].shape == (61, 2, 2, 64, 64)
    assert np.array_equal(observations[0], observations[1])


def test_error_unknown_renderer() -> None:
    with pytest.raises(EnvCreationError, match=r"renderer must be one of \['fast', 'stock'\], got 'fastest'"):
        make_vec_env("CarRacing-v3", env_kwargs={"renderer": "fastest"})


@needs_fast_renderer
def test_module_prefixed_carracing_v2_is_relic_rls() -> None:
    venv = make_vec_env("relic_rl:CarRacing-v2", n_envs=1, seed=0)
    try:
        assert isinstance(venv.get_attr("unwrapped")[0], FastCarRacing)
    finally:
        venv.close()
    note = renderer_note("relic_rl:CarRacing-v2")
    assert note is not None and "fast renderer" in note


def test_without_box2d_fast_carracing_is_missing_but_imports_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import BOX2D_MODULES

    for name in list(sys.modules):
        if name.startswith(BOX2D_MODULES):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "Box2D", None)
    namespace: dict[str, Any] = {}
    exec("from relic_rl import *\nfrom relic_rl.environments import *", namespace)
    assert "ReLICPPO" in namespace and "make_vec_env" in namespace
    assert not hasattr(relic_rl, "FastCarRacing")
    with pytest.raises(AttributeError, match=r'pip install "relic-rl\[box2d\]"'):
        _ = relic_rl.environments.FastCarRacing


def test_run_summary_note_reads_the_preset_and_the_user_env_kwargs() -> None:
    import dataclasses

    from relic_rl.experiment import _env_note
    from relic_rl.train import resolve_run_config

    config = resolve_run_config(["--env", "CarRacing-v3"])
    stock_preset = dataclasses.replace(config.env_preset, env_kwargs={"renderer": "stock"})
    assert "renderer=stock" in (_env_note(dataclasses.replace(config, env_preset=stock_preset)) or "")
    user_stock = resolve_run_config(["--env", "CarRacing-v3", "--env-kwargs", "renderer=stock"])
    assert "renderer=stock" in (_env_note(user_stock) or "")
    if fast_render_supported(warn=False):
        assert "fast renderer" in (_env_note(config) or "")


def test_plain_gym_make_is_untouched() -> None:
    env = gym.make("CarRacing-v3")
    assert type(env.unwrapped) is CarRacing
    env.close()
    assert renderer_note("ALE/Pong-v5") is None
