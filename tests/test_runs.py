"""Run-folder I/O: RunConfig round trip, status, evaluations CSV, checkpoints, folder naming."""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from relic_rl.presets import PresetError
from relic_rl.runs import (
    EVAL_HEADER,
    EvaluationLog,
    RunConfig,
    RunStatus,
    UsageError,
    atomic_write,
    atomic_write_text,
    checkpoint_paths,
    create_run_dir,
    default_run_name,
    latest_checkpoint,
    list_checkpoints,
    load_run_config,
    monitor_dir_for,
    next_segment,
    only_startup_files,
    read_evaluation_rows,
    read_status,
    truncate_evaluations,
    write_run_files,
    write_status,
)
from relic_rl.train import resolve_run_config

FAKE = "tests.fake_pixel_env:FakePixel-v0"


@pytest.fixture(scope="module")
def config() -> RunConfig:
    return resolve_run_config(["--env", FAKE, "--n-envs", "2", "--hyperparams", "n_steps=64"])


def test_run_config_round_trips_through_yaml(config: RunConfig) -> None:
    data = config.to_dict()
    assert data["total_timesteps"] == config.agent.n_timesteps and data["n_envs"] == 2
    text = yaml.safe_dump({**data, "meta": {"created": "now"}})
    again = RunConfig.from_dict(yaml.safe_load(text))
    assert again == config
    assert again.to_dict() == data


def test_run_config_from_dict_rejects_bad_mappings(config: RunConfig) -> None:
    data = config.to_dict()
    with pytest.raises(PresetError, match=r"missing keys \['agent'\]"):
        RunConfig.from_dict({k: v for k, v in data.items() if k != "agent"})
    with pytest.raises(PresetError, match=r"unknown keys \['colour'\]"):
        RunConfig.from_dict({**data, "colour": 1})
    with pytest.raises(PresetError, match="total_timesteps=5 disagrees"):
        RunConfig.from_dict({**data, "total_timesteps": 5})
    with pytest.raises(PresetError, match="aux must be one of relic, none"):
        RunConfig.from_dict({**data, "aux": "maybe"})
    with pytest.raises(PresetError, match=r"agent.n_steps: expected an integer"):
        RunConfig.from_dict({**data, "agent": {**data["agent"], "n_steps": "x"}})


def test_default_run_name_and_folder_creation(config: RunConfig, tmp_path: Path) -> None:
    stamp = datetime(2025, 1, 2, 3, 4, 5)
    assert default_run_name(config, stamp) == "FakePixel-v0__ppo-relic__seed0__20250102-030405"
    baseline = dataclasses.replace(config.agent, relic=config.agent.relic.replace(enabled=False))
    atari = dataclasses.replace(config, env_id="ALE/Pong-v5", aux="none", seed=3, agent=baseline)
    assert default_run_name(atari, stamp) == "ALE-Pong-v5__ppo-none__seed3__20250102-030405"
    first = create_run_dir(tmp_path / "runs", None, config)
    second = create_run_dir(tmp_path / "runs", None, config)
    assert first != second and first.is_dir() and second.is_dir()
    named = create_run_dir(tmp_path / "abl", "cell-1", config)
    assert named == tmp_path / "abl" / "cell-1"
    assert create_run_dir(tmp_path / "abl", "cell-1", config) == named  # empty: fine
    (named / "x").write_text("1")
    with pytest.raises(UsageError, match=r"already exists and is not empty.*--resume .*cell-1"):
        create_run_dir(tmp_path / "abl", "cell-1", config)


def test_status_is_written_atomically_and_read_back(tmp_path: Path) -> None:
    write_status(tmp_path, RunStatus("running", 0, 100))
    assert yaml.safe_load((tmp_path / "status.yaml").read_text()) == {
        "state": "running",
        "timesteps": 0,
        "total_timesteps": 100,
        "message": None,
    }
    write_status(tmp_path, RunStatus("failed", 64, 100, "boom"))
    assert read_status(tmp_path) == RunStatus("failed", 64, 100, "boom")
    assert [p.name for p in tmp_path.iterdir()] == ["status.yaml"]  # no temporary files left
    (tmp_path / "status.yaml").write_text("state: dancing\n")
    with pytest.raises(UsageError, match="malformed"):
        read_status(tmp_path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_evaluations_csv_append_and_truncate(tmp_path: Path) -> None:
    path = tmp_path / "evaluations.csv"
    log = EvaluationLog(path)
    assert log.append(100, [1.0, 3.0]) == (2.0, 1.0)
    log.append(200, [2.5])
    log.append(300, [4.0, 4.0, 4.0])
    assert path.read_text().splitlines()[0] == ",".join(EVAL_HEADER)
    rows = read_evaluation_rows(path)
    assert [r["timesteps"] for r in rows] == ["100", "200", "300"]
    assert rows[0]["episode_rewards"] == "1.0 3.0"
    assert truncate_evaluations(path, 200) == 1
    assert [r["timesteps"] for r in read_evaluation_rows(path)] == ["100", "200"]
    assert truncate_evaluations(path, 200) == 0
    assert truncate_evaluations(tmp_path / "missing.csv", 0) == 0


def test_checkpoints_are_listed_in_order_and_temporary_files_ignored(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    for steps in (1000, 200):
        model, stats = checkpoint_paths(tmp_path, steps)
        model.parent.mkdir(exist_ok=True)
        model.write_bytes(b"zip")
        stats.write_bytes(b"pkl")
    (tmp_path / "checkpoints" / ".model_3000_steps.zip.abc.tmp").write_bytes(b"partial")
    (tmp_path / "checkpoints" / "model_50_steps.zip").write_bytes(b"zip")
    found = list_checkpoints(tmp_path)
    assert [c.timesteps for c in found] == [50, 200, 1000]
    assert found[0].vecnormalize is None and found[-1].vecnormalize is not None
    latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.model.name == "model_1000_steps.zip"


def test_run_files_and_segments(config: RunConfig, tmp_path: Path) -> None:
    write_run_files(tmp_path, config, {"created": "x"}, "python -m relic_rl.train --env X")
    assert only_startup_files(tmp_path)
    loaded, meta = load_run_config(tmp_path)
    assert loaded == config and meta == {"created": "x"}
    assert (tmp_path / "command.txt").read_text() == "python -m relic_rl.train --env X\n"
    assert read_status(tmp_path) == RunStatus("running", 0, config.total_timesteps)
    assert next_segment(tmp_path) == 0
    monitor_dir_for(tmp_path, 0).mkdir()
    assert not only_startup_files(tmp_path)
    assert next_segment(tmp_path) == 1
    monitor_dir_for(tmp_path, 1).mkdir()
    assert monitor_dir_for(tmp_path, 1) == tmp_path / "monitor" / "resume-1"
    assert next_segment(tmp_path) == 2


def test_load_run_config_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a folder"):
        load_run_config(tmp_path / "nope")
    with pytest.raises(UsageError, match=r"is not a relic-rl run folder: it has no config\.yaml"):
        load_run_config(tmp_path)
    (tmp_path / "config.yaml").write_text("env_id: X\n")
    with pytest.raises(UsageError, match="is not a valid run configuration"):
        load_run_config(tmp_path)


def test_aux_must_agree_with_relic_enabled(config: RunConfig) -> None:
    data = config.to_dict()
    with pytest.raises(PresetError, match=r"aux='none' contradicts agent.relic.enabled=True"):
        RunConfig.from_dict({**data, "aux": "none"})


def test_aux_must_agree_with_the_relic_objective(config: RunConfig) -> None:
    data = config.to_dict()
    with pytest.raises(PresetError, match=r"aux='curl' contradicts .*objective 'relic'"):
        RunConfig.from_dict({**data, "aux": "curl"})
    data["agent"]["relic"]["objective"] = "curl"
    assert RunConfig.from_dict({**data, "aux": "curl"}).agent.relic.objective == "curl"
