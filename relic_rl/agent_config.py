"""Typed agent presets: ``agents/<algo>.yaml`` blocks, ``--hyperparams`` overrides, SB3 kwargs.

An agent preset file maps env ids to blocks of hyperparameters (the rl-zoo3 convention)::

    CarRacing-v2:            # exact env id (a ``module:`` prefix is ignored for lookup)
      n_envs: 8
      learning_rate: {schedule: linear, initial: 1.0e-4}
      policy_kwargs: {net_arch: {pi: [256], vf: [256]}, activation_fn: gelu}
      relic: {aux_weight: 0.1}
    atari: {...}             # fallback for env ids of the atari env family
    default: {...}           # fallback for everything else

:func:`select_preset` picks a block; :func:`parse_agent_config` turns it into a validated,
frozen :class:`AgentConfig`; :meth:`AgentConfig.to_dict` gives back plain data that is itself
a valid block (so ``config.yaml``'s ``agent:`` mapping can be pasted into a preset file), and
:meth:`AgentConfig.algorithm_kwargs` builds the keyword arguments of the SB3 constructor.

Nothing is ever evaluated: schedules, activations and optimizers are written in typed forms
(``{schedule: linear, initial: 3.0e-4}``, ``gelu``, ``adam``) and mapped through whitelists.
Every problem raises :class:`~relic_rl.presets.PresetError` naming the key and, for unknown
keys, listing the valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
from relic_rl.policies import ENCODER_MODES
from relic_rl.presets import PresetError, as_number, dataclass_from_dict, load_yaml, presets_dir

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

#: Algorithm constructor arguments that the CLI sets itself (flags or run folder), never a preset.
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
    "n_envs",
    "n_timesteps",
    "policy",
    "normalize",
    "policy_kwargs",
    "relic",
    "eval_freq",
    "eval_episodes",
    "checkpoint_freq",
    "env_kwargs",
    "frame_stack",
    "frame_skip",
)


#: Value ranges of algorithm arguments, checked before training starts (SB3 accepts e.g.
#: ``gamma=1.5`` and the run diverges minutes later): name -> (low, high, low included,
#: high included); None is unbounded. Schedules are checked at their initial value.
HYPERPARAM_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "gamma": (0.0, 1.0, True, True),
    "gae_lambda": (0.0, 1.0, True, True),
    "tau": (0.0, 1.0, False, True),
    "learning_rate": (0.0, None, False, False),
    "clip_range": (0.0, None, False, False),
    "clip_range_vf": (0.0, None, False, False),
    "vf_coef": (0.0, None, True, False),
    "ent_coef": (0.0, None, True, False),
    "n_steps": (1, None, True, False),
    "batch_size": (1, None, True, False),
    "n_epochs": (1, None, True, False),
    "buffer_size": (1, None, True, False),
    "learning_starts": (0, None, True, False),
    "target_update_interval": (1, None, True, False),
    "exploration_fraction": (0.0, 1.0, True, True),
    "exploration_initial_eps": (0.0, 1.0, True, True),
    "exploration_final_eps": (0.0, 1.0, True, True),
    "policy_delay": (1, None, True, False),
    "target_policy_noise": (0.0, None, True, False),
    "target_noise_clip": (0.0, None, True, False),
    "sde_sample_freq": (-1, None, True, False),
}


def check_range(name: str, value: float, where: str) -> None:
    """PresetError unless ``value`` lies in ``HYPERPARAM_RANGES[name]`` (unknown names pass)."""
    bounds = HYPERPARAM_RANGES.get(name)
    if bounds is None:
        return
    low, high, low_in, high_in = bounds
    too_low = low is not None and (value < low or (value == low and not low_in))
    too_high = high is not None and (value > high or (value == high and not high_in))
    if too_low or too_high:
        left = "(-inf" if low is None else f"{'[' if low_in else '('}{low:g}"
        right = "inf)" if high is None else f"{high:g}{']' if high_in else ')'}"
        raise PresetError(f"{where}: must lie in {left}, {right}, got {value:g}.")


# ----------------------------------------------------------------------------- scalar checks
def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_float(value: Any, where: str, *, minimum: float | None = None, strict_min: bool = False) -> float:
    """A finite float from ``value`` or a :class:`PresetError` naming ``where``."""
    number = as_number(value)
    if number is None or not math.isfinite(number):
        raise PresetError(f"{where}: expected a finite number, got {_short(value)}.")
    if minimum is not None and (number < minimum or (strict_min and number == minimum)):
        relation = ">" if strict_min else ">="
        raise PresetError(f"{where}: must be {relation} {minimum:g}, got {number:g}.")
    return number


def as_int(value: Any, where: str, *, minimum: int | None = None) -> int:
    """An int from an int, an integral float (``4.0e6``) or a numeric string; else PresetError."""
    number = as_number(value)
    if number is None or not math.isfinite(number) or not number.is_integer():
        raise PresetError(f"{where}: expected an integer, got {_short(value)}.")
    result = int(number)
    if minimum is not None and result < minimum:
        raise PresetError(f"{where}: must be >= {minimum}, got {result}.")
    return result


def as_bool(value: Any, where: str) -> bool:
    """``value`` if it is a bool; else PresetError (``"true"`` in quotes is text, not a bool)."""
    if not isinstance(value, bool):
        raise PresetError(f"{where}: expected true or false, got {_short(value)}.")
    return value


def as_mapping(value: Any, where: str) -> dict[str, Any]:
    """A copy of a mapping with string keys; else PresetError."""
    if not isinstance(value, Mapping):
        raise PresetError(f"{where}: expected a mapping of `key: value` entries, got {_short(value)}.")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise PresetError(f"{where}: keys must be strings, got {bad!r}.")
    return dict(value)


def _plain(value: Any, where: str) -> Any:
    """Check that ``value`` is plain YAML data (scalars, lists, string-keyed mappings)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{where}.{k}") for k, v in as_mapping(value, where).items()}
    raise PresetError(f"{where}: expected plain data (numbers, text, lists, mappings), got {_short(value)}.")


def _check_keys(data: Mapping[str, Any], valid: Sequence[str], where: str, what: str) -> None:
    unknown = [k for k in data if k not in valid]
    if unknown:
        listing = ", ".join(repr(k) for k in unknown)
        raise PresetError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {listing} for {what}. "
            f"Valid keys: {', '.join(sorted(valid))}."
        )


# ----------------------------------------------------------------------------- schedules
@dataclass(frozen=True)
class Schedule:
    """A typed schedule: ``{schedule: linear, initial: x[, final: y]}`` or ``{schedule: constant, value: x}``.

    SB3 calls schedules with ``progress_remaining``, going from 1 at the start of training to
    0 at the end; ``linear`` goes from ``initial`` to ``final`` (default 0, as rl-zoo3's
    ``lin_<x>``) over the whole run.

    :param kind: ``"linear"`` or ``"constant"``.
    :param initial: value at the start (the constant's value).
    :param final: value at the end (linear only).
    """

    kind: Literal["linear", "constant"]
    initial: float
    final: float = 0.0

    @classmethod
    def parse(cls, value: Any, where: str) -> Schedule:
        """Read the mapping form; every problem raises PresetError."""
        data = as_mapping(value, where)
        kind = data.get("schedule")
        if kind == "linear":
            _check_keys(data, ("schedule", "initial", "final"), where, "a linear schedule")
            if "initial" not in data:
                raise PresetError(
                    f"{where}: a linear schedule needs `initial`, e.g. {{schedule: linear, initial: 3.0e-4}}."
                )
            return cls(
                "linear",
                as_float(data["initial"], f"{where}.initial"),
                as_float(data.get("final", 0.0), f"{where}.final"),
            )
        if kind == "constant":
            _check_keys(data, ("schedule", "value"), where, "a constant schedule")
            if "value" not in data:
                raise PresetError(
                    f"{where}: a constant schedule needs `value`, e.g. {{schedule: constant, value: 0.2}}."
                )
            value_ = as_float(data["value"], f"{where}.value")
            return cls("constant", value_, value_)
        raise PresetError(
            f"{where}: `schedule` must be `linear` or `constant`, got {_short(kind)}. Write e.g. "
            "{schedule: linear, initial: 3.0e-4} or {schedule: constant, value: 0.2}."
        )

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


def _number_or_schedule(value: Any, where: str, *, positive: bool) -> float | Schedule:
    if isinstance(value, Mapping):
        schedule = Schedule.parse(value, where)
        if positive and min(schedule.initial, schedule.final) < 0:
            raise PresetError(f"{where}: schedule values must be >= 0, got {schedule.to_dict()}.")
        return schedule
    if isinstance(value, str) and value.strip().startswith("lin_"):
        raise PresetError(
            f"{where}: {value!r} is rl-zoo3's string form, which relic-rl does not evaluate; write "
            f"{{schedule: linear, initial: {value.strip()[4:]}}} instead."
        )
    try:
        return as_float(value, where, minimum=0.0 if positive else None)
    except PresetError:
        raise PresetError(
            f"{where}: expected a number or a schedule such as {{schedule: linear, initial: 3.0e-4}}, "
            f"got {_short(value)}."
        ) from None


# ----------------------------------------------------------------------------- other typed values
@dataclass(frozen=True)
class NormalizeConfig:
    """Settings of SB3's ``VecNormalize`` for the training env (pixels are never normalised).

    :param norm_obs: must stay false: image observations are scaled to [0, 1] by the policy,
        and normalised images would no longer be images to SB3.
    :param norm_reward: scale rewards by a running estimate of the return's std (rl-zoo3's
        CarRacing preset does this).
    :param clip_obs: VecNormalize's observation clip.
    :param clip_reward: VecNormalize's reward clip.
    """

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
    """Exploration noise for TD3/SAC: ``{type: normal, sigma: 0.1}`` (rl-zoo3's ``noise_type``).

    :param type: ``"normal"`` or ``"ornstein_uhlenbeck"``.
    :param sigma: standard deviation, in units of the (normalised to [-1, 1]) action.
    :param theta: rate of mean reversion (Ornstein-Uhlenbeck only).
    """

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


NetArch = list[int] | dict[str, list[int]]


def _int_list(value: Any, where: str) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise PresetError(f"{where}: expected a list of layer sizes such as [256, 256], got {_short(value)}.")
    return [as_int(v, f"{where}[{i}]", minimum=1) for i, v in enumerate(value)]


def _net_arch(value: Any, where: str, algo: str) -> NetArch:
    """``[64, 64]`` (shared or single network), or ``{pi: [...], vf: [...]}`` / ``{pi, qf}``."""
    if isinstance(value, Mapping):
        heads = ALGORITHM_INFO[algo].heads
        if heads is None:
            raise PresetError(f"{where}: {algo} takes a list of layer sizes, e.g. [256], not a mapping.")
        data = as_mapping(value, where)
        _check_keys(data, heads, where, f"{algo}'s net_arch")
        return {k: _int_list(v, f"{where}.{k}") for k, v in data.items()}
    return _int_list(value, where)


def _choice(table: Mapping[str, Any], value: Any, where: str) -> str:
    if not isinstance(value, str) or value.lower() not in table:
        raise PresetError(f"{where}: expected one of {', '.join(table)}, got {_short(value)}.")
    return value.lower()


#: Typed ``policy_kwargs`` entries; a key is valid for an algorithm when its CnnPolicy accepts it.
_POLICY_KWARGS: dict[str, Callable[[Any, str, str], Any]] = {
    "net_arch": lambda v, w, algo: _net_arch(v, w, algo),
    "activation_fn": lambda v, w, algo: _choice(ACTIVATIONS, v, w),
    "ortho_init": lambda v, w, algo: as_bool(v, w),
    "log_std_init": lambda v, w, algo: as_float(v, w),
    "full_std": lambda v, w, algo: as_bool(v, w),
    "use_expln": lambda v, w, algo: as_bool(v, w),
    "squash_output": lambda v, w, algo: as_bool(v, w),
    "clip_mean": lambda v, w, algo: as_float(v, w, minimum=0.0, strict_min=True),
    "share_features_extractor": lambda v, w, algo: as_bool(v, w),
    "encoder_mode": lambda v, w, algo: _choice(dict.fromkeys(ENCODER_MODES), v, w),
    "normalize_images": lambda v, w, algo: as_bool(v, w),
    "n_critics": lambda v, w, algo: as_int(v, w, minimum=1),
    "n_quantiles": lambda v, w, algo: as_int(v, w, minimum=1),
    "lstm_hidden_size": lambda v, w, algo: as_int(v, w, minimum=1),
    "n_lstm_layers": lambda v, w, algo: as_int(v, w, minimum=1),
    "shared_lstm": lambda v, w, algo: as_bool(v, w),
    "enable_critic_lstm": lambda v, w, algo: as_bool(v, w),
    "optimizer_class": lambda v, w, algo: _choice(OPTIMIZERS, v, w),
    "optimizer_kwargs": lambda v, w, algo: _plain(as_mapping(v, w), w),
    "features_extractor_kwargs": lambda v, w, algo: _extractor_kwargs(v, w),
}

_RESERVED_POLICY_KWARGS = {
    "features_extractor_class": "use --extractor module:Class",
    "use_sde": "set use_sde at the top level of the preset (it is an algorithm argument)",
    "lr_schedule": "set learning_rate at the top level of the preset",
    "observation_space": "",
    "action_space": "",
}


def _extractor_kwargs(value: Any, where: str) -> dict[str, Any]:
    data = _plain(as_mapping(value, where), where)
    if "config" in data:
        raise PresetError(f"{where}.config: the ReLIC config is the preset's `relic:` block; set it there.")
    return data


def policy_class(algo: str) -> type:
    """The image policy class of ``algo`` (SB3's CnnPolicy, RecurrentPPO's CnnLstmPolicy)."""
    policy: type = ALGORITHMS[algo].policy_aliases[ALGORITHM_INFO[algo].image_policy]  # type: ignore[attr-defined]
    return policy


def valid_policy_kwargs(algo: str) -> list[str]:
    """The ``policy_kwargs`` keys a preset may set for ``algo``."""
    accepted = inspect.signature(policy_class(algo)).parameters
    return sorted(k for k in _POLICY_KWARGS if k in accepted)


def parse_policy_kwargs(value: Any, where: str, algo: str) -> dict[str, Any]:
    """Validate a ``policy_kwargs`` mapping (plain data, as written in the preset)."""
    if value is None:
        return {}
    data = as_mapping(value, where)
    for key in data:
        if _RESERVED_POLICY_KWARGS.get(key):
            raise PresetError(
                f"{where}.{key} cannot be set in policy_kwargs: {_RESERVED_POLICY_KWARGS[key]}."
            )
    valid = valid_policy_kwargs(algo)
    _check_keys(data, valid, where, f"the {algo} {ALGORITHM_INFO[algo].image_policy}")
    return {k: _POLICY_KWARGS[k](v, f"{where}.{k}", algo) for k, v in data.items()}


# ----------------------------------------------------------------------------- algorithm kwargs
def sb3_base_class(algo: str) -> type:
    """The SB3 class whose constructor defines ``algo``'s arguments (ReLIC classes take ``**kwargs``)."""
    for cls in ALGORITHMS[algo].__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return cls
    raise TypeError(f"Cannot find the constructor signature of {ALGORITHMS[algo]!r}.")  # pragma: no cover


def algorithm_defaults(algo: str) -> dict[str, Any]:
    """The SB3 constructor's settable arguments of ``algo`` and their defaults."""
    params = inspect.signature(sb3_base_class(algo)).parameters
    return {
        name: p.default
        for name, p in params.items()
        if name not in RESERVED_ALGO_KWARGS and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


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
    """Check one algorithm argument: its type follows SB3's default value, its range
    :data:`HYPERPARAM_RANGES`."""
    checked = _typed_algo_kwarg(name, value, default, where)
    initial = checked.initial if isinstance(checked, Schedule) else checked
    if isinstance(initial, (int, float)) and not isinstance(initial, bool):
        check_range(name, float(initial), where)
    return checked


def _typed_algo_kwarg(name: str, value: Any, default: Any, where: str) -> Any:
    if name in SCHEDULE_KWARGS:
        if value is None and default is None:
            return None
        return _number_or_schedule(value, where, positive=True)
    if name == "train_freq":
        return _train_freq(value, where)
    if name in ("ent_coef", "target_entropy") and isinstance(default, str):
        return _auto_or_float(value, where)
    if name == "action_noise":
        if value is None:
            return None
        return dataclass_from_dict(ActionNoiseSpec, as_mapping(value, where), where)
    if name in UNSETTABLE_ALGO_KWARGS:
        raise PresetError(f"{where}: `{name}` takes a Python class and cannot be set from a preset.")
    if name.endswith("_kwargs"):
        return None if value is None else _plain(as_mapping(value, where), where)
    if name == "target_kl":
        return None if value is None else as_float(value, where, minimum=0.0, strict_min=True)
    if isinstance(default, bool):
        return as_bool(value, where)
    if isinstance(default, int):
        if name == "max_grad_norm":  # DQN's default is the int 10, but any positive number is fine
            return as_float(value, where, minimum=0.0, strict_min=True)
        return as_int(value, where)
    if isinstance(default, float):
        return as_float(value, where)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise PresetError(f"{where}: expected text, got {_short(value)}.")
        return value
    raise PresetError(f"{where}: `{name}` cannot be set from a preset.")  # pragma: no cover


def _algo_kwarg_to_plain(value: Any) -> Any:
    if isinstance(value, Schedule):
        return value.to_dict()
    if isinstance(value, ActionNoiseSpec):
        return dataclasses.asdict(value)
    return value


# ----------------------------------------------------------------------------- the config
@dataclass(frozen=True)
class AgentConfig:
    """One resolved, validated preset block for one algorithm.

    :param algo: a name of :data:`relic_rl.algorithms.ALGORITHMS` (``ppo``, ``sac``, ``qrdqn``, ...).
    :param n_envs: number of parallel training envs.
    :param n_timesteps: training budget in env steps (summed over envs).
    :param policy: policy alias: the algorithm's image policy (``CnnPolicy``; ``CnnLstmPolicy``
        for ``ppo_lstm``).
    :param normalize: VecNormalize settings, or None for no normalisation.
    :param policy_kwargs: typed policy keyword arguments (plain data, see :func:`parse_policy_kwargs`).
    :param relic: the ReLIC auxiliary loss settings.
    :param eval_freq: evaluate every this many env steps (summed over envs).
    :param eval_episodes: episodes per evaluation (0 turns evaluation off).
    :param checkpoint_freq: checkpoint every this many env steps (summed over envs).
    :param env_kwargs: keyword arguments for ``gym.make`` (over the env family's).
    :param frame_stack: override of the env family's frame stack, or None.
    :param frame_skip: override of the env family's frame skip (action repeat), or None. Like
        rl-zoo3, which keeps its FrameSkip wrapper in the hyperparameters, a preset tuned for a
        budget of env frames may choose its own action repeat.
    :param hyperparams: arguments of the SB3 algorithm's constructor (numbers, or typed values:
        :class:`Schedule`, :class:`ActionNoiseSpec`).
    """

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
        data: dict[str, Any] = {
            "n_envs": self.n_envs,
            "n_timesteps": self.n_timesteps,
            "policy": self.policy,
            "normalize": False if self.normalize is None else dataclasses.asdict(self.normalize),
            "policy_kwargs": _plain(self.policy_kwargs, "policy_kwargs"),
            "relic": self.relic.to_dict(),
            "eval_freq": self.eval_freq,
            "eval_episodes": self.eval_episodes,
            "checkpoint_freq": self.checkpoint_freq,
            "env_kwargs": _plain(self.env_kwargs, "env_kwargs"),
            "frame_stack": self.frame_stack,
        }
        if self.frame_skip is not None:
            # Only when set, so that configs saved before this key existed compare equal (resume).
            data["frame_skip"] = self.frame_skip
        for key in sorted(self.hyperparams):
            data[key] = _algo_kwarg_to_plain(self.hyperparams[key])
        return data

    def hyperparam(self, name: str) -> Any:
        """The value of an algorithm argument: the preset's, else SB3's default."""
        if name in self.hyperparams:
            return self.hyperparams[name]
        return algorithm_defaults(self.algo).get(name)

    def algorithm_kwargs(self, action_space: spaces.Space[Any]) -> dict[str, Any]:
        """Keyword arguments for ``ALGORITHMS[algo](policy, env, **kwargs)`` (without env/seed/device).

        Schedules become SB3 schedule objects, ``train_freq`` lists tuples, ``action_noise`` a
        noise object for ``action_space``, and ``policy_kwargs`` names become classes.
        """
        kwargs: dict[str, Any] = {}
        for key, value in self.hyperparams.items():
            if isinstance(value, Schedule):
                value = value.build()
            elif isinstance(value, ActionNoiseSpec):
                value = value.build(action_space)
            elif key == "train_freq" and isinstance(value, list):
                value = (value[0], value[1])
            kwargs[key] = value
        policy_kwargs = dict(self.policy_kwargs)
        if "activation_fn" in policy_kwargs:
            policy_kwargs["activation_fn"] = ACTIVATIONS[policy_kwargs["activation_fn"]]
        if "optimizer_class" in policy_kwargs:
            policy_kwargs["optimizer_class"] = OPTIMIZERS[policy_kwargs["optimizer_class"]]
        kwargs["policy_kwargs"] = policy_kwargs
        kwargs["relic"] = self.relic
        return kwargs


def valid_agent_keys(algo: str) -> list[str]:
    """Every key a preset block (or ``--hyperparams``) may set for ``algo``."""
    return sorted([*AGENT_KEYS, *(k for k in algorithm_defaults(algo) if k not in UNSETTABLE_ALGO_KWARGS)])


def parse_agent_config(algo: str, block: Mapping[str, Any], where: str) -> AgentConfig:
    """Validate one preset block (or ``config.yaml``'s ``agent:``) into an :class:`AgentConfig`.

    :param algo: the algorithm the block is for.
    :param block: the mapping.
    :param where: where it came from, for messages (``"agents/ppo.yaml [CarRacing-v2]"``).
    :raises PresetError: on unknown keys (listing the valid ones) or bad values.
    """
    if algo not in ALGORITHMS:
        raise PresetError(f"Unknown algorithm {algo!r}; choose one of {', '.join(ALGORITHMS)}.")
    data = as_mapping(block, where)
    defaults = algorithm_defaults(algo)
    _check_keys(data, valid_agent_keys(algo), where, algo)
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
    frame_stack = data.get("frame_stack")
    frame_skip = data.get("frame_skip")
    config = AgentConfig(
        algo=algo,
        n_envs=as_int(data.get("n_envs", 1), f"{where}.n_envs", minimum=1),
        n_timesteps=as_int(data.get("n_timesteps", 1_000_000), f"{where}.n_timesteps", minimum=1),
        policy=policy,
        normalize=parse_normalize(data.get("normalize"), f"{where}.normalize"),
        policy_kwargs=parse_policy_kwargs(data.get("policy_kwargs"), f"{where}.policy_kwargs", algo),
        relic=relic,
        eval_freq=as_int(data.get("eval_freq", 10_000), f"{where}.eval_freq", minimum=1),
        eval_episodes=as_int(data.get("eval_episodes", 5), f"{where}.eval_episodes", minimum=0),
        checkpoint_freq=as_int(data.get("checkpoint_freq", 50_000), f"{where}.checkpoint_freq", minimum=1),
        env_kwargs=_plain(
            as_mapping(data.get("env_kwargs") or {}, f"{where}.env_kwargs"), f"{where}.env_kwargs"
        ),
        frame_stack=None if frame_stack is None else as_int(frame_stack, f"{where}.frame_stack", minimum=1),
        frame_skip=None if frame_skip is None else as_int(frame_skip, f"{where}.frame_skip", minimum=1),
        hyperparams=hyperparams,
    )
    return config


# ----------------------------------------------------------------------------- preset files
def agent_preset_path(algo: str, directory: str | Path | None = None) -> Path:
    """``agents/<algo>.yaml`` in ``directory`` (default: the shipped folder)."""
    folder = Path(directory) if directory is not None else presets_dir("agents")
    return folder / f"{algo}.yaml"


def load_agent_presets(algo: str, directory: str | Path | None = None) -> dict[str, Any]:
    """All blocks of ``agents/<algo>.yaml`` (raw mappings, keyed by env id / ``default`` / ``atari``)."""
    if algo not in ALGORITHMS:
        raise PresetError(f"Unknown algorithm {algo!r}; choose one of {', '.join(ALGORITHMS)}.")
    path = agent_preset_path(algo, directory)
    presets = load_yaml(path)
    for key, block in presets.items():
        if not isinstance(block, Mapping):
            raise PresetError(
                f"{path.parent.name}/{path.name} [{key}]: expected a mapping, got {_short(block)}."
            )
    return presets


def select_preset_key(presets: Mapping[str, Any], env_id: str, family: str) -> str | None:
    """The block for ``env_id``: the exact id (``module:`` prefix stripped), then ``atari`` for the
    atari family, then ``default``; None when none exists."""
    bare = env_id.split(":", 1)[1] if ":" in env_id else env_id
    if bare in presets:
        return bare
    if family == ATARI_FAMILY and ATARI_KEY in presets:
        return ATARI_KEY
    if DEFAULT_KEY in presets:
        return DEFAULT_KEY
    return None


def select_preset(
    algo: str, env_id: str, family: str, directory: str | Path | None = None, name: str | None = None
) -> tuple[str, dict[str, Any], str]:
    """Find the preset block of ``algo`` for ``env_id``, or the block called ``name``.

    :param name: a block key of ``agents/<algo>.yaml`` (``--preset``), e.g. ``CarRacing-v2-rl-zoo3``;
        ``None`` looks the block up by env id.
    :return: ``(key, block, where)``: the block's key, a copy of it, and ``"agents/ppo.yaml [key]"``.
    :raises PresetError: if the file is missing or malformed, it has no matching block, or no
        block called ``name``.
    """
    presets = load_agent_presets(algo, directory)
    path = agent_preset_path(algo, directory)
    if name is not None and name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PresetError(
            f"{path.parent.name}/{path.name} has no preset {name!r}.{hint} Its presets: {', '.join(presets)}."
        )
    key = name if name is not None else select_preset_key(presets, env_id, family)
    if key is None:
        raise PresetError(
            f"{path}: no block for {env_id!r} and no `{DEFAULT_KEY}` block to fall back to; add one."
        )
    return key, dict(presets[key]), f"{path.parent.name}/{path.name} [{key}]"


# ----------------------------------------------------------------------------- overrides
#: Examples for the key=value flags' messages.
_ASSIGNMENT_EXAMPLES = {
    "--hyperparams": "n_steps=512 policy_kwargs.net_arch=[64] relic.temperature=0.2",
    "--env-kwargs": "continuous=False domain_randomize=True",
}


def parse_assignments(items: Sequence[str], flag: str) -> list[tuple[tuple[str, ...], Any]]:
    """Parse ``key=value`` items (``a.b=value`` for nesting); values with ``yaml.safe_load``.

    ``n_steps=64`` gives 64, ``use_sde=false`` False, ``net_arch=[64, 64]`` a list and
    ``learning_rate={schedule: linear, initial: 3e-4}`` a mapping. Nothing is evaluated.

    :param items: the strings after the flag.
    :param flag: the flag's name, for messages.
    :return: ``(key path, value)`` pairs in order.
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
    _check_keys({path[0]: None for path, _ in overrides}, valid_agent_keys(algo), flag, algo)
