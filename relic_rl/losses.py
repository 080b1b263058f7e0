"""The ReLIC objective (Mitrovic et al., 2021): instance discrimination plus an invariance penalty.

For each ordered pair of distinct views ``(l, k)``, ``p_lk(j | i) = softmax_j(<online[l, i], target[k, j]>
/ temperature)`` over the batch; the loss is ``-log p_lk(i | i)`` plus a divergence between the
distributions that different pairs induce for the same sample. All in log-space, so it stays finite for
small temperatures and embeddings of any scale. No Stable-Baselines3 dependency.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

Divergence = Literal["kl", "js"]
DIVERGENCES: tuple[str, ...] = ("kl", "js")


class ReLICLossOutput(NamedTuple):
    """Result of :func:`relic_loss` (scalar tensors, ``loss = contrastive + kl_weight * invariance``).

    :param accuracy: fraction of rows whose most likely candidate is the positive, averaged over view
        pairs: a float, or a 0-d tensor on the inputs' device with ``accuracy_as_tensor=True``.
    """

    loss: torch.Tensor
    contrastive: torch.Tensor
    invariance: torch.Tensor
    accuracy: float | torch.Tensor


def _is_real(value: object) -> bool:
    """A finite real number (Python or NumPy scalar), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_hyperparameters(where: str, temperature: float, kl_weight: float, divergence: str) -> None:
    """Raise ValueError unless ``temperature > 0``, ``kl_weight >= 0`` and ``divergence`` is known."""
    if not (_is_real(temperature) and temperature > 0):
        raise ValueError(f"{where}: `temperature` must be a finite number > 0, got {temperature!r}.")
    if not (_is_real(kl_weight) and kl_weight >= 0):
        raise ValueError(f"{where}: `kl_weight` must be a finite number >= 0, got {kl_weight!r}.")
    if divergence not in DIVERGENCES:
        raise ValueError(f"{where}: unknown divergence {divergence!r}; expected one of {list(DIVERGENCES)}.")


def check_views(online: torch.Tensor, target: torch.Tensor) -> None:
    """Raise ValueError unless both are floating [V >= 2, N >= 2, D] tensors of one shape (reads no data)."""
    for name, t in (("online", online), ("target", target)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(
                f"relic_loss: `{name}` must be a torch.Tensor of shape [V, N, D], got {type(t)!r}."
            )
        if not t.is_floating_point():
            raise ValueError(
                f"relic_loss: `{name}` has dtype {t.dtype}, expected a floating dtype "
                "(float16/bfloat16/float32/float64); cast it with `.float()`."
            )
        if t.dim() != 3:
            raise ValueError(
                f"relic_loss: `{name}` must be 3-D [V views, N samples, D dims], got shape {tuple(t.shape)}."
            )
    if online.shape != target.shape:
        raise ValueError(
            f"relic_loss: `online` and `target` must have the same shape [V, N, D], got "
            f"{tuple(online.shape)} and {tuple(target.shape)}."
        )
    n_views, n_samples, _ = online.shape
    if n_views < 2:
        raise ValueError(
            f"relic_loss: need at least 2 augmented views (V >= 2) to form view pairs, got V={n_views}."
        )
    if n_samples < 2:
        raise ValueError(
            "relic_loss: need at least 2 samples (N >= 2) so that the batch holds negatives, "
            f"got N={n_samples}."
        )


def _view_pairs(n_views: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(l, k)`` of the V (V - 1) ordered pairs of distinct views, in row-major order."""
    pairs = torch.tensor([(a, b) for a in range(n_views) for b in range(n_views) if a != b], device=device)
    return pairs[:, 0], pairs[:, 1]


def pair_log_probs(online: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    """``log p_lk[i, j]`` as a [V (V - 1), N, N] tensor, pairs ``(l, k), l != k`` in row-major order."""
    l_idx, k_idx = _view_pairs(online.shape[0], online.device)
    logits = torch.bmm(online[l_idx], target[k_idx].transpose(1, 2)) / temperature
    return torch.log_softmax(logits, dim=-1)


def _kl_all_pairs(log_p: torch.Tensor) -> torch.Tensor:
    """Mean of KL(p_a[i] || p_b[i]) over ordered pairs a != b and rows i. ``log_p``: [P, N, N].

    sum_{a != b} KL(a || b) = P sum_a sum_j p_a (log p_a - mean_b log p_b) avoids a [P, P, N, N]
    intermediate; centring before the product keeps float32 cancellation small for close distributions.
    """
    n_pairs, n_rows, _ = log_p.shape
    p = log_p.exp()
    total = n_pairs * (p * (log_p - log_p.mean(0))).sum()
    return total / (n_pairs * (n_pairs - 1) * n_rows)


def _js_all_pairs(log_p: torch.Tensor) -> torch.Tensor:
    """Mean Jensen-Shannon divergence over pairs a != b and rows i. ``log_p``: [P, N, N]."""
    n_pairs = log_p.shape[0]
    a_idx, b_idx = torch.triu_indices(n_pairs, n_pairs, offset=1, device=log_p.device)
    log_a, log_b = log_p[a_idx], log_p[b_idx]  # [Q, N, N]
    log_m = torch.logaddexp(log_a, log_b) - math.log(2.0)
    kl_am = (log_a.exp() * (log_a - log_m)).sum(-1)
    kl_bm = (log_b.exp() * (log_b - log_m)).sum(-1)
    # JS is symmetric, so the mean over unordered pairs equals the mean over ordered ones.
    return (0.5 * (kl_am + kl_bm)).mean()


def relic_loss(
    online: torch.Tensor,
    target: torch.Tensor,
    *,
    temperature: float,
    kl_weight: float,
    normalize: bool = True,
    divergence: str = "kl",
    accuracy_as_tensor: bool = False,
) -> ReLICLossOutput:
    """ReLIC loss over ``V >= 2`` augmented views of the same ``N`` observations.

    :param online: [V, N, D] critic outputs of the online encoder.
    :param target: [V, N, D] critic outputs of the target encoder; detach it for a stop-gradient target.
    :param temperature: softmax temperature tau > 0.
    :param kl_weight: weight alpha >= 0 of the invariance penalty.
    :param normalize: L2-normalise both inputs along D (cosine-similarity critic).
    :param divergence: ``"kl"`` (averaged over both orders of each pair of pairs) or ``"js"``.
    :param accuracy_as_tensor: return ``accuracy`` as a 0-d tensor, avoiding a host synchronisation.
    :raises ValueError: on malformed shapes, dtypes or hyperparameters.
    """
    check_views(online, target)
    check_hyperparameters("relic_loss", temperature, kl_weight, divergence)
    return relic_terms(online, target, temperature, kl_weight, normalize, divergence, accuracy_as_tensor)


def relic_terms(
    online: torch.Tensor,
    target: torch.Tensor,
    temperature: float,
    kl_weight: float,
    normalize: bool,
    divergence: str,
    accuracy_as_tensor: bool,
) -> ReLICLossOutput:
    """:func:`relic_loss` without its checks, for already validated hyperparameters and views."""
    if normalize:
        online = F.normalize(online, dim=-1)
        target = F.normalize(target, dim=-1)
    log_p = pair_log_probs(online, target, temperature)  # [P, N, N]
    contrastive = -torch.diagonal(log_p, dim1=-2, dim2=-1).mean()
    invariance = _kl_all_pairs(log_p) if divergence == "kl" else _js_all_pairs(log_p)
    with torch.no_grad():
        hits = log_p.argmax(dim=-1) == torch.arange(log_p.shape[1], device=log_p.device)
        n_hits = hits.sum()
        accuracy = n_hits / hits.numel() if accuracy_as_tensor else n_hits.item() / hits.numel()
    return ReLICLossOutput(contrastive + kl_weight * invariance, contrastive, invariance, accuracy)


class ReLICLoss(nn.Module):
    """Module wrapper of :func:`relic_loss` holding its hyperparameters (checked at construction).

    :param temperature: softmax temperature tau > 0.
    :param kl_weight: alpha >= 0, weight of the invariance penalty.
    :param normalize: L2-normalise embeddings (cosine-similarity critic).
    :param divergence: ``"kl"`` or ``"js"``.
    """

    def __init__(
        self, temperature: float = 0.1, kl_weight: float = 1.0, normalize: bool = True, divergence: str = "kl"
    ) -> None:
        super().__init__()
        check_hyperparameters("ReLICLoss", temperature, kl_weight, divergence)
        self.temperature = float(temperature)
        self.kl_weight = float(kl_weight)
        self.normalize = normalize
        self.divergence = divergence

    def forward(self, online: torch.Tensor, target: torch.Tensor) -> ReLICLossOutput:
        """:param online: [V, N, D]. :param target: [V, N, D]. :return: :class:`ReLICLossOutput`."""
        check_views(online, target)
        return relic_terms(
            online, target, self.temperature, self.kl_weight, self.normalize, self.divergence, False
        )

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, kl_weight={self.kl_weight}, "
            f"normalize={self.normalize}, divergence={self.divergence!r}"
        )


class CURLLossOutput(NamedTuple):
    """Result of :func:`curl_loss`: InfoNCE loss and top-1 accuracy (0-d tensors)."""

    loss: torch.Tensor
    accuracy: torch.Tensor


def curl_loss(query: torch.Tensor, key: torch.Tensor, weight: torch.Tensor) -> CURLLossOutput:
    """CURL's contrastive loss (Laskin et al., 2020) over ``V >= 2`` views of ``N`` observations: for each
    ordered pair of distinct views ``(l, k)``, cross-entropy of ``i`` over ``query[l, i]^T W key[k, j]``.

    :param query: [V, N, D] online critic outputs.
    :param key: [V, N, D] target critic outputs (pass them detached, as CURL's EMA keys).
    :param weight: [D, D] the learned bilinear matrix W.
    :raises ValueError: on malformed shapes.
    """
    if query.dim() != 3 or query.shape != key.shape:
        raise ValueError(
            f"curl_loss: `query` and `key` must both be [V, N, D], got {tuple(query.shape)} and "
            f"{tuple(key.shape)}."
        )
    n_views, n_rows, dim = query.shape
    if n_views < 2 or n_rows < 2:
        raise ValueError(f"curl_loss: need V >= 2 views and N >= 2 samples, got V={n_views}, N={n_rows}.")
    if weight.shape != (dim, dim):
        raise ValueError(f"curl_loss: `weight` must be [{dim}, {dim}], got {tuple(weight.shape)}.")
    l_idx, k_idx = _view_pairs(n_views, query.device)
    logits = torch.bmm(query[l_idx] @ weight, key[k_idx].transpose(1, 2))  # [P, N, N]
    # CURL subtracts each row's maximum before the softmax; log_softmax is already shift-stable.
    log_p = torch.log_softmax(logits, dim=-1)
    loss = -torch.diagonal(log_p, dim1=-2, dim2=-1).mean()
    with torch.no_grad():
        hits = logits.argmax(dim=-1) == torch.arange(n_rows, device=logits.device)
        accuracy = hits.sum() / hits.numel()
    return CURLLossOutput(loss=loss, accuracy=accuracy)
