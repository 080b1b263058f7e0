"""Agent presets (agents/*.yaml): lookup and fallbacks, typed values, --hyperparams parsing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from gymnasium import spaces
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.utils import ConstantSchedule, LinearSchedule
from torch import nn, optim

from relic_rl.agent_config import (
    ACTIVATIONS,
    AgentConfig,
    NormalizeConfig,
    Schedule,
    apply_overrides,
    check_override_keys,
    load_agent_presets,
    parse_agent_config,
    parse_assignments,
    select_preset,
    select_preset_key,
    valid_agent_keys,
)
from relic_rl.algorithms import ALGORITHM_INFO, ALGORITHMS
from relic_rl.config import ReLICConfig
from relic_rl.presets import PresetError, presets_dir
from relic_rl.train import default_algo

ALGOS = list(ALGORITHMS)


# ----------------------------------------------------------------------------- shipped presets
@pytest.mark.parametrize("algo", ALGOS)
def test_every_shipped_block_is_valid_and_round_trips(algo: str) -> None:
    presets = load_agent_presets(algo)
    assert "default" in presets
    for key, block in presets.items():
        config = parse_agent_config(algo, block, f"{algo}[{key}]")
        assert config.policy == ALGORITHM_INFO[algo].image_policy
        # to_dict() is itself a valid preset block that gives back the same config.
        again = parse_agent_config(algo, yaml.safe_load(yaml.safe_dump(config.to_dict())), "round trip")
        assert again == config


def test_carracing_ppo_rl_zoo3_preset_keeps_its_tuned_values_by_name() -> None:
    key, block, where = select_preset("ppo", "CarRacing-v2", "carracing", name="CarRacing-v2-rl-zoo3")
    assert (key, where) == ("CarRacing-v2-rl-zoo3", "agents/ppo.yaml [CarRacing-v2-rl-zoo3]")
    config = parse_agent_config("ppo", block, where)
    assert config.n_envs == 8 and config.frame_skip is None  # the env family's frame skip 2
    assert config.n_timesteps == 4_000_000
    assert config.normalize == NormalizeConfig(norm_obs=False, norm_reward=True)
    hp = config.hyperparams
    assert (hp["n_steps"], hp["batch_size"], hp["n_epochs"]) == (512, 128, 10)
    assert hp["learning_rate"] == Schedule("linear", 1e-4, 0.0)
    assert hp["use_sde"] is True and hp["sde_sample_freq"] == 4
    assert config.policy_kwargs == {
        "log_std_init": -2.0,
        "ortho_init": False,
        "activation_fn": "gelu",
        "net_arch": {"pi": [256], "vf": [256]},
    }
    _, v3_block, _ = select_preset("ppo", "CarRacing-v3", "carracing", name="CarRacing-v3-rl-zoo3")
    assert parse_agent_config("ppo", v3_block, "v3") == config


def test_carracing_ppo_default_is_the_budget_preset_of_2m_frames() -> None:
    key, block, where = select_preset("ppo", "CarRacing-v2", "carracing")
    assert key == "CarRacing-v2"
    config = parse_agent_config("ppo", block, where)
    _, zoo_block, _ = select_preset("ppo", "CarRacing-v2", "carracing", name="CarRacing-v2-rl-zoo3")
    zoo = parse_agent_config("ppo", zoo_block, "zoo")
    # 500k agent steps at action repeat 4: 2M env frames.
    assert config.frame_skip == 4 and config.n_timesteps * config.frame_skip == 2_000_000
    assert config.hyperparams["n_epochs"] == 4
    assert config.hyperparams["learning_rate"] == Schedule("linear", 3e-4, 0.0)
    assert config.eval_episodes >= 10
    # Everything else is rl-zoo3's.
    changed = {"n_epochs", "learning_rate"}
    assert {k: v for k, v in config.hyperparams.items() if k not in changed} == {
        k: v for k, v in zoo.hyperparams.items() if k not in changed
    }
    assert (config.n_envs, config.normalize, config.policy_kwargs) == (
        zoo.n_envs,
        zoo.normalize,
        zoo.policy_kwargs,
    )
    # CarRacing-v3 shares the block through a YAML anchor.
    _, v3_block, _ = select_preset("ppo", "CarRacing-v3", "carracing")
    assert parse_agent_config("ppo", v3_block, "v3") == config


def test_select_preset_by_an_unknown_name_lists_the_presets() -> None:
    with pytest.raises(PresetError, match=r"has no preset 'zoo'.*Its presets: default, atari, CarRacing"):
        select_preset("ppo", "CarRacing-v2", "carracing", name="zoo")


def test_lookup_order_exact_then_atari_then_default() -> None:
    presets: dict[str, Any] = {"default": {}, "atari": {}, "MyEnv-v0": {}}
    assert select_preset_key(presets, "MyEnv-v0", "default") == "MyEnv-v0"
    assert select_preset_key(presets, "my_pkg.envs:MyEnv-v0", "default") == "MyEnv-v0"
    assert select_preset_key(presets, "ALE/Pong-v5", "atari") == "atari"
    assert select_preset_key(presets, "Other-v0", "default") == "default"
    assert select_preset_key({"default": {}}, "ALE/Pong-v5", "atari") == "default"
    assert select_preset_key({}, "Other-v0", "default") is None
    # With the shipped files.
    assert select_preset("ppo", "ALE/Pong-v5", "atari")[0] == "atari"
    assert select_preset("sac", "CarRacing-v2", "carracing")[0] == "default"
    assert select_preset("ppo", "tests.fake_pixel_env:FakePixel-v0", "default")[0] == "default"


def test_default_algo_is_ppo_unless_only_another_algo_has_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_algo("CarRacing-v2") == "ppo"
    assert default_algo("tests.fake_pixel_env:FakePixel-v0") == "ppo"
    folder = tmp_path / "agents"
    folder.mkdir()
    for algo in ALGOS:
        (folder / f"{algo}.yaml").write_text("default: {}\n")
    (folder / "dqn.yaml").write_text("default: {}\nOnlyDqn-v0: {}\n")
    import relic_rl.agent_config as agent_config

    monkeypatch.setattr(agent_config, "presets_dir", lambda kind: folder)
    assert default_algo("OnlyDqn-v0") == "dqn"


def test_a_preset_with_another_policy_says_which_one_to_use() -> None:
    with pytest.raises(
        PresetError, match=r"ppo_lstm's CnnLstmPolicy.*got 'CnnPolicy'.*policy: CnnLstmPolicy"
    ):
        parse_agent_config("ppo_lstm", {"policy": "CnnPolicy"}, "agents/ppo_lstm.yaml [x]")
    with pytest.raises(PresetError, match=r"ppo's CnnPolicy.*got 'MlpPolicy'"):
        parse_agent_config("ppo", {"policy": "MlpPolicy"}, "agents/ppo.yaml [x]")


def test_missing_block_and_malformed_file(tmp_path: Path) -> None:
    (tmp_path / "ppo.yaml").write_text("SomeEnv-v0: {}\n")
    with pytest.raises(PresetError, match=r"no block for 'Other-v0' and no `default` block"):
        select_preset("ppo", "Other-v0", "default", directory=tmp_path)
    (tmp_path / "a2c.yaml").write_text("default: 3\n")
    with pytest.raises(PresetError, match=r"a2c.yaml \[default\]: expected a mapping"):
        load_agent_presets("a2c", tmp_path)
    with pytest.raises(PresetError, match="Unknown algorithm 'ddpg'"):
        load_agent_presets("ddpg")


def test_presets_are_found_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (presets_dir("agents") / "ppo.yaml").is_file()
    assert select_preset("ppo", "CarRacing-v2", "carracing")[0] == "CarRacing-v2"


# ----------------------------------------------------------------------------- validation
def test_unknown_preset_key_lists_the_valid_keys() -> None:
    with pytest.raises(PresetError) as info:
        parse_agent_config("ppo", {"n_step": 64}, "agents/ppo.yaml [X]")
    message = str(info.value)
    assert "agents/ppo.yaml [X]: unknown key 'n_step' for ppo" in message
    assert (
        "Valid keys:" in message
        and "n_steps" in message
        and "relic" in message
        and "policy_kwargs" in message
    )
    # Keys of other algorithms are unknown here; DQN's are valid for DQN.
    with pytest.raises(PresetError, match="unknown key 'buffer_size' for ppo"):
        parse_agent_config("ppo", {"buffer_size": 10}, "w")
    assert "buffer_size" in valid_agent_keys("dqn")
    assert "replay_buffer_class" not in valid_agent_keys("dqn")


@pytest.mark.parametrize(
    ("algo", "block", "pattern"),
    [
        ("ppo", {"n_steps": "abc"}, r"w.n_steps: expected an integer, got 'abc'"),
        ("ppo", {"n_steps": 1.5}, r"w.n_steps: expected an integer"),
        ("ppo", {"n_envs": 0}, r"w.n_envs: must be >= 1, got 0"),
        ("ppo", {"use_sde": "yes"}, r"w.use_sde: expected true or false"),
        ("ppo", {"gamma": [1]}, r"w.gamma: expected a finite number"),
        ("ppo", {"policy": "MlpPolicy"}, r"relic-rl trains pixel agents with ppo.s CnnPolicy"),
        ("ppo", {"learning_rate": "lin_3e-4"}, r"rl-zoo3's string form.*\{schedule: linear, initial: 3e-4\}"),
        ("ppo", {"learning_rate": {"schedule": "cosine"}}, r"`schedule` must be `linear` or `constant`"),
        ("ppo", {"learning_rate": {"schedule": "linear"}}, r"a linear schedule needs `initial`"),
        ("ppo", {"clip_range": {"schedule": "linear", "initial": 0.1, "step": 2}}, r"unknown key 'step'"),
        ("ppo", {"learning_rate": -1}, r"w.learning_rate: expected a number or a schedule"),
        ("ppo", {"rollout_buffer_class": "x"}, r"unknown key 'rollout_buffer_class'"),
        (
            "ppo",
            {"policy_kwargs": {"activation_fn": "nn.GELU"}},
            r"activation_fn: expected one of relu, tanh",
        ),
        (
            "ppo",
            {"policy_kwargs": {"net_arch": {"pi": [64], "qf": [64]}}},
            r"unknown key 'qf' for ppo's net_arch",
        ),
        ("ppo", {"policy_kwargs": {"net_arch": [64, 0]}}, r"net_arch\[1\]: must be >= 1"),
        ("ppo", {"policy_kwargs": {"features_extractor_class": "x"}}, r"use --extractor module:Class"),
        ("ppo", {"policy_kwargs": {"features_extractor_kwargs": {"config": {}}}}, r"`relic:` block"),
        ("ppo", {"policy_kwargs": {"n_critics": 2}}, r"unknown key 'n_critics' for the ppo CnnPolicy. Valid"),
        ("dqn", {"policy_kwargs": {"net_arch": {"pi": [64]}}}, r"dqn takes a list of layer sizes"),
        ("ppo", {"normalize": {"norm_obs": True}}, r"norm_obs must be false"),
        ("ppo", {"normalize": {"norm_rewards": True}}, r"unknown key 'norm_rewards'"),
        ("ppo", {"relic": {"temprature": 0.1}}, r"w.relic: unknown key 'temprature' for ReLICConfig"),
        ("ppo", {"relic": {"temperature": 0}}, r"temperature=0.0 is invalid"),
        ("td3", {"action_noise": {"type": "uniform", "sigma": 0.1}}, r"action_noise.type: expected one of"),
        ("td3", {"action_noise": {"type": "normal", "sigma": -1}}, r"sigma must be a number > 0"),
        ("dqn", {"train_freq": [4, "weeks"]}, r"train_freq: expected an integer or \[n, step\|episode\]"),
        ("sac", {"ent_coef": "auto_x"}, r"w.ent_coef: expected a finite number"),
        ("ppo", {"env_kwargs": {"x": object()}}, r"env_kwargs.x: expected plain data"),
        ("ppo", {"frame_stack": 0}, r"frame_stack: must be >= 1"),
        ("ppo", {"frame_skip": 0}, r"frame_skip: must be >= 1"),
    ],
)
def test_bad_values_name_the_key(algo: str, block: dict[str, Any], pattern: str) -> None:
    with pytest.raises(PresetError, match=pattern):
        parse_agent_config(algo, block, "w")


def test_numbers_written_as_yaml_1_1_strings_are_accepted() -> None:
    # PyYAML reads `1e6` and `3e-4` as strings; numeric keys accept them.
    config = parse_agent_config("ppo", yaml.safe_load("n_timesteps: 1e6\nlearning_rate: 3e-4\n"), "w")
    assert config.n_timesteps == 1_000_000
    assert config.hyperparams["learning_rate"] == pytest.approx(3e-4)


def test_algorithm_kwargs_builds_sb3_objects() -> None:
    block = {
        "learning_rate": {"schedule": "linear", "initial": 1e-3, "final": 1e-4},
        "clip_range": {"schedule": "constant", "value": 0.2},
        "policy_kwargs": {"activation_fn": "gelu", "optimizer_class": "adamw", "net_arch": [64]},
        "relic": {"temperature": 0.2},
    }
    config = parse_agent_config("ppo", block, "w")
    kwargs = config.algorithm_kwargs(spaces.Discrete(2))
    lr = kwargs["learning_rate"]
    assert isinstance(lr, LinearSchedule)
    assert (
        lr(1.0) == pytest.approx(1e-3) and lr(0.0) == pytest.approx(1e-4) and lr(0.5) == pytest.approx(5.5e-4)
    )
    assert isinstance(kwargs["clip_range"], ConstantSchedule) and kwargs["clip_range"](0.3) == 0.2
    assert kwargs["policy_kwargs"] == {
        "activation_fn": nn.GELU,
        "optimizer_class": optim.AdamW,
        "net_arch": [64],
    }
    assert kwargs["relic"] == ReLICConfig(temperature=0.2)
    # The config keeps plain names (for config.yaml); only algorithm_kwargs maps them.
    assert config.policy_kwargs["activation_fn"] == "gelu"
    assert set(ACTIVATIONS) == {"relu", "tanh", "gelu", "elu", "leaky_relu", "silu"}


def test_off_policy_values() -> None:
    td3 = parse_agent_config("td3", {"action_noise": {"type": "normal", "sigma": 0.2}, "train_freq": 2}, "w")
    kwargs = td3.algorithm_kwargs(spaces.Box(-1, 1, (3,)))
    assert isinstance(kwargs["action_noise"], NormalActionNoise)
    assert kwargs["action_noise"]._sigma.tolist() == [0.2, 0.2, 0.2]
    dqn = parse_agent_config("dqn", {"train_freq": [1, "episode"], "max_grad_norm": 0.5}, "w")
    assert dqn.algorithm_kwargs(spaces.Discrete(2))["train_freq"] == (1, "episode")
    assert dqn.hyperparams["max_grad_norm"] == 0.5
    sac = parse_agent_config("sac", {"ent_coef": "auto_0.1", "target_entropy": -2}, "w")
    assert sac.hyperparams["ent_coef"] == "auto_0.1" and sac.hyperparams["target_entropy"] == -2.0
    assert sac.hyperparam("tau") == 0.005  # SB3's default when the preset does not set it


def test_normalize_forms() -> None:
    assert parse_agent_config("ppo", {"normalize": True}, "w").normalize == NormalizeConfig()
    assert parse_agent_config("ppo", {"normalize": False}, "w").normalize is None
    custom = parse_agent_config("ppo", {"normalize": {"norm_reward": True, "clip_reward": 5}}, "w").normalize
    assert custom == NormalizeConfig(clip_reward=5.0)


# ----------------------------------------------------------------------------- --hyperparams
def test_parse_assignments_types_and_dotted_keys() -> None:
    items = [
        "n_steps=64",
        "use_sde=false",
        "learning_rate=3e-4",
        "gamma=0.98",
        "policy_kwargs.net_arch=[64, 64]",
        "relic.augmentation=shift(8),intensity",
        "learning_rate={schedule: linear, initial: 3.0e-4}",
        "target_kl=null",
        "env_kwargs.continuous=False",
    ]
    parsed = parse_assignments(items, "--hyperparams")
    assert parsed == [
        (("n_steps",), 64),
        (("use_sde",), False),
        (("learning_rate",), "3e-4"),  # YAML 1.1; numeric keys accept it
        (("gamma",), 0.98),
        (("policy_kwargs", "net_arch"), [64, 64]),
        (("relic", "augmentation"), "shift(8),intensity"),
        (("learning_rate",), {"schedule": "linear", "initial": 3e-4}),
        (("target_kl",), None),
        (("env_kwargs", "continuous"), False),
    ]


@pytest.mark.parametrize(
    ("item", "pattern"),
    [
        ("n_steps", r"'n_steps' is not of the form key=value"),
        ("=3", r"not of the form key=value"),
        ("relic..temperature=1", r"not of the form key=value"),
        ("n_steps=[1,", r"the value of 'n_steps' \('\[1,'\) is not valid YAML"),
        ("x={a: 1", r"is not valid YAML"),
    ],
)
def test_parse_assignments_errors(item: str, pattern: str) -> None:
    with pytest.raises(PresetError, match=pattern):
        parse_assignments([item], "--hyperparams")


def test_apply_overrides_nests_merges_and_never_mutates() -> None:
    block = {"n_steps": 512, "policy_kwargs": {"net_arch": [256], "ortho_init": False}, "normalize": False}
    overrides = parse_assignments(
        ["policy_kwargs.net_arch=[64]", "relic.temperature=0.2", "n_steps=128"], "--hyperparams"
    )
    merged = apply_overrides(block, overrides, "--hyperparams")
    assert merged == {
        "n_steps": 128,
        "policy_kwargs": {"net_arch": [64], "ortho_init": False},
        "normalize": False,
        "relic": {"temperature": 0.2},
    }
    assert block["policy_kwargs"] == {"net_arch": [256], "ortho_init": False}
    with pytest.raises(PresetError, match=r"cannot set normalize.norm_reward because normalize is False"):
        apply_overrides(block, [(("normalize", "norm_reward"), True)], "--hyperparams")


def test_override_keys_are_checked_against_the_algorithm() -> None:
    check_override_keys("dqn", [(("buffer_size",), 10), (("relic", "x"), 1)], "--hyperparams")
    with pytest.raises(PresetError) as info:
        check_override_keys("ppo", [(("lr",), 1)], "--hyperparams")
    assert "--hyperparams: unknown key 'lr' for ppo. Valid keys:" in str(info.value)
    assert "learning_rate" in str(info.value)


def test_schedule_round_trip() -> None:
    linear = Schedule.parse({"schedule": "linear", "initial": "1e-3"}, "w")
    assert linear == Schedule("linear", 1e-3, 0.0)
    assert Schedule.parse(linear.to_dict(), "w") == linear
    constant = Schedule.parse({"schedule": "constant", "value": 0.5}, "w")
    assert constant.to_dict() == {"schedule": "constant", "value": 0.5}
    assert constant.build()(0.0) == 0.5


def test_agent_config_defaults() -> None:
    config = AgentConfig(algo="ppo")
    assert config.relic == ReLICConfig()
    assert config.to_dict()["normalize"] is False


def test_frame_skip_round_trips_and_is_absent_when_unset() -> None:
    # Absent when unset, so configs saved before the key existed still compare equal on resume.
    tuned = parse_agent_config("ppo", {"frame_skip": 4}, "w")
    assert tuned.frame_skip == 4 and parse_agent_config("ppo", tuned.to_dict(), "w") == tuned
    assert "frame_skip" not in parse_agent_config("ppo", {}, "w").to_dict()


def test_encoder_mode_is_a_sac_td3_policy_kwarg_with_its_choices() -> None:
    from relic_rl.agent_config import parse_policy_kwargs

    for algo in ("sac", "td3"):
        assert parse_policy_kwargs({"encoder_mode": "Separate"}, "p", algo) == {"encoder_mode": "separate"}
        with pytest.raises(PresetError, match=r"p\.encoder_mode: expected one of critic, separate, shared"):
            parse_policy_kwargs({"encoder_mode": "actor"}, "p", algo)
    with pytest.raises(PresetError, match="unknown key 'encoder_mode' for the ppo CnnPolicy"):
        parse_policy_kwargs({"encoder_mode": "critic"}, "p", "ppo")
