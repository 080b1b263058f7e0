"""SAC and TD3 policies whose one pixel encoder is trained by the critic, as in CURL and DrQ.

SB3's layouts (``encoder_mode``): ``"separate"``, the actor has its own encoder trained by the actor loss
only, so the auxiliary representation never reaches the policy; ``"shared"``, one encoder trained through
the actor loss only (SB3 computes the critic's features without gradient). ``"critic"`` (the default of
these policies, of ``ReLICSAC``/``ReLICTD3`` and of the CLI): one encoder trained by the critic and
auxiliary losses, read detached by the actor and by SAC's actor-loss critic call; the actor holds it as a
plain attribute, out of its parameters, optimizer, Polyak update and state dict. The target critic has its
own encoder, a Polyak average (SB3's ``tau``) of the online one. The policy class is saved with the model
(``SAC.load``).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.sac import policies as sac_policies
from stable_baselines3.td3 import policies as td3_policies
from torch import nn

__all__ = [
    "DEFAULT_ENCODER_MODE",
    "ENCODER_MODES",
    "ReLICSACCnnPolicy",
    "ReLICSACMultiInputPolicy",
    "ReLICTD3CnnPolicy",
    "ReLICTD3MultiInputPolicy",
    "resolve_encoder_mode",
]

#: The ``encoder_mode`` values (see the module docstring).
ENCODER_MODES: tuple[str, ...] = ("critic", "separate", "shared")
DEFAULT_ENCODER_MODE = "critic"


def resolve_encoder_mode(encoder_mode: str | None, share_features_extractor: bool | None) -> str:
    """The encoder mode from ``encoder_mode`` or, alone, ``share_features_extractor`` (True
    ``shared``, False ``separate``; neither: the default); ValueError if unknown or contradictory."""
    if encoder_mode is None:
        if share_features_extractor is None:
            return DEFAULT_ENCODER_MODE
        return "shared" if share_features_extractor else "separate"
    if encoder_mode not in ENCODER_MODES:
        raise ValueError(
            f"encoder_mode must be one of {list(ENCODER_MODES)}, got {encoder_mode!r}: 'critic' trains one "
            "encoder with the critic and auxiliary losses (CURL, DrQ), 'separate' and 'shared' are SB3's "
            "share_features_extractor=False and True."
        )
    if share_features_extractor is not None and share_features_extractor != (encoder_mode != "separate"):
        raise ValueError(
            f"encoder_mode={encoder_mode!r} contradicts share_features_extractor={share_features_extractor}; "
            "pass only one of them."
        )
    return encoder_mode


class _DetachedFeatures:
    """An actor reading its encoder's features without gradient (the critic trains it)."""

    def extract_features(self, obs: Any, features_extractor: BaseFeaturesExtractor) -> torch.Tensor:
        with torch.no_grad():
            return super().extract_features(obs, features_extractor)  # type: ignore[misc]


class DetachedSACActor(_DetachedFeatures, sac_policies.Actor):
    """SB3's SAC actor reading the critic's encoder detached."""


class DetachedTD3Actor(_DetachedFeatures, td3_policies.Actor):
    """SB3's TD3 actor reading the critic's encoder detached."""


def is_actor_loss_call(args: tuple[Any, ...]) -> bool:
    """Whether critic ``forward(obs, actions)`` args are SAC's actor-loss call (actions with gradient)."""
    actions = args[1] if len(args) > 1 else None
    return isinstance(actions, torch.Tensor) and actions.requires_grad


def _actor_call_pre_hook(critic: nn.Module, args: tuple[Any, ...]) -> None:
    """In SAC's actor-loss call, critic features without gradient (as SB3's shared layout does).
    Module-level, so that the policy copies and pickles."""
    if is_actor_loss_call(args):
        critic.__dict__["_relic_saved_share"] = critic.share_features_extractor
        critic.share_features_extractor = True  # type: ignore[assignment]


def _actor_call_post_hook(critic: nn.Module, args: tuple[Any, ...], output: Any) -> None:
    saved = critic.__dict__.pop("_relic_saved_share", None)
    if saved is not None:
        critic.share_features_extractor = saved


class _CriticEncoderMixin:
    """``encoder_mode`` for SB3's SAC and TD3 policies (see the module docstring)."""

    encoder_mode: str
    actor: Any
    critic: Any
    optimizer_class: Any
    optimizer_kwargs: dict[str, Any]
    _detached_actor: type

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Each policy gets its SB3 class's signature plus ``encoder_mode``, for introspection (the preset
        # checks of which ``policy_kwargs`` a policy accepts) instead of the mixin's ``*args, **kwargs``.
        super().__init_subclass__(**kwargs)
        if "__signature__" in vars(cls):  # a subclass that states its own signature keeps it
            return
        sb3_class = next(base for base in cls.__mro__[1:] if not issubclass(base, _CriticEncoderMixin))
        params = list(inspect.signature(sb3_class).parameters.values())
        params.append(inspect.Parameter("encoder_mode", inspect.Parameter.KEYWORD_ONLY, default=None))
        cls.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]

    def __init__(self, *args: Any, encoder_mode: str | None = None, **kwargs: Any) -> None:
        mode = resolve_encoder_mode(encoder_mode, kwargs.pop("share_features_extractor", None))
        self.__dict__["encoder_mode"] = mode  # read by _build, which SB3's constructor calls
        share = mode != "separate"
        super().__init__(*args, share_features_extractor=share, **kwargs)  # type: ignore[call-arg]

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Any:
        if self.encoder_mode != "critic":
            return super().make_actor(features_extractor)  # type: ignore[misc]
        update = self._update_features_extractor  # type: ignore[attr-defined]
        kwargs = update(self.actor_kwargs, features_extractor)  # type: ignore[attr-defined]
        return self._detached_actor(**kwargs).to(self.device)  # type: ignore[attr-defined]

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        if self.encoder_mode != "critic":
            return
        # SB3 built the shared layout: give the encoders to the critics alone, trained by their loss.
        for name in ("actor", "actor_target"):
            actor = getattr(self, name, None)
            if actor is not None:  # the encoder as a plain attribute, not a submodule
                actor.__dict__["features_extractor"] = actor._modules.pop("features_extractor")
        self.critic.share_features_extractor = False
        self.critic.register_forward_pre_hook(_actor_call_pre_hook)
        self.critic.register_forward_hook(_actor_call_post_hook, always_call=True)
        for part in (self.actor, self.critic):
            part.optimizer = self.optimizer_class(
                part.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
            )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data: dict[str, Any] = super()._get_constructor_parameters()  # type: ignore[misc]
        data.pop("share_features_extractor", None)
        data["encoder_mode"] = self.encoder_mode
        return data


class ReLICSACCnnPolicy(_CriticEncoderMixin, sac_policies.CnnPolicy):
    """SB3's SAC ``CnnPolicy`` with ``encoder_mode`` (default ``critic``)."""

    _detached_actor = DetachedSACActor


class ReLICSACMultiInputPolicy(_CriticEncoderMixin, sac_policies.MultiInputPolicy):
    """SB3's SAC ``MultiInputPolicy`` with ``encoder_mode`` (default ``critic``)."""

    _detached_actor = DetachedSACActor


class ReLICTD3CnnPolicy(_CriticEncoderMixin, td3_policies.CnnPolicy):
    """SB3's TD3 ``CnnPolicy`` with ``encoder_mode`` (default ``critic``)."""

    _detached_actor = DetachedTD3Actor


class ReLICTD3MultiInputPolicy(_CriticEncoderMixin, td3_policies.MultiInputPolicy):
    """SB3's TD3 ``MultiInputPolicy`` with ``encoder_mode`` (default ``critic``)."""

    _detached_actor = DetachedTD3Actor
