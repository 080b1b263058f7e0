"""The run lifecycle, for the CLIs, the ablation and the benchmarks alike.

:mod:`relic_rl.train` turns a command line into a :class:`~relic_rl.runs.RunConfig`; everything
from there on is here:

* :func:`make_env` and :func:`build_model` - the run's envs and its ReLIC algorithm;
* :func:`preflight` - builds both without writing anything, for checks such as the ablation's;
* :func:`train` - builds the run once and trains it into a run folder (also from a
  checkpoint), with evaluations, checkpoints, ``status.yaml`` and the final model;
* :func:`resume` - continues an interrupted run folder, or starts one that
  :func:`write_new_run` wrote;
* :func:`format_summary` - the one-screen start summary of a run.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import shutil
import socket
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import gymnasium as gym
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

import relic_rl
from relic_rl.agent_config import (
    AgentConfig,
)
from relic_rl.algorithms import ALGORITHM_INFO, ALGORITHMS
from relic_rl.callbacks import (
    CheckpointCallback,
    EvaluationCallback,
    NonFiniteError,
    NonFiniteGuard,
    ProgressBarCallback,
    TorchThreads,
    UpdateGuard,
    non_finite_error_from,
    non_finite_parameters,
    print_line,
    save_model_atomically,
)
from relic_rl.environments import (
    EnvCreationError,
    EnvPreset,
    carracing_compat_note,
    make_vec_env,
    register_carracing_v2,
    renderer_note,
)
from relic_rl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UserError
from relic_rl.extractor import ReLICExtractor
from relic_rl.runs import (
    CONFIG_FILE,
    EVAL_FILE,
    FINAL_MODEL_FILE,
    RANDOMIZED_EVAL_FILE,
    TB_DIR,
    VECNORMALIZE_FILE,
    Checkpoint,
    EvaluationLog,
    RunConfig,
    RunStatus,
    UsageError,
    append_command,
    latest_checkpoint,
    load_run_config,
    monitor_dir_for,
    next_segment,
    only_startup_files,
    read_evaluation_rows,
    read_status,
    run_lock,
    truncate_evaluations,
    write_run_files,
    write_status,
)
from relic_rl.threads import default_threads, describe_threads, rollout_threads

#: Seed offsets of the evaluation envs, so they never replay the training envs' episodes.
EVAL_SEED_OFFSET = 10_000
RANDOMIZED_EVAL_SEED_OFFSET = 20_000

#: Update guards of the trainings running in this process (the signal handler asks the newest).
_ACTIVE_UPDATE_GUARDS: list[UpdateGuard] = []

#: What the summary says about the vec env: dummy is the default because subprocess workers were
#: measured no faster on 2 cores (README, "Env workers and threads").
_VEC_ENV_NOTES = {
    "dummy": "envs stepped in this process; --vec-env subproc for one process per env",
    "subproc": "one process per env",
}

#: Checkpoints kept by default (``--keep-checkpoints``); the final model is always kept.
DEFAULT_KEEP_CHECKPOINTS = 3


# ----------------------------------------------------------------------------- building a run
def import_extractor(spec: str) -> type[ReLICExtractor]:
    """Import ``module:Class`` and check that it is a :class:`~relic_rl.ReLICExtractor` subclass.

    :raises UsageError: for a bad format, an import failure, a missing attribute or a class
        that is not a ReLIC extractor.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name.strip() or not attribute.strip():
        raise UsageError(
            f"--extractor expects module:Class, e.g. my_package.extractors:MyExtractor, got {spec!r}."
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # the user's module may raise anything while importing
        raise UsageError(
            f"--extractor {spec}: cannot import the module {module_name!r} ({type(e).__name__}: {e}). "
            "Make sure it is installed or its folder is on PYTHONPATH."
        ) from None
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise UsageError(
                f"--extractor {spec}: the module {module_name!r} has no attribute {attribute!r}."
            )
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, ReLICExtractor)):
        raise UsageError(
            f"--extractor {spec}: {obj!r} is not a subclass of relic_rl.ReLICExtractor. Subclass it and "
            "override build_encoder / build_critic / augment to customise the extractor."
        )
    return obj


def check_budget(algo: str, agent: AgentConfig) -> None:
    """UsageError for a budget that cannot train as asked: below one rollout of an on-policy
    algorithm (which always collects whole rollouts, so it would train more than asked), or
    not past ``learning_starts`` of an off-policy one (which would then train nothing)."""
    budget = agent.n_timesteps
    if algo in ON_POLICY:
        n_steps = int(agent.hyperparam("n_steps") or 1)
        rollout = agent.n_envs * n_steps
        if budget < rollout:
            raise UsageError(
                f"The budget of {budget:,} steps is less than one {algo} rollout ({agent.n_envs} envs x "
                f"{n_steps} n_steps = {rollout:,} steps), and {algo} only trains on whole rollouts. Give "
                f"--total-timesteps {rollout} or more, or shrink the rollout, e.g. --n-envs "
                f"{agent.n_envs} --hyperparams n_steps={max(1, budget // agent.n_envs)} "
                f"(= {agent.n_envs * max(1, budget // agent.n_envs):,} steps per rollout)."
            )
        return
    learning_starts = int(agent.hyperparam("learning_starts") or 0)
    if budget <= learning_starts:
        raise UsageError(
            f"The budget of {budget:,} steps never gets past learning_starts={learning_starts:,} (steps "
            f"collected before {algo} trains at all), so the run would train nothing. Give "
            f"--total-timesteps above {learning_starts:,}, or lower it with --hyperparams "
            f"learning_starts={budget // 10}."
        )


#: Algorithms that collect rollouts of ``n_envs x n_steps`` and then update.
ON_POLICY = tuple(name for name, info in ALGORITHM_INFO.items() if info.on_policy)


def check_action_space(config: RunConfig, action_space: spaces.Space[Any]) -> None:
    """Raise UsageError, with the fix, when ``config.algo`` cannot act in ``action_space``."""
    algo, env_id = config.algo, config.env_id
    carracing = config.env_preset.family == "carracing"
    needs = ALGORITHM_INFO[algo].actions
    if needs == "discrete" and not isinstance(action_space, spaces.Discrete):
        hint = (
            "use CarRacing's discrete variant with --env-kwargs continuous=False"
            if carracing
            else "use a discrete variant of the env (select it with --env-kwargs if it has one)"
        )
        raise UsageError(
            f"{algo} needs a discrete action space, but {env_id} has {action_space}. Either {hint}, or "
            f"pick an algorithm for continuous actions: --algo {_algos_for(spaces.Box)}."
        )
    if needs == "box" and not isinstance(action_space, spaces.Box):
        hint = " (CarRacing: drop continuous=False, its default is continuous)" if carracing else ""
        raise UsageError(
            f"{algo} needs a continuous (Box) action space, but {env_id} has {action_space}. Use --algo "
            f"{_algos_for(spaces.Discrete)}, or a continuous variant of the env{hint}."
        )
    supported = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
    if needs == "any" and not isinstance(action_space, supported):
        raise UsageError(f"{algo} cannot act in {env_id}'s action space {action_space}.")


def _algos_for(space: type) -> str:
    """The algorithms that act in action spaces of type ``space``, as ``a, b or c``."""
    fits = {"any", "box" if space is spaces.Box else "discrete"}
    names = [name for name, info in ALGORITHM_INFO.items() if info.actions in fits]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def make_env(
    config: RunConfig,
    *,
    n_envs: int,
    seed: int,
    monitor_dir: Path | None = None,
    extra_env_kwargs: dict[str, Any] | None = None,
    vec_env: str = "dummy",
    normalize_for_eval: bool = False,
) -> VecEnv:
    """A VecEnv built exactly like the run's training env (family preset, env_kwargs, frame stack).

    :param config: the run configuration.
    :param n_envs: number of envs.
    :param seed: base seed.
    :param monitor_dir: folder for Monitor CSVs, or None.
    :param extra_env_kwargs: env_kwargs on top of the run's (e.g. ``domain_randomize``).
    :param vec_env: ``dummy`` or ``subproc``.
    :param normalize_for_eval: wrap in a frozen VecNormalize (``training=False``, raw rewards)
        when the run normalises, as evaluation envs must be.
    """
    env_kwargs = {**config.agent.env_kwargs, **(extra_env_kwargs or {})}
    env = make_vec_env(
        config.env_id,
        n_envs=n_envs,
        seed=seed,
        vec_env=vec_env,  # type: ignore[arg-type]
        env_kwargs=env_kwargs,
        monitor_dir=monitor_dir,
        preset=config.env_preset,
    )
    normalize = config.agent.normalize
    if normalize is None:
        return env
    if normalize_for_eval:
        return VecNormalize(env, training=False, norm_obs=False, norm_reward=False)
    return VecNormalize(
        env,
        norm_obs=normalize.norm_obs,
        norm_reward=normalize.norm_reward,
        clip_obs=normalize.clip_obs,
        clip_reward=normalize.clip_reward,
        gamma=float(config.agent.hyperparam("gamma") or 0.99),
    )


def build_model(config: RunConfig, env: VecEnv, device: str) -> BaseAlgorithm:
    """Create the ReLIC algorithm of ``config`` on ``env``.

    :raises UsageError: when SB3 rejects the hyperparameters (its ValueError or assertion).
    """
    check_action_space(config, env.action_space)
    kwargs = config.agent.algorithm_kwargs(env.action_space)
    if config.extractor is not None:
        kwargs["policy_kwargs"]["features_extractor_class"] = import_extractor(config.extractor)
    algo_class: type[BaseAlgorithm] = ALGORITHMS[config.algo]
    try:
        model: BaseAlgorithm = algo_class(
            config.agent.policy, env, seed=config.seed, device=device, verbose=0, **kwargs
        )
    except UserError:
        raise
    except (ValueError, AssertionError) as e:
        raise UsageError(
            f"Cannot build the {config.algo} model with this configuration: {e or type(e).__name__}. Check "
            "the hyperparameters (preset and --hyperparams)."
        ) from None
    return model


def preflight(config: RunConfig, device: str = "cpu") -> None:
    """Build the envs and the model once, without writing anything, to report bad input early.

    Catches unknown env ids, non-image observations, a missing dependency, an algorithm that
    does not fit the action space, rejected env_kwargs (including ``domain_randomize``) and
    hyperparameter values SB3 refuses, before any run folder is created.
    """
    env = make_env(config, n_envs=config.n_envs, seed=config.seed)
    try:
        with warnings.catch_warnings():
            # Memory and batch-size warnings are shown once, when the real model is built.
            warnings.simplefilter("ignore")
            model = build_model(config, env, device)
        del model
    finally:
        env.close()
    if config.eval_domain_randomize:
        _make_eval_env(config, config.seed, {"domain_randomize": True}).close()


def _make_eval_env(config: RunConfig, seed: int, extra_env_kwargs: dict[str, Any]) -> VecEnv:
    """One evaluation env; a domain-randomized one the env does not support is a usage error."""
    try:
        return make_env(
            config, n_envs=1, seed=seed, extra_env_kwargs=extra_env_kwargs, normalize_for_eval=True
        )
    except EnvCreationError as e:
        if "domain_randomize" not in extra_env_kwargs:
            raise
        raise UsageError(
            f"--eval-domain-randomize needs an env that accepts domain_randomize=True (CarRacing does): {e}"
        ) from None


class _TensorBoardOutput(TensorBoardOutputFormat):
    """SB3's TensorBoard writer with ``purge_step``.

    All segments of a run write into the same folder, so TensorBoard shows one continuous
    run. After a resume from step T, ``purge_step=T`` hides what the interrupted segment
    logged at steps >= T (after its last checkpoint), which the resumed segment logs again.
    """

    def __init__(self, folder: str, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # Not calling super().__init__: it would open a second writer without purge_step.
        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def make_logger(run_dir: Path, segment: int, start: int = 0) -> Logger:
    """TensorBoard events in ``tb/`` (continuous across resumes) and one CSV per training segment.

    :param run_dir: the run folder.
    :param segment: 0 for the first training segment, k for the k-th resume (its own CSV,
        ``progress-resume-<k>.csv``, since SB3's CSV writer truncates its file).
    :param start: the timestep the segment starts at (TensorBoard's purge step when resuming).
    """
    folder = run_dir / TB_DIR
    folder.mkdir(parents=True, exist_ok=True)
    csv_name = "progress.csv" if segment == 0 else f"progress-resume-{segment}.csv"
    tensorboard = _TensorBoardOutput(str(folder), purge_step=start if segment > 0 else None)
    return Logger(str(folder), [tensorboard, CSVOutputFormat(str(folder / csv_name))])


# ----------------------------------------------------------------------------- summary
def resolve_device(requested: str) -> str:
    """``auto`` -> SB3's choice (cuda when available); else the requested device."""
    if requested == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError(
                "--device cuda was asked for, but torch sees no CUDA device; use --device cpu or auto."
            )
    return str(get_device(requested))


def _versions() -> dict[str, str]:
    import numpy
    import stable_baselines3
    import torch

    return {
        "relic_rl": relic_rl.__version__,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "stable_baselines3": str(stable_baselines3.__version__),
        "gymnasium": str(gym.__version__),
        "numpy": str(numpy.__version__),
    }


def build_meta(run_dir: Path, command: str, device: str, note: str | None) -> dict[str, Any]:
    """The volatile ``meta:`` block of ``config.yaml``."""
    return {
        "created": datetime.now().isoformat(timespec="seconds"),
        "run_dir": str(run_dir),
        "run_name": run_dir.name,
        "command": command,
        "cwd": os.getcwd(),
        "hostname": socket.gethostname(),
        "device": device,
        "env_note": note,
        "versions": _versions(),
    }


def write_new_run(run_dir: Path, config: RunConfig, command: str, device: str | None = None) -> None:
    """Write a new run's ``config.yaml`` (with its ``meta``), ``command.txt`` and ``status.yaml``.

    What :func:`train` and :func:`resume` start from: the train CLI calls it on the folder it
    has just created, the ablation on each new cell's folder (then resumes it).

    :param command: the shell command recorded in ``command.txt`` and ``meta``.
    :param device: the device recorded in ``meta`` (None: ``config.device`` resolved here).
    """
    resolved = device if device is not None else resolve_device(config.device)
    write_run_files(run_dir, config, build_meta(run_dir, command, resolved, _env_note(config)), command)


def _describe_env(preset: EnvPreset) -> str:
    parts = []
    if preset.atari_wrapper:
        parts.append("AtariWrapper")
    if preset.frame_skip > 1:
        parts.append(f"frame skip {preset.frame_skip}")
    if preset.resize is not None:
        parts.append(f"{preset.resize[0]}x{preset.resize[1]}")
    if preset.grayscale:
        parts.append("gray")
    if preset.frame_stack > 1:
        parts.append(f"stack {preset.frame_stack}")
    return f"family {preset.family}" + (": " + ", ".join(parts) if parts else "")


def format_summary(
    config: RunConfig,
    run_dir: Path,
    device: str,
    note: str | None,
    start: int = 0,
    threads: int | None = None,
    threads_chosen: bool = True,
) -> str:
    """The one-screen start summary.

    :param threads: the run's torch threads (None: :func:`~relic_rl.threads.default_threads`).
    :param threads_chosen: whether the user gave them (else the line says they were chosen).
    """
    agent: AgentConfig = config.agent
    relic = agent.relic
    if config.aux == "relic":
        aux = (
            f"relic (aux_weight={relic.aux_weight:g}, kl_weight={relic.kl_weight:g}, "
            f"temperature={relic.temperature:g}, augmentation={relic.augmentation})"
        )
    elif config.aux == "curl":
        aux = f"curl (aux_weight={relic.aux_weight:g}, augmentation={relic.augmentation})"
    else:
        aux = "none (baseline: same pipeline, no auxiliary loss)"
    lines = [
        "relic-rl training" + (f" (resuming at step {start:,})" if start else ""),
        f"  env         {config.env_id} ({_describe_env(config.env_preset)}), "
        f"{agent.n_envs} x {config.vec_env} ({_VEC_ENV_NOTES.get(config.vec_env, '')})"
        + (f", env_kwargs {agent.env_kwargs}" if agent.env_kwargs else ""),
    ]
    if note:
        lines.append(f"  note        {note}")
    lines += [
        f"  algo        {config.algo} (agents/{config.algo}.yaml [{config.agent_preset}]), "
        f"{agent.n_timesteps:,} steps, seed {config.seed}",
        f"  aux         {aux}" + (f", extractor {config.extractor}" if config.extractor else ""),
        f"  device      {device}",
        "  threads     torch "
        + describe_threads(threads or default_threads(), config.vec_env, chosen=threads_chosen),
    ]
    if agent.eval_episodes:
        randomized = " + domain-randomized" if config.eval_domain_randomize else ""
        lines.append(
            f"  eval        every {agent.eval_freq:,} steps and at the end, "
            f"{agent.eval_episodes} episodes{randomized}"
        )
    else:
        lines.append("  eval        off")
    lines += [
        f"  checkpoints every {agent.checkpoint_freq:,} steps (and on Ctrl-C)",
        f"  run folder  {run_dir}",
        f"  tensorboard tensorboard --logdir {run_dir}",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainResult:
    """How a call to :func:`train` ended.

    :param state: ``finished``, ``interrupted`` or ``failed`` (as in ``status.yaml``).
    :param timesteps: ``num_timesteps`` at the end (the checkpoint's, when interrupted).
    :param run_dir: the run folder.
    :param message: what went wrong, for ``failed`` / ``interrupted``.
    :param final_model: ``final_model.zip`` when finished.
    :param last_evaluation: mean return of the last in-distribution evaluation, if any.
    """

    state: str
    timesteps: int
    run_dir: Path
    message: str | None = None
    final_model: Path | None = None
    last_evaluation: float | None = None

    @property
    def exit_code(self) -> int:
        """0 finished, 130 interrupted, 1 failed."""
        return {"finished": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(self.state, EXIT_FAILED)


def _last_row_timesteps(path: Path) -> int | None:
    rows = read_evaluation_rows(path)
    return int(float(rows[-1]["timesteps"])) if rows else None


def _close(env: VecEnv | None) -> None:
    if env is None:
        return
    # Subprocess workers may already be gone after Ctrl-C.
    with contextlib.suppress(OSError, EOFError):
        env.close()


def train(
    config: RunConfig,
    run_dir: str | Path,
    *,
    resume_from: Checkpoint | None = None,
    device: str | None = None,
    progress: bool = True,
    quiet: bool = False,
    callbacks: Sequence[BaseCallback] = (),
    stream: TextIO | None = None,
    threads: int | None = None,
    keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS,
    on_built: Callable[[], None] | None = None,
    discard_if_unbuilt: bool = False,
) -> TrainResult:
    """Build the run of ``config`` once and train it into ``run_dir``, or continue it.

    Writes ``status.yaml`` (running at start and at every checkpoint, then finished, failed
    or interrupted), TensorBoard events, Monitor CSVs, evaluations, checkpoints and finally
    ``final_model.zip`` (+ ``vecnormalize.pkl``). Ctrl-C saves a checkpoint and returns an
    ``interrupted`` result; NaN/inf in the losses or parameters stops training with a
    ``failed`` result and leaves the last good checkpoint untouched.

    A resumed run restores the model, its optimizer and VecNormalize statistics and the
    timestep counter; the envs restart their episodes, and off-policy replay buffers (not
    saved in checkpoints, they can take gigabytes) start empty.

    :param config: the run configuration.
    :param run_dir: the run folder; ``config.yaml`` is written when missing.
    :param resume_from: a checkpoint of this run to continue from (timestep counter,
        TensorBoard run and evaluation files continue; later evaluation rows are dropped).
    :param device: torch device; None uses ``config.device``.
    :param progress: show a progress bar.
    :param quiet: print nothing but errors.
    :param callbacks: extra SB3 callbacks (e.g. :class:`~relic_rl.callbacks.StopAfterSteps`).
    :param stream: where to print (default stdout).
    :param threads: torch threads for updates and evaluation (None: as many as torch has
        now; the CLI passes :func:`~relic_rl.threads.default_threads`); with
        ``vec_env="subproc"`` on-policy rollouts use one (:class:`~relic_rl.callbacks.TorchThreads`).
    :param on_built: called once the envs, the model and the evaluators are built, before the
        first step (the CLI prints its start summary there).
    :param discard_if_unbuilt: ``run_dir`` was created for this call: when bad input stops the
        build (nothing trained yet), remove the folder instead of leaving a failed run behind.
    :return: how it ended.
    :raises UsageError | EnvCreationError | PresetError: on bad input (status becomes failed,
        or the folder is removed with ``discard_if_unbuilt``).
    """
    previous_threads = torch.get_num_threads()
    try:
        with run_lock(Path(run_dir)):
            return _train(
                config,
                Path(run_dir),
                resume_from,
                device,
                progress,
                quiet,
                callbacks,
                stream,
                threads,
                keep_checkpoints,
                on_built,
                discard_if_unbuilt,
            )
    finally:
        torch.set_num_threads(previous_threads)  # a library call leaves the process as it found it


def _train(
    config: RunConfig,
    run_dir: Path,
    resume_from: Checkpoint | None,
    device: str | None,
    progress: bool,
    quiet: bool,
    callbacks: Sequence[BaseCallback],
    stream: TextIO | None,
    threads: int | None,
    keep_checkpoints: int,
    on_built: Callable[[], None] | None,
    discard_if_unbuilt: bool,
) -> TrainResult:
    update_threads = threads if threads is not None else torch.get_num_threads()
    torch.set_num_threads(update_threads)
    resolved_device = resolve_device(device or config.device)
    if not (run_dir / CONFIG_FILE).is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_new_run(run_dir, config, "relic_rl.experiment.train() (library call)", resolved_device)
    start = resume_from.timesteps if resume_from is not None else 0
    total = config.total_timesteps
    segment = next_segment(run_dir)
    write_status(run_dir, RunStatus("running", start, total))

    def say(text: str) -> None:
        if not quiet:
            print_line(stream, text)

    env: VecEnv | None = None
    eval_envs: list[VecEnv] = []
    bar: ProgressBarCallback | None = None
    model: BaseAlgorithm | None = None
    checkpointer: CheckpointCallback | None = None
    built = discard = False
    try:
        env = make_env(
            config,
            n_envs=config.n_envs,
            seed=config.seed + start,
            monitor_dir=monitor_dir_for(run_dir, segment),
            vec_env=config.vec_env,
        )
        if resume_from is not None:
            model = _load_checkpoint(config, resume_from, env, resolved_device)
        else:
            model = build_model(config, env, resolved_device)
        model.set_logger(make_logger(run_dir, segment, start))

        guard = NonFiniteGuard()
        update_guard = UpdateGuard()
        checkpointer = CheckpointCallback(
            run_dir, config.agent.checkpoint_freq, total, start, keep=keep_checkpoints or None
        )
        checkpointer.init_callback(model)  # Ctrl-C from here on saves a checkpoint
        bar = ProgressBarCallback(total, stream=stream) if progress else None
        last_mean: list[float] = []

        def on_eval(prefix: str, steps: int, mean: float, std: float, returns: list[float]) -> None:
            if prefix == "eval":
                last_mean[:] = [mean]
            plural = "s" if len(returns) != 1 else ""
            text = f"{prefix} at {steps:,} steps: {mean:.2f} +- {std:.2f} ({len(returns)} episode{plural})"
            if bar is not None and bar.bar is not None:
                bar.set_description(f"{prefix} {mean:.1f}")
            else:
                say(text)

        def announce(prefix: str) -> None:
            if bar is not None:
                what = "domain-randomized " if prefix == "eval_randomized" else ""
                plural = "s" if agent_episodes != 1 else ""
                bar.set_phase(f"evaluating ({agent_episodes} {what}episode{plural})")

        agent_episodes = config.agent.eval_episodes
        evaluators = _make_evaluators(config, run_dir, start, on_eval, eval_envs, announce)
        # Bound now (learn binds them again) so that they work even when learn does not run.
        for own in (guard, *evaluators):
            own.init_callback(model)
        built = True
        if on_built is not None:
            on_built()
        torch_threads = TorchThreads(update_threads, rollout_threads(update_threads, config.vec_env))
        # After the checkpointer and the evaluators: a stop held back during an update is raised
        # at the next rollout start once what is due there has been saved and evaluated.
        callback_list = CallbackList(
            [
                torch_threads,
                guard,
                checkpointer,
                *evaluators,
                update_guard,
                *([bar] if bar else []),
                *callbacks,
            ]
        )
        _ACTIVE_UPDATE_GUARDS.append(update_guard)
        try:
            remaining = total - model.num_timesteps
            if remaining > 0:
                try:
                    model.learn(remaining, callback=callback_list, reset_num_timesteps=False)
                except ValueError as e:
                    diverged = non_finite_error_from(e, model, guard.last_metrics)
                    if diverged is None:
                        raise
                    raise diverged from e
            guard.check()
        finally:
            _ACTIVE_UPDATE_GUARDS.remove(update_guard)
            if bar is not None:
                bar.close()
        for evaluator in evaluators:
            if evaluator.last_timesteps != model.num_timesteps:
                evaluator.evaluate()
        final_path = run_dir / FINAL_MODEL_FILE
        save_model_atomically(model, final_path, run_dir / VECNORMALIZE_FILE)
        write_status(run_dir, RunStatus("finished", model.num_timesteps, total))
        say(f"finished {model.num_timesteps:,} steps; model: {final_path}")
        return TrainResult(
            "finished", model.num_timesteps, run_dir, None, final_path, last_mean[0] if last_mean else None
        )
    except KeyboardInterrupt:
        return _interrupted(run_dir, model, checkpointer, total, start, stream, update_guard)
    except NonFiniteError as e:
        good = latest_checkpoint(run_dir)
        where = f" The last good checkpoint is {good.model}." if good is not None else ""
        message = f"{e}{where}"
        write_status(run_dir, RunStatus("failed", good.timesteps if good else 0, total, message))
        return TrainResult("failed", e.step, run_dir, message)
    except BaseException as e:
        discard = discard_if_unbuilt and not built and isinstance(e, UserError)
        if not discard:
            write_status(run_dir, RunStatus("failed", start, total, f"{type(e).__name__}: {e}"))
        raise
    finally:
        if bar is not None:
            bar.close()
        if model is not None:
            model.logger.close()  # flushes the TensorBoard and CSV files
        _close(env)
        for eval_env in eval_envs:
            _close(eval_env)
        if discard:  # after closing: the envs' Monitor files are inside
            shutil.rmtree(run_dir, ignore_errors=True)


def _env_note(config: RunConfig) -> str | None:
    """The run summary's note on CarRacing: the v2 compat env and which renderer draws it."""
    notes = [
        carracing_compat_note(config.env_id) if _registers_carracing(config.env_id) else None,
        renderer_note(config.env_id, {**config.env_preset.env_kwargs, **config.agent.env_kwargs}),
    ]
    return " ".join(n for n in notes if n) or None


def _registers_carracing(env_id: str) -> bool:
    """Register the compat CarRacing-v2 when the run uses it, so its note can be given."""
    if env_id != "CarRacing-v2":
        return False
    try:
        register_carracing_v2()
    except EnvCreationError:
        return False
    return True


def _load_checkpoint(config: RunConfig, checkpoint: Checkpoint, env: VecEnv, device: str) -> BaseAlgorithm:
    """Load a checkpoint onto ``env`` (restoring its VecNormalize statistics) and reseed."""
    if isinstance(env, VecNormalize) and checkpoint.vecnormalize is not None:
        saved = VecNormalize.load(str(checkpoint.vecnormalize), env.venv)
        saved.training = True
        env = saved
    algo_class: type[BaseAlgorithm] = ALGORITHMS[config.algo]
    model = algo_class.load(str(checkpoint.model), env=env, device=device)
    # A new random stream for the continued segment (not a replay of the first one).
    model.set_random_seed(config.seed + checkpoint.timesteps)
    return model


def _make_evaluators(
    config: RunConfig,
    run_dir: Path,
    start: int,
    listener: Any,
    opened: list[VecEnv],
    announce: Any = None,
) -> list[EvaluationCallback]:
    """The evaluation callbacks (in-distribution, and domain-randomized when asked for)."""
    agent = config.agent
    if agent.eval_episodes == 0:
        return []
    specs: list[tuple[str, str, int, dict[str, Any]]] = [("eval", EVAL_FILE, EVAL_SEED_OFFSET, {})]
    if config.eval_domain_randomize:
        specs.append(
            ("eval_randomized", RANDOMIZED_EVAL_FILE, RANDOMIZED_EVAL_SEED_OFFSET, {"domain_randomize": True})
        )
    evaluators = []
    for prefix, file_name, offset, extra in specs:
        path = run_dir / file_name
        # Rows after the checkpoint are redone by the resumed run, so they must go.
        truncate_evaluations(path, start)
        eval_env = _make_eval_env(config, config.seed + offset, extra)
        opened.append(eval_env)
        evaluators.append(
            EvaluationCallback(
                eval_env,
                EvaluationLog(path),
                prefix,
                agent.eval_freq,
                agent.eval_episodes,
                deterministic=True,
                start_timesteps=start,
                last_timesteps=_last_row_timesteps(path),
                listener=listener,
                announce=announce,
            )
        )
    return evaluators


def _interrupted(
    run_dir: Path,
    model: BaseAlgorithm | None,
    checkpointer: CheckpointCallback | None,
    total: int,
    start: int,
    stream: TextIO | None,
    update_guard: UpdateGuard | None = None,
) -> TrainResult:
    """Ctrl-C: save a checkpoint of the last consistent state, write the status, say what is
    kept and what a resume does again."""
    resume_hint = f"resume with: python -m relic_rl.train --resume {run_dir}"
    if model is None or checkpointer is None:
        message = "interrupted before training started"
        write_status(run_dir, RunStatus("interrupted", start, total, message))
        print_line(stream, f"{message}; {resume_hint}")
        return TrainResult("interrupted", start, run_dir, message)
    if update_guard is not None and update_guard.in_update:
        # Half of an update is no state to continue from: keep the last checkpoint.
        good = latest_checkpoint(run_dir)
        kept = good.timesteps if good is not None else start
        message = (
            f"interrupted during an update at step {model.num_timesteps:,}; the half-finished update is "
            f"not saved. "
            + (
                f"The last checkpoint ({good.model}, step {kept:,}) is kept"
                if good
                else "No checkpoint exists yet"
            )
            + f", and a resume trains again from step {kept:,}"
        )
        write_status(run_dir, RunStatus("interrupted", kept, total, message))
        print_line(stream, f"\n{message}.\n{resume_hint}")
        return TrainResult("interrupted", kept, run_dir, message)
    steps = checkpointer.resume_point()
    if non_finite_parameters(model):
        good = latest_checkpoint(run_dir)
        message = "interrupted with non-finite parameters; no checkpoint saved" + (
            f"; the last good one is {good.model}" if good else ""
        )
        write_status(run_dir, RunStatus("failed", good.timesteps if good else 0, total, message))
        print_line(stream, message)
        return TrainResult("failed", steps, run_dir, message)
    path = checkpointer.save(steps)
    collected = model.num_timesteps - steps
    message = f"interrupted at step {steps:,}; checkpoint {path}"
    if collected > 0:
        message += (
            f" (the model as it was at the start of the rollout being collected; the {collected:,} steps "
            "collected since are collected again when the run is resumed)"
        )
    write_status(run_dir, RunStatus("interrupted", steps, total, message))
    print_line(stream, f"\n{message}\n{resume_hint}")
    return TrainResult("interrupted", steps, run_dir, message)


def resume(
    run_dir: str | Path,
    *,
    device: str | None = None,
    progress: bool = True,
    quiet: bool = False,
    command: str | None = None,
    callbacks: Sequence[BaseCallback] = (),
    stream: TextIO | None = None,
    threads: int | None = None,
    keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS,
) -> TrainResult:
    """Continue the run in ``run_dir`` from its last checkpoint to its original total.

    A finished run returns at once (state ``finished``). A run without a checkpoint starts
    over only if it wrote nothing but its startup files; otherwise UsageError.
    """
    run_dir = Path(run_dir)
    config, _meta = load_run_config(run_dir)
    # Before anything is read or written: a process still training here must be left alone.
    with run_lock(run_dir):
        return _resume(
            run_dir, config, device, progress, quiet, command, callbacks, stream, threads, keep_checkpoints
        )


def _resume(
    run_dir: Path,
    config: RunConfig,
    device: str | None,
    progress: bool,
    quiet: bool,
    command: str | None,
    callbacks: Sequence[BaseCallback],
    stream: TextIO | None,
    threads: int | None,
    keep_checkpoints: int,
) -> TrainResult:
    status = read_status(run_dir)
    if status.state == "finished":
        final = run_dir / FINAL_MODEL_FILE
        return TrainResult("finished", status.timesteps, run_dir, "already finished", final)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None and not only_startup_files(run_dir):
        raise UsageError(
            f"{run_dir} has no checkpoint to resume from, but training already wrote files there "
            f"({', '.join(sorted(p.name for p in run_dir.iterdir()))}): it stopped before its first "
            "checkpoint "
            f"(every {config.agent.checkpoint_freq:,} steps). Start a new run instead (another --run-name, "
            "or delete this folder)."
        )
    stamp = datetime.now().isoformat(timespec="seconds")
    verb = "resumed" if checkpoint is not None else "started"  # a folder written by write_new_run
    append_command(run_dir, f"# {verb} {stamp}: {command or f'python -m relic_rl.train --resume {run_dir}'}")
    chosen = threads is not None
    threads = threads if threads is not None else default_threads()
    if not quiet:
        resolved = resolve_device(device or config.device)
        note = _env_note(config)
        start = checkpoint.timesteps if checkpoint else 0
        print_line(
            stream,
            format_summary(config, run_dir, resolved, note, start, threads=threads, threads_chosen=chosen),
        )
    return train(
        config,
        run_dir,
        resume_from=checkpoint,
        device=device,
        progress=progress,
        quiet=quiet,
        callbacks=callbacks,
        stream=stream,
        threads=threads,
        keep_checkpoints=keep_checkpoints,
    )
