"""End to end: relic-rl's CarRacing PPO preset against rl-zoo3's PPO on CarRacing-v3.

Three pipelines, each trained in a fresh process per round, in interleaved rounds (the
order alternates) on the same machine:

* ``relic``: ``python -m relic_rl.train --env CarRacing-v2 --preset CarRacing-v2-rl-zoo3``
  (ReLIC on, rl-zoo3's hyperparameters), through the same
  library call as the CLI (``relic_rl.experiment.train``), evaluation off;
* ``none``: the same with ``--aux none``;
* ``zoo``: rl-zoo3's PPO on ``CarRacing-v3`` with its tuned hyperparameters
  (``hyperparams/ppo.yml``), built by its ``ExperimentManager`` as
  ``python -m rl_zoo3.train --algo ppo --env CarRacing-v3`` does, evaluation off.

Both presets are the same algorithm and observations (8 envs x 512 steps, frame skip 2,
64x64 gray, 2 stacked frames, gSDE, reward normalisation). Each process trains
``--iterations`` PPO iterations (rollout + update); a callback times every rollout and
every update. The first iteration (warm-up: allocations, first episodes) and the start-up
(interpreter, imports, env and model construction) are reported separately; the table
uses iterations 2 and later: agent steps/s per iteration with median and min-max, the
rollout and update phases, and the ratios to rl-zoo3 per round.

Needs rl-zoo3: ``pip install -e ".[bench]"`` (a benchmark-only extra).

    python benchmarks/bench_end_to_end.py [--rounds 3] [--iterations 3] [--pipelines relic none zoo]
        [--relic-args ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

PIPELINES = ("relic", "none", "zoo")
_START = time.perf_counter()


class PhaseTimer(BaseCallback):
    """Records the start and end of every rollout and the end of training."""

    def __init__(self) -> None:
        super().__init__()
        self.rollout_starts: list[float] = []
        self.rollout_ends: list[float] = []
        self.end = 0.0

    def _on_rollout_start(self) -> None:
        self.rollout_starts.append(time.perf_counter())

    def _on_rollout_end(self) -> None:
        self.rollout_ends.append(time.perf_counter())

    def _on_training_end(self) -> None:
        self.end = time.perf_counter()

    def _on_step(self) -> bool:
        return True

    def phases(self) -> list[tuple[float, float]]:
        """(rollout seconds, update seconds) per iteration: an update lasts from the end of
        its rollout to the start of the next one (or the end of training)."""
        following = [*self.rollout_starts[1:], self.end]
        return [
            (end - start, after - end)
            for start, end, after in zip(self.rollout_starts, self.rollout_ends, following, strict=True)
        ]


def _run_relic(
    aux: str,
    iterations: int,
    extra: list[str],
    threads: int | None,
    rollout_threads: int | None,
    folder: Path,
) -> dict[str, Any]:
    import torch

    from relic_rl.callbacks import TorchThreads
    from relic_rl.experiment import train
    from relic_rl.threads import default_threads
    from relic_rl.train import resolve_run_config

    config = resolve_run_config(
        [
            "--env",
            "CarRacing-v2",
            "--preset",
            "CarRacing-v2-rl-zoo3",  # the same hyperparameters as rl-zoo3's
            "--aux",
            aux,
            "--eval-episodes",
            "0",
            "--total-timesteps",
            str(iterations * 8 * 512),
            *extra,
        ]
    )
    per_iteration = config.n_envs * int(config.agent.hyperparam("n_steps") or 0)
    threads = threads if threads is not None else default_threads()  # as the CLI chooses
    timer = PhaseTimer()
    callbacks: list[BaseCallback] = [timer]
    if rollout_threads is not None:
        # After relic-rl's own TorchThreads in the callback list, so this choice wins.
        callbacks.append(TorchThreads(threads, rollout_threads))
    result = train(config, folder / "run", progress=False, quiet=True, callbacks=callbacks, threads=threads)
    if result.state != "finished":
        raise SystemExit(f"relic-rl run {result.state}: {result.message}")
    return {
        "steps_per_iteration": per_iteration,
        "phases": timer.phases(),
        "startup": timer.rollout_starts[0] - _START,
        "threads": torch.get_num_threads(),
        "vec_env": config.vec_env,
        "rollout_threads": rollout_threads,
    }


def _run_zoo(iterations: int, folder: Path) -> dict[str, Any]:
    import torch
    from rl_zoo3.exp_manager import ExperimentManager

    manager = ExperimentManager(
        argparse.Namespace(),
        "ppo",
        "CarRacing-v3",
        str(folder),
        n_timesteps=iterations * 8 * 512,
        eval_freq=-1,
        log_interval=-1,  # rl_zoo3.train's default (log every iteration)
        seed=0,
        verbose=0,
        device="cpu",
    )
    setup = manager.setup_experiment()
    assert setup is not None
    model, _ = setup
    timer = PhaseTimer()
    manager.callbacks.append(timer)
    manager.learn(model)
    return {
        "steps_per_iteration": model.n_envs * model.n_steps,
        "phases": timer.phases(),
        "startup": timer.rollout_starts[0] - _START,
        "threads": torch.get_num_threads(),
        "vec_env": type(model.get_env().unwrapped).__name__,
    }


def worker(
    pipeline: str, iterations: int, extra: list[str], threads: int | None, rollout_threads: int | None
) -> None:
    with tempfile.TemporaryDirectory(prefix="bench_e2e_") as folder:
        if pipeline == "zoo":
            out = _run_zoo(iterations, Path(folder))
        else:
            out = _run_relic(pipeline, iterations, extra, threads, rollout_threads, Path(folder))
    print("RESULT " + json.dumps(out), flush=True)


def _launch(
    pipeline: str, iterations: int, extra: list[str], threads: int | None, rollout_threads: int | None
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", pipeline, "--iterations", str(iterations)]
    if threads is not None:
        command += ["--relic-threads", str(threads)]
    if rollout_threads is not None:
        command += ["--relic-rollout-threads", str(rollout_threads)]
    if extra:
        command += ["--relic-args", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(
            f"{pipeline} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    out: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    out["wall"] = wall
    return out


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--iterations", type=int, default=3, help="PPO iterations per process (default 3, >= 2)"
    )
    parser.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES))
    parser.add_argument(
        "--relic-args", nargs=argparse.REMAINDER, default=[], help="extra relic_rl.train flags (relic, none)"
    )
    parser.add_argument("--relic-threads", type=int, help="relic-rl's --threads (default: its own default)")
    parser.add_argument(
        "--relic-rollout-threads",
        type=int,
        help="torch threads of relic-rl while collecting rollouts (default: relic-rl's choice)",
    )
    parser.add_argument("--worker", choices=PIPELINES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.iterations, args.relic_args, args.relic_threads, args.relic_rollout_threads)
        return
    if args.iterations < 2:
        parser.error("--iterations must be >= 2: the first iteration is reported apart")

    sys.path.insert(0, str(Path(__file__).parent))
    import gymnasium as gym
    import stable_baselines3 as sb3
    import torch
    from machine import cpu_model

    print(
        f"cpu: {cpu_model()} | nproc: {os.cpu_count()} | torch {torch.__version__} | SB3 {sb3.__version__} | "
        f"gymnasium {gym.__version__}"
    )
    print(
        f"{args.rounds} rounds x {args.pipelines}, {args.iterations} iterations each; relic-rl flags: "
        f"{args.relic_args or '(defaults)'}, relic-rl threads: {args.relic_threads or '(default)'}\n"
    )
    results: dict[str, list[dict[str, Any]]] = {p: [] for p in args.pipelines}
    for round_ in range(args.rounds):
        order = args.pipelines if round_ % 2 == 0 else list(reversed(args.pipelines))
        for pipeline in order:
            out = _launch(
                pipeline, args.iterations, args.relic_args, args.relic_threads, args.relic_rollout_threads
            )
            results[pipeline].append(out)
            later = [out["steps_per_iteration"] / (r + u) for r, u in out["phases"][1:]]
            print(
                f"round {round_ + 1} {pipeline:<5} {out['vec_env']}, {out['threads']} threads: start-up "
                f"{out['startup']:.1f} s, first iteration {sum(out['phases'][0]):.1f} s, then "
                + ", ".join(f"{r:.1f}" for r in later)
                + f" agent steps/s (process {out['wall']:.0f} s)",
                flush=True,
            )

    def rates(out: dict[str, Any]) -> list[float]:
        return [out["steps_per_iteration"] / (r + u) for r, u in out["phases"][1:]]

    print(
        "\n| pipeline | agent steps/s per iteration | rollout s | update s | first iteration s | start-up s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for pipeline in args.pipelines:
        outs = results[pipeline]
        later = [phase for out in outs for phase in out["phases"][1:]]
        print(
            f"| {pipeline} | {_summary([x for out in outs for x in rates(out)])} | "
            f"{_summary([r for r, _ in later])} | {_summary([u for _, u in later])} | "
            f"{_summary([sum(out['phases'][0]) for out in outs])} | "
            f"{_summary([out['startup'] for out in outs])} |"
        )
    if "zoo" not in results:
        return
    print()
    for pipeline in [p for p in args.pipelines if p != "zoo"]:
        # Within a round: this pipeline's median iteration rate over rl-zoo3's.
        ratios = [
            statistics.median(rates(mine)) / statistics.median(rates(zoo))
            for mine, zoo in zip(results[pipeline], results["zoo"], strict=True)
        ]
        print(
            f"{pipeline} / zoo agent steps/s: median {statistics.median(ratios):.2f}x "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f}; rounds: {', '.join(f'{x:.2f}' for x in ratios)})"
        )


if __name__ == "__main__":
    main()
