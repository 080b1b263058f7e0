"""CarRacing env speed: gymnasium's renderer vs relic-rl's FastCarRacing, in one run.

Env steps/s: both envs (and a physics-only variant whose rendering is stubbed out) are
stepped with the same seeded random actions, resetting at episode ends, in alternating
rounds; the ratios are taken within each round and their median is reported. The
physics-only rate shows how much of a step is still rendering (the remaining headroom).
Use runs much longer than 50 steps: the first second (50 steps) of every episode zooms in
from a view of the whole track, where both envs draw all ~1,000 polygons and differ little.

Pipeline (always): agent steps/s of the whole preprocessed ``CarRacing-v2`` pipeline as
``relic_rl.environments.make_vec_env`` builds it (Monitor, frame skip 2, 64x64 resize,
grayscale, frame stack 2, one env in a DummyVecEnv), with gymnasium's renderer
(``renderer=stock``, every frame drawn) and relic-rl's default (the fast renderer, skipped
frames not drawn), alternating rounds, median ratio.

Training throughput (``--ppo``): the tuned CarRacing PPO preset of
``python -m relic_rl.train --env CarRacing-v2 --preset CarRacing-v2-rl-zoo3`` (8 envs x 512
steps, frame skip 2, ReLIC on) is built per renderer and round and trained for ``--ppo-rollouts`` rollouts, in
``--ppo-repeats`` rounds of alternating order; agent steps/s are reported for the whole of
``learn`` and for the rollout (env) phase alone, with the median ratio over the rounds.

    python benchmarks/bench_carracing.py [--steps 1500] [--repeats 5] [--pipeline-steps 1000] [--ppo]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import pygame
import torch
from gymnasium.envs.box2d.car_racing import CarRacing
from machine import cpu_model
from stable_baselines3.common.callbacks import BaseCallback

from relic_rl import FastCarRacing
from relic_rl.cli_types import int_at_least


class PhysicsOnlyCarRacing(CarRacing):
    """CarRacing without rendering: the floor any renderer can approach."""

    def _render(self, mode: str) -> Any:
        return None


ENVS: dict[str, type[CarRacing]] = {
    "stock": CarRacing,
    "fast": FastCarRacing,
    "physics": PhysicsOnlyCarRacing,
}


def env_steps_per_second(cls: type[CarRacing], steps: int, seed: int) -> float:
    """Steps/s of ``cls`` over ``steps`` random actions (resets included, construction not)."""
    env = cls()
    rng = np.random.default_rng(seed)
    actions = rng.uniform([-1.0, 0.0, 0.0], [1.0, 1.0, 1.0], size=(steps, 3)).astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def bench_envs(steps: int, repeats: int) -> None:
    rates: dict[str, list[float]] = {name: [] for name in ENVS}
    ratios: dict[str, list[float]] = {"fast/stock": [], "physics/stock": [], "physics/fast": []}
    for cls in ENVS.values():  # warm-up: imports, fonts, first allocations
        env_steps_per_second(cls, 100, seed=0)
    for round_ in range(repeats):
        order = list(ENVS) if round_ % 2 == 0 else list(reversed(ENVS))
        now = {name: env_steps_per_second(ENVS[name], steps, seed=round_) for name in order}
        for name, rate in now.items():
            rates[name].append(rate)
        ratios["fast/stock"].append(now["fast"] / now["stock"])
        ratios["physics/stock"].append(now["physics"] / now["stock"])
        ratios["physics/fast"].append(now["physics"] / now["fast"])
        print(
            f"round {round_ + 1}: stock {now['stock']:7.1f}  fast {now['fast']:7.1f}  "
            f"physics-only {now['physics']:8.1f} steps/s   fast/stock {now['fast'] / now['stock']:.2f}x",
            flush=True,
        )
    print()
    print(f"{'env':<14}{'median steps/s':>16}{'min':>10}{'max':>10}")
    for name, values in rates.items():
        label = "physics-only" if name == "physics" else name
        print(f"{label:<14}{statistics.median(values):16.1f}{min(values):10.1f}{max(values):10.1f}")
    print()
    for name, values in ratios.items():
        print(
            f"ratio {name:<14} median {statistics.median(values):6.2f}x  "
            f"(min {min(values):.2f}, max {max(values):.2f})"
        )
    stock_ms = 1000 / statistics.median(rates["stock"])
    fast_ms = 1000 / statistics.median(rates["fast"])
    physics_ms = 1000 / statistics.median(rates["physics"])
    print(
        f"per step: stock {stock_ms:.2f} ms, fast {fast_ms:.2f} ms, physics {physics_ms:.3f} ms -> "
        f"rendering is {100 * (fast_ms - physics_ms) / fast_ms:.0f}% of a fast step "
        f"({100 * (stock_ms - physics_ms) / stock_ms:.0f}% of a stock step)"
    )


def pipeline_steps_per_second(renderer: str, steps: int, seed: int) -> float:
    """Agent steps/s of the preprocessed CarRacing-v2 pipeline (one env, random actions)."""
    from relic_rl.environments import make_vec_env

    venv = make_vec_env("CarRacing-v2", n_envs=1, seed=seed, env_kwargs={"renderer": renderer})
    rng = np.random.default_rng(seed)
    actions = rng.uniform([-1.0, 0.0, 0.0], [1.0, 1.0, 1.0], size=(steps, 1, 3)).astype(np.float32)
    venv.reset()
    start = time.perf_counter()
    for action in actions:
        venv.step(action)  # the VecEnv resets by itself at episode ends
    elapsed = time.perf_counter() - start
    venv.close()
    return steps / elapsed


def bench_pipeline(steps: int, repeats: int) -> None:
    print(
        f"\nCarRacing-v2 pipeline (make_vec_env, frame skip 2, 64x64 gray, stack 2): {steps} agent "
        f"steps per renderer and round, {repeats} rounds"
    )
    renderers = ("stock", "fast")
    rates: dict[str, list[float]] = {name: [] for name in renderers}
    for name in renderers:  # warm-up
        pipeline_steps_per_second(name, 50, seed=0)
    ratios = []
    for round_ in range(repeats):
        order = renderers if round_ % 2 == 0 else tuple(reversed(renderers))
        now = {name: pipeline_steps_per_second(name, steps, seed=round_) for name in order}
        for name, rate in now.items():
            rates[name].append(rate)
        ratios.append(now["fast"] / now["stock"])
        print(
            f"round {round_ + 1}: stock {now['stock']:7.1f}  default {now['fast']:7.1f} agent steps/s   "
            f"default/stock {ratios[-1]:.2f}x",
            flush=True,
        )
    for name in renderers:
        values = rates[name]
        label = "stock renderer" if name == "stock" else "default"
        print(
            f"{label:<16} median {statistics.median(values):7.1f} agent steps/s "
            f"({1000 / statistics.median(values):.2f} ms per agent step; min {min(values):.1f}, "
            f"max {max(values):.1f})"
        )
    print(
        f"env cost per agent step, stock / default: median {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
    )


class _PhaseTimer(BaseCallback):
    """Wall time spent collecting rollouts (env steps + policy forward passes)."""

    def __init__(self) -> None:
        super().__init__()
        self.rollout_seconds = 0.0
        self._started = 0.0

    def _on_rollout_start(self) -> None:
        self._started = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.rollout_seconds += time.perf_counter() - self._started

    def _on_step(self) -> bool:
        return True


def _train_once(renderer: str, rollouts: int) -> tuple[int, float, float]:
    """Train the preset for ``rollouts`` rollouts; (agent steps, seconds, seconds in rollouts)."""
    from relic_rl.experiment import build_model, make_env
    from relic_rl.train import resolve_run_config

    config = resolve_run_config(
        ["--env", "CarRacing-v2", "--preset", "CarRacing-v2-rl-zoo3", "--env-kwargs", f"renderer={renderer}"]
    )
    n_steps = int(config.agent.hyperparam("n_steps") or 0)
    env = make_env(config, n_envs=config.agent.n_envs, seed=0)
    model = build_model(config, env, "cpu")
    timer = _PhaseTimer()
    start = time.perf_counter()
    model.learn(total_timesteps=rollouts * config.agent.n_envs * n_steps, callback=timer)
    elapsed = time.perf_counter() - start
    env.close()
    return model.num_timesteps, elapsed, timer.rollout_seconds


def bench_ppo(rollouts: int, repeats: int) -> None:
    print(
        f"\nCarRacing-v2 PPO, rl-zoo3 preset (ReLIC on): {repeats} round(s) of {rollouts} rollout(s) "
        "+ update(s) per renderer, alternating order:"
    )
    overall: dict[str, list[float]] = {"stock": [], "fast": []}
    rollout: dict[str, list[float]] = {"stock": [], "fast": []}
    for round_ in range(repeats):
        for renderer in ("stock", "fast") if round_ % 2 == 0 else ("fast", "stock"):
            steps, elapsed, in_rollouts = _train_once(renderer, rollouts)
            overall[renderer].append(steps / elapsed)
            rollout[renderer].append(steps / in_rollouts)
            print(
                f"  round {round_ + 1} {renderer:<6} {steps} agent steps in {elapsed:6.1f} s: "
                f"{steps / elapsed:6.1f} agent steps/s overall, {steps / in_rollouts:6.1f} during rollouts "
                f"(rollouts {in_rollouts:.1f} s, updates {elapsed - in_rollouts:.1f} s)",
                flush=True,
            )
    for label, rates in (("overall", overall), ("rollouts only", rollout)):
        ratios = [f / s for f, s in zip(rates["fast"], rates["stock"], strict=True)]
        print(
            f"agent steps/s {label:<14} stock {statistics.median(rates['stock']):6.1f}  "
            f"fast {statistics.median(rates['fast']):6.1f}  "
            f"fast/stock median {statistics.median(ratios):.2f}x "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int_at_least(1), default=1500, help="env steps per env and round")
    parser.add_argument("--repeats", type=int_at_least(1), default=5, help="rounds")
    parser.add_argument(
        "--pipeline-steps", type=int_at_least(1), default=1000, help="agent steps per round (pipeline)"
    )
    parser.add_argument("--ppo", action="store_true", help="also measure PPO training throughput")
    parser.add_argument(
        "--ppo-rollouts", type=int_at_least(1), default=1, help="rollouts per renderer and round for --ppo"
    )
    parser.add_argument("--ppo-repeats", type=int_at_least(1), default=3, help="rounds for --ppo")
    args = parser.parse_args()
    flavour = "pygame-ce" if getattr(pygame, "IS_CE", False) else "pygame"
    sdl = ".".join(map(str, pygame.get_sdl_version()))
    print(
        f"CPU: {cpu_model()} ({torch.get_num_threads()} torch threads); gymnasium {gym.__version__}, "
        f"{flavour} {pygame.version.ver} (SDL {sdl}), numpy {np.__version__}"
    )
    if not FastCarRacing().fast_render:
        print("NOTE: FastCarRacing falls back to gymnasium's renderer here (see the warning above);")
        print("      its column below measures the stock renderer.")
    print(f"{args.steps} random-action steps per env and round, {args.repeats} rounds\n")
    bench_envs(args.steps, args.repeats)
    bench_pipeline(args.pipeline_steps, args.repeats)
    if args.ppo:
        bench_ppo(args.ppo_rollouts, args.ppo_repeats)


if __name__ == "__main__":
    main()
