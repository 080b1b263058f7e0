"""Torch threads: the automatic choice, the per-phase switch, ``--threads`` and the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback

from relic_rl import threads as threads_module
from relic_rl.callbacks import TorchThreads
from relic_rl.runs import UsageError
from relic_rl.threads import default_threads, describe_threads, rollout_threads
from relic_rl.train import main, parse_args
from tests.helpers import image_vec_env
from tests.test_train_cli import FAKE, TINY


class _ThreadProbe(BaseCallback):
    """Torch's thread count at every env step (inside rollouts)."""

    def __init__(self) -> None:
        super().__init__()
        self.during_steps: list[int] = []

    def _on_step(self) -> bool:
        self.during_steps.append(torch.get_num_threads())
        return True


@pytest.fixture
def restore_threads() -> Any:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _record_update_threads(model: Any) -> list[int]:
    seen: list[int] = []
    original = model.train

    def train() -> None:
        seen.append(torch.get_num_threads())
        original()

    model.train = train
    return seen


@pytest.mark.usefixtures("restore_threads")
def test_on_policy_rollouts_use_the_rollout_threads_and_updates_the_update_threads() -> None:
    model = PPO("CnnPolicy", image_vec_env(n_envs=2), n_steps=16, batch_size=16, n_epochs=1, seed=0)
    updates = _record_update_threads(model)
    probe = _ThreadProbe()
    model.learn(64, callback=[TorchThreads(update=2, rollout=1), probe])
    assert set(probe.during_steps) == {1}
    assert updates == [2, 2]  # 2 rollouts of 2 x 16 steps, 2 updates
    assert torch.get_num_threads() == 2


@pytest.mark.usefixtures("restore_threads")
def test_off_policy_algorithms_keep_the_update_threads() -> None:
    model = DQN("CnnPolicy", image_vec_env(n_envs=1, continuous=False), learning_starts=8, buffer_size=64)
    probe = _ThreadProbe()
    model.learn(16, callback=[TorchThreads(update=2, rollout=1), probe])
    assert set(probe.during_steps) == {2}


def test_default_threads_are_the_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads_module.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads_module, "available_cpus", lambda: 4)
    monkeypatch.setattr(threads_module.time, "sleep", lambda seconds: None)
    samples = iter([(100.0, 1000.0), (150.0, 1100.0)])  # half of the cores busy in between
    monkeypatch.setattr(threads_module, "_cpu_times", lambda: next(samples))
    assert default_threads() == 2
    fully_busy = iter([(0.0, 0.0), (100.0, 100.0)])
    monkeypatch.setattr(threads_module, "_cpu_times", lambda: next(fully_busy))
    assert default_threads() == 1  # never fewer than one


def test_an_omp_num_threads_cap_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # relic_rl.ablate runs each cell with OMP_NUM_THREADS=1 so that parallel runs share the cores.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(threads_module, "busy_cpus", lambda: 0)
    monkeypatch.setattr(threads_module, "available_cpus", lambda: 8)
    assert default_threads() == 1
    assert "OMP_NUM_THREADS" in describe_threads(1, "dummy", chosen=False)


def test_busy_cores_fall_back_to_the_load_average(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads_module, "_cpu_times", lambda: None)
    monkeypatch.setattr(threads_module.os, "getloadavg", lambda: (2.6, 0.0, 0.0))
    assert threads_module.busy_cpus() == 3


def test_rollout_threads_and_the_summary_line() -> None:
    assert rollout_threads(4, "subproc") == 1 and rollout_threads(4, "dummy") == 4
    assert describe_threads(2, "dummy", chosen=True) == "2"
    line = describe_threads(2, "subproc", chosen=False)
    assert line.startswith("2 for updates, 1 while env workers collect a rollout") and "--threads" in line


@pytest.mark.usefixtures("restore_threads")
def test_threads_flag_is_used_shown_and_restored_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(1)
    code = main(["--env", FAKE, "--log-dir", str(tmp_path), "--threads", "2", *TINY])
    out = capsys.readouterr().out
    assert code == 0
    assert "  threads     torch 2\n" in out
    assert torch.get_num_threads() == 1  # main() in-process leaves the thread count as it was


def test_resume_accepts_threads(tmp_path: Path) -> None:
    args = parse_args(["--resume", str(tmp_path), "--threads", "3"])
    assert args.threads == 3
    with pytest.raises(UsageError, match=r"--threads: expected an integer >= 1, got '0'"):
        parse_args(["--env", FAKE, "--threads", "0"])
