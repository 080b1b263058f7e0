"""The progress display names the phase (collecting, updating epoch k/n, evaluating) and, when
stdout is not a terminal, prints plain lines with the elapsed time."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from stable_baselines3 import PPO

from relic_rl.callbacks import ProgressBarCallback
from relic_rl.train import main
from tests.helpers import image_vec_env
from tests.test_train_cli import FAKE, TINY


def test_plain_lines_name_every_phase_and_the_ppo_epochs() -> None:
    model = PPO("CnnPolicy", image_vec_env(n_envs=2), n_steps=16, batch_size=16, n_epochs=3, seed=0)
    out = io.StringIO()
    bar = ProgressBarCallback(64, plain=True, interval=0.0, stream=out)  # no rate limit
    model.learn(64, callback=bar)
    lines = out.getvalue().splitlines()
    # interval=0 also prints at every env step: keep one line per run of equal phases.
    phases = [line.rsplit(": ", 1)[1] for line in lines]
    phases = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert phases == [
        "collecting",
        "updating",
        "updating epoch 1/3",
        "updating epoch 2/3",
        "updating epoch 3/3",
        "collecting",
        "updating",
        "updating epoch 1/3",
        "updating epoch 2/3",
        "updating epoch 3/3",
        "done",
    ]
    assert lines[-1].startswith("64/64 steps (100.0%)") and "elapsed 0:00:" in lines[-1]
    assert "get" not in vars(model.rollout_buffer)  # the epoch counter is removed after each update


def test_plain_lines_are_rate_limited_within_a_kind_of_work() -> None:
    model = PPO("CnnPolicy", image_vec_env(n_envs=2), n_steps=16, batch_size=16, n_epochs=3, seed=0)
    out = io.StringIO()
    model.learn(64, callback=ProgressBarCallback(64, plain=True, interval=1e9, stream=out))
    # A line when the kind of work changes (2 rollouts x collecting/updating, then done); no
    # per-step or per-epoch lines within the interval.
    phases = [line.rsplit(": ", 1)[1] for line in out.getvalue().splitlines()]
    assert phases == ["collecting", "updating", "collecting", "updating", "done"]


def test_the_cli_says_when_it_evaluates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [a for a in TINY if a != "--no-progress"]
    code = main(["--env", FAKE, "--log-dir", str(tmp_path), "--quiet", *args])
    out = capsys.readouterr().out
    assert code == 0
    assert "evaluating (2 episodes)" in out and "256/256 steps (100.0%)" in out
