"""Run the unfinished cells of a plan and conclude each from its exit code and ``status.yaml``; one that
died while ``running`` gets ``failed`` there with its log path, and a re-run resumes it."""

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
from typing import Any, Literal, TextIO

from relic_rl import runs
from relic_rl.ablation.backends import Outcome, RunSpec, available_cpus, run_local, run_ray, thread_env
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
    """How one cell ended in this invocation: ``finished``, ``failed``, ``interrupted``, ``not started``
    (after an interrupt) or ``skipped`` (already finished); ``message``: why it failed or stopped."""

    name: str
    state: str
    log_path: Path
    message: str = ""


@dataclass(frozen=True)
class AblationResult:
    """The outcome of :func:`run_ablation`: one result per cell in plan order; ``interrupted``: by
    Ctrl-C or SIGTERM."""

    plan: Plan
    results: list[RunResult]
    interrupted: bool

    @property
    def failed(self) -> list[RunResult]:
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
    """Runs at a time here: the cores divided by the cores each run keeps busy (small pixel agents gain
    little from intra-op threads). More runs than that oversubscribe the cores, and OpenMP threads that
    wait for busy cores slow every run down (building one small model took 2.4 s instead of 0.02 s with
    two threads on two loaded cores)."""
    return max(1, available_cpus() // max(1, cpus_per_run))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not start"
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


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
    """``column`` of a CSV file's last row, reading only its first line and its end."""
    try:
        with path.open("rb") as f:
            header = next(csv.reader([f.readline().decode("utf-8", errors="replace")]), [])
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = f.read().decode("utf-8", errors="replace").strip().splitlines()
        row = next(csv.reader(lines[-1:]), [])
        if len(lines) < 2 or len(row) != len(header):  # SB3 rewrites the file when new keys appear
            return None
        return int(float(row[header.index(column)]))  # ValueError: no such column, or no number
    except (OSError, ValueError):
        return None


def _read_status(run_dir: Path) -> runs.RunStatus | None:
    try:
        return runs.read_status(run_dir)
    except (runs.UsageError, OSError):
        return None


def observed_timesteps(run_dir: Path) -> int | None:
    """The latest timesteps of a running run, from ``status.yaml`` (moves at checkpoints only) and the
    newest SB3 ``tb/progress*.csv`` (one row per rollout)."""
    status = _read_status(run_dir)
    best = status.timesteps if status is not None else None
    logs = sorted((run_dir / runs.TB_DIR).glob("progress*.csv"), key=lambda p: p.stat().st_mtime)
    latest = _last_csv_value(logs[-1], "time/total_timesteps") if logs else None
    return best if latest is None else max(best or 0, latest)


def _conclude(spec: RunSpec, outcome: Outcome) -> RunResult:
    """The cell's final state; a run that died while ``running`` gets its status corrected."""
    run_dir, log = Path(spec.run_dir), Path(spec.log_path)
    status = _read_status(run_dir)
    if outcome.returncode == 0 and status is not None and status.state == "finished":
        return RunResult(spec.name, "finished", log)
    if outcome.interrupted or outcome.returncode == EXIT_INTERRUPTED:
        if outcome.returncode is None and status is None:
            return RunResult(spec.name, "not started", log, outcome.error or "")
        verdict = "interrupted"
    else:
        verdict = "failed"
    reason = outcome.error or _describe_exit(outcome.returncode)
    if status is not None and status.state == "running":  # died without updating it
        message = f"the training process ended while running ({reason}); log: {log}"
        runs.write_status(run_dir, runs.RunStatus(verdict, status.timesteps, status.total_timesteps, message))
    elif status is not None and status.message:
        reason = f"{reason}: {status.message}"
    elif verdict == "failed" and (error := _log_error(log)):
        reason = f"{reason}: {error}"
    return RunResult(spec.name, verdict, log, reason)


def _write_cell_run(plan: Plan, cell: PlannedCell) -> None:
    """Write a new cell's run folder from its resolved config (the command line is never re-parsed)."""
    from relic_rl.experiment import write_new_run

    run_dir = plan.run_dir(cell.cell.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_new_run(run_dir, cell.run_config, shlex.join(["python", "-m", "relic_rl.train", *cell.train_args]))


@contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM (e.g. a job scheduler's stop) interrupt like Ctrl-C. SIGINT is re-armed
    because a shell starts background jobs with it ignored, and then ``kill -INT`` would be lost."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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

    :param backend: ``local`` or ``ray``.
    :param workers: runs at a time (local default: :func:`default_workers`; Ray: what the cluster fits).
    :param threads_per_run: torch threads of each run; gives the Ray CPU request (:func:`cpus_per_run`).
    :param gpus_per_run: the Ray GPU request of each run.
    :param ray_address: ``auto`` (or an address) joins a cluster; ``None`` starts a local instance.
    :param stream: where progress goes (stdout by default).
    :param live: live progress block (default: when ``stream`` is a terminal).
    :raises AblateError: when another ablation holds the folder, or a run folder changed meanwhile.
    :raises BackendError: when the Ray backend cannot start."""
    out = sys.stdout if stream is None else stream
    with acquire_lock(plan.out) as lock_fd:
        plan = refresh_states(plan)  # under the lock: nothing else changes the folder now
        write_ablation_files(plan)
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
                resume_args=("--resume", str(plan.run_dir(c.cell.name)), "--no-progress"),
                run_dir=str(plan.run_dir(c.cell.name)),
                log_path=str(plan.log_path(c.cell.name)),
                cwd=os.getcwd(),
                env=env,
            )
            for c in plan.to_run
        ]
        finished = [c.cell.name for c in plan.cells if c.state == "finished"]
        outcomes = {name: RunResult(name, "skipped", plan.log_path(name)) for name in finished}
        if finished:
            print(f"{len(finished)} run(s) already finished, skipped.", file=out)
        progress = Progress(len(specs), already=len(finished), stream=out, live=live)
        active: set[str] = set()
        fresh = {c.cell.name: c for c in plan.cells if c.state in ("new", "restart")}

        def on_start(spec: RunSpec) -> None:
            # Written when its turn comes, so that a queued cell never shows a "running" status.
            if spec.name in fresh:
                _write_cell_run(plan, fresh[spec.name])
                copy_cell_file(plan.out, spec.name)
            active.add(spec.name)
            progress.started(spec.name, "started" if spec.name in fresh else "resumed")

        def on_poll() -> None:
            for name in list(active):
                timesteps = observed_timesteps(plan.run_dir(name))
                if timesteps is not None:
                    progress.update(name, timesteps, plan.spec.total_timesteps)

        def on_done(spec: RunSpec, outcome: Outcome) -> None:
            active.discard(spec.name)
            result = outcomes[spec.name] = _conclude(spec, outcome)
            detail = result.message + (f" (log: {result.log_path})" if result.state == "failed" else "")
            progress.ended(spec.name, result.state, detail)

        cpus = cpus_per_run(plan, threads_per_run)
        callbacks: dict[str, Any] = {"on_start": on_start, "on_done": on_done, "on_poll": on_poll}
        interrupted = False
        try:
            with _signals_as_interrupt():
                if specs and backend == "ray":  # no specs: everything is finished, no pool, no Ray
                    interrupted = run_ray(
                        specs,
                        address=ray_address,
                        cpus_per_run=cpus,
                        gpus_per_run=gpus_per_run,
                        max_in_flight=workers,
                        local_cpus=None if workers is None else workers * cpus,
                        **callbacks,
                    )
                elif specs:
                    n = workers if workers is not None else default_workers(cpus)
                    interrupted = run_local(
                        specs, workers=max(1, min(n, len(specs))), pass_fds=(lock_fd,), **callbacks
                    )
        finally:
            progress.close()
    results = [
        outcomes.get(c.cell.name, RunResult(c.cell.name, "not started", plan.log_path(c.cell.name)))
        for c in plan.cells
    ]
    return AblationResult(plan, results, interrupted)
