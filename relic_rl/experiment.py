"""The run lifecycle from a :class:`~relic_rl.runs.RunConfig` on, for the CLIs, the ablation and the
benchmarks: build (:func:`make_env`, :func:`build_model`, :func:`preflight`), :func:`train`,
:func:`resume` (also a folder that :func:`write_new_run` wrote) and :func:`format_summary`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import shutil
import socket
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import gymnasium as gym
import numpy
import stable_baselines3
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

import relic_rl
from relic_rl.agent_config import AgentConfig
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

#: The summary's note on the vec env (dummy is the default: subproc measured no faster on 2 cores).
_VEC_ENV_NOTES = {
    "dummy": "envs stepped in this process; --vec-env subproc for one process per env",
    "subproc": "one process per env",
}

#: Checkpoints kept by default (``--keep-checkpoints``); the final model is always kept.
DEFAULT_KEEP_CHECKPOINTS = 3

#: Algorithms that collect rollouts of ``n_envs x n_steps`` and then update.
ON_POLICY = tuple(name for name, info in ALGORITHM_INFO.items() if info.on_policy)


def import_extractor(spec: str) -> type[ReLICExtractor]:
    """Import ``module:Class``, a :class:`~relic_rl.ReLICExtractor` subclass (else UsageError)."""
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
    """UsageError for a budget below one on-policy rollout (it would train more than asked) or
    not past an off-policy ``learning_starts`` (it would train nothing)."""
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


def check_action_space(config: RunConfig, action_space: spaces.Space[Any]) -> None:
    """Raise UsageError, with the fix, when ``config.algo`` cannot act in ``action_space``."""
    algo, env_id = config.algo, config.env_id
    carracing = config.env_preset.family == "carracing"
    needs = ALGORITHM_INFO[algo].actions
    if needs == "discrete" and not isinstance(action_space, spaces.Discrete):
        hint = "use a discrete variant of the env (select it with --env-kwargs if it has one)"
        if carracing:
            hint = "use CarRacing's discrete variant with --env-kwargs continuous=False"
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
    """The algorithms for action spaces of type ``space``, as ``a, b or c``."""
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
    """A VecEnv of ``n_envs`` envs from base seed ``seed``, built like the run's training env, with
    ``extra_env_kwargs`` on top of the run's, Monitor CSVs in ``monitor_dir`` (None: none) and ``vec_env``
    ``"dummy"`` or ``"subproc"``; ``normalize_for_eval`` wraps a normalising run's env in a
    frozen VecNormalize (``training=False``, raw rewards), as evaluation envs must be."""
    env = make_vec_env(
        config.env_id,
        n_envs=n_envs,
        seed=seed,
        vec_env=vec_env,  # type: ignore[arg-type]
        env_kwargs={**config.agent.env_kwargs, **(extra_env_kwargs or {})},
        monitor_dir=monitor_dir,
        preset=config.env_preset,
    )
    normalize = config.agent.normalize
    if normalize is None:
        return env
    if normalize_for_eval:
        return VecNormalize(env, training=False, norm_obs=False, norm_reward=False)
    gamma = float(config.agent.hyperparam("gamma") or 0.99)
    return VecNormalize(env, gamma=gamma, **asdict(normalize))


def build_model(config: RunConfig, env: VecEnv, device: str) -> BaseAlgorithm:
    """The ReLIC algorithm of ``config`` on ``env``; UsageError when SB3 rejects the hyperparameters."""
    check_action_space(config, env.action_space)
    kwargs = config.agent.algorithm_kwargs(env.action_space)
    if config.extractor is not None:
        kwargs["policy_kwargs"]["features_extractor_class"] = import_extractor(config.extractor)
    algo_class: type[BaseAlgorithm] = ALGORITHMS[config.algo]
    try:
        return algo_class(config.agent.policy, env, seed=config.seed, device=device, verbose=0, **kwargs)
    except UserError:
        raise
    except (ValueError, AssertionError) as e:
        raise UsageError(
            f"Cannot build the {config.algo} model with this configuration: {e or type(e).__name__}. Check "
            "the hyperparameters (preset and --hyperparams)."
        ) from None


def preflight(config: RunConfig, device: str = "cpu") -> None:
    """Build the envs and the model once, writing nothing, to report bad input early (env id,
    observations, dependencies, action space, env_kwargs, hyperparameters SB3 refuses)."""
    env = make_env(config, n_envs=config.n_envs, seed=config.seed)
    try:
        with warnings.catch_warnings():
            # Memory and batch-size warnings are shown once, when the real model is built.
            warnings.simplefilter("ignore")
            build_model(config, env, device)
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
    """SB3's TensorBoard writer with ``purge_step``: all segments write one continuous run, and a
    resume from step T hides what the interrupted segment logged at steps >= T (logged again)."""

    def __init__(self, folder: str, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # Not calling super().__init__: it would open a second writer without purge_step.
        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def make_logger(run_dir: Path, segment: int, start: int = 0) -> Logger:
    """TensorBoard events in ``tb/`` (continuous across resumes) and one CSV per training segment:
    ``segment`` 0 is the first, k the k-th resume (``progress-resume-<k>.csv``: SB3's CSV writer
    truncates its file); ``start`` is its first timestep (TensorBoard's purge step on a resume)."""
    folder = run_dir / TB_DIR
    folder.mkdir(parents=True, exist_ok=True)
    csv_name = "progress.csv" if segment == 0 else f"progress-resume-{segment}.csv"
    tensorboard = _TensorBoardOutput(str(folder), purge_step=start if segment > 0 else None)
    return Logger(str(folder), [tensorboard, CSVOutputFormat(str(folder / csv_name))])


def resolve_device(requested: str) -> str:
    """``auto`` -> SB3's choice (cuda when available); else the requested device."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "--device cuda was asked for, but torch sees no CUDA device; use --device cpu or auto."
        )
    return str(get_device(requested))


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
        "versions": {
            "relic_rl": relic_rl.__version__,
            "python": platform.python_version(),
            **{module.__name__: str(module.__version__) for module in (torch, stable_baselines3, gym, numpy)},
        },
    }


def write_new_run(run_dir: Path, config: RunConfig, command: str, device: str | None = None) -> None:
    """Write a new run's ``config.yaml`` (with ``meta``), ``command.txt`` and ``status.yaml``, for
    :func:`train` or :func:`resume` to start from. ``device`` None: ``config.device`` resolved."""
    resolved = device if device is not None else resolve_device(config.device)
    write_run_files(run_dir, config, build_meta(run_dir, command, resolved, _env_note(config)), command)


def _describe_env(preset: EnvPreset) -> str:
    parts = [
        "AtariWrapper" if preset.atari_wrapper else "",
        f"frame skip {preset.frame_skip}" if preset.frame_skip > 1 else "",
        f"{preset.resize[0]}x{preset.resize[1]}" if preset.resize is not None else "",
        "gray" if preset.grayscale else "",
        f"stack {preset.frame_stack}" if preset.frame_stack > 1 else "",
    ]
    described = ", ".join(part for part in parts if part)
    return f"family {preset.family}" + (f": {described}" if described else "")


def format_summary(
    config: RunConfig,
    run_dir: Path,
    device: str,
    note: str | None,
    start: int = 0,
    threads: int | None = None,
    threads_chosen: bool = True,
) -> str:
    """The one-screen start summary of the run in ``run_dir`` on ``device``, starting at step ``start``
    (``note``: :func:`_env_note`; ``threads_chosen``: whether the user gave ``threads``)."""
    agent: AgentConfig = config.agent
    relic = agent.relic
    aux = {
        "relic": f"relic (aux_weight={relic.aux_weight:g}, kl_weight={relic.kl_weight:g}, "
        f"temperature={relic.temperature:g}, augmentation={relic.augmentation})",
        "curl": f"curl (aux_weight={relic.aux_weight:g}, augmentation={relic.augmentation})",
    }.get(config.aux, "none (baseline: same pipeline, no auxiliary loss)")
    randomized = " + domain-randomized" if config.eval_domain_randomize else ""
    evaluation = f"every {agent.eval_freq:,} steps and at the end, {agent.eval_episodes} episodes{randomized}"
    lines = [
        "relic-rl training" + (f" (resuming at step {start:,})" if start else ""),
        f"  env         {config.env_id} ({_describe_env(config.env_preset)}), "
        f"{agent.n_envs} x {config.vec_env} ({_VEC_ENV_NOTES.get(config.vec_env, '')})"
        + (f", env_kwargs {agent.env_kwargs}" if agent.env_kwargs else ""),
        *([f"  note        {note}"] if note else []),
        f"  algo        {config.algo} (agents/{config.algo}.yaml [{config.agent_preset}]), "
        f"{agent.n_timesteps:,} steps, seed {config.seed}",
        f"  aux         {aux}" + (f", extractor {config.extractor}" if config.extractor else ""),
        f"  device      {device}",
        "  threads     torch "
        + describe_threads(threads or default_threads(), config.vec_env, chosen=threads_chosen),
        f"  eval        {evaluation if agent.eval_episodes else 'off'}",
        f"  checkpoints every {agent.checkpoint_freq:,} steps (and on Ctrl-C)",
        f"  run folder  {run_dir}",
        f"  tensorboard tensorboard --logdir {run_dir}",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class TrainResult:
    """How a call to :func:`train` ended: ``state`` as in ``status.yaml``; ``timesteps`` at the end
    (the checkpoint's when interrupted); ``message`` for failed / interrupted; ``final_model`` when
    finished; ``last_evaluation``: mean return of the last in-distribution evaluation, if any."""

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


def _close(env: VecEnv | None) -> None:
    if env is not None:
        with contextlib.suppress(OSError, EOFError):  # subprocess workers may be gone after Ctrl-C
            env.close()


@contextlib.contextmanager
def _keep_torch_threads() -> Iterator[None]:
    """A library call leaves torch's thread count as it found it."""
    previous = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
    """Build the run of ``config`` once and train it into ``run_dir`` (``config.yaml`` written when
    missing), or continue it from ``resume_from``.

    Writes ``status.yaml`` (running at start and at every checkpoint, then the final state), TensorBoard
    events, Monitor CSVs, evaluations, checkpoints and ``final_model.zip`` (+ ``vecnormalize.pkl``).
    Ctrl-C saves a checkpoint (``interrupted``); NaN/inf in losses or parameters gives ``failed``,
    keeping the last good checkpoint. A resume restores model, optimizer, VecNormalize statistics and
    timestep counter and drops later evaluation rows; episodes restart and off-policy replay buffers
    (not checkpointed) start empty.

    :param device: None uses ``config.device``.
    :param progress: show a progress bar.
    :param quiet: print nothing but errors.
    :param callbacks: extra SB3 callbacks (e.g. :class:`~relic_rl.callbacks.StopAfterSteps`).
    :param stream: where to print (default stdout).
    :param threads: torch threads for updates and evaluation (None: torch's current count); with
        ``vec_env="subproc"`` on-policy rollouts use one (:class:`~relic_rl.callbacks.TorchThreads`).
    :param keep_checkpoints: keep only the newest K checkpoints; 0 keeps all.
    :param on_built: called once envs, model and evaluators are built, before the first step.
    :param discard_if_unbuilt: remove ``run_dir`` (created for this call) when bad input stops the build.
    :raises UsageError | EnvCreationError | PresetError: on bad input (the run marked failed, unless
        ``discard_if_unbuilt`` removes the folder).
    """
    run_dir = Path(run_dir)
    with _keep_torch_threads(), run_lock(run_dir):
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
        update_guard: UpdateGuard | None = None
        built = discard = False
        try:
            seed, monitor_dir = config.seed + start, monitor_dir_for(run_dir, segment)
            env = make_env(
                config, n_envs=config.n_envs, seed=seed, monitor_dir=monitor_dir, vec_env=config.vec_env
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
            last_mean: list[float | None] = [None]
            episodes = config.agent.eval_episodes

            def on_eval(prefix: str, steps: int, mean: float, std: float, returns: list[float]) -> None:
                if prefix == "eval":
                    last_mean[0] = mean
                if bar is not None and bar.bar is not None:
                    bar.set_description(f"{prefix} {mean:.1f}")
                else:
                    n, plural = len(returns), "s" if len(returns) != 1 else ""
                    say(f"{prefix} at {steps:,} steps: {mean:.2f} +- {std:.2f} ({n} episode{plural})")

            def announce(prefix: str) -> None:
                if bar is not None:
                    what = "domain-randomized " if prefix == "eval_randomized" else ""
                    plural = "s" if episodes != 1 else ""
                    bar.set_phase(f"evaluating ({episodes} {what}episode{plural})")

            evaluators = _make_evaluators(config, run_dir, start, on_eval, eval_envs, announce)
            # Bound now (learn binds them again) so that they work even when learn does not run.
            for own in (guard, *evaluators):
                own.init_callback(model)
            built = True
            if on_built is not None:
                on_built()
            torch_threads = TorchThreads(update_threads, rollout_threads(update_threads, config.vec_env))
            # After checkpointer and evaluators: a deferred stop is raised at a rollout start, after them.
            progress_bar = [bar] if bar else []
            callback_list = CallbackList(
                [torch_threads, guard, checkpointer, *evaluators, update_guard, *progress_bar, *callbacks]
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
            return TrainResult("finished", model.num_timesteps, run_dir, None, final_path, last_mean[0])
        except KeyboardInterrupt:
            return _interrupted(run_dir, model, checkpointer, total, start, stream, update_guard)
        except NonFiniteError as e:
            good = latest_checkpoint(run_dir)
            message = f"{e}" + (f" The last good checkpoint is {good.model}." if good is not None else "")
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
            for opened in (env, *eval_envs):
                _close(opened)
            if discard:  # after closing: the envs' Monitor files are inside
                shutil.rmtree(run_dir, ignore_errors=True)


def _env_note(config: RunConfig) -> str | None:
    """The run summary's note on CarRacing: the v2 compat env and which renderer draws it."""
    compat = None
    if config.env_id == "CarRacing-v2":
        # The compat env is registered here so that its note can be given.
        with contextlib.suppress(EnvCreationError):
            register_carracing_v2()
            compat = carracing_compat_note(config.env_id)
    renderer = renderer_note(config.env_id, {**config.env_preset.env_kwargs, **config.agent.env_kwargs})
    return " ".join(n for n in (compat, renderer) if n) or None


def _load_checkpoint(config: RunConfig, checkpoint: Checkpoint, env: VecEnv, device: str) -> BaseAlgorithm:
    """Load a checkpoint onto ``env`` (with its VecNormalize statistics) and reseed."""
    if isinstance(env, VecNormalize) and checkpoint.vecnormalize is not None:
        env = VecNormalize.load(str(checkpoint.vecnormalize), env.venv)
        env.training = True
    algo_class: type[BaseAlgorithm] = ALGORITHMS[config.algo]
    model = algo_class.load(str(checkpoint.model), env=env, device=device)
    # A new random stream for the continued segment (not a replay of the first one).
    model.set_random_seed(config.seed + checkpoint.timesteps)
    return model


def _make_evaluators(
    config: RunConfig, run_dir: Path, start: int, listener: Any, opened: list[VecEnv], announce: Any = None
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
        rows = read_evaluation_rows(path)
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
                last_timesteps=int(float(rows[-1]["timesteps"])) if rows else None,
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
    """Ctrl-C: checkpoint the last consistent state, write the status, say what a resume redoes."""
    resume_hint = f"resume with: python -m relic_rl.train --resume {run_dir}"
    state = "interrupted"
    if model is None or checkpointer is None:
        steps = kept = start
        message = "interrupted before training started"
        shown = f"{message}; {resume_hint}"
    elif update_guard is not None and update_guard.in_update:
        # Half of an update is no state to continue from: keep the last checkpoint.
        good = latest_checkpoint(run_dir)
        steps = kept = good.timesteps if good is not None else start
        what = "No checkpoint exists yet"
        if good:
            what = f"The last checkpoint ({good.model}, step {kept:,}) is kept"
        message = (
            f"interrupted during an update at step {model.num_timesteps:,}; the half-finished update is "
            f"not saved. {what}, and a resume trains again from step {kept:,}"
        )
        shown = f"\n{message}.\n{resume_hint}"
    elif non_finite_parameters(model):
        good = latest_checkpoint(run_dir)
        state, steps, kept = "failed", checkpointer.resume_point(), good.timesteps if good else 0
        message = "interrupted with non-finite parameters; no checkpoint saved" + (
            f"; the last good one is {good.model}" if good else ""
        )
        shown = message
    else:
        steps = kept = checkpointer.resume_point()
        message = f"interrupted at step {steps:,}; checkpoint {checkpointer.save(steps)}"
        collected = model.num_timesteps - steps
        if collected > 0:
            message += (
                f" (the model as it was at the start of the rollout being collected; the {collected:,} steps "
                "collected since are collected again when the run is resumed)"
            )
        shown = f"\n{message}\n{resume_hint}"
    write_status(run_dir, RunStatus(state, kept, total, message))
    print_line(stream, shown)
    return TrainResult(state, steps, run_dir, message)


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
    """Continue the run in ``run_dir`` from its last checkpoint to its original total (parameters as
    :func:`train`'s; ``command`` goes to ``command.txt``). A finished run returns at once; one without
    a checkpoint starts over only if it wrote nothing but its startup files, else UsageError."""
    run_dir = Path(run_dir)
    config, _meta = load_run_config(run_dir)
    # Before anything is read or written: a process still training here must be left alone.
    with run_lock(run_dir):
        status = read_status(run_dir)
        if status.state == "finished":
            return TrainResult(
                "finished", status.timesteps, run_dir, "already finished", run_dir / FINAL_MODEL_FILE
            )
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None and not only_startup_files(run_dir):
            raise UsageError(
                f"{run_dir} has no checkpoint to resume from, but training already wrote files there "
                f"({', '.join(sorted(p.name for p in run_dir.iterdir()))}): it stopped before its first "
                f"checkpoint (every {config.agent.checkpoint_freq:,} steps). Start a new run instead "
                "(another --run-name, or delete this folder)."
            )
        stamp = datetime.now().isoformat(timespec="seconds")
        verb = "resumed" if checkpoint is not None else "started"  # a folder written by write_new_run
        append_command(
            run_dir, f"# {verb} {stamp}: {command or f'python -m relic_rl.train --resume {run_dir}'}"
        )
        chosen = threads is not None
        threads = threads if threads is not None else default_threads()
        if not quiet:
            resolved = resolve_device(device or config.device)
            start = checkpoint.timesteps if checkpoint else 0
            summary = format_summary(
                config, run_dir, resolved, _env_note(config), start, threads=threads, threads_chosen=chosen
            )
            print_line(stream, summary)
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
