"""Training callbacks of the CLI: evaluation, atomic checkpoints, a non-finite guard, a progress bar.

Periodic work is keyed to ``num_timesteps`` crossing multiples of a frequency and checkpoints to
rollout starts, so a resumed run keeps the original rollouts, evaluation timesteps and end.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from relic_rl.runs import (
    EvaluationLog,
    RunStatus,
    atomic_write,
    checkpoint_paths,
    prune_checkpoints,
    write_status,
)

#: Logger keys whose values the non-finite guard checks.
GUARDED_PREFIXES = ("train/", "relic/")


class _PhaseCallback(BaseCallback):
    """A callback acting on training phases only."""

    def _on_step(self) -> bool:
        return True


class NonFiniteError(RuntimeError):
    """Training produced NaN/inf losses, metrics (``bad``; ``metrics``: all of the last update) or
    ``parameters``; ``detail``: what else reported it (e.g. torch refusing a NaN distribution)."""

    def __init__(
        self,
        step: int,
        bad: dict[str, float],
        parameters: list[str],
        metrics: dict[str, float],
        detail: str | None = None,
    ) -> None:
        self.step = step
        self.bad = bad
        self.parameters = parameters
        self.metrics = metrics
        parts = []
        if detail:
            parts.append(f"non-finite values in the policy's outputs ({detail})")
        if bad:
            parts.append("non-finite values " + ", ".join(f"{k}={v}" for k, v in sorted(bad.items())))
        if parameters:
            parts.append("non-finite policy parameters (" + ", ".join(parameters) + ")")
        last = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(metrics.items())) or "none logged yet"
        super().__init__(
            f"Training diverged at step {step}: {' and '.join(parts)}. Last metrics: {last}. Try a lower "
            "learning_rate or relic aux_weight (--aux-weight), or a higher temperature."
        )


def _fmt(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def non_finite_parameters(model: BaseAlgorithm, limit: int = 5) -> list[str]:
    """Names of (up to ``limit``) policy parameters holding NaN or inf."""
    with torch.no_grad():
        bad = [name for name, param in model.policy.named_parameters() if not torch.isfinite(param).all()]
    return bad[:limit]


def non_finite_error_from(
    error: ValueError, model: BaseAlgorithm, metrics: dict[str, float]
) -> NonFiniteError | None:
    """The :class:`NonFiniteError` behind ``error`` (a diverging update often surfaces as
    ``torch.distributions``' "invalid values" ``ValueError``, before any loss is logged), or None."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    parameters = non_finite_parameters(model)
    if not parameters and "invalid values" not in str(error) and "nan" not in first_line.lower():
        return None
    detail = first_line if len(first_line) <= 200 else first_line[:197] + "..."
    return NonFiniteError(model.num_timesteps, {}, parameters, metrics, detail=detail)


class NonFiniteGuard(_PhaseCallback):
    """Raise :class:`NonFiniteError` at rollout starts when the last update logged NaN/inf or left
    non-finite parameters; call :meth:`check` once more after ``learn`` for the last update."""

    def __init__(self) -> None:
        super().__init__()
        self.last_metrics: dict[str, float] = {}

    def _on_rollout_start(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise :class:`NonFiniteError` if the latest guarded values or the parameters are not finite."""
        values = {
            key: float(value)
            for key, value in self.model.logger.name_to_value.items()
            if key.startswith(GUARDED_PREFIXES) and isinstance(value, numbers.Real)
        }
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        parameters = non_finite_parameters(self.model)
        if bad or parameters:
            raise NonFiniteError(self.model.num_timesteps, bad, parameters, values or self.last_metrics)
        if values:
            self.last_metrics = values


def save_model_atomically(model: BaseAlgorithm, model_path: Path, vecnormalize_path: Path | None) -> None:
    """Save the model atomically, after its VecNormalize statistics so they exist whenever it does."""
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None and vecnormalize_path is not None:
        atomic_write(vecnormalize_path, lambda tmp: vec_normalize.save(str(tmp)))
    # SB3 appends ".zip" only to suffix-less paths; the ".tmp" suffix keeps the name as given.
    atomic_write(model_path, lambda tmp: model.save(tmp))


class CheckpointCallback(_PhaseCallback):
    """Save ``checkpoints/model_<T>_steps.zip`` (+ VecNormalize) every ``freq`` env steps (never with
    non-finite parameters) and update ``status.yaml``; ``keep``: how many to keep (None: all). The check
    runs at rollout starts, so a checkpoint's step is a rollout boundary."""

    def __init__(
        self,
        run_dir: Path,
        freq: int,
        total_timesteps: int,
        start_timesteps: int = 0,
        keep: int | None = None,
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.keep = keep
        self.freq = freq
        self.total_timesteps = total_timesteps
        self._done_index = start_timesteps // freq
        #: ``num_timesteps`` at the start of the current rollout, and whether it is being collected.
        self.rollout_start = start_timesteps
        self.collecting = False
        self.last_saved: int | None = None

    def _on_rollout_start(self) -> None:
        self.rollout_start = self.model.num_timesteps
        self.collecting = True
        index = self.model.num_timesteps // self.freq
        if index > self._done_index:
            self._done_index = index
            self.save(self.model.num_timesteps)

    def _on_rollout_end(self) -> None:
        self.collecting = False

    def resume_point(self) -> int:
        """Timesteps for a checkpoint taken now (Ctrl-C): a partial rollout is collected again."""
        return self.rollout_start if self.collecting else self.model.num_timesteps

    def save(self, timesteps: int) -> Path:
        """Save a checkpoint labelled ``timesteps`` (the model's counter is set to it for the save)."""
        if parameters := non_finite_parameters(self.model):
            raise NonFiniteError(self.model.num_timesteps, {}, parameters, {})
        model_path, vecnorm_path = checkpoint_paths(self.run_dir, timesteps)
        current = self.model.num_timesteps
        self.model.num_timesteps = timesteps
        try:
            save_model_atomically(self.model, model_path, vecnorm_path)
        finally:
            self.model.num_timesteps = current
        if self.keep is not None:
            prune_checkpoints(self.run_dir, self.keep)
        self.last_saved = timesteps
        write_status(self.run_dir, RunStatus("running", timesteps, self.total_timesteps))
        return model_path


EvalListener = Callable[[str, int, float, float, list[float]], None]


class EvaluationCallback(BaseCallback):
    """Evaluate every ``freq`` env steps; log ``<prefix>/mean_reward``, ``std_reward`` and
    ``mean_ep_length`` as SB3's ``EvalCallback`` does, and append the Monitor's returns (the game's,
    before reward normalisation or clipping) to ``log``'s CSV (``timesteps, mean_reward, std_reward,
    episode_rewards``).

    :param eval_env: for a normalised training env a VecNormalize with ``training=False`` (synced).
    :param last_timesteps: timesteps of the last row already in the CSV (after a resume).
    :param listener: called with ``(prefix, timesteps, mean, std, returns)`` after each evaluation
        (``announce`` with ``prefix`` before it).
    """

    def __init__(
        self,
        eval_env: VecEnv,
        log: EvaluationLog,
        prefix: str,
        freq: int,
        n_episodes: int,
        deterministic: bool = True,
        start_timesteps: int = 0,
        last_timesteps: int | None = None,
        listener: EvalListener | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.announce = announce
        self.eval_env = eval_env
        self.log = log
        self.prefix = prefix
        self.freq = freq
        self.n_episodes = n_episodes
        self.deterministic = deterministic
        self._done_index = start_timesteps // freq
        self.last_timesteps = last_timesteps
        self.listener = listener

    def _on_step(self) -> bool:
        index = self.num_timesteps // self.freq
        if index > self._done_index:
            self._done_index = index
            self.evaluate()
        return True

    def evaluate(self) -> tuple[float, float]:
        """Run one evaluation now; return ``(mean, std)`` of the episode returns."""
        if self.announce is not None:
            self.announce(self.prefix)
        model = self.model
        train_env = model.get_env()
        if train_env is not None:
            sync_envs_normalization(train_env, self.eval_env)
        returns, lengths = evaluate_policy(
            model, self.eval_env, self.n_episodes, self.deterministic, return_episode_rewards=True, warn=False
        )
        rewards = [float(r) for r in np.asarray(returns).reshape(-1)]
        timesteps = int(model.num_timesteps)
        mean, std = self.log.append(timesteps, rewards)
        self.last_timesteps = timesteps
        mean_length = float(np.mean(np.asarray(lengths, dtype=float)))
        for name, value in (("mean_reward", mean), ("std_reward", std), ("mean_ep_length", mean_length)):
            model.logger.record(f"{self.prefix}/{name}", value)
        model.logger.dump(timesteps)
        if self.listener is not None:
            self.listener(self.prefix, timesteps, mean, std, rewards)
        return mean, std


class ProgressBarCallback(BaseCallback):
    """Progress from the resumed timestep to the run's total, with steps/s, elapsed time, ETA and
    the phase (``collecting``, ``updating`` with PPO's ``epoch k/n``, ``evaluating``). A tqdm.rich
    bar, or (``plain``; None: when stdout is no terminal) a line to ``stream`` every ``interval``
    seconds and whenever the kind of work changes."""

    def __init__(
        self,
        total_timesteps: int,
        plain: bool | None = None,
        interval: float = 30.0,
        stream: TextIO | None = None,
    ) -> None:
        super().__init__()
        self.total_timesteps = total_timesteps
        self.plain = plain
        self.interval = interval
        self.stream = stream
        self.bar: Any = None
        self._restore_buffer: Any = None
        self.phase = "starting"
        self._started = 0.0
        self._start_steps = 0
        self._last_line = -math.inf

    def _on_training_start(self) -> None:
        self._started = time.monotonic()
        self._start_steps = self.model.num_timesteps
        if self.plain is None:
            out = self.stream if self.stream is not None else sys.stdout
            self.plain = not (hasattr(out, "isatty") and out.isatty())
        if self.plain:
            return
        from tqdm import TqdmExperimentalWarning
        from tqdm.rich import tqdm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TqdmExperimentalWarning)
            self.bar = tqdm(
                total=self.total_timesteps, initial=self.model.num_timesteps, unit="steps", desc="training"
            )

    def _on_rollout_start(self) -> None:
        self.set_phase("collecting")

    def _on_rollout_end(self) -> None:
        self.set_phase("updating")
        self._count_epochs()

    def _count_epochs(self) -> None:
        """Count PPO's ``rollout_buffer.get()`` calls (one per epoch) for ``epoch k/n``."""
        model = self.model
        buffer = getattr(model, "rollout_buffer", None)
        n_epochs = getattr(model, "n_epochs", None)
        if buffer is None or not isinstance(n_epochs, int) or n_epochs < 2:
            return
        original = type(buffer).get
        epoch = [0]

        def get(*args: Any, **kwargs: Any) -> Any:
            epoch[0] += 1
            self.set_phase(f"updating epoch {epoch[0]}/{n_epochs}")
            return original(buffer, *args, **kwargs)

        buffer.get = get  # the instance attribute; the class's method is untouched
        self._restore_buffer = buffer

    def _end_update(self) -> None:
        buffer = self._restore_buffer
        if buffer is not None:
            buffer.__dict__.pop("get", None)
            self._restore_buffer = None

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(max(0, self.model.num_timesteps - self.bar.n))
        elif self.plain and time.monotonic() - self._last_line >= self.interval:
            self._print_line()
        return True

    def _on_training_end(self) -> None:
        self._end_update()
        if self.plain:
            self.phase = "done"
            self._print_line()

    def set_phase(self, phase: str) -> None:
        """Show what the run is doing now (also called by the CLI around evaluations)."""
        if phase == "collecting":
            self._end_update()
        new_kind = phase.split()[0] != self.phase.split()[0]
        self.phase = phase
        if self.bar is not None:
            self.bar.set_postfix_str(phase, refresh=True)
        elif self.plain and (new_kind or time.monotonic() - self._last_line >= self.interval):
            self._print_line()  # progress within a kind of work (PPO's epochs): every `interval`

    def _print_line(self) -> None:
        self._last_line = time.monotonic()
        elapsed = self._last_line - self._started
        steps = self.model.num_timesteps if self.model is not None else self._start_steps
        rate = (steps - self._start_steps) / elapsed if elapsed > 0 else 0.0
        eta = _clock((self.total_timesteps - steps) / rate) if rate > 0 else "?"
        percent = 100.0 * steps / self.total_timesteps if self.total_timesteps else 100.0
        done = f"{steps:,}/{self.total_timesteps:,} steps ({percent:.1f}%), {rate:.1f} steps/s, "
        print_line(self.stream, f"{done}elapsed {_clock(elapsed)}, ETA {eta}: {self.phase}")

    def set_description(self, text: str) -> None:
        """Show ``text`` left of the bar (e.g. the last evaluation)."""
        if self.bar is not None:
            self.bar.set_description_str(text, refresh=True)

    def close(self) -> None:
        """Close the bar (also after an exception)."""
        self._end_update()
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class TorchThreads(_PhaseCallback):
    """Torch's intra-op threads: ``update``, but ``rollout`` (None: the same) while an on-policy
    rollout is collected (spinning OpenMP threads slow busy subproc env workers)."""

    def __init__(self, update: int, rollout: int | None = None) -> None:
        super().__init__()
        self.update = update
        self.rollout = update if rollout is None else rollout

    def _on_training_start(self) -> None:
        torch.set_num_threads(self.update)

    def _on_rollout_start(self) -> None:
        if self.rollout != self.update and isinstance(self.model, OnPolicyAlgorithm):
            torch.set_num_threads(self.rollout)

    _on_rollout_end = _on_training_end = _on_training_start


class UpdateGuard(_PhaseCallback):
    """Keeps a Ctrl-C from saving half an update: a stop during one (:meth:`defer`) is raised at the
    next rollout start; after a second Ctrl-C :attr:`in_update` says the model must not be saved."""

    def __init__(self) -> None:
        super().__init__()
        self.in_update = False
        self.pending = False

    def defer(self) -> bool:
        """Ask to stop: True if held until the running update ends, False to stop now."""
        if self.in_update and not self.pending:
            self.pending = True
            return True
        return False

    def _on_rollout_start(self) -> None:
        self.in_update = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def _on_rollout_end(self) -> None:
        self.in_update = True

    def _on_training_end(self) -> None:
        self.in_update = False


class StopAfterSteps(BaseCallback):
    """A scripted Ctrl-C once ``num_timesteps`` reaches ``steps`` (tests, trying the resume path)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self.steps:
            raise KeyboardInterrupt
        return True


def print_line(stream: TextIO | None, text: str) -> None:
    """Print ``text`` to ``stream`` (default stdout) and flush, for logs of subprocesses."""
    print(text, file=stream, flush=True)  # file=None: the current sys.stdout


class ReLICCallback(_PhaseCallback):
    """Logs the last ``train()``'s ``relic/*`` at rollout starts, for drop-in ``policy_kwargs``
    models (``ReLICPPO`` and friends do it themselves)."""

    def _on_rollout_start(self) -> None:
        from relic_rl.algorithms import record_relic_metrics

        record_relic_metrics(self.model.policy, self.model.logger)
