"""Typed agent presets: ``agents/<algo>.yaml`` blocks, ``--hyperparams`` overrides, SB3 kwargs.

A preset file maps env ids (``module:`` prefix ignored), ``atari`` (the atari family's fallback)
and ``default`` to blocks of hyperparameters, as in rl-zoo3; a block validates into a frozen
:class:`AgentConfig`, whose :meth:`~AgentConfig.to_dict` is again a valid block. Nothing is
evaluated (schedules, activations, optimizers have typed, whitelisted forms); problems raise PresetError.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from gymnasium import spaces
from stable_baselines3.common.noise import ActionNoise, NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.utils import ConstantSchedule, LinearSchedule
from torch import nn, optim

from relic_rl.algorithms import ALGORITHM_INFO, ALGORITHMS
from relic_rl.config import ReLICConfig
from relic_rl.environments.preset import strip_module
from relic_rl.policies import ENCODER_MODES
from relic_rl.presets import (
    PresetError,
    as_number,
    check_keys,
    dataclass_from_dict,
    load_yaml,
    presets_dir,
    short_repr as _short,
)

DEFAULT_KEY = "default"
ATARI_KEY = "atari"
ATARI_FAMILY = "atari"

#: The activations a preset may name (``policy_kwargs.activation_fn``).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}

#: The optimizers a preset may name (``policy_kwargs.optimizer_class``).
OPTIMIZERS: dict[str, type[optim.Optimizer]] = {
    "adam": optim.Adam,
    "adamw": optim.AdamW,
    "rmsprop": optim.RMSprop,
    "sgd": optim.SGD,
}

#: Constructor arguments a preset never sets as such, and what sets them instead.
RESERVED_ALGO_KWARGS: dict[str, str] = {
    "self": "",
    "policy": "use the `policy` key",
    "env": "built from --env",
    "policy_kwargs": "use the `policy_kwargs` key",
    "tensorboard_log": "the run folder holds the TensorBoard logs",
    "verbose": "use --quiet",
    "seed": "use --seed",
    "device": "use --device",
    "_init_setup_model": "",
    "relic": "use the `relic:` block",
}

#: Constructor arguments that take Python classes, which a YAML preset cannot name safely.
UNSETTABLE_ALGO_KWARGS = ("rollout_buffer_class", "replay_buffer_class")

#: Algorithm arguments that accept a schedule (a callable of SB3's ``progress_remaining``).
SCHEDULE_KWARGS = ("learning_rate", "clip_range", "clip_range_vf")

#: Keys of a preset block other than the algorithm's constructor arguments.
AGENT_KEYS = (
    *("n_envs", "n_timesteps", "policy", "normalize", "policy_kwargs", "relic", "eval_freq"),
    *("eval_episodes", "checkpoint_freq", "env_kwargs", "frame_stack", "frame_skip"),
)

#: name -> (low, high, low included, high included), None unbounded; checked before training
#: (SB3 accepts e.g. ``gamma=1.5`` and diverges later), schedules at their initial value.
HYPERPARAM_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    **dict.fromkeys(
        ("gamma", "gae_lambda", "exploration_fraction", "exploration_initial_eps", "exploration_final_eps"),
        (0.0, 1.0, True, True),
    ),
    "tau": (0.0, 1.0, False, True),
    **dict.fromkeys(SCHEDULE_KWARGS, (0.0, None, False, False)),
    **dict.fromkeys(
        ("vf_coef", "ent_coef", "target_policy_noise", "target_noise_clip"), (0.0, None, True, False)
    ),
    **dict.fromkeys(
        ("n_steps", "batch_size", "n_epochs", "buffer_size", "target_update_interval", "policy_delay"),
        (1, None, True, False),
    ),
    "learning_starts": (0, None, True, False),
    "sde_sample_freq": (-1, None, True, False),
}


def check_range(name: str, value: float, where: str) -> None:
    """PresetError unless ``value`` lies in ``HYPERPARAM_RANGES[name]`` (unknown names pass)."""
    if name not in HYPERPARAM_RANGES:
        return
    low, high, low_in, high_in = HYPERPARAM_RANGES[name]
    too_low = low is not None and (value < low or (value == low and not low_in))
    too_high = high is not None and (value > high or (value == high and not high_in))
    if too_low or too_high:
        left = "(-inf" if low is None else f"{'[' if low_in else '('}{low:g}"
        right = "inf)" if high is None else f"{high:g}{']' if high_in else ')'}"
        raise PresetError(f"{where}: must lie in {left}, {right}, got {value:g}.")


def as_float(value: Any, where: str, *, minimum: float | None = None, strict_min: bool = False) -> float:
    """A finite float from ``value`` or a :class:`PresetError` naming ``where``."""
    number = as_number(value)
    if number is None or not math.isfinite(number):
        raise PresetError(f"{where}: expected a finite number, got {_short(value)}.")
    if minimum is not None and (number < minimum or (strict_min and number == minimum)):
        raise PresetError(f"{where}: must be {'>' if strict_min else '>='} {minimum:g}, got {number:g}.")
    return number


def as_int(value: Any, where: str, *, minimum: int | None = None) -> int:
    """An int from an int, an integral float (``4.0e6``) or a numeric string; else PresetError."""
    number = as_number(value)
    if number is None or not math.isfinite(number) or not number.is_integer():
        raise PresetError(f"{where}: expected an integer, got {_short(value)}.")
    if minimum is not None and number < minimum:
        raise PresetError(f"{where}: must be >= {minimum}, got {int(number)}.")
    return int(number)


def as_bool(value: Any, where: str) -> bool:
    """``value`` if it is a bool; else PresetError (``"true"`` in quotes is text, not a bool)."""
    if not isinstance(value, bool):
        raise PresetError(f"{where}: expected true or false, got {_short(value)}.")
    return value


def as_mapping(value: Any, where: str) -> dict[str, Any]:
    """A copy of a mapping with string keys; else PresetError."""
    if not isinstance(value, Mapping):
        raise PresetError(f"{where}: expected a mapping of `key: value` entries, got {_short(value)}.")
    if bad := [k for k in value if not isinstance(k, str)]:
        raise PresetError(f"{where}: keys must be strings, got {bad!r}.")
    return dict(value)


def _plain(value: Any, where: str) -> Any:
    """``value`` checked to be plain YAML data (scalars, lists, string-keyed mappings)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{where}.{k}") for k, v in as_mapping(value, where).items()}
    raise PresetError(f"{where}: expected plain data (numbers, text, lists, mappings), got {_short(value)}.")


def _plain_mapping(value: Any, where: str) -> dict[str, Any]:
    return _plain(as_mapping(value, where), where)


#: Schedule kind -> (its valid keys, sorted; its required value key; an example).
_SCHEDULE_FORMS = {
    "linear": (("final", "initial", "schedule"), "initial", "{schedule: linear, initial: 3.0e-4}"),
    "constant": (("schedule", "value"), "value", "{schedule: constant, value: 0.2}"),
}


@dataclass(frozen=True)
class Schedule:
    """``{schedule: linear, initial: x[, final: y (default 0)]}`` over the whole run, or
    ``{schedule: constant, value: x}`` (held in ``initial``)."""

    kind: Literal["linear", "constant"]
    initial: float
    final: float = 0.0

    @classmethod
    def parse(cls, value: Any, where: str) -> Schedule:
        """Read the mapping form; every problem raises PresetError."""
        data = as_mapping(value, where)
        kind = data.get("schedule")
        if not isinstance(kind, str) or kind not in _SCHEDULE_FORMS:
            raise PresetError(
                f"{where}: `schedule` must be `linear` or `constant`, got {_short(kind)}. Write e.g. "
                "{schedule: linear, initial: 3.0e-4} or {schedule: constant, value: 0.2}."
            )
        keys, required, example = _SCHEDULE_FORMS[kind]
        check_keys(data, keys, where, f"a {kind} schedule")
        if required not in data:
            raise PresetError(f"{where}: a {kind} schedule needs `{required}`, e.g. {example}.")
        initial = as_float(data[required], f"{where}.{required}")
        if kind == "constant":
            return cls("constant", initial, initial)
        return cls("linear", initial, as_float(data.get("final", 0.0), f"{where}.final"))

    def to_dict(self) -> dict[str, Any]:
        """The mapping form, as written in presets."""
        if self.kind == "constant":
            return {"schedule": "constant", "value": self.initial}
        return {"schedule": "linear", "initial": self.initial, "final": self.final}

    def build(self) -> Callable[[float], float]:
        """The SB3 schedule object (picklable, so it survives ``model.save``)."""
        if self.kind == "constant":
            return ConstantSchedule(self.initial)
        return LinearSchedule(start=self.initial, end=self.final, end_fraction=1.0)


def _number_or_schedule(value: Any, where: str) -> float | Schedule:
    """A number >= 0 or a :class:`Schedule` whose values are >= 0."""
    if isinstance(value, Mapping):
        schedule = Schedule.parse(value, where)
        if min(schedule.initial, schedule.final) < 0:
            raise PresetError(f"{where}: schedule values must be >= 0, got {schedule.to_dict()}.")
        return schedule
    if isinstance(value, str) and value.strip().startswith("lin_"):
        raise PresetError(
            f"{where}: {value!r} is rl-zoo3's string form, which relic-rl does not evaluate; write "
            f"{{schedule: linear, initial: {value.strip()[4:]}}} instead."
        )
    try:
        return as_float(value, where, minimum=0.0)
    except PresetError:
        raise PresetError(
            f"{where}: expected a number or a schedule such as {{schedule: linear, initial: 3.0e-4}}, "
            f"got {_short(value)}."
        ) from None


@dataclass(frozen=True)
class NormalizeConfig:
    """Settings of SB3's ``VecNormalize`` for the training env (``norm_obs`` must stay false):
    ``norm_reward`` scales rewards by a running estimate of the return's std; ``clip_obs`` and
    ``clip_reward`` are VecNormalize's clips (> 0)."""

    norm_obs: bool = False
    norm_reward: bool = True
    clip_obs: float = 10.0
    clip_reward: float = 10.0

    def __post_init__(self) -> None:
        if self.norm_obs:
            raise PresetError(
                "normalize.norm_obs must be false: relic-rl's observations are images, which SB3 scales "
                "to [0, 1] itself (use normalize: {norm_obs: false, norm_reward: true})."
            )
        if self.clip_obs <= 0 or self.clip_reward <= 0:
            raise PresetError("normalize.clip_obs and normalize.clip_reward must be > 0.")


def parse_normalize(value: Any, where: str) -> NormalizeConfig | None:
    """``false``/``null`` -> None; ``true`` -> reward normalisation; a mapping -> its settings."""
    if value is None or value is False:
        return None
    if value is True:
        return NormalizeConfig()
    return dataclass_from_dict(NormalizeConfig, as_mapping(value, where), where)


@dataclass(frozen=True)
class ActionNoiseSpec:
    """Exploration noise for TD3/SAC: ``{type: normal, sigma: 0.1}`` (rl-zoo3's ``noise_type``); ``sigma``
    is in units of the action normalised to [-1, 1], ``theta`` is Ornstein-Uhlenbeck's mean reversion."""

    type: Literal["normal", "ornstein_uhlenbeck"]
    sigma: float
    theta: float = 0.15

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise PresetError(f"action_noise.sigma must be a number > 0, got {self.sigma!r}.")

    def build(self, action_space: spaces.Space[Any]) -> ActionNoise:
        """The SB3 noise object for a Box action space."""
        if not isinstance(action_space, spaces.Box):
            raise PresetError(f"action_noise needs a continuous (Box) action space, got {action_space}.")
        n = int(np.prod(action_space.shape))
        sigma = self.sigma * np.ones(n)
        if self.type == "normal":
            return NormalActionNoise(mean=np.zeros(n), sigma=sigma)
        return OrnsteinUhlenbeckActionNoise(mean=np.zeros(n), sigma=sigma, theta=self.theta)


def _int_list(value: Any, where: str) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise PresetError(f"{where}: expected a list of layer sizes such as [256, 256], got {_short(value)}.")
    return [as_int(v, f"{where}[{i}]", minimum=1) for i, v in enumerate(value)]


#: ``policy_kwargs.net_arch``: one list for all heads, or one list per head.
NetArch = list[int] | dict[str, list[int]]


def _net_arch(value: Any, where: str, algo: str) -> NetArch:
    """``[64, 64]`` (shared or single network), or ``{pi: [...], vf: [...]}`` / ``{pi, qf}``."""
    if not isinstance(value, Mapping):
        return _int_list(value, where)
    heads = ALGORITHM_INFO[algo].heads
    if heads is None:
        raise PresetError(f"{where}: {algo} takes a list of layer sizes, e.g. [256], not a mapping.")
    data = as_mapping(value, where)
    check_keys(data, sorted(heads), where, f"{algo}'s net_arch")
    return {k: _int_list(v, f"{where}.{k}") for k, v in data.items()}


def _choice(table: Mapping[str, Any], value: Any, where: str) -> str:
    if not isinstance(value, str) or value.lower() not in table:
        raise PresetError(f"{where}: expected one of {', '.join(table)}, got {_short(value)}.")
    return value.lower()


def _extractor_kwargs(value: Any, where: str) -> dict[str, Any]:
    data = _plain_mapping(value, where)
    if "config" in data:
        raise PresetError(f"{where}.config: the ReLIC config is the preset's `relic:` block; set it there.")
    return data


_BOOL_POLICY_KWARGS = (
    *("ortho_init", "full_std", "use_expln", "squash_output", "share_features_extractor"),
    *("normalize_images", "shared_lstm", "enable_critic_lstm"),
)

#: ``policy_kwargs`` parsers (``net_arch`` aside); a key is valid where the algo's policy accepts it.
_POLICY_KWARGS: dict[str, Callable[[Any, str], Any]] = {
    "activation_fn": partial(_choice, ACTIVATIONS),
    **dict.fromkeys(_BOOL_POLICY_KWARGS, as_bool),
    "log_std_init": as_float,
    "clip_mean": partial(as_float, minimum=0.0, strict_min=True),
    "encoder_mode": partial(_choice, dict.fromkeys(ENCODER_MODES)),
    **dict.fromkeys(
        ("n_critics", "n_quantiles", "lstm_hidden_size", "n_lstm_layers"), partial(as_int, minimum=1)
    ),
    "optimizer_class": partial(_choice, OPTIMIZERS),
    "optimizer_kwargs": _plain_mapping,
    "features_extractor_kwargs": _extractor_kwargs,
}

_NOT_POLICY_KWARGS = {
    "features_extractor_class": "use --extractor module:Class",
    "use_sde": "set use_sde at the top level of the preset (it is an algorithm argument)",
    "lr_schedule": "set learning_rate at the top level of the preset",
}


def policy_class(algo: str) -> type:
    """The image policy class of ``algo`` (SB3's CnnPolicy, RecurrentPPO's CnnLstmPolicy)."""
    return ALGORITHMS[algo].policy_aliases[ALGORITHM_INFO[algo].image_policy]  # type: ignore[attr-defined]


def valid_policy_kwargs(algo: str) -> list[str]:
    """The ``policy_kwargs`` keys a preset may set for ``algo``."""
    accepted = inspect.signature(policy_class(algo)).parameters
    return sorted(k for k in ("net_arch", *_POLICY_KWARGS) if k in accepted)


def parse_policy_kwargs(value: Any, where: str, algo: str) -> dict[str, Any]:
    """Validate a ``policy_kwargs`` mapping (kept as plain data)."""
    if value is None:
        return {}
    data = as_mapping(value, where)
    for key in data:
        if key in _NOT_POLICY_KWARGS:
            raise PresetError(f"{where}.{key} cannot be set in policy_kwargs: {_NOT_POLICY_KWARGS[key]}.")
    check_keys(data, valid_policy_kwargs(algo), where, f"the {algo} {ALGORITHM_INFO[algo].image_policy}")
    parsers = _POLICY_KWARGS | {"net_arch": partial(_net_arch, algo=algo)}
    return {k: parsers[k](v, f"{where}.{k}") for k, v in data.items()}


_VAR_KEYWORD = inspect.Parameter.VAR_KEYWORD


def sb3_base_class(algo: str) -> type:
    """The SB3 class whose constructor defines ``algo``'s arguments (ReLIC classes take ``**kwargs``)."""
    for cls in ALGORITHMS[algo].__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        if not any(p.kind is _VAR_KEYWORD for p in params):
            return cls
    raise TypeError(f"Cannot find the constructor signature of {ALGORITHMS[algo]!r}.")  # pragma: no cover


def algorithm_defaults(algo: str) -> dict[str, Any]:
    """The SB3 constructor's settable arguments of ``algo`` and their defaults."""
    params = inspect.signature(sb3_base_class(algo)).parameters.items()
    return {n: p.default for n, p in params if n not in RESERVED_ALGO_KWARGS and p.kind is not _VAR_KEYWORD}


def _train_freq(value: Any, where: str) -> int | list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[1] not in ("step", "episode"):
            raise PresetError(f"{where}: expected an integer or [n, step|episode], got {_short(value)}.")
        return [as_int(value[0], f"{where}[0]", minimum=1), value[1]]
    return as_int(value, where, minimum=1)


def _auto_or_float(value: Any, where: str) -> str | float:
    if isinstance(value, str) and (value == "auto" or value.startswith("auto_")):
        if value != "auto":
            as_float(value[5:], where)
        return value
    return as_float(value, where)


def _algo_kwarg(name: str, value: Any, default: Any, where: str) -> Any:
    """Check one algorithm argument: its type by SB3's default, its range by :data:`HYPERPARAM_RANGES`."""
    checked = _typed_algo_kwarg(name, value, default, where)
    initial = checked.initial if isinstance(checked, Schedule) else checked
    if isinstance(initial, (int, float)) and not isinstance(initial, bool):
        check_range(name, float(initial), where)
    return checked


def _typed_algo_kwarg(name: str, value: Any, default: Any, where: str) -> Any:
    if name in UNSETTABLE_ALGO_KWARGS:
        raise PresetError(f"{where}: `{name}` takes a Python class and cannot be set from a preset.")
    optional = name in ("action_noise", "target_kl") or name.endswith("_kwargs")
    if value is None and (optional or (name in SCHEDULE_KWARGS and default is None)):
        return None
    if name in SCHEDULE_KWARGS:
        return _number_or_schedule(value, where)
    if name == "train_freq":
        return _train_freq(value, where)
    if name in ("ent_coef", "target_entropy") and isinstance(default, str):
        return _auto_or_float(value, where)
    if name == "action_noise":
        return dataclass_from_dict(ActionNoiseSpec, as_mapping(value, where), where)
    if name.endswith("_kwargs"):
        return _plain_mapping(value, where)
    # DQN's max_grad_norm default is the int 10, but any positive number is fine.
    if name == "target_kl" or (name == "max_grad_norm" and type(default) is int):
        return as_float(value, where, minimum=0.0, strict_min=True)
    if isinstance(default, bool):
        return as_bool(value, where)
    if isinstance(default, int):
        return as_int(value, where)
    if isinstance(default, float):
        return as_float(value, where)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise PresetError(f"{where}: expected text, got {_short(value)}.")
        return value
    raise PresetError(f"{where}: `{name}` cannot be set from a preset.")  # pragma: no cover


@dataclass(frozen=True)
class AgentConfig:
    """One validated preset block for one algorithm (a key of ``ALGORITHMS``).

    ``n_timesteps``, ``eval_freq`` and ``checkpoint_freq`` count env steps summed over envs;
    ``eval_episodes=0`` turns evaluation off; ``normalize=None`` means no VecNormalize; ``env_kwargs``
    go to ``gym.make`` over the env family's; ``frame_stack``/``frame_skip`` override the family's.
    ``policy`` is the policy alias (``CnnPolicy``; ``CnnLstmPolicy`` for ``ppo_lstm``); ``policy_kwargs``
    the typed policy arguments; ``relic`` the auxiliary loss's settings; ``hyperparams`` the SB3
    constructor's arguments (numbers, or :class:`Schedule` / :class:`ActionNoiseSpec` objects)."""

    algo: str
    n_envs: int = 1
    n_timesteps: int = 1_000_000
    policy: str = "CnnPolicy"
    normalize: NormalizeConfig | None = None
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    relic: ReLICConfig = field(default_factory=ReLICConfig)
    eval_freq: int = 10_000
    eval_episodes: int = 5
    checkpoint_freq: int = 50_000
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    frame_stack: int | None = None
    frame_skip: int | None = None
    hyperparams: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the preset layout (algorithm arguments at the top level), without ``algo``."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del data["algo"], data["hyperparams"]
        data["normalize"] = False if self.normalize is None else dataclasses.asdict(self.normalize)
        data["policy_kwargs"] = _plain(self.policy_kwargs, "policy_kwargs")
        data["relic"] = self.relic.to_dict()
        data["env_kwargs"] = _plain(self.env_kwargs, "env_kwargs")
        if self.frame_skip is None:
            del data["frame_skip"]  # so that older saved configs compare equal on resume
        for key, value in sorted(self.hyperparams.items()):
            if isinstance(value, Schedule):
                value = value.to_dict()
            elif isinstance(value, ActionNoiseSpec):
                value = dataclasses.asdict(value)
            data[key] = value
        return data

    def hyperparam(self, name: str) -> Any:
        """The value of an algorithm argument: the preset's, else SB3's default."""
        return self.hyperparams[name] if name in self.hyperparams else algorithm_defaults(self.algo).get(name)

    def algorithm_kwargs(self, action_space: spaces.Space[Any]) -> dict[str, Any]:
        """Keyword arguments for ``ALGORITHMS[algo](policy, env, **kwargs)``, typed values built for SB3."""
        kwargs: dict[str, Any] = {}
        for key, value in self.hyperparams.items():
            if isinstance(value, Schedule):
                value = value.build()
            elif isinstance(value, ActionNoiseSpec):
                value = value.build(action_space)
            elif key == "train_freq" and isinstance(value, list):
                value = (value[0], value[1])
            kwargs[key] = value
        classes: dict[str, Mapping[str, type]] = {"activation_fn": ACTIVATIONS, "optimizer_class": OPTIMIZERS}
        policy_kwargs = {k: classes[k][v] if k in classes else v for k, v in self.policy_kwargs.items()}
        return {**kwargs, "policy_kwargs": policy_kwargs, "relic": self.relic}


def valid_agent_keys(algo: str) -> list[str]:
    """Every key a preset block (or ``--hyperparams``) may set for ``algo``."""
    return sorted([*AGENT_KEYS, *(k for k in algorithm_defaults(algo) if k not in UNSETTABLE_ALGO_KWARGS)])


def _check_algo(algo: str) -> None:
    if algo not in ALGORITHMS:
        raise PresetError(f"Unknown algorithm {algo!r}; choose one of {', '.join(ALGORITHMS)}.")


#: Integer keys of a block and their minimum (``_NULLABLE_INTS`` may be null).
_AGENT_INTS = {"n_envs": 1, "n_timesteps": 1, "eval_freq": 1, "eval_episodes": 0, "checkpoint_freq": 1}
_NULLABLE_INTS = {"frame_stack": 1, "frame_skip": 1}


def parse_agent_config(algo: str, block: Mapping[str, Any], where: str) -> AgentConfig:
    """Validate one preset block (or ``config.yaml``'s ``agent:``), called ``where`` in messages."""
    _check_algo(algo)
    data = as_mapping(block, where)
    defaults = algorithm_defaults(algo)
    check_keys(data, valid_agent_keys(algo), where, algo)
    hyperparams = {
        k: _algo_kwarg(k, v, defaults[k], f"{where}.{k}") for k, v in data.items() if k not in AGENT_KEYS
    }
    image_policy = ALGORITHM_INFO[algo].image_policy
    policy = data.get("policy", image_policy)
    if policy != image_policy:
        raise PresetError(
            f"{where}.policy: relic-rl trains pixel agents with {algo}'s {image_policy} (the ReLIC extractor "
            f"replaces NatureCNN), got {_short(policy)}. Set policy: {image_policy}, or leave it out."
        )
    relic_block = data.get("relic") or {}
    relic = dataclass_from_dict(ReLICConfig, as_mapping(relic_block, f"{where}.relic"), f"{where}.relic")
    ints: dict[str, Any] = {
        k: as_int(data[k], f"{where}.{k}", minimum=low)
        for k, low in {**_AGENT_INTS, **_NULLABLE_INTS}.items()
        if k in data and (data[k] is not None or k in _AGENT_INTS)
    }
    return AgentConfig(
        algo=algo,
        policy=policy,
        normalize=parse_normalize(data.get("normalize"), f"{where}.normalize"),
        policy_kwargs=parse_policy_kwargs(data.get("policy_kwargs"), f"{where}.policy_kwargs", algo),
        relic=relic,
        env_kwargs=_plain_mapping(data.get("env_kwargs") or {}, f"{where}.env_kwargs"),
        hyperparams=hyperparams,
        **ints,
    )


def agent_preset_path(algo: str, directory: str | Path | None = None) -> Path:
    """``agents/<algo>.yaml`` in ``directory`` (default: the shipped folder)."""
    return (Path(directory) if directory is not None else presets_dir("agents")) / f"{algo}.yaml"


def _label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def load_agent_presets(algo: str, directory: str | Path | None = None) -> dict[str, Any]:
    """All blocks of ``agents/<algo>.yaml`` (raw mappings, keyed by env id / ``default`` / ``atari``)."""
    _check_algo(algo)
    path = agent_preset_path(algo, directory)
    presets = load_yaml(path)
    for key, block in presets.items():
        if not isinstance(block, Mapping):
            raise PresetError(f"{_label(path)} [{key}]: expected a mapping, got {_short(block)}.")
    return presets


def select_preset_key(presets: Mapping[str, Any], env_id: str, family: str) -> str | None:
    """The block for ``env_id``: the exact id (``module:`` prefix stripped), then ``atari`` for the
    atari family, then ``default``; None when none exists."""
    bare = strip_module(env_id)
    if bare in presets:
        return bare
    if family == ATARI_FAMILY and ATARI_KEY in presets:
        return ATARI_KEY
    return DEFAULT_KEY if DEFAULT_KEY in presets else None


def select_preset(
    algo: str, env_id: str, family: str, directory: str | Path | None = None, name: str | None = None
) -> tuple[str, dict[str, Any], str]:
    """Find the preset block of ``algo`` for ``env_id``, or the block called ``name`` (``--preset``).

    :return: ``(key, copy of the block, "agents/ppo.yaml [key]")``.
    :raises PresetError: for a missing or malformed file, no matching block, or no block called ``name``.
    """
    presets = load_agent_presets(algo, directory)
    path = agent_preset_path(algo, directory)
    if name is not None and name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PresetError(f"{_label(path)} has no preset {name!r}.{hint} Its presets: {', '.join(presets)}.")
    key = name if name is not None else select_preset_key(presets, env_id, family)
    if key is None:
        raise PresetError(
            f"{path}: no block for {env_id!r} and no `{DEFAULT_KEY}` block to fall back to; add one."
        )
    return key, dict(presets[key]), f"{_label(path)} [{key}]"


_ASSIGNMENT_EXAMPLES = {
    "--hyperparams": "n_steps=512 policy_kwargs.net_arch=[64] relic.temperature=0.2",
    "--env-kwargs": "continuous=False domain_randomize=True",
}


def parse_assignments(items: Sequence[str], flag: str) -> list[tuple[tuple[str, ...], Any]]:
    """Parse ``key=value`` items (``a.b=value`` for nesting; values read with ``yaml.safe_load``)
    into ``(key path, value)`` pairs; ``flag`` names the flag in messages.

    :raises PresetError: for an item without ``=``, an empty key part or invalid YAML.
    """
    parsed: list[tuple[tuple[str, ...], Any]] = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        path = tuple(part.strip() for part in key.split("."))
        if not sep or not key or not all(path):
            example = _ASSIGNMENT_EXAMPLES.get(flag, "n_steps=512 policy_kwargs.net_arch=[64]")
            raise PresetError(f"{flag}: {item!r} is not of the form key=value (e.g. {flag} {example}).")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise PresetError(
                f"{flag}: the value of {key!r} ({text!r}) is not valid YAML: {problem}. Quote text and "
                "write lists as [1, 2] and mappings as {a: 1}."
            ) from None
        parsed.append((path, value))
    return parsed


def apply_overrides(
    block: Mapping[str, Any], overrides: Sequence[tuple[tuple[str, ...], Any]], flag: str
) -> dict[str, Any]:
    """Return a copy of ``block`` with each ``(key path, value)`` set (nested mappings created)."""
    result: dict[str, Any] = _deep_copy(block)
    for path, value in overrides:
        node = result
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                prefix = ".".join(path[: depth + 1])
                raise PresetError(
                    f"{flag}: cannot set {'.'.join(path)} because {prefix} is {_short(child)}, not a "
                    f"mapping; set {prefix}={{...}} instead."
                )
            node = child
        node[path[-1]] = value
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def check_override_keys(algo: str, overrides: Sequence[tuple[tuple[str, ...], Any]], flag: str) -> None:
    """Reject unknown top-level keys in ``--hyperparams`` with the list of valid ones."""
    check_keys({path[0]: None for path, _ in overrides}, valid_agent_keys(algo), flag, algo)
