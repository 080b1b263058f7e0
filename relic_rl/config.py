"""Typed, validated configuration of the ReLIC auxiliary objective."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from relic_rl.losses import DIVERGENCES

#: Values of ``ReLICConfig.target_precision``.
TARGET_PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


def _fail(name: str, value: object, allowed: str) -> None:
    raise ValueError(f"ReLICConfig.{name}={value!r} is invalid: expected {allowed}.")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ReLICConfig:
    """Hyperparameters of the ReLIC auxiliary loss attached to an SB3 agent.

    The defaults follow the published pixel-RL recipes the method is compared with:
    DrQ's shift augmentation with a ReLIC/DrQ-style intensity jitter, CURL's 0.99 EMA
    target, and a small projection MLP as in SimCLR/BYOL-style critics.

    :param objective: the auxiliary objective, a name registered in
        :data:`relic_rl.objectives.OBJECTIVES`: ``"relic"`` (default) or ``"curl"`` (CURL's
        bilinear InfoNCE, which does not use ``temperature``, ``kl_weight``, ``normalize`` or
        ``divergence``). Views, critic, EMA target and ``aux_weight`` are the same for all.
    :param enabled: master switch. ``False`` (or ``aux_weight == 0``) removes the auxiliary
        loss entirely: no critic or target network is built and no extra compute is done, so
        the agent trains exactly as plain Stable-Baselines3 with the same seed.
    :param aux_weight: lambda, scale of the whole ReLIC loss against the RL loss. The InfoNCE
        term starts near ``log(batch)`` (about 4.9 for a batch of 128) while SB3's PPO/DQN
        losses are O(0.1-1) and share one gradient-norm clip with it, so 0.1 keeps the
        auxiliary gradient from crowding out the RL gradient at initialisation.
    :param kl_weight: alpha, weight of the invariance penalty (1.0 weighs it equally with
        instance discrimination, the ReLIC paper's default; 0 gives plain InfoNCE).
    :param temperature: tau of the softmax over the batch; 0.1 is the usual value for
        cosine-similarity critics (SimCLR, ReLIC).
    :param n_views: number of augmented views per observation (>= 2); every ordered pair of
        distinct views is an intervention pair.
    :param clean_view: make the first view the un-augmented observation (the identity is one
        of the interventions) and the other ``n_views - 1`` augmented. Its online features are
        then exactly the RL features, computed once, which saves the encoder forward and
        backward of one augmented batch (see the README's performance section for what that is
        worth), and each pair asks the very features the policy reads to be invariant to the
        augmentation.
        ``False`` augments every view (CURL/DrQ style).
    :param augmentation: spec for :func:`relic_rl.augmentations.make_augmentation`; the
        default is DrQ's random shift (pad 4) followed by a per-sample intensity scaling.
    :param target_momentum: m of the EMA target ``h <- m h + (1 - m) f`` (0.99 as in CURL and
        the ReLIC Atari agent). 1 freezes the target, 0 copies the online encoder.
    :param projection_dim: output size of the critic g.
    :param critic_hidden_dims: hidden layer sizes of the critic MLP g.
    :param normalize: L2-normalise critic outputs so that phi is a cosine similarity.
    :param divergence: ``"kl"`` or ``"js"``, the invariance penalty's divergence.
    :param ema_critic: also keep an EMA copy of the critic, so targets are ``g_ema(h(x))``
        as in BYOL/ReLIC. ``False`` evaluates the online critic on the target features
        without gradient.
    :param features_dim: output size of the default encoder's last linear layer (NatureCNN: 512).

    The three fields below trade the exact objective for speed. They change what is computed
    and are off by default; the README's performance section gives their measured costs.

    :param aux_batch_size: compute the auxiliary loss on the first ``aux_batch_size`` samples
        of each minibatch only (SB3's minibatches are random draws, so this is a random
        subset; fewer negatives per contrast set); ``None`` (default) uses the whole minibatch.
    :param aux_every: compute the auxiliary loss on every ``aux_every``-th update pass of the
        extractor only (for PPO, A2C and DQN one pass is one gradient step); 1 (default) on
        every one.
    :param target_precision: ``"float32"`` (default) or ``"bfloat16"``: the target network's
        forward passes under ``torch.autocast`` in bfloat16 (fast on CPUs with AVX512-BF16 or
        AMX and on GPUs); the target outputs are cast back to float32 for the loss.
    """

    enabled: bool = True
    aux_weight: float = 0.1
    kl_weight: float = 1.0
    temperature: float = 0.1
    n_views: int = 2
    clean_view: bool = True
    augmentation: str = "shift,intensity"
    target_momentum: float = 0.99
    projection_dim: int = 128
    critic_hidden_dims: tuple[int, ...] = field(default=(256,))
    normalize: bool = True
    divergence: str = "kl"
    ema_critic: bool = True
    features_dim: int = 512
    aux_batch_size: int | None = None
    aux_every: int = 1
    target_precision: str = "float32"
    objective: str = "relic"

    def __post_init__(self) -> None:
        for name in ("enabled", "normalize", "ema_critic", "clean_view"):
            if not isinstance(getattr(self, name), bool):
                _fail(name, getattr(self, name), "a bool (true/false)")
        if not _is_number(self.aux_weight) or self.aux_weight < 0:
            _fail("aux_weight", self.aux_weight, "a finite number >= 0 (0 disables the auxiliary loss)")
        if not _is_number(self.kl_weight) or self.kl_weight < 0:
            _fail("kl_weight", self.kl_weight, "a finite number >= 0 (0 disables the invariance penalty)")
        if not _is_number(self.temperature) or self.temperature <= 0:
            _fail("temperature", self.temperature, "a finite number > 0, e.g. 0.1")
        if not isinstance(self.n_views, int) or isinstance(self.n_views, bool) or self.n_views < 2:
            _fail("n_views", self.n_views, "an integer >= 2")
        if not _is_number(self.target_momentum) or not 0.0 <= self.target_momentum <= 1.0:
            _fail("target_momentum", self.target_momentum, "a number in [0, 1]")
        for name in ("projection_dim", "features_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                _fail(name, value, "a positive integer")
        if self.aux_batch_size is not None and (
            not isinstance(self.aux_batch_size, int)
            or isinstance(self.aux_batch_size, bool)
            or self.aux_batch_size < 2
        ):
            _fail("aux_batch_size", self.aux_batch_size, "an integer >= 2 (the loss needs negatives) or null")
        if not isinstance(self.aux_every, int) or isinstance(self.aux_every, bool) or self.aux_every < 1:
            _fail("aux_every", self.aux_every, "an integer >= 1 (1: every update pass)")
        if self.target_precision not in TARGET_PRECISIONS:
            _fail("target_precision", self.target_precision, f"one of {list(TARGET_PRECISIONS)}")
        hidden = self.critic_hidden_dims
        if isinstance(hidden, list):
            # YAML and CLI overrides give lists; keep the frozen dataclass hashable.
            object.__setattr__(self, "critic_hidden_dims", tuple(hidden))
            hidden = self.critic_hidden_dims
        if not isinstance(hidden, tuple) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden
        ):
            _fail(
                "critic_hidden_dims", hidden, "a sequence of positive integers, e.g. (256,) or () for linear"
            )
        from relic_rl.objectives import OBJECTIVES

        if not isinstance(self.objective, str) or self.objective not in OBJECTIVES:
            _fail("objective", self.objective, f"one of {sorted(OBJECTIVES)}")
        if self.divergence not in DIVERGENCES:
            _fail("divergence", self.divergence, f"one of {list(DIVERGENCES)}")
        if not isinstance(self.augmentation, str) or not self.augmentation.strip():
            _fail("augmentation", self.augmentation, 'a non-empty spec string such as "shift,intensity"')
        # Build once so that a bad spec fails at configuration time, not mid-training.
        from relic_rl.augmentations import make_augmentation

        make_augmentation(self.augmentation)

    @property
    def active(self) -> bool:
        """Whether the auxiliary loss is computed at all (``enabled`` and ``aux_weight > 0``)."""
        return self.enabled and self.aux_weight > 0

    def replace(self, **changes: Any) -> ReLICConfig:
        """Return a validated copy with ``changes`` applied (unknown names raise ValueError)."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise ValueError(f"ReLICConfig has no field(s) {unknown}; valid fields: {sorted(valid)}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists instead of tuples) suitable for YAML."""
        data = dataclasses.asdict(self)
        data["critic_hidden_dims"] = list(self.critic_hidden_dims)
        if self.objective == "relic":
            # Written only when it is not the default, so that run folders saved before the
            # field existed compare and resume unchanged.
            del data["objective"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReLICConfig:
        """Build from a mapping (e.g. a preset's ``relic:`` block); unknown keys raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"ReLICConfig.from_dict expects a mapping, got {type(data).__name__}.")
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ValueError(f"Unknown ReLIC config key(s) {unknown}; valid keys: {sorted(valid)}.")
        return cls(**data)
