"""Ctrl-C keeps a consistent state: a whole update or the last checkpoint, never half of one;
and only the newest checkpoints are kept."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from stable_baselines3 import PPO

from relic_rl.runs import list_checkpoints, read_status
from relic_rl.train import main
from tests.test_train_cli import FAKE, TINY


def _patch_update(monkeypatch: pytest.MonkeyPatch, on_update: Any) -> list[dict[str, torch.Tensor]]:
    """Call ``on_update(k)`` at the start of the k-th update; return the parameters after each."""
    original = PPO.train
    after: list[dict[str, torch.Tensor]] = []

    def train(self: PPO) -> None:
        on_update(len(after) + 1)
        original(self)
        after.append({k: v.detach().clone() for k, v in self.policy.state_dict().items()})

    monkeypatch.setattr(PPO, "train", train)
    return after


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, Path]:
    code = main(["--env", FAKE, "--log-dir", str(tmp_path), "--run-name", "r", "--quiet", *TINY, *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err, tmp_path / "r"


def test_ctrl_c_during_an_update_waits_for_it_and_saves_all_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def on_update(k: int) -> None:
        if k == 1:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the first update runs

    after = _patch_update(monkeypatch, on_update)
    code, out, run_dir = _run(tmp_path, capsys, "--checkpoint-freq", "1000")
    assert code == 130
    assert "stopping after the current update" in out
    assert len(after) == 1  # the update finished, no second one started
    status = read_status(run_dir)
    assert (status.state, status.timesteps) == ("interrupted", 128)
    (checkpoint,) = list_checkpoints(run_dir)
    saved = PPO.load(checkpoint.model, device="cpu").policy.state_dict()
    for name, value in after[0].items():
        assert torch.equal(saved[name], value), name  # all of the update, not part of it


def test_a_second_ctrl_c_during_an_update_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def on_update(k: int) -> None:
        if k == 2:  # the checkpoint at 128 exists (TINY checkpoints every 128 steps)
            raise KeyboardInterrupt  # what the second Ctrl-C raises at once

    _patch_update(monkeypatch, on_update)
    code, out, run_dir = _run(tmp_path, capsys)
    assert code == 130
    assert "half-finished update is not saved" in out and "trains again from step 128" in out
    assert [c.timesteps for c in list_checkpoints(run_dir)] == [128]
    assert read_status(run_dir).timesteps == 128
    monkeypatch.undo()
    assert main(["--resume", str(run_dir), "--quiet", "--no-progress"]) == 0
    assert read_status(run_dir).state == "finished"


def test_ctrl_c_during_a_rollout_says_what_is_collected_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from relic_rl.callbacks import CheckpointCallback

    original = CheckpointCallback._on_step

    def on_step(self: CheckpointCallback) -> bool:
        if self.model.num_timesteps == 128 + 20:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(CheckpointCallback, "_on_step", on_step)
    code, out, _run_dir = _run(tmp_path, capsys)
    assert code == 130
    assert "interrupted at step 128" in out and "the 20 steps collected since are collected again" in out


def test_only_the_newest_checkpoints_are_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    budget = ["--total-timesteps", "640", "--checkpoint-freq", "128"]
    code, _, run_dir = _run(tmp_path, capsys, *budget, "--keep-checkpoints", "2")
    assert code == 0
    assert [c.timesteps for c in list_checkpoints(run_dir)] == [384, 512]
    assert (run_dir / "final_model.zip").is_file()


def test_keep_checkpoints_zero_keeps_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, run_dir = _run(tmp_path, capsys, "--total-timesteps", "640", "--keep-checkpoints", "0")
    assert code == 0
    assert [c.timesteps for c in list_checkpoints(run_dir)] == [128, 256, 384, 512]


def test_ctrl_c_while_the_model_is_built_marks_the_run_interrupted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from relic_rl import experiment
    from relic_rl.errors import EXIT_INTERRUPTED

    def build_model(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "build_model", build_model)
    code, output, run_dir = _run(tmp_path, capsys)
    assert code == EXIT_INTERRUPTED
    status = read_status(run_dir)
    assert status is not None and status.state == "interrupted"
    assert "interrupted before training started" in output and "--resume" in output
    assert list_checkpoints(run_dir) == []
