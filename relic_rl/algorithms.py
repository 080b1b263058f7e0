"""Thin SB3 algorithm subclasses that default to the ReLIC extractor and log ``relic/*``.

``ReLICPPO("CnnPolicy", env, relic=ReLICConfig(...))`` is ``PPO`` with
``features_extractor_class=ReLICExtractor`` and that config, plus metric logging; SAC and TD3 default
to the CURL/DrQ encoder layout of :mod:`relic_rl.policies`. ``train`` calls the parent, then logs.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.logger import Logger
from torch import nn

from relic_rl.config import ReLICConfig
from relic_rl.errors import UserError
from relic_rl.extractor import ReLICExtractor
from relic_rl.policies import (
    ReLICSACCnnPolicy,
    ReLICSACMultiInputPolicy,
    ReLICTD3CnnPolicy,
    ReLICTD3MultiInputPolicy,
    is_actor_loss_call,
)


def relic_policy_kwargs(policy_kwargs: dict[str, Any] | None, relic: ReLICConfig | None) -> dict[str, Any]:
    """A copy of ``policy_kwargs`` with the ReLIC extractor and its config; ``relic=None`` keeps one already
    in ``features_extractor_kwargs``, else uses ``ReLICConfig()``.

    :raises ValueError: for a non-ReLIC extractor class, or a ``relic`` given twice or not a ``ReLICConfig``.
    """
    kwargs = dict(policy_kwargs or {})
    extractor_class = kwargs.setdefault("features_extractor_class", ReLICExtractor)
    if not (isinstance(extractor_class, type) and issubclass(extractor_class, ReLICExtractor)):
        raise ValueError(
            f"features_extractor_class={extractor_class!r} is not a ReLICExtractor subclass; the ReLIC "
            "algorithms need one. Subclass relic_rl.ReLICExtractor, or use the plain SB3 algorithm."
        )
    extractor_kwargs = dict(kwargs.get("features_extractor_kwargs") or {})
    if relic is not None and "config" in extractor_kwargs:
        raise ValueError(
            "The ReLIC config was given twice (relic=... and features_extractor_kwargs['config']); pass one."
        )
    if relic is not None and not isinstance(relic, ReLICConfig):
        raise ValueError(f"relic must be a ReLICConfig, got {type(relic).__name__}: {relic!r}.")
    extractor_kwargs.setdefault("config", relic if relic is not None else ReLICConfig())
    return {**kwargs, "features_extractor_kwargs": extractor_kwargs}


def relic_extractors(policy: nn.Module) -> dict[str, ReLICExtractor]:
    """The trainable ReLIC extractors of a policy by module path (no ``*_target``; shared ones once)."""
    return {
        name: module
        for name, module in policy.named_modules()
        if isinstance(module, ReLICExtractor) and "_target" not in name
    }


def configure_relic(policy: nn.Module) -> None:
    """CURL convention for SAC/TD3 policies with separate actor and critic extractors: the auxiliary loss
    trains the critic's only (a shared one trains through the actor's optimizer, as SB3 does)."""
    actor = getattr(policy, "actor", None)
    critic = getattr(policy, "critic", None)
    if actor is None or critic is None or getattr(policy, "share_features_extractor", True):
        return
    for owner in (actor, getattr(policy, "actor_target", None)):
        extractor = getattr(owner, "features_extractor", None)
        if isinstance(extractor, ReLICExtractor) and extractor is not critic.features_extractor:
            extractor.aux_enabled = False
    hooked = hasattr(critic, "_relic_actor_loss_guard")
    if isinstance(critic.features_extractor, ReLICExtractor) and not hooked:
        # The actor loss calls the critic on actions with gradient; an auxiliary gradient there would
        # reach only critic gradients SB3 discards, so the hooks skip it. Module-level functions, so
        # that a deep copy switches its own extractor and the policy pickles.
        critic.register_forward_pre_hook(_actor_call_pre_hook)
        critic.register_forward_hook(_actor_call_post_hook, always_call=True)
        critic._relic_actor_loss_guard = True


def _actor_call_pre_hook(critic: nn.Module, args: tuple[Any, ...]) -> None:
    """Before a critic call on actions with gradient (the actor loss): aux off, saved state kept."""
    extractor = critic.features_extractor
    if is_actor_loss_call(args) and isinstance(extractor, ReLICExtractor):
        critic._relic_saved_aux = extractor.aux_enabled  # type: ignore[assignment]
        extractor.aux_enabled = False


def _actor_call_post_hook(critic: nn.Module, args: tuple[Any, ...], output: Any) -> None:
    """After the call (also when it raised): the extractor's switch as it was."""
    saved = critic.__dict__.pop("_relic_saved_aux", None)
    extractor = critic.features_extractor
    if saved is not None and isinstance(extractor, ReLICExtractor):
        extractor.aux_enabled = saved


def record_relic_metrics(policy: nn.Module, logger: Logger) -> dict[str, float]:
    """Pop the active extractors' metrics, ``record_mean`` and return them: ``relic/<metric>`` with one
    active extractor, ``relic/<module path>/<metric>`` with several."""
    active = {name: ext for name, ext in relic_extractors(policy).items() if ext.aux_enabled}
    recorded: dict[str, float] = {}
    for name, extractor in active.items():
        prefix = "relic/" if len(active) == 1 else f"relic/{name}/"
        for key, value in extractor.pop_metrics().items():
            recorded[prefix + key] = value
            logger.record_mean(prefix + key, value)
    return recorded


class _ReLICMixin:
    """Shared behaviour of the ``ReLIC*`` algorithm classes."""

    #: net_arch SB3's CnnPolicy uses after NatureCNN for this algorithm ([]: no MLP; None: SB3's default).
    _nature_net_arch: list[int] | None = []
    #: Policy names that get the ReLIC extractor; the first is the image policy (CnnPolicy).
    _relic_policies: tuple[str, ...] = ("CnnPolicy", "MultiInputPolicy")
    policy: Any  # set by SB3's algorithm class

    def __init__(self, policy: Any = "CnnPolicy", env: Any = None, *args: Any, **kwargs: Any) -> None:
        relic = kwargs.pop("relic", None)
        # SB3's load() re-creates the model with the policy class and its saved kwargs.
        if kwargs.get("_init_setup_model", True) and policy in self._relic_policies:
            policy_kwargs = relic_policy_kwargs(kwargs.get("policy_kwargs"), relic)
            if policy == self._relic_policies[0] and self._nature_net_arch is not None:
                # SB3 drops the MLP after NatureCNN only when it sees NatureCNN itself.
                policy_kwargs.setdefault("net_arch", list(self._nature_net_arch))
            kwargs["policy_kwargs"] = policy_kwargs
        elif relic is not None:
            raise ValueError(
                f"relic=... only applies to policy={' or '.join(map(repr, self._relic_policies))} "
                f"(got {policy!r}); pass the config through policy_kwargs=dict(features_extractor_class="
                "ReLICExtractor, features_extractor_kwargs=dict(config=...)) instead."
            )
        super().__init__(policy, env, *args, **kwargs)  # type: ignore[call-arg]

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        configure_relic(self.policy)

    def train(self, *args: Any, **kwargs: Any) -> None:
        super().train(*args, **kwargs)  # type: ignore[misc]
        record_relic_metrics(self.policy, self.logger)  # type: ignore[attr-defined]

    @property
    def relic_config(self) -> ReLICConfig | None:
        """The config of the (first) ReLIC extractor, or None when the policy has none."""
        return next((e.config for e in relic_extractors(self.policy).values()), None)


class ReLICPPO(_ReLICMixin, PPO):
    """PPO with the ReLIC auxiliary loss (``relic=ReLICConfig(...)``)."""


class ReLICA2C(_ReLICMixin, A2C):
    """A2C with the ReLIC auxiliary loss (``relic=ReLICConfig(...)``)."""


class ReLICDQN(_ReLICMixin, DQN):
    """DQN with the ReLIC auxiliary loss (``relic=ReLICConfig(...)``)."""


class ReLICSAC(_ReLICMixin, SAC):
    """SAC with the ReLIC auxiliary loss; ``policy_kwargs=dict(encoder_mode=...)``: ``"critic"`` (default,
    CURL/DrQ), ``"separate"`` or ``"shared"`` (see :mod:`relic_rl.policies`)."""

    _nature_net_arch = None
    policy_aliases = {
        **SAC.policy_aliases,
        "CnnPolicy": ReLICSACCnnPolicy,
        "MultiInputPolicy": ReLICSACMultiInputPolicy,
    }


class ReLICTD3(_ReLICMixin, TD3):
    """TD3 with the ReLIC auxiliary loss; encoder layouts as for :class:`ReLICSAC`."""

    _nature_net_arch = [256, 256]
    policy_aliases = {
        **TD3.policy_aliases,
        "CnnPolicy": ReLICTD3CnnPolicy,
        "MultiInputPolicy": ReLICTD3MultiInputPolicy,
    }


@dataclass(frozen=True)
class AlgorithmInfo:
    """What relic-rl needs to know about an algorithm of :data:`ALGORITHMS`.

    :param path: ``module:Class`` of the ReLIC algorithm class, imported on first use.
    :param image_policy: the policy alias presets use.
    :param on_policy: collects rollouts of ``n_envs x n_steps`` and then updates.
    :param actions: the action spaces it acts in: ``any``, ``discrete`` or ``box``.
    :param heads: the keys of a ``net_arch`` mapping, or None when ``net_arch`` is a list.
    :param extra: the pip extra that provides it, or None.
    """

    path: str
    image_policy: str = "CnnPolicy"
    on_policy: bool = False
    actions: str = "any"
    heads: tuple[str, ...] | None = None
    extra: str | None = None


#: The algorithms of ``--algo``, by name (rl-zoo3's names).
ALGORITHM_INFO: dict[str, AlgorithmInfo] = {
    "ppo": AlgorithmInfo(f"{__name__}:ReLICPPO", on_policy=True, heads=("pi", "vf")),
    "a2c": AlgorithmInfo(f"{__name__}:ReLICA2C", on_policy=True, heads=("pi", "vf")),
    "dqn": AlgorithmInfo(f"{__name__}:ReLICDQN", actions="discrete"),
    "sac": AlgorithmInfo(f"{__name__}:ReLICSAC", actions="box", heads=("pi", "qf")),
    "td3": AlgorithmInfo(f"{__name__}:ReLICTD3", actions="box", heads=("pi", "qf")),
    "qrdqn": AlgorithmInfo("relic_rl.contrib:ReLICQRDQN", actions="discrete", extra="contrib"),
    "tqc": AlgorithmInfo("relic_rl.contrib:ReLICTQC", actions="box", heads=("pi", "qf"), extra="contrib"),
    "ppo_lstm": AlgorithmInfo(
        "relic_rl.contrib:ReLICRecurrentPPO",
        image_policy="CnnLstmPolicy",
        on_policy=True,
        heads=("pi", "vf"),
        extra="contrib",
    ),
}


class MissingExtraError(UserError, ImportError):
    """An algorithm whose package is not installed; the message names the pip extra."""


class _AlgorithmTable(Mapping[str, type]):
    """``name -> ReLIC algorithm class``, importing on first use; every name is listed, and looking up
    one whose package is missing raises :class:`MissingExtraError`."""

    def __getitem__(self, name: str) -> type:
        info = ALGORITHM_INFO[name]
        module_name, class_name = info.path.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise MissingExtraError(
                f"--algo {name} needs the packages of relic-rl's {info.extra or 'all'} extra, which are not "
                f'installed ({e}). Install them with: pip install "relic-rl[{info.extra or "all"}]".'
            ) from None
        return getattr(module, class_name)

    def __contains__(self, name: object) -> bool:
        return name in ALGORITHM_INFO

    def __iter__(self) -> Iterator[str]:
        return iter(ALGORITHM_INFO)

    def __len__(self) -> int:
        return len(ALGORITHM_INFO)

    def __repr__(self) -> str:
        return f"ALGORITHMS({', '.join(ALGORITHM_INFO)})"


#: ``--algo`` name -> ReLIC algorithm class (the sb3-contrib ones imported on first use).
ALGORITHMS: Mapping[str, type] = _AlgorithmTable()


def __getattr__(name: str) -> Any:
    # Imported on use, avoiding the cycle callbacks -> runs -> algorithms.
    if name == "ReLICCallback":
        from relic_rl.callbacks import ReLICCallback

        return ReLICCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
