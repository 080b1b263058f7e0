"""``ReLICExtractor``: an SB3 features extractor whose ReLIC loss rides on every RL update.

No SB3 ``train()`` is touched: in an update (training mode, autograd recording) ``forward`` also
computes the auxiliary loss and returns the features through :class:`_RideAlong`, whose backward
feeds gradient 1 into ``aux_weight * loss``, so SB3's one ``backward()`` yields
``grad(L_RL + aux_weight * L_ReLIC)`` (nothing when no gradient reaches the features). A global
optimizer step post-hook updates the EMA target ``h`` after any step that trained the encoder.
"""

from __future__ import annotations

import copy
import itertools
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

#: The averaged metrics of the ReLIC objective (others log ``loss`` plus their scalars).
METRIC_NAMES = ("loss", "contrastive", "invariance", "accuracy", "positive_cosine", "negative_cosine")


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
    """``fn`` on views [V, B, ...] -> [V * B, ...]: one call per view on the CPU (a V times larger
    batch falls off the caches: 1.7x slower for NatureCNN, 2 x 128 views of 64 x 64), else one call."""
    if views.device.type != "cpu" or views.shape[0] == 1:
        return fn(views.flatten(0, 1))
    return torch.cat([fn(view) for view in views.unbind(0)])


@torch.no_grad()
def _output_dim(module: nn.Module, in_dim: int) -> int:
    """Output size of ``module`` on ``[*, in_dim]`` (a dummy row in eval mode, for BatchNorm)."""
    was_training = module.training
    module.eval()
    try:
        return int(module(torch.zeros(1, in_dim)).shape[-1])
    finally:
        module.train(was_training)


def _buffers_only(module: nn.Module) -> nn.Module:
    """``module`` with every parameter turned into a buffer, so that no optimizer can hold it."""
    converted: dict[int, torch.Tensor] = {}  # tied parameters stay tied
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None:
                del sub._parameters[name]
                if id(param) not in converted:
                    converted[id(param)] = param.detach().clone()
                sub.register_buffer(name, converted[id(param)])
    module.requires_grad_(False)
    return module


class NatureEncoder(nn.Module):
    """NatureCNN (Mnih et al., 2015): [B, C, H, W] -> [B, features_dim] for a ``(C, H, W)`` Box of
    any channels and 36 x 36 pixels or more; layers made in SB3's order (same seed, same weights)."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 512) -> None:
        super().__init__()
        n_channels, height, width = observation_space.shape
        layers: list[nn.Module] = []
        for c_in, c_out, kernel, stride in ((n_channels, 32, 8, 4), (32, 64, 4, 2), (64, 64, 3, 1)):
            layers += [nn.Conv2d(c_in, c_out, kernel_size=kernel, stride=stride, padding=0), nn.ReLU()]
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        if height < 36 or width < 36:
            raise ValueError(
                f"The default NatureCNN encoder needs images of at least 36x36 pixels, got {height}x{width}; "
                "resize the observations or subclass ReLICExtractor and override build_encoder."
            )
        with torch.no_grad():
            n_flatten = self.cnn(torch.zeros(1, n_channels, height, width)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(x))


_SUPPORTED = (
    "ReLICExtractor needs pixel observations: a Box image of shape (C, H, W) (SB3 transposes "
    "(H, W, C) uint8 images for you with VecTransposeImage), e.g. Box(0, 255, (3, 64, 64), uint8), "
    "or a Dict space with exactly one such image (its other entries are flattened and appended to "
    "the features, as SB3's CombinedExtractor does)."
)


class ObservationSpaceError(ValueError, AssertionError):
    """A space :class:`ReLICExtractor` cannot read as pixels (an AssertionError too, as NatureCNN's)."""


def _check_image_box(space: gym.Space, where: str, normalized_image: bool = False) -> gym.spaces.Box:
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
        raise ObservationSpaceError(f"Got observation space {where}{space}. {_SUPPORTED}")
    if normalized_image:
        return space
    if space.dtype != "uint8":
        # As NatureCNN: SB3 would pass float observations through unscaled.
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


def _image_space(
    observation_space: gym.Space, normalized_image: bool = False
) -> tuple[str | None, gym.spaces.Box]:
    """``(image key or None, channels-first image Box)``."""
    if not isinstance(observation_space, gym.spaces.Dict):
        return None, _check_image_box(observation_space, "", normalized_image)
    # is_image_space (channels unchecked): a 3-d uint8 Box with bounds [0, 255].
    keys = [key for key, space in observation_space.spaces.items() if is_image_space(space)]
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
    """A drop-in ``NatureCNN`` (same arguments and spaces) with an online encoder f (:attr:`encoder`),
    a critic g (:attr:`critic`) and an EMA target h; ``forward(obs)`` returns ``f(obs)``, in an update
    with the loss on ``config.n_views`` augmentations of ``obs`` attached. Subclass hooks:
    :meth:`build_encoder`, :meth:`build_critic`, :meth:`augment`, :meth:`aux_loss`, :meth:`relic_loss`.

    :param observation_space: channels-first image Box ``(C, H, W)``, or a Dict holding one.
    :param config: the :class:`ReLICConfig` (default ``ReLICConfig()``).
    :param normalized_image: as for ``NatureCNN`` (SB3 passes True when ``normalize_images=False``):
        observations of any dtype and bounds; without it a ``uint8`` Box in [0, 255] (else
        :class:`ObservationSpaceError`).
    :param features_dim: replaces ``config.features_dim``; an encoder of another size is a ValueError.
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
        config = ReLICConfig() if config is None else config
        if not isinstance(config, ReLICConfig):
            raise ValueError(f"`config` must be a ReLICConfig, got {type(config).__name__}: {config!r}.")
        if features_dim is not None:
            if isinstance(features_dim, bool) or not isinstance(features_dim, int) or features_dim < 1:
                raise ValueError(f"`features_dim` must be a positive integer, got {features_dim!r}.")
            config = config.replace(features_dim=features_dim)
        # Not NatureCNN's constructor: the real features_dim is known once the encoder exists.
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
        #: Dict observations: the image entry; the others are flattened after its features.
        self.image_key = image_key
        spaces = observation_space.spaces if isinstance(observation_space, gym.spaces.Dict) else {}
        self.extra_keys: list[str] = [key for key in spaces if key != image_key]
        self._features_dim = encoded_dim + sum(get_flattened_obs_dim(spaces[key]) for key in self.extra_keys)
        #: Runtime switch (``config.active`` is the static one), e.g. off for an SAC actor's encoder.
        self.aux_enabled = config.active
        self.augmentation = make_augmentation(config.augmentation)
        #: Update passes seen (for ``aux_every``); unlike the metrics, never reset.
        self._passes = 0
        #: [B] bool: rows of the next update batches that may enter the loss (None: all; for padding).
        self.aux_rows: torch.Tensor | None = None
        self._reset_metrics()
        self.critic: nn.Module | None = None
        self.target_encoder: nn.Module | None = None
        self.target_critic: nn.Module | None = None
        self.objective: AuxObjective | None = None
        if not config.active:
            return
        # An identity augmentation on these frames would make all views equal.
        if type(self).augment is ReLICExtractor.augment:
            check_frame_size(self.augmentation, image_space.shape[1], image_space.shape[2])
        # A forked RNG keeps the global stream as plain SB3 has it, so later layers start from the
        # same weights with or without ReLIC (for DQN/SAC/TD3; PPO/A2C's orthogonal init re-draws all).
        with torch.random.fork_rng(devices=[]):
            self.critic = self.build_critic(encoded_dim)
            self.objective = build_objective(config, _output_dim(self.critic, encoded_dim))
        self.target_encoder = _buffers_only(copy.deepcopy(self.encoder)).eval()
        if config.ema_critic:
            self.target_critic = _buffers_only(copy.deepcopy(self.critic)).eval()
        # SB3 re-initialises every submodule, target included, so the first update copies f into h;
        # a buffer, so a loaded model keeps its target, and a float, as SB3's get/set_parameters expect.
        self.register_buffer("target_initialized", torch.zeros((), dtype=torch.float32))
        _REGISTRY.add(self)

    # ----------------------------------------------------------------- subclass hooks
    def build_encoder(self, observation_space: gym.spaces.Box) -> nn.Module:
        """Override: the online encoder f, [B, C, H, W] in [0, 1] -> [B, F] (``self.config`` is set)."""
        return NatureEncoder(observation_space, features_dim=self.config.features_dim)

    def build_critic(self, features_dim: int) -> nn.Module:
        """Override: the critic / projection g, [B, features_dim] -> [B, D] (default an MLP)."""
        dims = (features_dim, *self.config.critic_hidden_dims)
        layers: list[nn.Module] = []
        for d_in, d_out in itertools.pairwise(dims):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(dims[-1], self.config.projection_dim))

    def augment(self, obs: torch.Tensor) -> torch.Tensor:
        """Override: ``n_views`` views [V, B, C, H, W] of ``obs`` [B, C, H, W], augmented
        independently, with ``config.clean_view`` after ``obs`` itself."""
        clean_view = self.config.clean_view
        n_augmented = self.config.n_views - 1 if clean_view else self.config.n_views
        # One batched call: every (view, sample) gets its own random parameters.
        augmented = self.augmentation(obs.repeat(n_augmented, 1, 1, 1)).view(n_augmented, *obs.shape)
        return torch.cat([obs.unsqueeze(0), augmented]) if clean_view else augmented

    def aux_loss(self, online: torch.Tensor, target: torch.Tensor) -> AuxOutput:
        """Override to replace any objective: the configured one on critic outputs ([V, N, D],
        ``target`` detached), for ``objective="relic"`` through :meth:`relic_loss`."""
        assert self.objective is not None
        if isinstance(self.objective, ReLICObjective):
            return ReLICObjective.summarize(self.relic_loss(online, target), online, target)
        return self.objective(online, target)

    def relic_loss(self, online: torch.Tensor, target: torch.Tensor) -> ReLICLossOutput:
        """Override to change the ReLIC loss on critic outputs ([V, N, D]); ``accuracy`` may be a
        float or a 0-d tensor."""
        return configured_relic_loss(self.config, online, target)

    # ----------------------------------------------------------------- forward
    def forward(self, observations: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """Features [B, features_dim] of [B, C, H, W] images in [0, 1] (or a dict holding them)."""
        if self.image_key is None:
            assert isinstance(observations, torch.Tensor)
            return self.encode_image(observations)
        assert isinstance(observations, dict)
        image_features = self.encode_image(observations[self.image_key])
        extras = [observations[key].flatten(1).to(image_features.dtype) for key in self.extra_keys]
        return torch.cat([image_features, *extras], dim=1)

    def encode_image(self, observations: torch.Tensor) -> torch.Tensor:
        """``f(obs)`` [B, F] of images [B, C, H, W] in [0, 1], with the loss attached in an update."""
        if not (self.aux_enabled and self.training and torch.is_grad_enabled() and self.critic is not None):
            return self.encoder(observations)
        cfg = self.config
        self._passes += 1
        if cfg.aux_every > 1 and (self._passes - 1) % cfg.aux_every:
            return self.encoder(observations)
        batch = observations.shape[0] if cfg.aux_batch_size is None else cfg.aux_batch_size
        # Padded (all-zero) rows would be identical negatives.
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
        # A view equal to the observations reuses the RL features (an overridden augment is checked).
        default_clean = cfg.clean_view and type(self).augment is ReLICExtractor.augment
        if default_clean or torch.equal(views[0], aux_obs):
            clean = features[:batch] if index is None else features[index]
            encoded = torch.cat([clean, _per_view(self.encoder, views[1:])])
        else:
            encoded = _per_view(self.encoder, views)
        online = self.critic(encoded).view(views.shape[0], batch, -1)
        bfloat16 = cfg.target_precision == "bfloat16"
        with torch.no_grad(), torch.autocast(views.device.type, dtype=torch.bfloat16, enabled=bfloat16):
            target = _per_view(self._target_project, views).view(views.shape[0], batch, -1)
        target = target.to(online.dtype)  # float32 again after a bfloat16 target pass
        out = self.aux_loss(online, target)
        self._record(out)
        return _RideAlong.apply(features, self.config.aux_weight * out.loss)

    def _target_project(self, images: torch.Tensor) -> torch.Tensor:
        assert self.target_encoder is not None and self.critic is not None
        critic = self.target_critic if self.target_critic is not None else self.critic
        return critic(self.target_encoder(images))

    # ----------------------------------------------------------------- EMA target
    def _paired_tensors(self) -> tuple[list[torch.Tensor], ...]:
        """(online parameters, their targets, online buffers, their targets) of f and g."""
        tensors: tuple[list[torch.Tensor], ...] = ([], [], [], [])
        for src, dst in ((self.encoder, self.target_encoder), (self.critic, self.target_critic)):
            if src is None or dst is None:
                continue
            dst_tensors = dict(dst.named_buffers())
            for name, param in src.named_parameters():
                tensors[0].append(param.detach())
                tensors[1].append(dst_tensors[name])
            for name, buffer in src.named_buffers():
                tensors[2].append(buffer)
                tensors[3].append(dst_tensors[name])
        return tensors

    @torch.no_grad()
    def update_target(self, momentum: float | None = None) -> None:
        """``h <- m h + (1 - m) f`` (m: ``momentum`` or ``config.target_momentum``); buffers are copied."""
        m = self.config.target_momentum if momentum is None else momentum
        src, dst, src_buffers, dst_buffers = self._paired_tensors()
        if src_buffers:
            torch._foreach_copy_(dst_buffers, src_buffers)
        if src and m == 0.0:
            torch._foreach_copy_(dst, src)
        elif src and m < 1.0:
            torch._foreach_mul_(dst, m)
            torch._foreach_add_(dst, src, alpha=1.0 - m)

    def _ensure_target_initialized(self) -> None:
        # Copies made by deepcopy or unpickling skip __init__; (re-)registering is idempotent.
        _REGISTRY.add(self)
        if not self._target_ready():
            self.update_target(momentum=0.0)
            self.target_initialized.fill_(1.0)
            self._target_ready_cache = True

    def _target_ready(self) -> bool:
        """``target_initialized``, read from the device once (each step would synchronise)."""
        if self._target_ready_cache is None:
            self._target_ready_cache = bool(self.target_initialized)
        return self._target_ready_cache

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
        """Set training mode on f and g; the targets stay in eval mode."""
        super().train(mode)
        for module in (self.target_encoder, self.target_critic):
            if module is not None:
                module.eval()
        return self

    # ----------------------------------------------------------------- metrics
    def _reset_metrics(self) -> None:
        # Sums stay device tensors until pop_metrics: reading them each step would synchronise.
        self._sums: dict[str, torch.Tensor | float] = {}
        self._count = 0
        self._skipped = 0
        self._ema_updates = 0
        #: The last loss's metrics until an optimizer step applies it (else counted in ``_dropped``).
        self._pending: dict[str, torch.Tensor | float] | None = None
        self._dropped = 0

    @torch.no_grad()
    def _record(self, out: AuxOutput) -> None:
        values = {"loss": out.loss, **out.scalars}
        if self._pending is not None:
            self._dropped += 1  # computed, but no optimizer step applied it before this one
        self._pending = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in values.items()}

    def _commit_pending(self) -> None:
        if self._pending is None:
            return
        for key, value in self._pending.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1
        self._pending = None

    @torch.no_grad()
    def ema_distance(self) -> float:
        """``||f - h||``, the L2 distance of the online and target encoder parameters."""
        if self.target_encoder is None:
            return 0.0
        target = dict(self.target_encoder.named_buffers())
        return math.sqrt(
            sum(float((p - target[name]).pow(2).sum()) for name, p in self.encoder.named_parameters())
        )

    def pop_metrics(self) -> dict[str, float]:
        """Metrics since the last call, then reset: ``loss`` and the objective's scalars averaged
        over the losses an optimizer step applied (absent if none), and always ``ema_distance``,
        ``aux_updates`` (losses applied), ``aux_dropped`` (never applied, e.g. after PPO's
        ``target_kl`` stop), ``skipped_small_batch`` and ``ema_updates``."""
        if self._pending is not None:  # never applied; _reset_metrics clears it
            self._dropped += 1
        # _sums is empty while _count is 0.
        metrics = {key: float(value) / self._count for key, value in self._sums.items()}
        metrics.update(
            aux_updates=float(self._count),
            aux_dropped=float(self._dropped),
            skipped_small_batch=float(self._skipped),
            ema_updates=float(self._ema_updates),
            ema_distance=self.ema_distance(),
        )
        self._reset_metrics()
        return metrics
