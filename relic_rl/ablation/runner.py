"""Run the unfinished cells of a plan and conclude how each ended.

One training subprocess per cell (:mod:`relic_rl.ablation.backends`), progress lines while they
run (:mod:`relic_rl.ablation.progress`), and a :class:`RunResult` per cell from its exit code and
``status.yaml``. A run that died while ``running`` (killed, crashed worker) gets its status set to
``failed`` with the path of its log, and a re-run of the ablation resumes it.
"""

from __future__ import annotations

import csv
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal, TextIO

from relic_rl.ablation.backends import (
    Outcome,
    RunSpec,
    available_cpus,
    run_local,
    run_ray,
    thread_env,
)
from relic_rl.ablation.folder import acquire_lock, copy_cell_file, move_to_attic
from relic_rl.ablation.plan import Plan, PlannedCell, refresh_states, write_ablation_files
from relic_rl.ablation.progress import Progress
from relic_rl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "AblationResult",
    "RunResult",
    "cpus_per_run",
    "default_workers",
    "observed_timesteps",
    "run_ablation",
]

Backend = Literal["local", "ray"]


@dataclass(frozen=True)
class RunResult:
    """How one cell ended in this invocation.

    :param name: the cell.
    :param state: ``finished``, ``failed``, ``interrupted`` or ``not started`` (after an interrupt);
        ``skipped`` for a run that was already finished.
    :param log_path: the cell's log.
    :param message: why it failed or stopped.
    """

    name: str
    state: str
    log_path: Path
    message: str = ""


@dataclass(frozen=True)
class AblationResult:
    """The outcome of :func:`run_ablation`.

    :param plan: what was run.
    :param results: one per cell, in plan order.
    :param interrupted: whether Ctrl-C (or SIGTERM) stopped the ablation.
    """

    plan: Plan
    results: list[RunResult]
    interrupted: bool

    @property
    def failed(self) -> list[RunResult]:
        """The runs that failed."""
        return [r for r in self.results if r.state == "failed"]

    @property
    def exit_code(self) -> int:
        """130 when interrupted, 1 when any run failed, else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else EXIT_OK


def cpus_per_run(plan: Plan, threads_per_run: int) -> int:
    """CPU cores one run keeps busy: its torch threads, or its env processes with ``--vec-env subproc``."""
    config = plan.cells[0].config if plan.cells else {}
    if config.get("vec_env") == "subproc":
        return max(threads_per_run, int(config.get("n_envs", 1)))
    return threads_per_run


def default_workers(cpus_per_run: int) -> int:
    """Runs at a time on this machine: its cores divided by the cores each run keeps busy.

    Small pixel agents on a CPU spend most of their time in env steps and small convolutions that
    gain little from intra-op parallelism, so several one-thread runs use the cores better than one
    run with many threads; more runs than that oversubscribe the cores, and OpenMP threads that wait
    for busy cores slow every run down (building one small model took 2.4 s instead of 0.02 s with
    two threads on two loaded cores).
    """
    return max(1, available_cpus() // max(1, cpus_per_run))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not start"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _log_error(log: Path) -> str | None:
    """The last ``error: ...`` line that train printed in the latest attempt of the log."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    last_attempt = text.rsplit("\n===== ", 1)[-1]
    errors = [line[len("error: ") :] for line in last_attempt.splitlines() if line.startswith("error: ")]
    return errors[-1].strip() if errors else None


def _last_csv_value(path: Path, column: str) -> int | None:
    """``column`` of the last row of a CSV file, reading only its first line and its end."""
    try:
        with path.open("rb") as f:
            header = next(csv.reader([f.readline().decode("utf-8", errors="replace")]), [])
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = f.read().decode("utf-8", errors="replace").strip().splitlines()
    except OSError:
        return None
    if column not in header or len(lines) < 2:
        return None
    row = next(csv.reader([lines[-1]]), [])
    if len(row) != len(header):  # SB3 rewrites the file when new keys appear; try again later
        return None
    try:
        return int(float(row[header.index(column)]))
    except ValueError:
        return None


def observed_timesteps(run_dir: Path) -> int | None:
    """The latest timesteps of a running run: ``status.yaml`` only moves at checkpoints, so the
    newest SB3 ``tb/progress*.csv`` (one row per rollout) is read too."""
    from relic_rl import runs

    status = _read_status(run_dir)
    best = status.timesteps if isinstance(status, runs.RunStatus) else None
    logs = sorted((run_dir / runs.TB_DIR).glob("progress*.csv"), key=lambda p: p.stat().st_mtime)
    if logs:
        latest = _last_csv_value(logs[-1], "time/total_timesteps")
        if latest is not None:
            best = max(best or 0, latest)
    return best


def _read_status(run_dir: Path) -> object | None:
    from relic_rl import runs

    try:
        return runs.read_status(run_dir)
    except (runs.UsageError, OSError):
        return None


def _conclude(plan: Plan, spec: RunSpec, outcome: Outcome) -> RunResult:
    """The cell's final state from its exit code and ``status.yaml``; a run that died while
    ``running`` gets its status set to ``failed`` (or ``interrupted``) so that the folder says so."""
    from relic_rl import runs

    run_dir = Path(spec.run_dir)
    log = Path(spec.log_path)
    status = _read_status(run_dir)
    state = status.state if isinstance(status, runs.RunStatus) else None
    if outcome.returncode == 0 and state == "finished":
        return RunResult(spec.name, "finished", log)
    if outcome.interrupted or outcome.returncode == EXIT_INTERRUPTED:
        if outcome.returncode is None and state is None:
            return RunResult(spec.name, "not started", log, outcome.error or "")
        verdict = "interrupted"
    else:
        verdict = "failed"
    reason = outcome.error or _describe_exit(outcome.returncode)
    if isinstance(status, runs.RunStatus) and status.state == "running":  # died without updating it
        message = f"the training process ended while running ({reason}); log: {log}"
        runs.write_status(run_dir, runs.RunStatus(verdict, status.timesteps, status.total_timesteps, message))
    elif isinstance(status, runs.RunStatus) and status.message:
        reason = f"{reason}: {status.message}"
    elif verdict == "failed" and (error := _log_error(log)):
        reason = f"{reason}: {error}"
    return RunResult(spec.name, verdict, log, reason)


def _write_cell_run(plan: Plan, cell: PlannedCell) -> None:
    """Write a new cell's run folder from its resolved config, which its process then resumes:
    the train command line is recorded, never re-parsed."""
    if cell.run_config is None:  # a plan made without configs: train creates the folder itself
        return
    from relic_rl.experiment import write_new_run

    run_dir = plan.run_dir(cell.cell.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_new_run(run_dir, cell.run_config, shlex.join(["python", "-m", "relic_rl.train", *cell.train_args]))


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (e.g. a job scheduler's stop) interrupts the ablation like Ctrl-C."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_ablation(
    plan: Plan,
    *,
    backend: Backend = "local",
    workers: int | None = None,
    threads_per_run: int = 1,
    gpus_per_run: float = 0.0,
    ray_address: str | None = None,
    stream: TextIO | None = None,
    live: bool | None = None,
) -> AblationResult:
    """Run the unfinished cells of ``plan`` and return how each ended (no report).

    :param plan: from :func:`~relic_rl.ablation.plan.make_plan`.
    :param backend: ``local`` or ``ray``.
    :param workers: runs at a time (local default: :func:`default_workers`; Ray default: what the
        cluster's resources fit).
    :param threads_per_run: torch threads of each run; with the env processes of ``--vec-env
        subproc`` it gives the cores a run needs (:func:`cpus_per_run`, the Ray CPU request).
    :param gpus_per_run: the Ray GPU request of each run.
    :param ray_address: ``auto`` (or an address) to join a cluster; ``None`` starts a local instance.
    :param stream: where progress goes (stdout by default).
    :param live: live progress block (default: when ``stream`` is a terminal).
    :raises AblateError: when another ablation holds the folder, or a run folder changed meanwhile.
    :raises BackendError: when the Ray backend cannot start.
    """
    out = sys.stdout if stream is None else stream
    with acquire_lock(plan.out) as lock_fd:
        plan = refresh_states(plan)  # under the lock: nothing else changes the folder now
        write_ablation_files(plan)
        skipped = [c for c in plan.cells if c.state == "finished"]
        for c in plan.cells:
            if c.state == "restart":
                moved = move_to_attic(plan.out, c.cell.name)
                print(
                    f"{c.cell.name}: no checkpoint to resume from; moved the old folder to {moved}", file=out
                )
            elif c.state == "resume":
                copy_cell_file(plan.out, c.cell.name)
        env = thread_env(threads_per_run)
        if os.environ.get("PYTHONPATH"):  # Ray workers on other nodes need it too (module:EnvId)
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        specs = [
            RunSpec(
                name=c.cell.name,
                train_args=c.train_args,
                resume_args=("--resume", str(plan.run_dir(c.cell.name)), "--no-progress"),
                run_dir=str(plan.run_dir(c.cell.name)),
                log_path=str(plan.log_path(c.cell.name)),
                cwd=os.getcwd(),
                env=env,
            )
            for c in plan.cells
            if c.state != "finished"
        ]
        outcomes: dict[str, RunResult] = {
            c.cell.name: RunResult(c.cell.name, "skipped", plan.log_path(c.cell.name)) for c in skipped
        }
        if skipped:
            print(f"{len(skipped)} run(s) already finished, skipped.", file=out)
        progress = Progress(len(specs), already=len(skipped), stream=out, live=live)
        active: set[str] = set()

        resumed = {c.cell.name for c in plan.cells if c.state == "resume"}
        fresh = {c.cell.name: c for c in plan.cells if c.state in ("new", "restart")}

        def on_start(spec: RunSpec) -> None:
            # A new cell's folder is written when its turn comes, so that a queued cell never
            # shows a "running" status.
            if spec.name in fresh:
                _write_cell_run(plan, fresh[spec.name])
                copy_cell_file(plan.out, spec.name)
            active.add(spec.name)
            progress.started(spec.name, "resumed" if spec.name in resumed else "started")

        def on_poll() -> None:
            for name in list(active):
                timesteps = observed_timesteps(plan.run_dir(name))
                if timesteps is not None:
                    progress.update(name, timesteps, plan.spec.total_timesteps)

        def on_done(spec: RunSpec, outcome: Outcome) -> None:
            active.discard(spec.name)
            result = _conclude(plan, spec, outcome)
            outcomes[spec.name] = result
            detail = result.message + (f" (log: {result.log_path})" if result.state == "failed" else "")
            progress.ended(spec.name, result.state, detail)

        cpus = cpus_per_run(plan, threads_per_run)
        interrupted = False
        try:
            with _sigterm_as_interrupt():
                if not specs:
                    pass  # everything is finished: no pool, no Ray instance
                elif backend == "ray":
                    interrupted = run_ray(
                        specs,
                        address=ray_address,
                        cpus_per_run=cpus,
                        gpus_per_run=gpus_per_run,
                        max_in_flight=workers,
                        local_cpus=None if workers is None else workers * cpus,
                        on_start=on_start,
                        on_done=on_done,
                        on_poll=on_poll,
                    )
                else:
                    n = workers if workers is not None else default_workers(cpus)
                    interrupted = run_local(
                        specs,
                        workers=max(1, min(n, len(specs) or 1)),
                        on_start=on_start,
                        on_done=on_done,
                        on_poll=on_poll,
                        pass_fds=(lock_fd,),
                    )
        finally:
            progress.close()
    results = [
        outcomes.get(c.cell.name, RunResult(c.cell.name, "not started", plan.log_path(c.cell.name)))
        for c in plan.cells
    ]
    return AblationResult(plan, results, interrupted)
