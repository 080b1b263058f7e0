"""SAC and TD3 policies whose one pixel encoder is trained by the critic, as in CURL and DrQ.

SB3 offers two encoder layouts for SAC and TD3, and neither is the one of the pixel-RL
literature (SAC-AE, CURL, DrQ):

* ``share_features_extractor=False`` (SB3's default): the actor has its own encoder,
  trained by the actor loss only, so the auxiliary representation never reaches the policy;
* ``share_features_extractor=True``: one encoder, trained through the *actor* loss only
  (SB3 computes the critic's features without gradient).

``encoder_mode="critic"`` (the default of these policies, of ``ReLICSAC``/``ReLICTD3`` and of
the training CLI) is the literature's layout: one encoder, owned by the critic and trained by
the critic loss plus the auxiliary loss; the actor reads its features detached, so the actor
loss does not train it (SAC's actor-loss call of the critic reads them detached too); the
target critic has its own encoder, a Polyak average of the online one (SB3's ``tau``), updated
with the rest of the target critic. The auxiliary loss's own EMA target then moves once per
critic optimizer step. ``encoder_mode="separate"`` and ``"shared"`` are SB3's two layouts.

The actor keeps the encoder as a plain attribute, not a submodule: its parameters, its
optimizer and its Polyak update (TD3's target actor) leave the encoder out, and the policy's
state dict holds the encoder once, under ``critic.features_extractor``. With plain SB3
(``SAC(ReLICSACCnnPolicy, env, ...)``) or a saved model loaded by ``SAC.load``, the policy
class (it is saved with the model) and its ``encoder_mode`` keep the regime.
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

#: ``critic``: one encoder trained by critic + auxiliary loss, read detached by the actor
#: (CURL, DrQ); ``separate``: SB3's ``share_features_extractor=False``; ``shared``: SB3's
#: ``share_features_extractor=True``.
ENCODER_MODES: tuple[str, ...] = ("critic", "separate", "shared")
DEFAULT_ENCODER_MODE = "critic"


def resolve_encoder_mode(encoder_mode: str | None, share_features_extractor: bool | None) -> str:
    """The encoder mode given ``encoder_mode`` and SB3's ``share_features_extractor``.

    Without ``encoder_mode``, SB3's flag picks its own layout (True: ``shared``, False:
    ``separate``) and neither gives :data:`DEFAULT_ENCODER_MODE`.

    :raises ValueError: for an unknown mode, or a flag that contradicts the mode (``critic``
        and ``shared`` share one encoder, ``separate`` does not).
    """
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
    """An actor that reads its encoder's features without gradient (the critic trains it)."""

    def extract_features(self, obs: Any, features_extractor: BaseFeaturesExtractor) -> torch.Tensor:
        with torch.no_grad():
            return super().extract_features(obs, features_extractor)  # type: ignore[misc]


class DetachedSACActor(_DetachedFeatures, sac_policies.Actor):
    """SB3's SAC actor reading the critic's encoder detached."""


class DetachedTD3Actor(_DetachedFeatures, td3_policies.Actor):
    """SB3's TD3 actor reading the critic's encoder detached."""


def _lend_encoder(actor: nn.Module) -> None:
    """Keep ``actor.features_extractor`` as a plain attribute instead of a submodule, so that
    the actor's parameters (its optimizer, its Polyak update, its state dict) leave it out."""
    extractor = actor._modules.pop("features_extractor")
    actor.__dict__["features_extractor"] = extractor


def is_actor_loss_call(args: tuple[Any, ...]) -> bool:
    """Whether a critic's ``forward(obs, actions)`` arguments are SAC's actor-loss call: the
    actions carry gradient (the actor's), where the critic loss uses replay actions."""
    actions = args[1] if len(args) > 1 else None
    return isinstance(actions, torch.Tensor) and actions.requires_grad


def _actor_call_pre_hook(critic: nn.Module, args: tuple[Any, ...]) -> None:
    """Before a critic call on actions with gradient (SAC's actor loss): features detached.

    The critic loss calls the critic on replay actions (no gradient) and its features carry
    gradient; the actor loss calls it on the actor's actions, and there the encoder must not
    be trained (nor the auxiliary loss computed). SB3's critic computes features without
    gradient while ``share_features_extractor`` is True. Module-level functions, so that
    deep copies and pickles of the policy keep working.
    """
    if is_actor_loss_call(args):
        critic.__dict__["_relic_saved_share"] = critic.share_features_extractor
        critic.share_features_extractor = True  # type: ignore[assignment]


def _actor_call_post_hook(critic: nn.Module, args: tuple[Any, ...], output: Any) -> None:
    """After the call (also when it raised): the critic's features carry gradient again."""
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

    def __init__(self, *args: Any, encoder_mode: str | None = None, **kwargs: Any) -> None:
        mode = resolve_encoder_mode(encoder_mode, kwargs.pop("share_features_extractor", None))
        # Read by _build, which SB3's constructor calls.
        self.__dict__["encoder_mode"] = mode
        super().__init__(*args, share_features_extractor=mode != "separate", **kwargs)  # type: ignore[call-arg]

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Any:
        if self.encoder_mode != "critic":
            return super().make_actor(features_extractor)  # type: ignore[misc]
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)  # type: ignore[attr-defined]
        return self._detached_actor(**actor_kwargs).to(self.device)  # type: ignore[attr-defined]

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        if self.encoder_mode != "critic":
            return
        # SB3 built the shared layout: the critic holds the actor's encoder (and TD3's target
        # critic the target actor's). Hand the encoders to the critics alone, and let the
        # critic's loss train its encoder.
        for name in ("actor", "actor_target"):
            actor = getattr(self, name, None)
            if actor is not None:
                _lend_encoder(actor)
        self.critic.share_features_extractor = False
        self.critic.register_forward_pre_hook(_actor_call_pre_hook)
        self.critic.register_forward_hook(_actor_call_post_hook, always_call=True)
        self.actor.optimizer = self.optimizer_class(
            self.actor.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        self.critic.optimizer = self.optimizer_class(
            self.critic.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
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


def _advertise_encoder_mode(cls: type) -> None:
    """Give ``cls`` the signature of its SB3 policy class plus ``encoder_mode``, so that
    introspection (e.g. the preset checks of which ``policy_kwargs`` a policy accepts) sees
    SB3's parameters and not the mixin's ``*args, **kwargs``."""
    sb3_class = next(base for base in cls.__mro__[1:] if not issubclass(base, _CriticEncoderMixin))
    params = list(inspect.signature(sb3_class).parameters.values())
    params.append(inspect.Parameter("encoder_mode", inspect.Parameter.KEYWORD_ONLY, default=None))
    cls.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]


for _cls in (ReLICSACCnnPolicy, ReLICSACMultiInputPolicy, ReLICTD3CnnPolicy, ReLICTD3MultiInputPolicy):
    _advertise_encoder_mode(_cls)
