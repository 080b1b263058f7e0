"""Settings that would do nothing or fail late are refused before training starts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from relic_rl import ReLICConfig, ReLICExtractor
from relic_rl.agent_config import parse_agent_config
from relic_rl.augmentations import check_frame_size, make_augmentation
from relic_rl.presets import PresetError
from relic_rl.train import main
from tests.test_train_cli import FAKE, TINY

SPACE_40 = gym.spaces.Box(0, 255, (3, 40, 40), np.uint8)


def _error(args: list[str], capsys: pytest.CaptureFixture[str], tmp_path: object) -> str:
    code = main(["--env", FAKE, "--log-dir", str(tmp_path), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err and err.count("\n") == 1
    return err


def test_budget_below_one_rollout_is_refused_with_the_smallest_that_works(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _error(
        ["--total-timesteps", "100", "--n-envs", "2", "--hyperparams", "n_steps=64"], capsys, tmp_path
    )
    assert "less than one ppo rollout (2 envs x 64 n_steps = 128 steps)" in err
    assert "--total-timesteps 128 or more" in err and "n_steps=50" in err


def test_off_policy_budget_that_never_reaches_learning_starts_is_refused(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _error(
        ["--algo", "dqn", "--total-timesteps", "500", "--hyperparams", "learning_starts=1000"],
        capsys,
        tmp_path,
    )
    assert "never gets past learning_starts=1,000" in err and "train nothing" in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("gamma=1.5", "must lie in [0, 1], got 1.5"),
        ("gae_lambda=-0.1", "must lie in [0, 1], got -0.1"),
        ("clip_range=0", "must lie in (0, inf), got 0"),
        ("n_epochs=0", "must lie in [1, inf), got 0"),
        ("vf_coef=-1", "must lie in [0, inf), got -1"),
    ],
)
def test_out_of_range_hyperparameters_are_refused(
    override: str, message: str, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _error(["--total-timesteps", "256", "--hyperparams", override], capsys, tmp_path)
    assert message in err


def test_ranges_apply_to_presets_and_schedules() -> None:
    with pytest.raises(PresetError, match=r"test\.tau: must lie in \(0, 1\], got 0"):
        parse_agent_config("sac", {"tau": 0.0}, "test")
    with pytest.raises(PresetError, match=r"exploration_final_eps: must lie in \[0, 1\], got 2"):
        parse_agent_config("dqn", {"exploration_final_eps": 2}, "test")
    parse_agent_config("ppo", {"gamma": 1.0, "clip_range": {"schedule": "linear", "initial": 0.2}}, "test")


@pytest.mark.parametrize("spec", ["crop(40)", "crop(64)", "shift(0)", "crop(36),shift(0)", "crop(pad=20)"])
def test_augmentations_that_do_nothing_on_the_frames_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=r"does nothing|leaves no window"):
        ReLICExtractor(SPACE_40, config=ReLICConfig(augmentation=spec))


@pytest.mark.parametrize("spec", ["crop(36)", "crop(pad=4)", "shift(1)", "shift,intensity"])
def test_augmentations_that_change_the_frames_are_accepted(spec: str) -> None:
    ReLICExtractor(SPACE_40, config=ReLICConfig(augmentation=spec))
    check_frame_size(make_augmentation(spec), 40, 40)


def test_the_identity_check_is_skipped_without_the_auxiliary_loss() -> None:
    ReLICExtractor(SPACE_40, config=ReLICConfig(augmentation="crop(64)", enabled=False))


def test_cli_says_which_augmentation_does_nothing(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--augmentation", "crop(40),jitter(0.4)", *TINY]
    err = _error(args, capsys, tmp_path)
    assert "crop(40) does nothing on 40x40 observations" in err and "crop(35)" in err
