"""Run ``python -m relic_rl.train`` commands in a local process pool or as Ray tasks.

Both backends run the same thing, :func:`run_train_process`: one training subprocess per cell,
its stdout and stderr appended to the cell's log, torch limited to ``threads`` threads through
``OMP_NUM_THREADS`` (torch sizes its intra-op pool from it at import). The subprocess gets a
session of its own, so that a Ctrl-C in the terminal reaches the ablation only, which forwards
one SIGINT to each run: train then saves a checkpoint and exits with 130.

With the local backend the subprocesses inherit the ablation's lock on ``OUT/.ablate.lock``
(see :mod:`relic_rl.ablation.folder`): as long as any of them lives, even orphaned by a killed
ablation, a new ablation on the same folder refuses to start instead of resuming the same runs.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from relic_rl.threads import available_cpus

__all__ = [
    "RAY_INSTALL_HINT",
    "BackendError",
    "Outcome",
    "RunSpec",
    "available_cpus",
    "interrupt_process",
    "run_local",
    "run_ray",
    "run_train_process",
]

RunState = Literal["finished", "failed", "interrupted", "not started"]
#: Seconds a run gets to save its checkpoint after SIGINT, before it is terminated.
GRACE_S = 120.0
#: Exit code of ``relic_rl.train`` interrupted by Ctrl-C.
RAY_INSTALL_HINT = (
    "The Ray backend needs Ray, an optional dependency: install it with "
    '`pip install "relic-rl[ray]"` (or `pip install "ray>=2.60"`), or use --backend local.'
)


class BackendError(RuntimeError):
    """A backend cannot run at all (Ray missing, cluster unreachable)."""


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables that cap torch/BLAS threads of a subprocess at ``threads``."""
    value = str(threads)
    return {"OMP_NUM_THREADS": value, "MKL_NUM_THREADS": value, "OPENBLAS_NUM_THREADS": value}


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to run one cell; plain data, so that Ray can ship it.

    :param name: the cell name.
    :param train_args: arguments of ``python -m relic_rl.train`` for a fresh run, used only when
        the run folder holds no run yet (the ablation writes each cell's folder first, so its
        processes always start from ``resume_args``).
    :param resume_args: arguments to start or resume the run from its folder.
    :param run_dir: the run folder.
    :param log_path: file that receives the subprocess's stdout and stderr (appended to).
    :param cwd: working directory of the subprocess (used when it exists on the worker's node).
    :param env: environment variables set for the subprocess on top of the worker's own.
    """

    name: str
    train_args: tuple[str, ...]
    resume_args: tuple[str, ...]
    run_dir: str
    log_path: str
    cwd: str
    env: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        """The command to run now: a resume when the run folder already holds a run."""
        run_dir = Path(self.run_dir)
        resume = run_dir.is_dir() and (run_dir / "config.yaml").is_file()
        return [sys.executable, "-m", "relic_rl.train", *(self.resume_args if resume else self.train_args)]


@dataclass(frozen=True)
class Outcome:
    """How the subprocess of one cell ended.

    :param name: the cell name.
    :param returncode: the exit code, negative for a signal, ``None`` if it never started.
    :param interrupted: whether the ablation interrupted it (Ctrl-C, SIGTERM, Ray cancel).
    :param error: why it could not run, when it never started or the worker itself failed.
    """

    name: str
    returncode: int | None
    interrupted: bool = False
    error: str | None = None


def interrupt_process(proc: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> None:
    """Send SIGINT, wait ``grace_s`` for the checkpoint, then terminate, then kill."""
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def _ray_child_setup() -> Callable[[], None]:
    """A ``preexec_fn`` for training processes started by a Ray worker.

    * Ray workers run tasks with SIGINT blocked, and a blocked signal mask survives ``exec``:
      without unblocking it, the SIGINT that asks train to checkpoint and stop would never arrive.
    * On Linux, the child gets SIGTERM when the worker dies (``PR_SET_PDEATHSIG``), so that a
      killed worker leaves no training process behind that a resumed run would race with.

    libc is loaded here, in the parent: the returned function only makes system calls.
    """
    prctl: Any = None
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            prctl = None
    pr_set_pdeathsig = 1
    signals = {signal.SIGINT, signal.SIGTERM}

    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
        if prctl is not None:
            prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return preexec


def run_train_process(
    spec: RunSpec,
    *,
    pass_fds: Sequence[int] = (),
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
    grace_s: float = GRACE_S,
    in_ray_task: bool = False,
) -> int:
    """Run one training subprocess to its end and return its exit code.

    A ``KeyboardInterrupt`` while waiting (Ray's ``cancel``) interrupts the subprocess
    (:func:`interrupt_process`) and is re-raised.

    :param spec: the run.
    :param pass_fds: file descriptors the subprocess inherits (the ablation lock).
    :param on_start: called with the process once it is started (to interrupt it from elsewhere).
    :param grace_s: seconds between SIGINT and SIGTERM when interrupted.
    :param in_ray_task: this runs in a Ray worker: unblock SIGINT in the subprocess and tie it to
        the worker's life (see :func:`_ray_child_setup`).
    """
    argv = spec.command()
    Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)
    cwd = spec.cwd if Path(spec.cwd).is_dir() else None
    with open(spec.log_path, "ab") as log:
        # A resumed run appends to the log of its earlier attempts; never overwrite it.
        stamp = datetime.now().isoformat(timespec="seconds")
        log.write(f"\n===== {stamp} {shlex.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **spec.env},
            start_new_session=True,
            pass_fds=tuple(pass_fds),
            preexec_fn=_ray_child_setup() if in_ray_task else None,
        )
        if on_start is not None:
            on_start(proc)
        try:
            while True:
                # Wait in short steps: Ray's cancel raises KeyboardInterrupt asynchronously, which
                # Python delivers between bytecodes, never inside one blocking waitpid call.
                try:
                    return proc.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    continue
        except KeyboardInterrupt:
            interrupt_process(proc, grace_s)
            raise


# --------------------------------------------------------------------------------------------
# Local process pool
# --------------------------------------------------------------------------------------------


def run_local(
    specs: Sequence[RunSpec],
    *,
    workers: int,
    on_start: Callable[[RunSpec], None],
    on_done: Callable[[RunSpec, Outcome], None],
    on_poll: Callable[[], None],
    pass_fds: Sequence[int] = (),
    poll_s: float = 2.0,
    grace_s: float = GRACE_S,
) -> bool:
    """Run ``specs`` with at most ``workers`` at a time (threads that each wait on a subprocess).

    :param specs: the runs, started in this order.
    :param workers: the pool size.
    :param on_start: called (from a pool thread) when a run starts.
    :param on_done: called (from a pool thread, one at a time) with each run's outcome, in completion
        order; also for the runs that never started after an interrupt.
    :param on_poll: called every ``poll_s`` seconds while runs are active (progress).
    :param pass_fds: file descriptors each subprocess inherits.
    :return: whether the ablation was interrupted (KeyboardInterrupt, i.e. Ctrl-C or SIGTERM).
    """
    procs: dict[str, subprocess.Popen[bytes]] = {}
    lock = threading.Lock()
    stopping = threading.Event()

    done_lock = threading.Lock()

    def work(spec: RunSpec) -> None:
        # Report from the pool thread, before it takes the next run, so that the progress
        # never shows more active runs than workers.
        outcome = run_one(spec)
        with done_lock:
            on_done(spec, outcome)

    def run_one(spec: RunSpec) -> Outcome:
        if stopping.is_set():
            return Outcome(spec.name, None, interrupted=True)
        on_start(spec)

        def register(proc: subprocess.Popen[bytes]) -> None:
            with lock:
                procs[spec.name] = proc
            if stopping.is_set():  # the interrupt came while this run was starting
                interrupt_process(proc, grace_s)

        try:
            code = run_train_process(spec, pass_fds=pass_fds, on_start=register)
        except OSError as err:
            return Outcome(spec.name, None, error=f"cannot start the training process: {err}")
        finally:
            with lock:
                procs.pop(spec.name, None)
        return Outcome(spec.name, code, interrupted=stopping.is_set())

    def interrupt_all(grace: float) -> None:
        with lock:
            active = list(procs.values())
        # In threads: every run gets the whole grace period, and this thread keeps collecting.
        for proc in active:
            threading.Thread(target=interrupt_process, args=(proc, grace), daemon=True).start()

    interrupted = False
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ablate")
    pending = {pool.submit(work, spec) for spec in specs}
    try:
        while pending:
            # Ctrl-C may land anywhere in this body; the first one asks every run to checkpoint
            # and stop, a second one kills them.
            try:
                done, pending = cf.wait(pending, timeout=poll_s, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    future.result()  # re-raise a bug in a callback here rather than lose it
                with done_lock:
                    on_poll()
            except KeyboardInterrupt:
                interrupt_all(grace_s if not interrupted else 0.0)
                interrupted = True
                stopping.set()
    finally:
        if pending and not interrupted:  # leaving on an error: do not leave runs behind
            stopping.set()
            interrupt_all(grace_s)
        pool.shutdown(wait=True, cancel_futures=True)
    return interrupted


# --------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------


def _ray_task(spec: RunSpec) -> int:
    """Body of the Ray task: the same subprocess as the local backend, on whichever node."""
    return run_train_process(spec, in_ray_task=True)


@contextmanager
def _ray_session(address: str | None, num_cpus: int | None) -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        raise BackendError(RAY_INSTALL_HINT) from None
    started = not ray.is_initialized()
    if started:
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                # A private local instance: no dashboard, only this machine's loopback.
                ray.init(include_dashboard=False, num_cpus=num_cpus, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
            raise BackendError(f"Cannot start or join {where}: {err}") from None
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _cluster_capacity(ray: Any, cpus_per_run: float, gpus_per_run: float) -> int | None:
    """How many runs the cluster's current resources fit at once (``None`` if unknown)."""
    try:
        resources = ray.cluster_resources()
    except Exception:  # an older or remote cluster that cannot say: no limit
        return None
    fits = [resources.get("CPU", 0.0) / cpus_per_run] if cpus_per_run > 0 else []
    if gpus_per_run > 0:
        fits.append(resources.get("GPU", 0.0) / gpus_per_run)
    return max(1, int(min(fits))) if fits else None


def run_ray(
    specs: Sequence[RunSpec],
    *,
    address: str | None,
    cpus_per_run: float,
    gpus_per_run: float,
    max_in_flight: int | None,
    local_cpus: int | None,
    on_start: Callable[[RunSpec], None],
    on_done: Callable[[RunSpec, Outcome], None],
    on_poll: Callable[[], None],
    poll_s: float = 2.0,
    grace_s: float = GRACE_S,
) -> bool:
    """Run ``specs`` as Ray tasks, each requesting ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs.

    Tasks run the same subprocess as the local backend, so every node needs relic-rl installed
    and must see the ablation folder at the same path (a shared file system).

    :param address: ``"auto"`` or ``"ray://..."`` to join a cluster; ``None`` starts a local instance.
    :param max_in_flight: at most this many tasks submitted at once (``None``: as many as the
        cluster's current CPUs and GPUs fit, so that a submitted run is a running run).
    :param local_cpus: CPUs of the local instance (``None``: Ray's default, all cores).
    :return: whether the ablation was interrupted.
    :raises BackendError: when Ray is missing or the cluster cannot be reached.
    """
    with _ray_session(address, local_cpus) as ray:
        remote = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)(_ray_task)
        queue = list(specs)
        running: dict[Any, RunSpec] = {}
        interrupted = False
        limit = max_in_flight or _cluster_capacity(ray, cpus_per_run, gpus_per_run) or len(queue)

        def collect(ref: Any, spec: RunSpec) -> None:
            try:
                outcome = Outcome(spec.name, int(ray.get(ref)), interrupted=interrupted)
            except ray.exceptions.TaskCancelledError:
                outcome = Outcome(spec.name, None, interrupted=True, error="cancelled")
            except ray.exceptions.RayError as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                outcome = Outcome(spec.name, None, interrupted=interrupted, error=f"Ray task failed: {first}")
            on_done(spec, outcome)

        def stop_running() -> None:
            # A non-forced cancel raises KeyboardInterrupt inside the task, which forwards SIGINT
            # to its training subprocess and waits for the checkpoint.
            for ref in running:
                ray.cancel(ref)
            deadline = time.monotonic() + grace_s + 30.0
            try:
                while running and time.monotonic() < deadline:
                    ready, _ = ray.wait(list(running), num_returns=1, timeout=poll_s)
                    for ref in ready:
                        collect(ref, running.pop(ref))
            except KeyboardInterrupt:
                pass  # a second Ctrl-C: stop waiting for the checkpoints
            for ref, spec in list(running.items()):
                ray.cancel(ref, force=True)
                on_done(
                    spec, Outcome(spec.name, None, interrupted=True, error="stopped before its checkpoint")
                )
            running.clear()

        while queue or running:
            try:
                while queue and len(running) < limit and not interrupted:
                    spec = queue.pop(0)
                    on_start(spec)  # first: it may write the run folder that the task starts from
                    running[remote.remote(spec)] = spec
                if running:
                    ready, _ = ray.wait(list(running), num_returns=1, timeout=poll_s)
                    for ref in ready:
                        collect(ref, running.pop(ref))
                    on_poll()
                if interrupted:
                    for spec in queue:
                        on_done(spec, Outcome(spec.name, None, interrupted=True))
                    queue.clear()
            except KeyboardInterrupt:
                interrupted = True
                stop_running()
        return interrupted
