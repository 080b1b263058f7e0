"""Train a pixel agent with (or without) the ReLIC auxiliary loss: ``python -m relic_rl.train``.

The command line only; building, training and resuming a run is :mod:`relic_rl.experiment`, and
the names that moved there (``train``, ``resume``, ...) still resolve here with a DeprecationWarning.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shlex
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from relic_rl import experiment
from relic_rl.agent_config import (
    apply_overrides,
    check_override_keys,
    load_agent_presets,
    parse_agent_config,
    parse_assignments,
    select_preset,
)
from relic_rl.algorithms import ALGORITHMS
from relic_rl.cli_types import UserErrorParser, float_at_least, int_at_least
from relic_rl.environments import family_for, strip_module
from relic_rl.environments.factory import VEC_ENV_KINDS
from relic_rl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UserError
from relic_rl.flags import PRESET_FLAGS, RUN_FLAGS, option
from relic_rl.presets import PresetError
from relic_rl.runs import (
    AUX_CHOICES,
    CONFIG_FILE,
    DEVICE_CHOICES,
    RunConfig,
    UsageError,
    aux_name,
    create_run_dir,
    dump_yaml,
    load_run_config,
    read_status,
)
from relic_rl.threads import default_threads

__all__ = [
    "DEFAULT_ALGO",
    "USER_ERRORS",
    "build_parser",
    "command_line",
    "config_from_args",
    "default_algo",
    "main",
    "parse_args",
    "resolve_run_config",
]

DEFAULT_ALGO = "ppo"
#: Errors that are the user's to fix: printed as one paragraph, exit status 2 (all UserError).
USER_ERRORS: tuple[type[UserError], ...] = (UserError,)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m relic_rl.train`` parser. Preset-driven flags default to None (= the preset's value)."""
    parser = UserErrorParser(
        error_class=UsageError,
        prog="relic_rl.train",
        description=(
            "Train an SB3 pixel agent with the ReLIC auxiliary loss (or without it: --aux none).\n"
            "Hyperparameters come from agents/<algo>.yaml (keyed by env id, with `atari` and `default`\n"
            "fallbacks) and env preprocessing from envs/<family>.yaml; flags and --hyperparams override\n"
            "them. Each run writes a folder <log-dir>/<env>__<algo>-<aux>__seed<k>__<time>/."
        ),
        epilog=(
            "Examples:\n"
            "  python -m relic_rl.train --env CarRacing-v2\n"
            "  python -m relic_rl.train --env CarRacing-v2 --aux none --seed 1\n"
            "  python -m relic_rl.train --env CarRacing-v2 --algo dqn --env-kwargs continuous=False\n"
            "  python -m relic_rl.train --env ALE/Pong-v5 --hyperparams n_steps=256 relic.temperature=0.2\n"
            "  python -m relic_rl.train --resume runs/CarRacing-v2__ppo-relic__seed0__20250101-120000"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    count: dict[str, Any] = {"type": int_at_least(1), "metavar": "N"}
    assignments: dict[str, Any] = {"nargs": "+", "action": "extend", "metavar": "KEY=VALUE"}
    what = parser.add_argument_group("what to train")
    what.add_argument(
        "--env",
        metavar="ENV_ID",
        help="gymnasium env id with pixel observations, e.g. CarRacing-v2, ALE/Pong-v5 or module:EnvId "
        "(importing `module` registers EnvId). Required unless --resume.",
    )
    what.add_argument(
        "--algo",
        choices=list(ALGORITHMS),
        help="SB3 algorithm (default: ppo, or the only algorithm with a preset for this exact env id).",
    )
    what.add_argument(
        "--preset",
        metavar="NAME",
        help="the agents/<algo>.yaml block to start from, by name, e.g. CarRacing-v2-rl-zoo3 "
        "(default: the block of the env id, else atari or default).",
    )
    what.add_argument(
        "--aux",
        choices=list(AUX_CHOICES),
        help="relic: train with the ReLIC auxiliary loss; curl: with CURL's (bilinear InfoNCE, same "
        "views, critic and EMA target); none: the identical pipeline without an auxiliary loss, the "
        "baseline (default: the preset's relic block, i.e. relic).",
    )
    what.add_argument(
        "--extractor",
        metavar="MODULE:CLASS",
        help="a subclass of relic_rl.ReLICExtractor to use (default: relic_rl.ReLICExtractor).",
    )
    relic = parser.add_argument_group("ReLIC (override the preset's relic: block)")
    relic.add_argument(
        "--kl-weight",
        type=float_at_least(0.0),
        metavar="ALPHA",
        help="weight of the invariance (KL) penalty; 0 gives plain InfoNCE (default: the preset's, 1.0).",
    )
    relic.add_argument(
        "--aux-weight",
        type=float_at_least(0.0),
        metavar="LAMBDA",
        help="weight of the ReLIC loss against the RL loss (default: the preset's, 0.1).",
    )
    relic.add_argument(
        "--temperature",
        type=float_at_least(0.0, strict=True),
        metavar="TAU",
        help="softmax temperature of the critic (default: the preset's, 0.1).",
    )
    relic.add_argument(
        "--augmentation",
        metavar="SPEC",
        help='augmentation spec, e.g. "shift,intensity" or "crop(56),jitter(0.4)" '
        '(default: the preset\'s, "shift,intensity").',
    )
    budget = parser.add_argument_group("budget and envs")
    budget.add_argument("--seed", type=int_at_least(0), help="seed of the model and envs (default: 0).")
    budget.add_argument(
        "--total-timesteps",
        **count,
        help="env steps to train, summed over envs (default: the preset's n_timesteps; "
        "CarRacing PPO: 500000 agent steps at frame skip 4, i.e. 2M env frames).",
    )
    budget.add_argument(
        "--n-envs", **count, help="parallel training envs (default: the preset's n_envs; CarRacing PPO: 8)."
    )
    budget.add_argument(
        "--vec-env",
        choices=list(VEC_ENV_KINDS),
        help="dummy: envs stepped in this process; subproc: one process per env, with one torch thread "
        "while they collect a rollout (default: dummy; on 2 cores subproc measured no faster for "
        "CarRacing, see the README's performance section).",
    )
    budget.add_argument(
        "--device", choices=list(DEVICE_CHOICES), help="torch device (default: auto = cuda if available)."
    )
    budget.add_argument(
        "--threads",
        **count,
        help="torch threads for updates and evaluation; with --vec-env subproc 1 while the env workers "
        "collect a rollout (default: OMP_NUM_THREADS when set, else the cores idle at start, at least 1).",
    )
    budget.add_argument(
        "--env-kwargs",
        **assignments,
        help="keyword arguments for the env constructor, values parsed as YAML, e.g. continuous=False "
        "domain_randomize=True, or renderer=stock for gymnasium's CarRacing renderer instead of "
        "relic-rl's pixel-identical fast one (default: the presets' env_kwargs).",
    )
    budget.add_argument(
        "--hyperparams",
        **assignments,
        help="override any preset value; dotted keys for nested values and YAML values, e.g. n_steps=256 "
        "policy_kwargs.net_arch=[64] relic.temperature=0.2 'learning_rate={schedule: linear, initial: 3e-4}' "
        "(default: none).",
    )
    evaluation = parser.add_argument_group("evaluation and checkpoints")
    evaluation.add_argument(
        "--eval-freq",
        **count,
        help="evaluate every N env steps, counted over all training envs together (default: the preset's "
        "eval_freq; CarRacing PPO: 50000). A last evaluation always runs at the end of training.",
    )
    evaluation.add_argument(
        "--eval-episodes",
        type=int_at_least(0),
        metavar="N",
        help="episodes per evaluation, deterministic policy; 0 turns evaluation off (default: the preset's "
        "eval_episodes; CarRacing PPO: 5).",
    )
    evaluation.add_argument(
        "--eval-domain-randomize",
        action="store_true",
        default=None,
        help="also evaluate on the env with domain_randomize=True (CarRacing: random background and grass "
        "colours), logged as eval_randomized/* and evaluations_randomized.csv (default: off).",
    )
    evaluation.add_argument(
        "--keep-checkpoints",
        type=int_at_least(0),
        metavar="K",
        help=f"keep only the newest K checkpoints (each holds the model and its optimizer, 15.5 MB for the "
        f"CarRacing preset); 0 keeps all (default: {experiment.DEFAULT_KEEP_CHECKPOINTS}).",
    )
    evaluation.add_argument(
        "--checkpoint-freq",
        **count,
        help="checkpoint every N env steps, over all envs (default: the preset's checkpoint_freq; CarRacing "
        "PPO: 100000). Ctrl-C also saves one.",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--log-dir", metavar="DIR", help="folder for run folders (default: runs).")
    output.add_argument(
        "--run-name",
        metavar="NAME",
        help="run folder name, creating exactly <log-dir>/NAME; it must not exist or be empty "
        "(default: <env>__<algo>-<aux>__seed<k>__<time>).",
    )
    output.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last checkpoint to its original total, with its saved "
        "configuration (only --device, --threads, --keep-checkpoints, --no-progress and --quiet may be "
        "given with it) (default: off).",
    )
    output.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown).")
    output.add_argument(
        "--quiet", action="store_true", help="print neither the config nor the start summary (default: off)."
    )
    return parser


def default_algo(env_id: str) -> str:
    """``ppo``, unless ppo has no block for this exact id and exactly one other algorithm has."""
    bare = strip_module(env_id)
    with_exact = [algo for algo in ALGORITHMS if bare in load_agent_presets(algo)]
    if DEFAULT_ALGO in with_exact or len(with_exact) != 1:
        return DEFAULT_ALGO
    return with_exact[0]


def _flag_overrides(args: argparse.Namespace) -> list[tuple[tuple[str, ...], Any]]:
    """The preset values set by dedicated flags, as ``(key path, value)`` pairs."""
    overrides: list[tuple[tuple[str, ...], Any]] = [
        (path, getattr(args, dest)) for dest, path in PRESET_FLAGS.items() if getattr(args, dest) is not None
    ]
    if args.aux is not None:
        overrides.append((("relic", "enabled"), args.aux != "none"))
        if args.aux != "none":
            overrides.append((("relic", "objective"), args.aux))
    # Env keyword names are flat: a dot is part of the name, not nesting.
    env_kwargs = parse_assignments(args.env_kwargs or [], "--env-kwargs")
    return overrides + [(("env_kwargs", ".".join(path)), value) for path, value in env_kwargs]


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Resolve parsed arguments (without ``--resume``) into a :class:`RunConfig`."""
    if not args.env:
        raise UsageError("--env ENV_ID is required (e.g. --env CarRacing-v2), unless you --resume a run.")
    env_id: str = args.env
    env_preset = family_for(env_id)
    algo = args.algo or default_algo(env_id)
    key, block, where = select_preset(algo, env_id, env_preset.family, name=args.preset)
    parse_agent_config(algo, block, where)  # the preset alone must be valid (clearest message)
    user_overrides = parse_assignments(args.hyperparams or [], "--hyperparams")
    check_override_keys(algo, user_overrides, "--hyperparams")
    flag_overrides = _flag_overrides(args)
    merged = apply_overrides(apply_overrides(block, user_overrides, "--hyperparams"), flag_overrides, "flags")
    try:
        agent = parse_agent_config(algo, merged, "agent")
    except PresetError as e:
        # The preset alone parsed, so the value came from the command line.
        raise PresetError(f"{e} (set by --hyperparams or a flag, over {where})") from None
    if agent.relic.enabled and agent.relic.objective == "curl":
        unused = [option(f) for f in ("kl_weight", "temperature") if getattr(args, f) is not None]
        if unused:
            verb = "do" if len(unused) > 1 else "does"
            raise UsageError(
                f"{' and '.join(unused)} {verb} not apply to --aux curl: CURL's bilinear InfoNCE has no "
                "temperature and no KL penalty. Drop the flag, or use --aux relic."
            )
    if args.extractor is not None:
        experiment.import_extractor(args.extractor)
    # The agent block may override the env family's frame stack and frame skip.
    frames: dict[str, Any] = {"frame_stack": agent.frame_stack, "frame_skip": agent.frame_skip}
    env_preset = dataclasses.replace(env_preset, **{k: v for k, v in frames.items() if v is not None})
    experiment.check_budget(algo, agent)
    return RunConfig(
        env_id=env_id,
        algo=algo,
        aux=aux_name(agent.relic),
        seed=args.seed if args.seed is not None else 0,
        vec_env=args.vec_env or "dummy",
        device=args.device or "auto",
        extractor=args.extractor,
        eval_domain_randomize=bool(args.eval_domain_randomize),
        agent_preset=key,
        env_preset=env_preset,
        agent=agent,
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; UsageError for bad flags and for config flags combined with ``--resume``."""
    args = build_parser().parse_args(list(argv))
    if args.resume is not None:
        given = [option(name) for name in RUN_FLAGS if getattr(args, name) is not None]
        if given:
            raise UsageError(
                f"--resume continues a run with the configuration saved in its config.yaml, so it cannot be "
                f"combined with {', '.join(given)}. Start a new run to change the configuration."
            )
    return args


def resolve_run_config(argv: Sequence[str]) -> RunConfig:
    """The :class:`RunConfig` that ``python -m relic_rl.train <argv>`` would train (with ``--resume``, the
    saved one; its ``to_dict()`` is ``config.yaml`` without ``meta``); :data:`USER_ERRORS` on bad input."""
    args = parse_args(argv)
    if args.resume is not None:
        return load_run_config(Path(args.resume))[0]
    return config_from_args(args)


def command_line(argv: Sequence[str]) -> str:
    """The shell command that reproduces this invocation."""
    return shlex.join(["python", "-m", "relic_rl.train", *argv])


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """While active, SIGINT and SIGTERM stop training like Ctrl-C; the previous handlers are restored
    afterwards (``main`` also runs in-process). SIGINT is re-armed because a shell starts background
    jobs with it ignored; SIGTERM is what job schedulers and ``kill`` send."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        if experiment._ACTIVE_UPDATE_GUARDS and experiment._ACTIVE_UPDATE_GUARDS[-1].defer():
            print(
                "\nstopping after the current update (so that the checkpoint holds all of it); "
                "Ctrl-C again stops at once and keeps the last checkpoint instead.",
                file=sys.stderr,
                flush=True,
            )
            return
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 finished, 1 failed, 2 usage error, 130 interrupted)."""
    with _stop_on_signals():
        return _main(list(sys.argv[1:] if argv is None else argv))


def _main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
        command = command_line(argv)
        keep = experiment.DEFAULT_KEEP_CHECKPOINTS if args.keep_checkpoints is None else args.keep_checkpoints
        options = {"progress": not args.no_progress, "quiet": args.quiet, "keep_checkpoints": keep}
        if args.resume is not None:
            run_dir = Path(args.resume)
            if not (run_dir / CONFIG_FILE).is_file():
                load_run_config(run_dir)  # raises the "not a run folder" error
            status = read_status(run_dir)
            if status.state == "finished":
                print(f"{run_dir}: already finished ({status.timesteps:,} timesteps); nothing to do.")
                return EXIT_OK
            result = experiment.resume(
                run_dir, device=args.device, command=command, threads=args.threads, **options
            )
        else:
            result = _train_new_run(args, command, options)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted before training started.", file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.state == "failed":
        print(f"error: {result.message}", file=sys.stderr)
        return EXIT_FAILED
    return result.exit_code


def _train_new_run(args: argparse.Namespace, command: str, options: dict[str, Any]) -> experiment.TrainResult:
    """Create the run folder of ``args`` and train it (``options``: keywords shared with resume)."""
    config = config_from_args(args)
    device = experiment.resolve_device(config.device)
    note = experiment._env_note(config)
    log_dir = Path(args.log_dir or "runs")
    made_log_dir = not log_dir.exists()
    run_dir = create_run_dir(log_dir, args.run_name, config)
    experiment.write_new_run(run_dir, config, command, device)
    threads = args.threads if args.threads is not None else default_threads()

    def print_summary() -> None:
        if not args.quiet:
            print(dump_yaml({"config": config.to_dict()}).rstrip())
            summary = experiment.format_summary(
                config, run_dir, device, note, threads=threads, threads_chosen=args.threads is not None
            )
            print(summary, flush=True)

    try:
        # Built once, inside train: bad input found while building removes the new folder.
        return experiment.train(
            config,
            run_dir,
            device=device,
            threads=threads,
            on_built=print_summary,
            discard_if_unbuilt=True,
            **options,
        )
    except USER_ERRORS:
        if made_log_dir and not run_dir.exists():
            with contextlib.suppress(OSError):
                log_dir.rmdir()  # only when empty
        raise


#: Library names this module re-exported before they moved to :mod:`relic_rl.experiment`.
_MOVED_TO_EXPERIMENT = {
    "DEFAULT_KEEP_CHECKPOINTS",
    "EVAL_SEED_OFFSET",
    "ON_POLICY",
    "RANDOMIZED_EVAL_SEED_OFFSET",
    "TrainResult",
    "build_meta",
    "build_model",
    "check_action_space",
    "check_budget",
    "format_summary",
    "import_extractor",
    "make_env",
    "make_logger",
    "preflight",
    "resolve_device",
    "resume",
    "train",
}


def __getattr__(name: str) -> Any:
    """The moved names still resolve, with a DeprecationWarning that names their home."""
    if name in _MOVED_TO_EXPERIMENT:
        warnings.warn(
            f"relic_rl.train.{name} moved to relic_rl.experiment.{name}; import it from there "
            "(relic_rl.train is the command line only).",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(experiment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    raise SystemExit(main())
