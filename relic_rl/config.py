"""Typed, validated configuration of the ReLIC auxiliary objective."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relic_rl.losses import DIVERGENCES

#: Values of ``ReLICConfig.target_precision``.
TARGET_PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(low: float, strict: bool = False, high: float = math.inf) -> Callable[[Any], bool]:
    return lambda v: _is_number(v) and (v > low if strict else v >= low) and v <= high


def _integer(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


_BOOL: tuple[Callable[[Any], bool], str] = (lambda v: isinstance(v, bool), "a bool (true/false)")

#: field -> (check, what is expected), run in this order by ``ReLICConfig.__post_init__``; ``objective``
#: (``None`` here) is checked against the registry as it is when the config is built.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str] | None] = {
    **dict.fromkeys(("enabled", "normalize", "ema_critic", "clean_view"), _BOOL),
    "aux_weight": (_number(0), "a finite number >= 0 (0 disables the auxiliary loss)"),
    "kl_weight": (_number(0), "a finite number >= 0 (0 disables the invariance penalty)"),
    "temperature": (_number(0, strict=True), "a finite number > 0, e.g. 0.1"),
    "n_views": (_integer(2), "an integer >= 2"),
    "target_momentum": (_number(0, high=1), "a number in [0, 1]"),
    "projection_dim": (_integer(1), "a positive integer"),
    "features_dim": (_integer(1), "a positive integer"),
    "aux_batch_size": (
        lambda v: v is None or _integer(2)(v),
        "an integer >= 2 (the loss needs negatives) or null",
    ),
    "aux_every": (_integer(1), "an integer >= 1 (1: every update pass)"),
    "target_precision": (lambda v: v in TARGET_PRECISIONS, f"one of {list(TARGET_PRECISIONS)}"),
    "critic_hidden_dims": (
        lambda v: isinstance(v, tuple) and all(map(_integer(1), v)),
        "a sequence of positive integers, e.g. (256,) or () for linear",
    ),
    "objective": None,
    "divergence": (lambda v: v in DIVERGENCES, f"one of {list(DIVERGENCES)}"),
    "augmentation": (
        lambda v: isinstance(v, str) and bool(v.strip()),
        'a non-empty spec string such as "shift,intensity"',
    ),
}


@dataclass(frozen=True)
class ReLICConfig:
    """Hyperparameters of the ReLIC auxiliary loss attached to an SB3 agent, validated on construction
    (``ValueError`` naming the field, its value and what is expected). Defaults follow DrQ (shift plus
    intensity jitter), CURL (0.99 EMA target) and SimCLR/BYOL (small projection MLP g, of
    ``critic_hidden_dims`` and ``projection_dim``).

    :param objective: a name of :data:`relic_rl.objectives.OBJECTIVES`: ``"relic"`` or ``"curl"``
        (bilinear InfoNCE, which ignores ``temperature``, ``kl_weight``, ``normalize``, ``divergence``).
    :param enabled: ``False`` (or ``aux_weight == 0``) builds no critic or target network and adds no
        compute: the agent trains exactly as plain SB3 with the same seed.
    :param aux_weight: lambda, the loss's scale against the RL loss: 0.1, as InfoNCE starts near
        ``log(batch)`` while SB3's losses are O(0.1-1) and share its gradient clip.
    :param kl_weight: alpha, weight of the invariance penalty (0: plain InfoNCE).
    :param temperature: tau of the softmax over the batch (> 0; 0.1 the usual value).
    :param divergence: the invariance penalty's divergence, ``"kl"`` or ``"js"``.
    :param n_views: augmented views per observation (>= 2); every ordered pair of distinct views is compared.
    :param clean_view: make the first view the un-augmented observation, whose online features are
        the RL features, computed once; ``False`` augments every view.
    :param augmentation: spec for :func:`relic_rl.augmentations.make_augmentation` (default: DrQ's
        random shift, pad 4, then a per-sample intensity scaling).
    :param target_momentum: m of the EMA target ``h <- m h + (1 - m) f``; 1 freezes it, 0 copies.
    :param normalize: L2-normalise critic outputs so that phi is a cosine similarity.
    :param ema_critic: targets are ``g_ema(h(x))`` (BYOL/ReLIC), else the online g without gradient.
    :param features_dim: output size of the default encoder's last linear layer.

    Three fields trade the exact objective for speed (costs in the README's performance section):
    ``aux_batch_size`` uses only the first samples of each minibatch (None: all); ``aux_every``
    computes the loss on every n-th update pass only (for PPO, A2C and DQN one gradient step);
    ``target_precision="bfloat16"`` runs the target network under ``torch.autocast`` (fast on CPUs
    with AVX512-BF16/AMX and on GPUs), its outputs cast back to float32.
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
        if isinstance(self.critic_hidden_dims, list):
            # YAML and CLI overrides give lists; keep it hashable.
            object.__setattr__(self, "critic_hidden_dims", tuple(self.critic_hidden_dims))
        from relic_rl.augmentations import make_augmentation
        from relic_rl.objectives import OBJECTIVES

        objective = (lambda v: isinstance(v, str) and v in OBJECTIVES, f"one of {sorted(OBJECTIVES)}")
        for name, check in _CHECKS.items():
            valid, expected = check or objective
            value = getattr(self, name)
            if not valid(value):
                raise ValueError(f"ReLICConfig.{name}={value!r} is invalid: expected {expected}.")
        # Build once so that a bad spec fails at configuration time, not mid-training.
        make_augmentation(self.augmentation)

    @property
    def active(self) -> bool:
        """Whether the auxiliary loss is computed at all (``enabled`` and ``aux_weight > 0``)."""
        return self.enabled and self.aux_weight > 0

    def replace(self, **changes: Any) -> ReLICConfig:
        """Return a validated copy with ``changes`` applied (unknown names raise ValueError)."""
        if unknown := sorted(set(changes) - set(_FIELDS)):
            raise ValueError(f"ReLICConfig has no field(s) {unknown}; valid fields: {_FIELDS}.")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists instead of tuples) suitable for YAML."""
        data = dataclasses.asdict(self)
        data["critic_hidden_dims"] = list(self.critic_hidden_dims)
        if self.objective == "relic":
            del data["objective"]  # so that older run folders compare and resume unchanged
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReLICConfig:
        """Build from a mapping (e.g. a preset's ``relic:`` block); unknown keys raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"ReLICConfig.from_dict expects a mapping, got {type(data).__name__}.")
        if unknown := sorted(set(data) - set(_FIELDS)):
            raise ValueError(f"Unknown ReLIC config key(s) {unknown}; valid keys: {_FIELDS}.")
        return cls(**data)


_FIELDS = sorted(f.name for f in dataclasses.fields(ReLICConfig))
