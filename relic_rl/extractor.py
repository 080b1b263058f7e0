"""``ReLICExtractor``: an SB3 features extractor whose ReLIC loss rides on every RL update.

How the auxiliary loss reaches the optimizer without touching any SB3 ``train()``:
in an update (training mode and autograd recording) ``forward`` also computes the
ReLIC loss on augmented views of the same observations and returns the features through
:class:`_RideAlong`, an identity autograd function whose backward additionally feeds a
gradient of 1 into the (already ``aux_weight``-scaled) auxiliary loss. Whatever RL loss
SB3 builds on the features, its single ``backward()`` therefore produces
``grad(L_RL + aux_weight * L_ReLIC)``; SB3's gradient clipping and optimizer step act on
that sum. When the RL loss does not depend on the features (no gradient reaches them),
the auxiliary loss is not applied either, which matches the optimizer not owning them.

The EMA target ``h`` is updated by a global optimizer step post-hook: after any optimizer
step whose parameter groups hold the online encoder and which had gradients for it, once.
"""

from __future__ import annotations

import copy
import math
import weakref
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn
from torch.optim.optimizer import Optimizer, register_optimizer_step_post_hook

from relic_rl.augmentations import check_frame_size, make_augmentation
from relic_rl.config import ReLICConfig
from relic_rl.losses import ReLICLossOutput
from relic_rl.objectives import (
    AuxObjective,
    AuxOutput,
    ReLICObjective,
    build_objective,
    configured_relic_loss,
)

#: The averaged metrics of the ReLIC objective (other objectives log ``loss`` plus their scalars).
METRIC_NAMES = (
    "loss",
    "contrastive",
    "invariance",
    "accuracy",
    "positive_cosine",
    "negative_cosine",
)


class _RideAlong(torch.autograd.Function):
    """Identity on ``features`` whose backward also sends gradient 1 into ``aux``."""

    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        # A copy, not a view, so that callers may modify the features in place.
        return features.clone()

    @staticmethod
    def backward(ctx: Any, grad_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # d(L_RL + aux)/d(aux) = 1, independent of how the RL loss used the features.
        return grad_features, torch.ones((), dtype=grad_features.dtype, device=grad_features.device)


def _per_view(fn: Any, views: torch.Tensor) -> torch.Tensor:
    """``fn`` on every view of ``views`` [V, B, ...], concatenated to [V * B, ...].

    On the CPU one call per view, at the RL minibatch size: the convolutions of a batch
    V times as large fall off the caches (for NatureCNN on 128 x 2 x 64 x 64 views, one call
    on 256 samples took 1.7x as long as two calls on 128). Elsewhere one batched call.
    Either way each sample's result is the same function of that sample.
    """
    if views.device.type != "cpu" or views.shape[0] == 1:
        return fn(views.flatten(0, 1))
    return torch.cat([fn(view) for view in views.unbind(0)])


@torch.no_grad()
def _output_dim(module: nn.Module, in_dim: int) -> int:
    """Output size of ``module`` on ``[*, in_dim]`` inputs (one dummy row, in eval mode so that
    a BatchNorm accepts it)."""
    was_training = module.training
    module.eval()
    try:
        return int(module(torch.zeros(1, in_dim)).shape[-1])
    finally:
        module.train(was_training)


def _buffers_only(module: nn.Module) -> nn.Module:
    """Turn every parameter of ``module`` into a buffer (in place) and return it.

    A target network stored this way is saved in ``state_dict``, moves with ``.to()``,
    but is invisible to ``parameters()``, so no optimizer can ever hold it.
    """
    converted: dict[int, torch.Tensor] = {}  # tied parameters stay tied
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is None:
                continue
            del sub._parameters[name]
            if id(param) not in converted:
                converted[id(param)] = param.detach().clone()
            sub.register_buffer(name, converted[id(param)])
    module.requires_grad_(False)
    return module


class NatureEncoder(nn.Module):
    """NatureCNN (Mnih et al., 2015) conv stack plus a linear layer, [B, C, H, W] -> [B, features_dim].

    Layers are created in the same order as SB3's ``NatureCNN`` so that, for the same seed,
    both start from identical weights. The flatten size comes from one dummy forward, so any
    resolution that survives the three convolutions (36 x 36 and up) and any channel count work.

    :param observation_space: channels-first image Box ``(C, H, W)``.
    :param features_dim: size of the output features.
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 512) -> None:
        super().__init__()
        n_channels, height, width = observation_space.shape
        self.cnn = nn.Sequential(
            nn.Conv2d(n_channels, 32, kernel_size=8, stride=4, padding=0),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2, padding=0),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=0),
            nn.ReLU(),
            nn.Flatten(),
        )
        if height < 36 or width < 36:
            raise ValueError(
                f"The default NatureCNN encoder needs images of at least 36x36 pixels, got {height}x{width}; "
                "resize the observations or subclass ReLICExtractor and override build_encoder."
            )
        with torch.no_grad():
            n_flatten = self.cnn(torch.zeros(1, n_channels, height, width)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:param x: [B, C, H, W] floats. :return: [B, features_dim]."""
        return self.linear(self.cnn(x))


_SUPPORTED = (
    "ReLICExtractor needs pixel observations: a Box image of shape (C, H, W) (SB3 transposes "
    "(H, W, C) uint8 images for you with VecTransposeImage), e.g. Box(0, 255, (3, 64, 64), uint8), "
    "or a Dict space with exactly one such image (its other entries are flattened and appended to "
    "the features, as SB3's CombinedExtractor does)."
)


class ObservationSpaceError(ValueError, AssertionError):
    """An observation space :class:`ReLICExtractor` cannot read as pixels.

    Also an ``AssertionError``, which is what SB3's ``NatureCNN`` raises for the same spaces,
    so code written against NatureCNN catches it.
    """


def _check_image_box(space: gym.Space, where: str, normalized_image: bool = False) -> gym.spaces.Box:
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
        raise ObservationSpaceError(f"Got observation space {where}{space}. {_SUPPORTED}")
    if normalized_image:
        return space
    if space.dtype != "uint8":
        # As NatureCNN: without normalized_image the extractor expects uint8 pixels, which SB3
        # scales to [0, 1]; SB3 would pass float observations through unscaled.
        raise ObservationSpaceError(
            f"Got observation space {where}{space} of dtype {space.dtype}, but with normalize_images=True "
            "(SB3's default) ReLICExtractor, like SB3's NatureCNN, expects uint8 images in [0, 255]. If "
            "the observations are already normalised, pass policy_kwargs=dict(normalize_images=False) "
            "(SB3 then passes normalized_image=True to the extractor), or "
            "features_extractor_kwargs=dict(normalized_image=True); otherwise give the env uint8 images."
        )
    if not is_image_space(space, check_channels=False):
        raise ObservationSpaceError(
            f"Got observation space {where}{space} with bounds other than [0, 255]. {_SUPPORTED}"
        )
    return space


def _is_image_box(space: gym.Space) -> bool:
    return (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 3
        and is_image_space(space, check_channels=False)
    )


def _image_space(
    observation_space: gym.Space, normalized_image: bool = False
) -> tuple[str | None, gym.spaces.Box]:
    """``(image key or None, channels-first image Box)``, or ValueError saying what is supported."""
    if not isinstance(observation_space, gym.spaces.Dict):
        return None, _check_image_box(observation_space, "", normalized_image)
    keys = [key for key, space in observation_space.spaces.items() if _is_image_box(space)]
    if not keys:
        raise ObservationSpaceError(
            f"Got a Dict observation space without an image: {observation_space}. {_SUPPORTED}"
        )
    if len(keys) > 1:
        raise ObservationSpaceError(
            f"Got a Dict observation space with several images {keys}: {observation_space}. {_SUPPORTED} "
            "Stack them into one image or keep one with a wrapper (gymnasium.wrappers.FilterObservation)."
        )
    return keys[0], _check_image_box(observation_space.spaces[keys[0]], f"[{keys[0]!r}] ")


#: Extractors with an EMA target; weak so that deleted models are forgotten.
_REGISTRY: weakref.WeakSet[ReLICExtractor] = weakref.WeakSet()


def _after_optimizer_step(optimizer: Optimizer, args: Any, kwargs: Any) -> None:
    for extractor in list(_REGISTRY):
        extractor._on_optimizer_step(optimizer)


register_optimizer_step_post_hook(_after_optimizer_step)


class ReLICExtractor(NatureCNN):
    """Features extractor with an online encoder f, a critic g and an EMA target h.

    ``forward(obs)`` returns ``f(obs)`` like any SB3 extractor. Inside an update (module in
    training mode and autograd recording) it also computes the ReLIC loss on
    ``config.n_views`` augmentations of ``obs`` and attaches ``aux_weight * loss`` to the
    returned features so that the RL loss's ``backward()`` includes its gradient.

    Subclass hooks: :meth:`build_encoder`, :meth:`build_critic`, :meth:`augment`,
    :meth:`aux_loss` (the configured objective, :mod:`relic_rl.objectives`) and
    :meth:`relic_loss` (the ReLIC objective's loss).

    A drop-in for SB3's ``NatureCNN``: it takes NatureCNN's keyword arguments with the same
    meaning (``features_extractor_kwargs=dict(features_dim=256)`` sizes it as it sizes SB3's
    default), accepts and rejects the same observation spaces, and is a ``NatureCNN`` subclass
    so that SB3 policies treat it as one (with ``normalize_images=False`` they pass
    ``normalized_image=True`` to it, as to NatureCNN). Its own layers are :attr:`encoder`
    (f), :attr:`critic` (g) and the targets; NatureCNN's constructor is not run.

    :param observation_space: channels-first image Box ``(C, H, W)`` (SB3 normalises uint8
        images to [0, 1] before calling the extractor).
    :param config: the :class:`ReLICConfig`; defaults to ``ReLICConfig()``.
    :param normalized_image: as for SB3's ``NatureCNN``: the observations are already
        normalised, so any dtype and bounds are accepted; without it the image must be a
        ``uint8`` Box with bounds [0, 255] (:class:`ObservationSpaceError` otherwise).
    :param features_dim: as for ``NatureCNN``, the size of the features. When given it wins
        over ``config.features_dim`` (the config is used with ``features_dim`` replaced); an
        encoder built by a subclass that returns another size is a ``ValueError``.
    """

    target_initialized: torch.Tensor
    #: ``target_initialized`` as read on the host (None: not read since construction or loading).
    _target_ready_cache: bool | None = None

    def __init__(
        self,
        observation_space: gym.Space,
        config: ReLICConfig | None = None,
        normalized_image: bool = False,
        features_dim: int | None = None,
    ) -> None:
        image_key, image_space = _image_space(observation_space, normalized_image)
        if config is None:
            config = ReLICConfig()
        if not isinstance(config, ReLICConfig):
            raise ValueError(f"`config` must be a ReLICConfig, got {type(config).__name__}: {config!r}.")
        if features_dim is not None:
            if isinstance(features_dim, bool) or not isinstance(features_dim, int) or features_dim < 1:
                raise ValueError(f"`features_dim` must be a positive integer, got {features_dim!r}.")
            config = config.replace(features_dim=features_dim)
        # The real features_dim is only known after the encoder exists (subclasses may build
        # any encoder); SB3 reads it through the `features_dim` property after __init__.
        # BaseFeaturesExtractor's constructor, not NatureCNN's: the layers are build_encoder's.
        BaseFeaturesExtractor.__init__(self, observation_space, features_dim=1)
        self.config = config
        self.encoder = self.build_encoder(image_space)
        with torch.no_grad():
            sample = torch.zeros((1, *image_space.shape), dtype=torch.float32)
            encoded_dim = int(self.encoder(sample).shape[-1])
        if features_dim is not None and encoded_dim != features_dim:
            raise ValueError(
                f"features_dim={features_dim} was asked for, but {type(self).__name__}.build_encoder returns "
                f"{encoded_dim} features; build the encoder from self.config.features_dim or drop "
                "features_dim."
            )
        features_dim = encoded_dim
        #: Dict observations: the image entry, and the others flattened after the image features.
        self.image_key = image_key
        self.extra_keys: list[str] = []
        extra_dim = 0
        if isinstance(observation_space, gym.spaces.Dict):
            self.extra_keys = [key for key in observation_space.spaces if key != image_key]
            extra_dim = sum(get_flattened_obs_dim(observation_space.spaces[key]) for key in self.extra_keys)
        self._features_dim = features_dim + extra_dim
        #: Runtime switch, e.g. for an SAC actor's encoder when CURL-style only the critic's
        #: encoder is trained with the auxiliary loss. ``config.active`` is the static switch.
        self.aux_enabled = config.active
        self.augmentation = make_augmentation(config.augmentation)
        #: Update passes seen (for ``aux_every``); unlike the metrics, never reset.
        self._passes = 0
        #: Rows of the next update batches that may enter the auxiliary loss ([B] bool), or None
        #: for all; set by algorithms whose batches hold padding (RecurrentPPO's sequences).
        self.aux_rows: torch.Tensor | None = None
        self._reset_metrics()
        self.critic: nn.Module | None = None
        self.target_encoder: nn.Module | None = None
        self.target_critic: nn.Module | None = None
        self.objective: AuxObjective | None = None
        if not config.active:
            return
        # An augmentation that is the identity on these frames makes every view the same image
        # (a subclass with its own augment may not use it at all).
        if type(self).augment is ReLICExtractor.augment:
            check_frame_size(self.augmentation, image_space.shape[1], image_space.shape[2])
        # A forked RNG keeps the global stream where plain SB3 would have it, so the layers
        # built after the extractor start from the same weights with or without ReLIC (true for
        # DQN/SAC/TD3; PPO/A2C's orthogonal init re-draws every submodule, g included).
        with torch.random.fork_rng(devices=[]):
            self.critic = self.build_critic(features_dim)
            self.objective = build_objective(config, _output_dim(self.critic, features_dim))
        self.target_encoder = _buffers_only(copy.deepcopy(self.encoder)).eval()
        if config.ema_critic:
            self.target_critic = _buffers_only(copy.deepcopy(self.critic)).eval()
        # SB3 re-initialises every submodule (e.g. orthogonal init) after construction,
        # target included; the first update copies f into h once. The flag is a buffer so a
        # loaded model keeps its saved target.
        # A float, not a bool: SB3's get_parameters / set_parameters round trips (and tools that
        # fill a state dict with random values of each tensor's dtype) expect floating tensors.
        # Nonzero means initialised; a bool saved by an earlier release loads as 0.0 / 1.0.
        self.register_buffer("target_initialized", torch.zeros((), dtype=torch.float32))
        _REGISTRY.add(self)

    # ----------------------------------------------------------------- subclass hooks
    def build_encoder(self, observation_space: gym.spaces.Box) -> nn.Module:
        """Online encoder f: [B, C, H, W] in [0, 1] -> [B, F]. F is found by a dummy forward.

        ``self.config`` is set when this is called; return the module, the caller stores it.
        """
        return NatureEncoder(observation_space, features_dim=self.config.features_dim)

    def build_critic(self, features_dim: int) -> nn.Module:
        """Critic / projection g: [B, features_dim] -> [B, projection_dim] (an MLP)."""
        layers: list[nn.Module] = []
        last = features_dim
        for hidden in self.config.critic_hidden_dims:
            layers += [nn.Linear(last, hidden), nn.ReLU()]
            last = hidden
        layers.append(nn.Linear(last, self.config.projection_dim))
        return nn.Sequential(*layers)

    def augment(self, obs: torch.Tensor) -> torch.Tensor:
        """``n_views`` views of ``obs``: with ``config.clean_view`` the first is ``obs`` itself
        and the others are independently augmented copies; otherwise all are augmented.

        :param obs: [B, C, H, W] images in [0, 1].
        :return: [V, B, C, H, W].
        """
        n_views = self.config.n_views
        n_augmented = n_views - 1 if self.config.clean_view else n_views
        # One batched call: every (view, sample) gets its own random parameters.
        augmented = self.augmentation(obs.repeat(n_augmented, 1, 1, 1)).view(n_augmented, *obs.shape)
        if not self.config.clean_view:
            return augmented
        return torch.cat([obs.unsqueeze(0), augmented])

    def aux_loss(self, online: torch.Tensor, target: torch.Tensor) -> AuxOutput:
        """The configured objective on critic outputs ([V, N, D] each, ``target`` detached).

        For ``objective="relic"`` the loss comes from :meth:`relic_loss`, so that overriding
        that hook keeps working; override this one to replace any objective.
        """
        assert self.objective is not None
        if isinstance(self.objective, ReLICObjective):
            return ReLICObjective.summarize(self.relic_loss(online, target), online, target)
        return self.objective(online, target)

    def relic_loss(self, online: torch.Tensor, target: torch.Tensor) -> ReLICLossOutput:
        """The ReLIC loss on critic outputs ([V, N, D] each); override to change it.

        ``accuracy`` may be a float or a 0-d tensor (the default keeps it on the device, so
        that no gradient step waits for the device; it is read when metrics are logged).
        """
        return configured_relic_loss(self.config, online, target)

    # ----------------------------------------------------------------- forward
    def forward(self, observations: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """:param observations: [B, C, H, W] images in [0, 1] (or a dict holding them).
        :return: features [B, features_dim].
        """
        if self.image_key is None:
            assert isinstance(observations, torch.Tensor)
            return self.encode_image(observations)
        assert isinstance(observations, dict)
        image_features = self.encode_image(observations[self.image_key])
        extras = [observations[key].flatten(1).to(image_features.dtype) for key in self.extra_keys]
        return torch.cat([image_features, *extras], dim=1)

    def encode_image(self, observations: torch.Tensor) -> torch.Tensor:
        """Image features ``f(obs)``, with the ReLIC loss attached inside an update.

        :param observations: [B, C, H, W] in [0, 1]. :return: [B, F].
        """
        if not (self.aux_enabled and self.training and torch.is_grad_enabled() and self.critic is not None):
            return self.encoder(observations)
        cfg = self.config
        self._passes += 1
        if cfg.aux_every > 1 and (self._passes - 1) % cfg.aux_every:
            return self.encoder(observations)
        batch = observations.shape[0] if cfg.aux_batch_size is None else cfg.aux_batch_size
        # Padded rows (all-zero images) would be identical negatives: only real rows are used.
        rows = self.aux_rows
        index = None
        if rows is not None and rows.shape[0] == observations.shape[0]:
            index = rows.to(observations.device).nonzero().squeeze(1)[:batch]
        aux_obs = observations[:batch] if index is None else observations[index]
        batch = aux_obs.shape[0]
        if batch < 2:
            # InfoNCE needs negatives; count the skip so the metrics show it.
            self._skipped += 1
            return self.encoder(observations)
        self._ensure_target_initialized()
        views = self.augment(aux_obs)  # [V, N, C, H, W]
        features = self.encoder(observations)
        # A view equal to the observations (an identity augmentation) reuses the RL features:
        # the same function of the same input, one encoder pass fewer. The default augment
        # guarantees it with clean_view; an overridden augment is checked.
        default_clean = cfg.clean_view and type(self).augment is ReLICExtractor.augment
        if default_clean or torch.equal(views[0], aux_obs):
            clean = features[:batch] if index is None else features[index]
            encoded = torch.cat([clean, _per_view(self.encoder, views[1:])])
        else:
            encoded = _per_view(self.encoder, views)
        online = self.critic(encoded).view(views.shape[0], batch, -1)
        with torch.no_grad(), self._target_autocast(views.device.type):
            target = _per_view(self._target_project, views).view(views.shape[0], batch, -1)
        target = target.to(online.dtype)  # float32 again after a bfloat16 target pass
        out = self.aux_loss(online, target)
        self._record(out)
        return _RideAlong.apply(features, self.config.aux_weight * out.loss)

    def _target_autocast(self, device_type: str) -> Any:
        """``torch.autocast`` for the target passes with ``target_precision="bfloat16"``."""
        enabled = self.config.target_precision == "bfloat16"
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled)

    def _target_project(self, images: torch.Tensor) -> torch.Tensor:
        assert self.target_encoder is not None and self.critic is not None
        critic = self.target_critic if self.target_critic is not None else self.critic
        return critic(self.target_encoder(images))

    # ----------------------------------------------------------------- EMA target
    def _paired_tensors(
        self,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Online and target tensors in matching order: (f, g) parameters, then (f, g) buffers."""
        pairs: list[tuple[nn.Module, nn.Module]] = []
        if self.target_encoder is not None:
            pairs.append((self.encoder, self.target_encoder))
        if self.target_critic is not None and self.critic is not None:
            pairs.append((self.critic, self.target_critic))
        params: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        buffers: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        for src, dst in pairs:
            dst_tensors = dict(dst.named_buffers())
            for name, param in src.named_parameters():
                params[0].append(param.detach())
                params[1].append(dst_tensors[name])
            for name, buffer in src.named_buffers():
                buffers[0].append(buffer)
                buffers[1].append(dst_tensors[name])
        return params[0], params[1], buffers[0], buffers[1]

    @torch.no_grad()
    def update_target(self, momentum: float | None = None) -> None:
        """``h <- m h + (1 - m) f`` for parameters; buffers (e.g. BatchNorm statistics) are copied.

        :param momentum: m; defaults to ``config.target_momentum``.
        """
        m = self.config.target_momentum if momentum is None else momentum
        src, dst, src_buffers, dst_buffers = self._paired_tensors()
        if src_buffers:
            torch._foreach_copy_(dst_buffers, src_buffers)
        if not src:
            return
        if m == 0.0:
            torch._foreach_copy_(dst, src)
        elif m < 1.0:
            torch._foreach_mul_(dst, m)
            torch._foreach_add_(dst, src, alpha=1.0 - m)

    def _ensure_target_initialized(self) -> None:
        # Copies made by deepcopy or unpickling skip __init__; (re-)registering is idempotent.
        _REGISTRY.add(self)
        if self._target_ready():
            return
        self.update_target(momentum=0.0)
        self.target_initialized.fill_(1.0)
        self._target_ready_cache = True

    def _target_ready(self) -> bool:
        """Whether h holds a copy of f (the ``target_initialized`` buffer), read from the
        device once and then kept on the host: reading a buffer on every gradient step
        would synchronise with the device. Loading a state dict forgets the kept value."""
        ready = self._target_ready_cache
        if ready is None:
            ready = bool(self.target_initialized)
            self._target_ready_cache = ready
        return ready

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        self._target_ready_cache = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _on_optimizer_step(self, optimizer: Optimizer) -> None:
        if self.target_encoder is None or not self._target_ready():
            return
        params = list(self.encoder.parameters())
        if not any(p.grad is not None for p in params):
            return
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if any(id(p) in owned for p in params):
            self.update_target()
            self._ema_updates += 1
            self._commit_pending()

    def train(self, mode: bool = True) -> ReLICExtractor:
        """Set training mode on f and g; the targets always stay in eval mode."""
        super().train(mode)
        for module in (self.target_encoder, self.target_critic):
            if module is not None:
                module.eval()
        return self

    # ----------------------------------------------------------------- metrics
    def _reset_metrics(self) -> None:
        # Sums stay tensors on the device until pop_metrics reads them: adding a Python
        # float would synchronise with the device on every gradient step.
        self._sums: dict[str, torch.Tensor | float] = {}
        self._count = 0
        self._skipped = 0
        self._ema_updates = 0
        #: The last loss's metrics until an optimizer step applies it; a loss that never
        #: reaches one (PPO's target_kl stop, an actor-loss call of a critic's extractor) is
        #: counted in ``_dropped`` instead of the averages.
        self._pending: dict[str, torch.Tensor | float] | None = None
        self._dropped = 0

    @torch.no_grad()
    def _record(self, out: AuxOutput) -> None:
        values = {"loss": out.loss, **out.scalars}
        if self._pending is not None:
            self._dropped += 1  # computed, but no optimizer step applied it before this one
        self._pending = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in values.items()}

    def _commit_pending(self) -> None:
        """Count the pending loss's metrics: an optimizer step has applied it."""
        if self._pending is None:
            return
        for key, value in self._pending.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1
        self._pending = None

    @torch.no_grad()
    def ema_distance(self) -> float:
        """``||f - h||``: L2 distance between online and target encoder parameters."""
        if self.target_encoder is None:
            return 0.0
        target = dict(self.target_encoder.named_buffers())
        total = 0.0
        for name, param in self.encoder.named_parameters():
            total += float((param - target[name]).pow(2).sum())
        return math.sqrt(total)

    def pop_metrics(self) -> dict[str, float]:
        """Metrics averaged since the last call, then reset.

        Keys: ``loss`` and the objective's scalars (for ReLIC ``contrastive``, ``invariance``,
        ``accuracy``, ``positive_cosine``, ``negative_cosine``), averaged over the losses an
        optimizer step applied (absent when none was), and always ``ema_distance``,
        ``aux_updates`` (losses that reached an optimizer step holding the encoder),
        ``aux_dropped`` (losses computed but never applied, e.g. after PPO's ``target_kl``
        stop or in an actor-loss call of a critic's extractor), ``skipped_small_batch`` and
        ``ema_updates`` (target updates since the last call).
        """
        if self._pending is not None:
            self._dropped += 1
            self._pending = None
        metrics: dict[str, float] = {}
        if self._count:
            metrics = {key: float(value) / self._count for key, value in self._sums.items()}
        metrics["aux_updates"] = float(self._count)
        metrics["aux_dropped"] = float(self._dropped)
        metrics["skipped_small_batch"] = float(self._skipped)
        metrics["ema_updates"] = float(self._ema_updates)
        metrics["ema_distance"] = self.ema_distance()
        self._reset_metrics()
        return metrics
