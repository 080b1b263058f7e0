"""Evaluate a trained run and record a video: ``python -m relic_rl.evaluate RUN_DIR``.

The env is rebuilt as training built it, from the run's ``config.yaml``; the model is
``final_model.zip`` or a checkpoint, with its VecNormalize statistics (frozen, raw rewards).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from relic_rl.algorithms import ALGORITHMS
from relic_rl.cli_types import UserErrorParser, int_at_least
from relic_rl.errors import EXIT_OK, EXIT_USAGE, UserError
from relic_rl.experiment import EVAL_SEED_OFFSET, make_env, resolve_device
from relic_rl.runs import (
    CHECKPOINT_DIR,
    DEVICE_CHOICES,
    FINAL_MODEL_FILE,
    VECNORMALIZE_FILE,
    RunConfig,
    UsageError,
    checkpoint_paths,
    latest_checkpoint,
    load_run_config,
    read_status,
)
from relic_rl.threads import default_threads

VIDEO_SUFFIXES = (".mp4", ".gif")
VIDEO_HINT = 'Install the video extras: pip install "relic-rl[video]" (imageio and imageio-ffmpeg).'
#: Longest video episode recorded, in agent steps (a guard against envs that never end).
MAX_VIDEO_STEPS = 10_000


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m relic_rl.evaluate`` parser."""
    parser = UserErrorParser(
        error_class=UsageError,
        prog="relic_rl.evaluate",
        description=(
            "Evaluate a trained run: rebuild its env from config.yaml, load the final model (or a "
            "checkpoint) with its normalisation statistics, print mean +- std and every episode's return, "
            "and optionally record a video of one episode."
        ),
    )
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="the run folder written by python -m relic_rl.train."
    )
    parser.add_argument(
        "--episodes", type=int_at_least(1), default=10, help="episodes to evaluate (default: 10)."
    )
    parser.add_argument(
        "--domain-randomize",
        action="store_true",
        help="evaluate with domain_randomize=True (CarRacing: random background and grass colours) "
        "(default: off).",
    )
    parser.add_argument(
        "--video",
        metavar="PATH",
        help="record one episode to PATH (.mp4 or .gif; needs relic-rl[video]) (default: no video).",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--deterministic",
        action="store_true",
        default=True,
        help="act with the deterministic policy (default).",
    )
    mode.add_argument("--stochastic", dest="deterministic", action="store_false", help="sample actions.")
    parser.add_argument(
        "--checkpoint",
        metavar="PATH|latest",
        help="evaluate a checkpoint instead of final_model.zip: a model zip path, or `latest` "
        "(default: final_model.zip).",
    )
    parser.add_argument(
        "--seed", type=int, help="seed of the evaluation env (default: run's seed + 10000, as in training)."
    )
    parser.add_argument(
        "--device", choices=list(DEVICE_CHOICES), default="auto", help="torch device (default: auto)."
    )
    parser.add_argument(
        "--threads",
        type=int_at_least(1),
        metavar="N",
        help="torch threads (default: OMP_NUM_THREADS when set, else the cores idle at start, at least 1).",
    )
    return parser


@dataclass(frozen=True)
class EvaluationResult:
    """The outcome of :func:`evaluate_run`.

    :param model_path: the evaluated model zip.
    :param returns: each episode's return (the Monitor's, i.e. the game's own score).
    :param lengths: each episode's length in agent steps.
    :param deterministic: whether the deterministic policy acted.
    :param domain_randomize: whether the env was domain-randomized.
    :param seed: the evaluation env's seed.
    """

    model_path: Path
    returns: list[float]
    lengths: list[int]
    deterministic: bool
    domain_randomize: bool
    seed: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))


def resolve_model(run_dir: Path, checkpoint: str | None) -> tuple[Path, Path | None]:
    """The model zip and its VecNormalize statistics (None when absent); UsageError when missing.
    ``checkpoint``: None for ``final_model.zip``, ``"latest"``, or a path (absolute, or relative to the
    working directory, the run folder or its checkpoints folder)."""
    if checkpoint is None:
        model = run_dir / FINAL_MODEL_FILE
        if not model.is_file():
            hint = "it has no checkpoint either; train longer or resume it"
            if latest_checkpoint(run_dir) is not None:
                hint = "evaluate its last checkpoint with --checkpoint latest"
            state = read_status(run_dir).state
            raise UsageError(
                f"{run_dir} has no {FINAL_MODEL_FILE} (the run is {state}; the final model is written when "
                f"training finishes): {hint}."
            )
        stats = run_dir / VECNORMALIZE_FILE
        return model, stats if stats.is_file() else None
    if checkpoint == "latest":
        latest = latest_checkpoint(run_dir)
        if latest is None:
            raise UsageError(f"{run_dir} has no checkpoint in {run_dir / CHECKPOINT_DIR}.")
        return latest.model, latest.vecnormalize
    path = Path(checkpoint)
    candidates = [path] if path.is_absolute() else [path, run_dir / path, run_dir / CHECKPOINT_DIR / path]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise UsageError(
            f"--checkpoint {checkpoint}: no such file (looked at {', '.join(str(c) for c in candidates)}). "
            "Pass a model zip, e.g. checkpoints/model_100000_steps.zip, or `latest`."
        )
    match = re.fullmatch(r"model_(\d+)_steps\.zip", found.name)
    if match:
        found_stats = checkpoint_paths(found.parent.parent, int(match.group(1)))[1]
    else:
        found_stats = found.parent / VECNORMALIZE_FILE
    return found, found_stats if found_stats.is_file() else None


def load_model(config: RunConfig, model_path: Path, device: str) -> BaseAlgorithm:
    """Load a model zip of this run; UsageError when it cannot be (e.g. its extractor is not importable)."""
    try:
        algo_class: type[BaseAlgorithm] = ALGORITHMS[config.algo]
        return algo_class.load(str(model_path), device=device)
    except (ImportError, AttributeError) as e:
        raise UsageError(
            f"Cannot load {model_path}: {e}. If the run used --extractor {config.extractor}, its module "
            "must be importable here too."
        ) from None
    except (ValueError, KeyError, OSError) as e:
        raise UsageError(f"Cannot load {model_path}: it is not a valid {config.algo} model ({e}).") from None


def _load(
    run_dir: Path, checkpoint: str | None, device: str, seed: int | None, extra: dict[str, Any]
) -> tuple[RunConfig, Path, BaseAlgorithm, VecEnv, int]:
    """The run's config, the model and its path, the evaluation env (frozen normalisation statistics)
    and its seed (None: the run's seed + 10000)."""
    config, _ = load_run_config(run_dir)
    model_path, stats = resolve_model(run_dir, checkpoint)
    model = load_model(config, model_path, resolve_device(device))
    seed = config.seed + EVAL_SEED_OFFSET if seed is None else seed
    env = make_env(config, n_envs=1, seed=seed, extra_env_kwargs=extra, normalize_for_eval=True)
    if isinstance(env, VecNormalize) and stats is not None:
        env = VecNormalize.load(str(stats), env.venv)
        env.training = False
        env.norm_reward = False
    return config, model_path, model, env, seed


def evaluate_run(
    run_dir: str | Path,
    *,
    episodes: int = 10,
    domain_randomize: bool = False,
    deterministic: bool = True,
    checkpoint: str | None = None,
    seed: int | None = None,
    device: str = "auto",
) -> EvaluationResult:
    """Evaluate a run's final model (or a checkpoint) for ``episodes`` episodes.

    :param run_dir: the run folder.
    :param episodes: number of episodes.
    :param domain_randomize: create the env with ``domain_randomize=True``.
    :param deterministic: act deterministically.
    :param checkpoint: see :func:`resolve_model`.
    :param seed: evaluation env seed; None uses the run's seed + 10000 (as training's evaluations).
    :param device: torch device (``auto``: cuda when available).
    :raises UsageError: for a folder that is not a run, a missing model, and similar mistakes.
    """
    extra = {"domain_randomize": True} if domain_randomize else {}
    _config, model_path, model, env, seed = _load(Path(run_dir), checkpoint, device, seed, extra)
    try:
        returns, lengths = evaluate_policy(
            model, env, episodes, deterministic=deterministic, return_episode_rewards=True, warn=False
        )
    finally:
        env.close()
    episode_returns = [float(r) for r in np.asarray(returns).reshape(-1)]
    episode_lengths = [int(n) for n in np.asarray(lengths).reshape(-1)]
    return EvaluationResult(
        model_path, episode_returns, episode_lengths, deterministic, domain_randomize, seed
    )


def _check_video_path(path: Path) -> None:
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"--video {path}: the file must end in .mp4 or .gif.")
    try:
        import imageio  # noqa: F401
    except ImportError:
        raise UsageError(f"Recording a video needs imageio, which is not installed. {VIDEO_HINT}") from None
    if path.suffix.lower() == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise UsageError(
                f"Writing .mp4 needs imageio-ffmpeg, which is not installed (or write a .gif). {VIDEO_HINT}"
            ) from None


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """Write RGB frames ([H, W, 3] uint8) to ``path`` (.gif with Pillow, .mp4 with imageio-ffmpeg);
    UsageError for another suffix, no frames, or a missing imageio backend."""
    path = Path(path)
    _check_video_path(path)
    if not frames:
        raise UsageError(
            "No frames to write: the env rendered nothing (does it support render_mode='rgb_array'?)."
        )
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, list[Any](frames), duration=1000.0 / fps, loop=0)  # Pillow: milliseconds
    else:
        # H.264 in yuv420p needs even sizes; pad by one edge pixel where needed.
        height, width = frames[0].shape[:2]
        pad = ((0, height % 2), (0, width % 2), (0, 0))
        if any(p[1] for p in pad):  # pad a copy only when needed: the frames can be large
            frames = [np.pad(f, pad, mode="edge") for f in frames]
        imageio.mimsave(path, list(frames), fps=fps, macro_block_size=1)
    return path


def record_video(
    run_dir: str | Path,
    path: str | Path,
    *,
    domain_randomize: bool = False,
    deterministic: bool = True,
    checkpoint: str | None = None,
    seed: int | None = None,
    device: str = "auto",
) -> tuple[Path, int, float]:
    """Record one episode of a run's policy to ``path`` (frames from ``render_mode="rgb_array"``);
    returns ``(path, number of frames, episode return)``."""
    path = Path(path)
    _check_video_path(path)
    extra = {"render_mode": "rgb_array", **({"domain_randomize": True} if domain_randomize else {})}
    config, _path, model, env, _seed = _load(Path(run_dir), checkpoint, device, seed, extra)
    frames: list[np.ndarray] = []
    episode_return = float("nan")
    try:
        metadata = env.get_attr("metadata")[0] or {}
        fps = float(metadata.get("render_fps") or 30) / max(1, config.env_preset.frame_skip)
        obs = env.reset()
        frames.append(np.asarray(env.get_images()[0]))
        # Recurrent policies (ppo_lstm) carry their state from step to step, as in evaluate_policy.
        state: Any = None
        episode_start = np.ones((1,), dtype=bool)
        for _ in range(MAX_VIDEO_STEPS):
            action, state = model.predict(
                obs,  # type: ignore[arg-type]
                state=state,
                episode_start=episode_start,
                deterministic=deterministic,
            )
            obs, _reward, done, infos = env.step(action)
            episode_start = done
            if done[0]:
                # The VecEnv has already reset: the frame on screen belongs to the next episode.
                episode = infos[0].get("episode")
                if episode is not None:
                    episode_return = float(episode["r"])
                break
            frames.append(np.asarray(env.get_images()[0]))
    finally:
        env.close()
    frames = [f for f in frames if f is not None and f.ndim == 3]
    return write_video(path, frames, fps), len(frames), episode_return


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; 0 on success, 2 on a usage error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    previous_threads = torch.get_num_threads()
    try:
        args = build_parser().parse_args(argv)
        if args.video is not None:
            _check_video_path(Path(args.video))
        torch.set_num_threads(args.threads if args.threads is not None else default_threads())
        options = {
            key: getattr(args, key)
            for key in ("domain_randomize", "deterministic", "checkpoint", "seed", "device")
        }
        result = evaluate_run(args.run_dir, episodes=args.episodes, **options)
        mode = "deterministic" if result.deterministic else "stochastic"
        randomized = ", domain-randomized" if result.domain_randomize else ""
        print(f"model: {result.model_path}")
        plural = "s" if len(result.returns) != 1 else ""
        print(f"{len(result.returns)} episode{plural} ({mode}{randomized}, seed {result.seed})")
        print(f"mean reward: {result.mean:.2f} +- {result.std:.2f}")
        print("episode returns: " + " ".join(f"{r:.2f}" for r in result.returns))
        if args.video is not None:
            path, n_frames, episode_return = record_video(args.run_dir, args.video, **options)
            print(f"video: {path} ({n_frames} frames, episode return {episode_return:.2f})")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        torch.set_num_threads(previous_threads)  # main() may run in-process (tests)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
