"""Thin SB3 algorithm subclasses that default to the ReLIC extractor and log ``relic/*``.

``ReLICPPO("CnnPolicy", env, relic=ReLICConfig(...))`` is the same as
``PPO("CnnPolicy", env, policy_kwargs=dict(features_extractor_class=ReLICExtractor,
features_extractor_kwargs=dict(config=ReLICConfig(...))))`` plus metric logging, and, for
SAC and TD3, the CURL/DrQ encoder layout by default (:mod:`relic_rl.policies`): one encoder
trained by the critic and auxiliary losses, read detached by the actor. None of SB3's ``train()`` bodies is
copied: ``train`` calls the parent and then logs.
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

#: Name fragments of SB3 target networks; their extractors never train and are not logged.
_TARGET_MARKERS = ("_target",)


def relic_policy_kwargs(policy_kwargs: dict[str, Any] | None, relic: ReLICConfig | None) -> dict[str, Any]:
    """Return ``policy_kwargs`` with the ReLIC extractor and its config filled in.

    :param policy_kwargs: the user's policy kwargs (not modified).
    :param relic: the ReLIC config; ``None`` keeps one already in the extractor kwargs or
        uses ``ReLICConfig()``.
    :raises ValueError: when a non-ReLIC extractor is requested together with ``relic``, or
        ``relic`` is given twice.
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
    kwargs["features_extractor_kwargs"] = extractor_kwargs
    return kwargs


def relic_extractors(policy: nn.Module) -> dict[str, ReLICExtractor]:
    """The trainable ReLIC extractors of a policy by module path (targets and shared copies once)."""
    found: dict[str, ReLICExtractor] = {}
    for name, module in policy.named_modules():
        if isinstance(module, ReLICExtractor) and not any(m in name for m in _TARGET_MARKERS):
            found[name] = module
    return found


def configure_relic(policy: nn.Module) -> None:
    """Apply the CURL convention to actor-critic policies with separate encoders.

    For SAC/TD3 policies whose actor and critic do not share the features extractor, the
    auxiliary loss trains the critic's encoder only: the actor's extractor is switched off
    (``aux_enabled = False``). With a shared extractor SB3 trains it through the actor's
    optimizer and computes critic features without gradient, so the loss trains it there.
    """
    actor = getattr(policy, "actor", None)
    critic = getattr(policy, "critic", None)
    if actor is None or critic is None or getattr(policy, "share_features_extractor", True):
        return
    for owner in (actor, getattr(policy, "actor_target", None)):
        extractor = getattr(owner, "features_extractor", None)
        if isinstance(extractor, ReLICExtractor) and extractor is not critic.features_extractor:
            extractor.aux_enabled = False
    if isinstance(critic.features_extractor, ReLICExtractor):
        _skip_aux_for_actor_loss(critic)


def _skip_aux_for_actor_loss(critic: nn.Module) -> None:
    """Compute the critic's auxiliary loss only in the critic loss, not in SAC's actor loss.

    SAC's actor loss evaluates the critic (with gradient when the extractor is not shared)
    on actions that carry gradient; the critic loss uses replay actions that do not. The
    auxiliary gradient of that second call would only reach critic parameters whose
    gradients SB3 discards, so skipping it changes no update and saves its compute.

    Done with forward hooks that are module-level functions of the module they run on, so
    that a deep copy of the policy switches its own extractor and the policy pickles.
    """
    extractor = critic.features_extractor
    if getattr(critic, "_relic_actor_loss_guard", False) or not isinstance(extractor, ReLICExtractor):
        return
    critic.register_forward_pre_hook(_actor_call_pre_hook)
    critic.register_forward_hook(_actor_call_post_hook, always_call=True)
    critic._relic_actor_loss_guard = True  # type: ignore[assignment]


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
    """Pop the metrics of every active ReLIC extractor and record them as ``relic/*``.

    With a single active extractor keys are ``relic/<metric>``; with several (e.g. PPO with
    separate policy and value encoders) ``relic/<module path>/<metric>``. Values are
    recorded with ``record_mean`` so several train calls between two dumps are averaged.

    :return: the recorded key -> value mapping.
    """
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

    #: net_arch SB3's CnnPolicy uses after NatureCNN for this algorithm (None: SB3's default).
    _nature_net_arch: list[int] | None = None
    #: Policy names that get the ReLIC extractor; the first is the image policy (CnnPolicy).
    _relic_policies: tuple[str, ...] = ("CnnPolicy", "MultiInputPolicy")

    def __init__(self, policy: Any = "CnnPolicy", env: Any = None, *args: Any, **kwargs: Any) -> None:
        relic = kwargs.pop("relic", None)
        # SB3's load() re-creates the model with the policy class and its saved kwargs.
        if kwargs.get("_init_setup_model", True) and policy in self._relic_policies:
            policy_kwargs = relic_policy_kwargs(kwargs.get("policy_kwargs"), relic)
            if policy == self._relic_policies[0] and self._nature_net_arch is not None:
                # SB3 drops the MLP after NatureCNN only when it sees NatureCNN itself; keep
                # its CnnPolicy architecture for the ReLIC encoder too.
                policy_kwargs.setdefault("net_arch", list(self._nature_net_arch))
            kwargs["policy_kwargs"] = policy_kwargs
        elif relic is not None:
            raise ValueError(
                f"relic=... only applies to policy={' or '.join(map(repr, self._relic_policies))} "
                f"(got {policy!r}); pass "
                "the config through "
                "policy_kwargs=dict(features_extractor_class=ReLICExtractor, "
                "features_extractor_kwargs=dict(config=...)) instead."
            )
        super().__init__(policy, env, *args, **kwargs)  # type: ignore[call-arg]

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        configure_relic(self._policy())

    def train(self, *args: Any, **kwargs: Any) -> None:
        super().train(*args, **kwargs)  # type: ignore[misc]
        record_relic_metrics(self._policy(), self.logger)  # type: ignore[attr-defined]

    def _policy(self) -> nn.Module:
        policy: nn.Module = self.policy  # type: ignore[attr-defined]
        return policy

    @property
    def relic_config(self) -> ReLICConfig | None:
        """The config of the (first) ReLIC extractor, or None when the policy has none."""
        extractors = relic_extractors(self._policy())
        return next(iter(extractors.values())).config if extractors else None


class ReLICPPO(_ReLICMixin, PPO):
    """PPO with the ReLIC auxiliary loss (``relic=ReLICConfig(...)``)."""

    _nature_net_arch = []


class ReLICA2C(_ReLICMixin, A2C):
    """A2C with the ReLIC auxiliary loss (``relic=ReLICConfig(...)``)."""

    _nature_net_arch = []


class ReLICDQN(_ReLICMixin, DQN):
    """DQN with the ReLIC auxiliary loss (``relic=ReLICConfig(...)``)."""

    _nature_net_arch = []


class ReLICSAC(_ReLICMixin, SAC):
    """SAC with the ReLIC auxiliary loss.

    ``CnnPolicy`` and ``MultiInputPolicy`` are :mod:`relic_rl.policies`' classes: by default
    (``policy_kwargs=dict(encoder_mode="critic")``) one encoder trained by the critic and
    auxiliary losses, read detached by the actor (CURL, DrQ). ``encoder_mode="separate"``
    (SB3's default layout: the auxiliary loss then trains the critic's encoder only) and
    ``"shared"`` remain selectable.
    """

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

    :param path: ``module:Class`` of the ReLIC algorithm class, imported on first use (the
        sb3-contrib ones need the ``contrib`` extra).
    :param image_policy: the policy alias presets use (SB3's ``CnnPolicy``, RecurrentPPO's
        ``CnnLstmPolicy``).
    :param on_policy: collects rollouts of ``n_envs x n_steps`` and then updates.
    :param actions: the action spaces it acts in: ``any``, ``discrete`` or ``box``.
    :param heads: the keys of a ``net_arch`` mapping (``pi``/``vf``, ``pi``/``qf``), or
        None when ``net_arch`` is a list.
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
    """``name -> ReLIC algorithm class`` over :data:`ALGORITHM_INFO`, importing on first use.

    Every name is listed (and ``in``) whether or not its package is installed, so that the
    CLIs and presets know them; looking one up without its package raises
    :class:`MissingExtraError`, which says what to install.
    """

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
        cls: type = getattr(module, class_name)
        return cls

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
    # ReLICCallback lives in relic_rl.callbacks; imported on use so that the old import path
    # keeps working without a cycle (callbacks -> runs -> algorithms).
    if name == "ReLICCallback":
        from relic_rl.callbacks import ReLICCallback

        return ReLICCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
