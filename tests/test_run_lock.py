"""A run folder is locked while a process trains in it; a second process is refused."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stable_baselines3.common.callbacks import BaseCallback

from relic_rl.experiment import train
from relic_rl.runs import LOCK_FILE, UsageError, atomic_write_text, run_lock
from relic_rl.train import main, resolve_run_config
from tests.test_train_cli import FAKE, TINY, subprocess_env

HOLD = """
import sys, time
from pathlib import Path
from relic_rl.runs import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def _hold_in_another_process(run_dir: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True, env=subprocess_env()
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def _interrupted_run(tmp_path: Path) -> Path:
    code = main(["--env", FAKE, "--log-dir", str(tmp_path), "--run-name", "r", "--quiet", *TINY])
    assert code == 0
    run_dir = tmp_path / "r"
    # Pretend it stopped half-way: resume then has something to continue.
    atomic_write_text(run_dir / "status.yaml", "state: interrupted\ntimesteps: 128\ntotal_timesteps: 256\n")
    return run_dir


def test_resume_of_a_run_that_is_still_training_is_refused_with_its_pid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _interrupted_run(tmp_path)
    before = {name: (run_dir / name).read_bytes() for name in ("command.txt", "status.yaml")}
    holder = _hold_in_another_process(run_dir)
    try:
        code = main(["--resume", str(run_dir), "--no-progress"])
        err = capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert code == 2
    assert f"process {holder.pid} is training in it" in err and "--resume" in err
    assert err.count("\n") == 1
    # Nothing was touched: no resume line in command.txt, status not flipped to running.
    assert {name: (run_dir / name).read_bytes() for name in before} == before


def test_the_lock_goes_with_the_process_however_it_ends(tmp_path: Path) -> None:
    holder = _hold_in_another_process(tmp_path)
    holder.kill()  # SIGKILL: no cleanup code runs
    holder.wait()
    with run_lock(tmp_path):  # the kernel released it
        pass


def test_train_holds_the_lock_while_it_trains(tmp_path: Path) -> None:
    config = resolve_run_config(["--env", FAKE, *TINY])
    seen: list[str] = []

    class TryFromOutside(BaseCallback):
        def _on_step(self) -> bool:
            if not seen:
                probe = subprocess.run(
                    [sys.executable, "-c", HOLD, str(tmp_path / "run")],
                    capture_output=True,
                    text=True,
                    env=subprocess_env(),
                    timeout=60,
                )
                seen.append(probe.stderr)
            return True

    result = train(config, tmp_path / "run", progress=False, quiet=True, callbacks=[TryFromOutside()])
    assert result.state == "finished"
    assert f"process {os.getpid()} is training in it" in seen[0]
    with run_lock(tmp_path / "run"):  # released afterwards
        pass


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    with run_lock(tmp_path), run_lock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_run_files_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "status.yaml", "state: running\n")
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.yaml", "x: 1\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "status.yaml").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.yaml").stat().st_mode) == 0o600


def test_refusal_is_a_usage_error(tmp_path: Path) -> None:
    holder = _hold_in_another_process(tmp_path)
    try:
        start = time.monotonic()
        with pytest.raises(UsageError, match="is in use"), run_lock(tmp_path):
            pass
        assert time.monotonic() - start < 5  # refused at once, not waiting
    finally:
        holder.kill()
        holder.wait()
