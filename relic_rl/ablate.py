"""Ablations over seeds: ``python -m relic_rl.ablate``, the CLI over :func:`~relic_rl.ablation.plan.make_plan`
and :func:`~relic_rl.ablation.runner.run_ablation`. Every cell is a ``relic_rl.train`` run folder under
``--out`` (:mod:`relic_rl.ablation.folder`); then the :mod:`relic_rl.report` report is written. Re-running
continues (finished runs skipped, others resumed); a run folder whose config differs is an error naming keys.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from relic_rl.ablation.backends import RAY_INSTALL_HINT, BackendError
from relic_rl.ablation.plan import make_plan
from relic_rl.ablation.runner import (
    AblationResult,
    RunResult,
    cpus_per_run,
    default_workers,
    observed_timesteps,
    run_ablation,
)
from relic_rl.ablation.train_args import AblateError
from relic_rl.cli_types import UserErrorParser, float_at_least, int_at_least
from relic_rl.environments.preset import strip_module
from relic_rl.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from relic_rl.runs import sanitize

__all__ = [
    "AblationResult",
    "RunResult",
    "build_parser",
    "cpus_per_run",
    "default_workers",
    "main",
    "observed_timesteps",
    "run_ablation",
]


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m relic_rl.ablate`` parser; unknown flags are passed on to ``relic_rl.train``."""
    parser = UserErrorParser(
        error_class=AblateError,
        prog="python -m relic_rl.ablate",
        allow_abbrev=False,  # --seed must reach train's check, not match --seeds
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Train every cell of a grid (KL penalty on/off by default) over seeds, each as a "
            "relic_rl.train run folder under --out, then write results.csv, summary.md and "
            "curves.png/.pdf. Re-running the same command skips finished runs and resumes the others. "
            "Any other flag (e.g. --n-envs 4, --hyperparams n_steps=256, --device cuda) is passed to "
            "relic_rl.train for every run."
        ),
        epilog=(
            "Grid values: --grid KEY=V1,V2 splits on commas outside brackets (augmentation=shift,crop(36,4)"
            " is two values); when the values contain ';' they are split on ';' only "
            "(augmentation=shift,intensity;crop(36) is two specs). Values are YAML (0.1, true, [256]).\n\n"
            "Examples:\n"
            "  python -m relic_rl.ablate --env CarRacing-v2 --seeds 0 1 --total-timesteps 20000\n"
            "  python -m relic_rl.ablate --env CarRacing-v2 --kl-weights 0 0.5 1 --baseline --seeds 0 1 2\n"
            "  python -m relic_rl.ablate --env CarRacing-v2 --grid temperature=0.1,0.5 --dry-run\n"
            "  python -m relic_rl.ablate --env CarRacing-v2 --backend ray --ray-address auto \\\n"
            "      --gpus-per-run 0.5 --device cuda"
        ),
    )
    grid = parser.add_argument_group("the grid")
    grid.add_argument("--env", required=True, metavar="ENV_ID", help="env id, as for relic_rl.train.")
    grid.add_argument(
        "--kl-weights",
        nargs="+",
        type=float_at_least(0.0),
        metavar="W",
        help="values of the KL axis (default: the preset's kl_weight and 0).",
    )
    grid.add_argument(
        "--seeds",
        nargs="+",
        type=int_at_least(0),
        default=[0, 1, 2],
        metavar="S",
        help="seeds (default: 0 1 2).",
    )
    grid.add_argument(
        "--total-timesteps",
        type=int_at_least(1),
        metavar="N",
        help="env steps of every run (default: the preset's n_timesteps).",
    )
    grid.add_argument("--baseline", action="store_true", help="add the no-aux baseline (--aux none).")
    grid.add_argument(
        "--aux",
        nargs="+",
        choices=("relic", "curl", "none"),
        metavar="AUX",
        help="the auxiliary-loss variants: relic (over the KL axis), curl (CURL, over the axes it "
        "reads: not kl_weight, temperature, divergence, normalize) and/or none (the baseline); "
        "--aux none alone runs the grid with the auxiliary loss off, e.g. for a hyperparameter "
        "search (default: relic, plus none with --baseline).",
    )
    grid.add_argument(
        "--grid",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=V1,V2",
        help="another axis: a ReLIC field (temperature, augmentation, n_views, aux_weight, ...) or an "
        "algorithm hyperparameter (n_steps, learning_rate, ...).",
    )
    grid.add_argument(
        "--eval-domain-randomize",
        action="store_true",
        help="also evaluate every run on the domain-randomized env (passed to relic_rl.train).",
    )
    run = parser.add_argument_group("running")
    run.add_argument("--out", type=Path, metavar="DIR", help="ablation folder (default: ablations/<env>).")
    run.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="local: a pool of training processes on this machine (default); ray: one Ray task per run, "
        "so every node needs relic-rl installed and must see --out at the same path (shared file system).",
    )
    run.add_argument(
        "--workers",
        type=int_at_least(1),
        metavar="N",
        help="runs at a time (local default: CPU cores / cores per run, i.e. --threads-per-run, or --n-envs "
        "with --vec-env subproc; ray default: as many as the cluster's resources fit).",
    )
    run.add_argument(
        "--threads-per-run",
        type=int_at_least(1),
        default=1,
        metavar="T",
        help="torch threads of each run, set through OMP_NUM_THREADS; also its Ray CPU request (default: 1).",
    )
    run.add_argument(
        "--gpus-per-run",
        type=float_at_least(0.0),
        default=0.0,
        metavar="G",
        help="Ray GPU request of each run, fractions allowed (default: 0; pass --device cuda too).",
    )
    run.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="join this Ray cluster (auto: the one this machine belongs to); default: a local instance.",
    )
    run.add_argument("--dry-run", action="store_true", help="print the grid and its cost, run nothing.")
    report = parser.add_argument_group("report")
    report.add_argument(
        "--report-reps",
        type=int_at_least(1),
        default=2000,
        metavar="N",
        help="bootstrap replicates (default: 2000).",
    )
    report.add_argument("--no-report", action="store_true", help="do not write the report at the end.")
    return parser


def _report(out: Path, reps: int, stream: TextIO) -> None:
    from relic_rl.ablation.hparams import write_hparams
    from relic_rl.report import ReportError, load_ablation, write_report

    try:
        paths = write_report(out, reps=reps)
    except (ReportError, OSError) as err:  # e.g. no run has evaluations yet
        print(f"warning: no report written: {err}", file=sys.stderr)
        return
    files = (paths.results_csv, paths.summary_md, paths.curves_png, paths.curves_pdf)
    print(f"report: {', '.join(map(str, files))}", file=stream)
    if paths.warnings:
        print(f"{len(paths.warnings)} warning(s), listed at the end of {paths.summary_md}.", file=stream)
    try:
        hparams = write_hparams(load_ablation(out))
    except (ReportError, OSError) as err:
        print(f"warning: no TensorBoard HParams export: {err}", file=sys.stderr)
        return
    if hparams is not None:
        print(f"TensorBoard HParams: tensorboard --logdir {hparams}", file=stream)


def main(argv: Sequence[str] | None = None, stream: TextIO | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``), printing to ``stream`` (default stdout);
    return 0 all runs finished, 1 a run failed, 2 usage error, 130 interrupted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out_stream = sys.stdout if stream is None else stream
    try:
        args, train_args = build_parser().parse_known_args(argv)
        if args.backend == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                raise AblateError(RAY_INSTALL_HINT) from None
        elif args.ray_address or args.gpus_per_run:
            raise AblateError("--ray-address and --gpus-per-run need --backend ray.")
        if args.eval_domain_randomize:
            train_args.append("--eval-domain-randomize")
        aux = list(dict.fromkeys(args.aux or ["relic"]))
        plan = make_plan(
            env_id=args.env,
            seeds=args.seeds,
            total_timesteps=args.total_timesteps,
            kl_weights=args.kl_weights,
            grid_specs=args.grid,
            baseline=args.baseline or "none" in aux,
            relic="relic" in aux,
            curl="curl" in aux,
            train_args=train_args,
            out=args.out or Path("ablations") / sanitize(strip_module(args.env)),
            command=shlex.join(["python", "-m", "relic_rl.ablate", *argv]),
        )
        print(plan.describe(), file=out_stream, flush=True)
        if args.dry_run:
            return EXIT_OK
        result = run_ablation(
            plan,
            backend=args.backend,
            workers=args.workers,
            threads_per_run=args.threads_per_run,
            gpus_per_run=args.gpus_per_run,
            ray_address=args.ray_address,
            stream=out_stream,
        )
    except (AblateError, BackendError) as err:
        print(f"python -m relic_rl.ablate: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted before any run started.", file=sys.stderr)
        return EXIT_INTERRUPTED

    counts = {s: sum(r.state == s for r in result.results) for s in ("finished", "skipped", "failed")}
    print(
        f"{counts['finished'] + counts['skipped']}/{len(result.results)} runs finished "
        f"({counts['skipped']} already before), {counts['failed']} failed.",
        file=out_stream,
    )
    for failed in result.failed:
        print(f"failed: {failed.name}: {failed.message.rstrip('.')}; log: {failed.log_path}", file=sys.stderr)
    if result.interrupted:
        print(f"interrupted; re-run the same command to resume: {plan.command}", file=sys.stderr)
        return result.exit_code
    if not args.no_report:
        _report(plan.out, args.report_reps, out_stream)
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
