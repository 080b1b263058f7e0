"""Time one PPO update phase: plain SB3 PPO vs ReLIC-PPO on the rl-zoo CarRacing shapes.

Shapes: 8 envs x 512 steps = 4096 samples of 2 x 64 x 64 gray stacks, batch 128,
10 epochs (320 gradient steps), NatureCNN, gSDE, GELU, pi/vf [256] (rl-zoo3's tuned PPO).
The rollout buffer is filled with random data once; only ``model.train()`` is timed,
cycling plain SB3 PPO and the ReLIC variants for ``--repeats`` rounds after one warm-up
each; ratios are taken within a round. The variants: the defaults, every view augmented,
and the off-by-default ``ReLICConfig`` options that change what is computed for speed
(``aux_batch_size``, ``aux_every``, ``target_precision``).

    python benchmarks/bench_update.py [--repeats 5] [--epochs 10] [--threads 2] [--defaults-only]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3 as sb3
import torch
from machine import cpu_model
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from relic_rl import ReLICConfig, ReLICPPO

N_ENVS, N_STEPS, BATCH = 8, 512, 128
OBS_SHAPE = (2, 64, 64)


class _ShapeEnv(gym.Env):
    """Only provides the spaces; the buffer is filled directly."""

    observation_space = gym.spaces.Box(0, 255, OBS_SHAPE, np.uint8)
    action_space = gym.spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


def build(relic: ReLICConfig | None, epochs: int) -> PPO:
    env = DummyVecEnv([_ShapeEnv for _ in range(N_ENVS)])
    kwargs: dict[str, Any] = dict(
        n_steps=N_STEPS,
        batch_size=BATCH,
        n_epochs=epochs,
        learning_rate=1e-4,
        use_sde=True,
        sde_sample_freq=4,
        max_grad_norm=0.5,
        seed=0,
        device="cpu",
        policy_kwargs=dict(
            log_std_init=-2, ortho_init=False, activation_fn=torch.nn.GELU, net_arch=dict(pi=[256], vf=[256])
        ),
    )
    model: PPO = (
        ReLICPPO("CnnPolicy", env, relic=relic, **kwargs) if relic else PPO("CnnPolicy", env, **kwargs)
    )
    model._setup_learn(total_timesteps=N_ENVS * N_STEPS)
    buf = model.rollout_buffer
    rng = np.random.default_rng(0)
    buf.reset()
    for _ in range(N_STEPS):
        obs = rng.integers(0, 255, (N_ENVS, *OBS_SHAPE), dtype=np.uint8)
        buf.add(
            obs,
            rng.uniform(-1, 1, (N_ENVS, 3)).astype(np.float32),
            rng.normal(size=N_ENVS).astype(np.float32),
            np.zeros(N_ENVS, dtype=bool),
            torch.zeros(N_ENVS),
            torch.full((N_ENVS,), -2.0),
        )
    buf.compute_returns_and_advantage(last_values=torch.zeros(N_ENVS), dones=np.zeros(N_ENVS, dtype=bool))
    return model


def time_train(model: PPO) -> float:
    start = time.perf_counter()
    model.train()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="interleaved plain/ReLIC pairs (default 5)")
    parser.add_argument("--epochs", type=int, default=10, help="PPO epochs per update phase (default 10)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument(
        "--defaults-only", action="store_true", help="time plain SB3 PPO and ReLIC-PPO's defaults only"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"cpu: {cpu_model()} | nproc: {__import__('os').cpu_count()} | torch {torch.__version__} "
        f"threads {torch.get_num_threads()} | SB3 {sb3.__version__}"
    )
    print(
        f"PPO update phase: {N_ENVS}x{N_STEPS} samples of {OBS_SHAPE}, batch {BATCH}, {args.epochs} epochs "
        f"({N_ENVS * N_STEPS // BATCH * args.epochs} gradient steps); ReLIC: {ReLICConfig()}"
    )
    configs: dict[str, ReLICConfig | None] = {
        "plain SB3 PPO": None,
        "ReLIC-PPO (defaults)": ReLICConfig(),
    }
    if not args.defaults_only:
        configs.update(
            {
                "ReLIC-PPO (clean_view=False)": ReLICConfig(clean_view=False),
                "ReLIC-PPO (aux_batch_size=64)": ReLICConfig(aux_batch_size=64),
                "ReLIC-PPO (aux_every=2)": ReLICConfig(aux_every=2),
                "ReLIC-PPO (target_precision=bfloat16)": ReLICConfig(target_precision="bfloat16"),
            }
        )
    variants = {name: build(config, args.epochs) for name, config in configs.items()}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for model in variants.values():
        time_train(model)  # warm-up
    for round_ in range(args.repeats):
        names = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in names:
            times[name].append(time_train(variants[name]))
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in variants), flush=True)
    plain = times["plain SB3 PPO"]
    print("| variant | median s / update phase | min | max | ratio to plain: median (min-max) |")
    print("|---|---|---|---|---|")
    for name, ts in times.items():
        ratios = [t / p for t, p in zip(ts, plain, strict=True)]
        print(
            f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f} | {max(ts):.2f} | "
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )


if __name__ == "__main__":
    main()
