"""Run ``python -m relic_rl.train`` commands in a local process pool or as Ray tasks.

Each cell's subprocess gets a session of its own, so that Ctrl-C reaches the ablation only, which
forwards one SIGINT to each run (train checkpoints, exits with 130). Local ones inherit the lock on
``OUT/.ablate.lock``: while any lives, even orphaned, a new ablation on the folder refuses to start."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

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

#: Seconds a run gets to save its checkpoint after SIGINT, before it is terminated.
GRACE_S = 120.0
RAY_INSTALL_HINT = (
    "The Ray backend needs Ray, an optional dependency: install it with "
    '`pip install "relic-rl[ray]"` (or `pip install "ray>=2.60"`), or use --backend local.'
)


class BackendError(RuntimeError):
    """A backend cannot run at all (Ray missing, cluster unreachable)."""


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables that cap torch/BLAS threads of a subprocess at ``threads``."""
    return dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), str(threads))


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to run one cell; plain data, so that Ray can ship it. ``resume_args``
    start or resume the run from its folder; the log is appended to; ``cwd`` is used when it exists on
    the worker's node; ``env`` is set on top of the worker's own."""

    name: str
    resume_args: tuple[str, ...]
    run_dir: str
    log_path: str
    cwd: str
    env: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "relic_rl.train", *self.resume_args]


@dataclass(frozen=True)
class Outcome:
    """How the subprocess of one cell ended: ``returncode`` negative for a signal, ``None`` if it never
    started; ``interrupted`` by the ablation (Ctrl-C, SIGTERM, Ray cancel); ``error``: why it never
    started or the worker failed."""

    name: str
    returncode: int | None
    interrupted: bool = False
    error: str | None = None


def interrupt_process(proc: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> None:
    """Send SIGINT, wait ``grace_s`` for the checkpoint, then terminate, then kill."""
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired, ProcessLookupError):
            proc.send_signal(sig)
            proc.wait(timeout=wait_s)


def _ray_child_setup() -> Callable[[], None]:
    """A ``preexec_fn`` for training processes of a Ray worker, which runs tasks with SIGINT blocked, a
    mask ``exec`` keeps: unblock it, or train's checkpoint SIGINT never arrives. On Linux the child gets
    SIGTERM when the worker dies (``PR_SET_PDEATHSIG``): no orphaned run races with its resumed self."""
    prctl: Any = None
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        if prctl is not None:
            prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG

    return preexec


def run_train_process(
    spec: RunSpec,
    *,
    pass_fds: Sequence[int] = (),
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
    grace_s: float = GRACE_S,
    in_ray_task: bool = False,
) -> int:
    """Run one training subprocess to its end and return its exit code; a ``KeyboardInterrupt`` while
    waiting (Ray's ``cancel``) interrupts it and is re-raised. ``pass_fds`` (the ablation lock) are
    inherited; ``on_start`` gets the started process; ``in_ray_task``: see :func:`_ray_child_setup`."""
    argv = spec.command()
    Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(spec.log_path, "ab") as log:  # a resumed run appends to the log of its earlier attempts
        log.write(f"\n===== {datetime.now().isoformat(timespec='seconds')} {shlex.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=spec.cwd if Path(spec.cwd).is_dir() else None,
            env={**os.environ, **spec.env},
            start_new_session=True,
            pass_fds=tuple(pass_fds),
            preexec_fn=_ray_child_setup() if in_ray_task else None,
        )
        if on_start is not None:
            on_start(proc)
        try:
            # Short steps: Ray's cancel raises KeyboardInterrupt between bytecodes, never in waitpid.
            while True:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return proc.wait(timeout=0.5)
        except KeyboardInterrupt:
            interrupt_process(proc, grace_s)
            raise


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
    """Run ``specs`` in order, at most ``workers`` at a time; return whether Ctrl-C/SIGTERM interrupted.
    ``on_start`` and ``on_done`` (one at a time, in completion order, also for runs never started after
    an interrupt) are called from pool threads, ``on_poll`` every ``poll_s`` seconds."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    lock, done_lock = threading.Lock(), threading.Lock()
    stopping = threading.Event()

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

    def work(spec: RunSpec) -> None:
        # Report before this thread takes the next run: progress never shows more runs than workers.
        outcome = run_one(spec)
        with done_lock:
            on_done(spec, outcome)

    def interrupt_all(grace: float) -> None:
        with lock:
            active = list(procs.values())
        # In threads: every run gets the whole grace period while this thread keeps collecting.
        for proc in active:
            threading.Thread(target=interrupt_process, args=(proc, grace), daemon=True).start()

    interrupted = False
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ablate")
    pending = {pool.submit(work, spec) for spec in specs}
    try:
        while pending:
            # The first Ctrl-C (anywhere in here) asks every run to checkpoint and stop; a second kills.
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


def _ray_task(spec: RunSpec) -> int:
    return run_train_process(spec, in_ray_task=True)


@contextlib.contextmanager
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
    """Runs the cluster's current resources fit at once (``None`` if unknown)."""
    try:
        resources = ray.cluster_resources()
    except Exception:  # an older or remote cluster that cannot say: no limit
        return None
    per_run = {"CPU": cpus_per_run, "GPU": gpus_per_run}
    fits = [resources.get(kind, 0.0) / n for kind, n in per_run.items() if n > 0]
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
    """Run ``specs`` as Ray tasks (callbacks as in :func:`run_local`, from this thread); return whether
    interrupted. Every node needs relic-rl and the ablation folder at the same path.

    :param address: ``"auto"`` or ``"ray://..."`` joins a cluster; ``None`` starts a local instance
        with ``local_cpus`` CPUs (``None``: all cores).
    :param max_in_flight: tasks submitted at once (``None``: what the cluster's CPUs and GPUs fit).
    :raises BackendError: when Ray is missing or the cluster cannot be reached."""
    with _ray_session(address, local_cpus) as ray:
        remote = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)(_ray_task)
        queue = list(specs)
        running: dict[Any, RunSpec] = {}
        interrupted = False
        limit = max_in_flight or _cluster_capacity(ray, cpus_per_run, gpus_per_run) or len(queue)

        def collect_some() -> None:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=poll_s)
            for ref in ready:
                spec = running.pop(ref)
                try:
                    outcome = Outcome(spec.name, int(ray.get(ref)), interrupted=interrupted)
                except ray.exceptions.TaskCancelledError:
                    outcome = Outcome(spec.name, None, interrupted=True, error="cancelled")
                except ray.exceptions.RayError as err:
                    error = f"Ray task failed: {(str(err).strip() or type(err).__name__).splitlines()[0]}"
                    outcome = Outcome(spec.name, None, interrupted=interrupted, error=error)
                on_done(spec, outcome)

        def stop_running() -> None:
            # A non-forced cancel raises KeyboardInterrupt in the task, which SIGINTs train and waits.
            for ref in running:
                ray.cancel(ref)
            deadline = time.monotonic() + grace_s + 30.0
            with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop waiting for checkpoints
                while running and time.monotonic() < deadline:
                    collect_some()
            for ref, spec in running.items():
                ray.cancel(ref, force=True)
                stopped = Outcome(spec.name, None, interrupted=True, error="stopped before its checkpoint")
                on_done(spec, stopped)
            running.clear()

        while queue or running:
            try:
                while queue and len(running) < limit and not interrupted:
                    spec = queue.pop(0)
                    on_start(spec)  # first: it writes the run folder that the task starts from
                    running[remote.remote(spec)] = spec
                if running:
                    collect_some()
                    on_poll()
                if interrupted:
                    for spec in queue:
                        on_done(spec, Outcome(spec.name, None, interrupted=True))
                    queue.clear()
            except KeyboardInterrupt:
                interrupted = True
                stop_running()
        return interrupted
