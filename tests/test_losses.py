"""Tests of :mod:`relic_rl.losses` against an independent reference written from the spec.

The reference below deliberately uses explicit Python loops over view pairs, rows and
pairs of pairs, with plain ``math`` on Python floats (float64), so that it shares no
code path (einsum, log_softmax, triu indexing) with the implementation.
"""

from __future__ import annotations

import itertools
import math
import zlib

import pytest
import torch

import relic_rl
from relic_rl import ReLICLoss, ReLICLossOutput, relic_loss

# --------------------------------------------------------------------------------------
# Naive reference
# --------------------------------------------------------------------------------------


def _l2_normalise(vec: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vec))
    return [x / norm for x in vec]


def _log_softmax(row: list[float]) -> list[float]:
    m = max(row)
    lse = m + math.log(sum(math.exp(x - m) for x in row))
    return [x - lse for x in row]


def _kl(log_p: list[float], log_q: list[float]) -> float:
    return sum(math.exp(lp) * (lp - lq) for lp, lq in zip(log_p, log_q, strict=True))


def _js(log_p: list[float], log_q: list[float]) -> float:
    # log m_j = log((p_j + q_j) / 2), computed stably in log-space.
    log_m = [
        max(a, b) + math.log(0.5 * (1.0 + math.exp(-abs(a - b)))) for a, b in zip(log_p, log_q, strict=True)
    ]
    return 0.5 * _kl(log_p, log_m) + 0.5 * _kl(log_q, log_m)


def reference_relic(
    online: torch.Tensor,
    target: torch.Tensor,
    *,
    temperature: float,
    kl_weight: float,
    normalize: bool,
    divergence: str,
) -> tuple[float, float, float, float]:
    """(loss, contrastive, invariance, accuracy) computed naively from the spec."""
    on = online.detach().double().tolist()
    tg = target.detach().double().tolist()
    n_views, n_samples = len(on), len(on[0])
    if normalize:
        on = [[_l2_normalise(v) for v in view] for view in on]
        tg = [[_l2_normalise(v) for v in view] for view in tg]

    pairs = [(q, k) for q in range(n_views) for k in range(n_views) if q != k]
    log_p: dict[tuple[int, int], list[list[float]]] = {}
    hits, contrastive_terms = [], []
    for q, k in pairs:
        rows = []
        for i in range(n_samples):
            logits = [
                sum(a * b for a, b in zip(on[q][i], tg[k][j], strict=True)) / temperature
                for j in range(n_samples)
            ]
            ordered = sorted(logits, reverse=True)
            # The test data must not contain argmax ties, otherwise accuracy is ill-posed.
            assert ordered[0] - ordered[1] > 1e-9 * max(1.0, abs(ordered[0])), "tie in reference data"
            hits.append(1.0 if max(range(n_samples), key=lambda j, lg=logits: lg[j]) == i else 0.0)
            row = _log_softmax(logits)
            contrastive_terms.append(-row[i])
            rows.append(row)
        log_p[(q, k)] = rows

    div = _kl if divergence == "kl" else _js
    invariance_terms = []
    for a in pairs:
        for b in pairs:
            if a == b:
                continue
            for i in range(n_samples):
                invariance_terms.append(div(log_p[a][i], log_p[b][i]))

    contrastive = sum(contrastive_terms) / len(contrastive_terms)
    invariance = sum(invariance_terms) / len(invariance_terms)
    accuracy = sum(hits) / len(hits)
    return contrastive + kl_weight * invariance, contrastive, invariance, accuracy


def make_views(
    n_views: int,
    n_samples: int,
    dim: int,
    *,
    seed: int,
    dtype: torch.dtype = torch.float64,
    noise: float = 0.6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlated views: a shared per-sample base plus independent per-view noise."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(1, n_samples, dim, generator=gen, dtype=torch.float64)
    online = base + noise * torch.randn(n_views, n_samples, dim, generator=gen, dtype=torch.float64)
    target = base + noise * torch.randn(n_views, n_samples, dim, generator=gen, dtype=torch.float64)
    return online.to(dtype), target.to(dtype)


def _close(actual: torch.Tensor | float, expected: float, rtol: float = 1e-6, atol: float = 1e-12) -> bool:
    return math.isclose(float(actual), expected, rel_tol=rtol, abs_tol=atol)


def _assert_outputs_equal(a: ReLICLossOutput, b: ReLICLossOutput, rtol: float = 1e-10) -> None:
    torch.testing.assert_close(a.loss, b.loss, rtol=rtol, atol=1e-12)
    torch.testing.assert_close(a.contrastive, b.contrastive, rtol=rtol, atol=1e-12)
    torch.testing.assert_close(a.invariance, b.invariance, rtol=rtol, atol=1e-12)
    assert a.accuracy == pytest.approx(b.accuracy, abs=1e-12)


# --------------------------------------------------------------------------------------
# Agreement with the naive reference
# --------------------------------------------------------------------------------------

SHAPES = [(2, 2, 3), (2, 5, 8), (2, 16, 32), (3, 2, 3), (3, 5, 32), (3, 16, 8)]
KL_WEIGHTS = (0.0, 0.5, 2.0)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("divergence", ["kl", "js"])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 1.0])
@pytest.mark.parametrize(("n_views", "n_samples", "dim"), SHAPES)
def test_matches_naive_reference_in_float64(n_views, n_samples, dim, temperature, divergence, normalize):
    seed = zlib.crc32(repr((n_views, n_samples, dim, temperature, divergence, normalize)).encode())
    online, target = make_views(n_views, n_samples, dim, seed=seed)
    if not normalize:
        # Keep unnormalised dot products moderate so that logits stay in a sane range.
        online, target = online / math.sqrt(dim), target / math.sqrt(dim)
    for kl_weight in KL_WEIGHTS:
        out = relic_loss(
            online,
            target,
            temperature=temperature,
            kl_weight=kl_weight,
            normalize=normalize,
            divergence=divergence,
        )
        loss, contrastive, invariance, accuracy = reference_relic(
            online,
            target,
            temperature=temperature,
            kl_weight=kl_weight,
            normalize=normalize,
            divergence=divergence,
        )
        assert isinstance(out, ReLICLossOutput)
        assert _close(out.contrastive, contrastive), (float(out.contrastive), contrastive)
        assert _close(out.invariance, invariance), (float(out.invariance), invariance)
        assert _close(out.loss, loss), (kl_weight, float(out.loss), loss)
        assert isinstance(out.accuracy, float)
        assert out.accuracy == pytest.approx(accuracy, abs=1e-6)


@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_float32_inputs_match_reference_loosely(divergence):
    online, target = make_views(3, 8, 16, seed=11, dtype=torch.float32)
    out = relic_loss(online, target, temperature=0.1, kl_weight=0.5, divergence=divergence)
    loss, contrastive, invariance, accuracy = reference_relic(
        online, target, temperature=0.1, kl_weight=0.5, normalize=True, divergence=divergence
    )
    assert _close(out.contrastive, contrastive, rtol=1e-4, atol=1e-5)
    assert _close(out.invariance, invariance, rtol=1e-4, atol=1e-5)
    assert _close(out.loss, loss, rtol=1e-4, atol=1e-5)
    assert out.accuracy == pytest.approx(accuracy)


def test_reference_accuracy_is_nontrivial_on_test_data():
    # Guards the reference comparison against vacuous data where every row is a hit or a miss.
    online, target = make_views(3, 16, 8, seed=3)
    accuracy = reference_relic(
        online, target, temperature=0.1, kl_weight=1.0, normalize=True, divergence="kl"
    )[3]
    assert 0.0 < accuracy < 1.0
    assert relic_loss(online, target, temperature=0.1, kl_weight=1.0).accuracy == pytest.approx(accuracy)


def test_outputs_are_scalars_and_loss_combines_terms():
    online, target = make_views(2, 6, 4, seed=5)
    out = relic_loss(online, target, temperature=0.2, kl_weight=1.7)
    for t in (out.loss, out.contrastive, out.invariance):
        assert isinstance(t, torch.Tensor)
        assert t.dim() == 0
    torch.testing.assert_close(out.loss, out.contrastive + 1.7 * out.invariance)
    assert float(out.invariance) > 0.0
    assert 0.0 <= out.accuracy <= 1.0


def test_inputs_are_not_modified_in_place():
    online, target = make_views(3, 4, 5, seed=6)
    online_copy, target_copy = online.clone(), target.clone()
    relic_loss(online, target, temperature=0.1, kl_weight=1.0, normalize=True)
    relic_loss(online, target, temperature=0.1, kl_weight=1.0, normalize=False, divergence="js")
    assert torch.equal(online, online_copy)
    assert torch.equal(target, target_copy)


# --------------------------------------------------------------------------------------
# Closed-form cases
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("divergence", ["kl", "js"])
@pytest.mark.parametrize("n_views", [2, 3])
def test_identical_views_have_zero_invariance(n_views, divergence, normalize):
    gen = torch.Generator().manual_seed(7)
    one_view = torch.randn(1, 6, 5, generator=gen, dtype=torch.float64)
    online = one_view.expand(n_views, -1, -1).clone()
    out = relic_loss(
        online, online.clone(), temperature=0.1, kl_weight=3.0, normalize=normalize, divergence=divergence
    )
    assert abs(float(out.invariance)) < 1e-10
    torch.testing.assert_close(out.loss, out.contrastive, rtol=0, atol=1e-9)
    assert float(out.contrastive) > 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("divergence", ["kl", "js"])
@pytest.mark.parametrize("n_views", [2, 3])
def test_orthogonal_embeddings_at_small_temperature_give_zero_contrastive_and_full_accuracy(
    n_views, divergence, dtype
):
    n_samples, dim, temperature = 4, 6, 0.01
    eye = torch.eye(n_samples, dim, dtype=dtype)
    # Different positive scales per view: after normalisation all views coincide.
    online = torch.stack([(v + 1.0) * eye for v in range(n_views)])
    target = torch.stack([(v + 0.5) * eye for v in range(n_views)])
    out = relic_loss(online, target, temperature=temperature, kl_weight=1.0, divergence=divergence)
    # -log p(i|i) = log(1 + (N - 1) exp(-1 / tau)), about 1e-43 here.
    expected = math.log1p((n_samples - 1) * math.exp(-1.0 / temperature))
    assert expected < 1e-40
    assert 0.0 <= float(out.contrastive) < (1e-30 if dtype == torch.float64 else 1e-6)
    assert out.accuracy == 1.0
    assert abs(float(out.invariance)) < 1e-6


@pytest.mark.parametrize("divergence", ["kl", "js"])
@pytest.mark.parametrize("normalize", [True, False])
def test_all_equal_embeddings_give_log_n_contrastive(normalize, divergence):
    n_samples = 7
    online = torch.full((3, n_samples, 4), 0.3, dtype=torch.float64)
    target = torch.full((3, n_samples, 4), -1.2, dtype=torch.float64)
    out = relic_loss(
        online, target, temperature=0.05, kl_weight=1.0, normalize=normalize, divergence=divergence
    )
    assert _close(out.contrastive, math.log(n_samples), rtol=1e-12)
    assert abs(float(out.invariance)) < 1e-12


def _binary_kl(p: float, q: float) -> float:
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def _binary_js(p: float, q: float) -> float:
    m = 0.5 * (p + q)
    return 0.5 * _binary_kl(p, m) + 0.5 * _binary_kl(q, m)


@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_scaled_identity_views_match_closed_form(divergence):
    """online[l] = a_l I, target[k] = b_k I, unnormalised.

    Row i of pair (l, k) puts P_lk = e^s / (e^s + N - 1), s = a_l b_k / tau, on j = i and
    spreads the rest uniformly, so every divergence reduces to a two-point one.
    """
    n_samples, dim, temperature, kl_weight = 4, 5, 1.0, 0.75
    a, b = (1.0, 2.0, 3.0), (0.5, 1.5, 1.0)
    eye = torch.eye(n_samples, dim, dtype=torch.float64)
    online = torch.stack([s * eye for s in a])
    target = torch.stack([s * eye for s in b])

    pairs = [(q, k) for q in range(3) for k in range(3) if q != k]
    p_pos = {}
    for q, k in pairs:
        s = a[q] * b[k] / temperature
        p_pos[(q, k)] = math.exp(s) / (math.exp(s) + n_samples - 1)
    contrastive = sum(-math.log(p) for p in p_pos.values()) / len(pairs)
    div = _binary_kl if divergence == "kl" else _binary_js
    divs = [div(p_pos[x], p_pos[y]) for x in pairs for y in pairs if x != y]
    invariance = sum(divs) / len(divs)

    out = relic_loss(
        online, target, temperature=temperature, kl_weight=kl_weight, normalize=False, divergence=divergence
    )
    assert _close(out.contrastive, contrastive, rtol=1e-10)
    assert _close(out.invariance, invariance, rtol=1e-10)
    assert _close(out.loss, contrastive + kl_weight * invariance, rtol=1e-10)
    assert out.accuracy == 1.0


def test_shifted_targets_give_zero_accuracy_and_closed_form_contrastive():
    n_samples, temperature = 5, 0.5
    eye = torch.eye(n_samples, dtype=torch.float64)
    online = torch.stack([eye, eye, eye])
    # Row i of the target is e_{i-1}, so online row i matches target row i + 1.
    target = torch.stack([eye.roll(1, dims=0)] * 3)
    out = relic_loss(online, target, temperature=temperature, kl_weight=1.0)
    assert out.accuracy == 0.0
    # Positive logit 0, one logit 1/tau, the rest 0.
    expected = math.log(math.exp(1.0 / temperature) + n_samples - 1)
    assert _close(out.contrastive, expected, rtol=1e-12)


def test_half_of_rows_swapped_gives_accuracy_one_half():
    eye = torch.eye(4, dtype=torch.float64)
    swapped = eye[[1, 0, 2, 3]]
    online = torch.stack([eye, eye])
    target = torch.stack([swapped, swapped])
    out = relic_loss(online, target, temperature=0.1, kl_weight=1.0)
    assert out.accuracy == 0.5


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_disjoint_pair_distributions_give_js_of_log_two_and_binary_kl(temperature):
    # N = 2: p_01[i] = (p, q) peaks on j = i, p_10[i] = (q, p) peaks on j != i, q = 1 - p.
    eye = torch.eye(2, dtype=torch.float64)
    swap = eye[[1, 0]]
    online = torch.stack([eye, eye])
    target = torch.stack([swap, eye])
    e = math.exp(-1.0 / temperature)
    p, q = 1.0 / (1.0 + e), e / (1.0 + e)
    log_p, log_q = -math.log1p(e), -1.0 / temperature - math.log1p(e)
    # KL((p, q) || (q, p)) = (p - q)(log p - log q), the same in both directions; M = (1/2, 1/2).
    expected_kl = (p - q) / temperature
    expected_js = math.log(2.0) + p * log_p + q * log_q
    js = relic_loss(online, target, temperature=temperature, kl_weight=1.0, divergence="js")
    kl = relic_loss(online, target, temperature=temperature, kl_weight=1.0, divergence="kl")
    assert _close(js.invariance, expected_js, rtol=1e-10)
    assert _close(kl.invariance, expected_kl, rtol=1e-10)
    assert float(js.invariance) <= math.log(2.0) + 1e-12
    if temperature == 0.05:
        assert float(js.invariance) == pytest.approx(math.log(2.0), abs=1e-6)
    # Pair (0, 1) hits on every row, pair (1, 0) misses on every row.
    assert js.accuracy == 0.5


# --------------------------------------------------------------------------------------
# Symmetries
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_permuting_samples_leaves_outputs_unchanged(divergence, normalize):
    online, target = make_views(3, 9, 6, seed=21)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(perm, torch.arange(9))
    kwargs = dict(temperature=0.2, kl_weight=0.8, normalize=normalize, divergence=divergence)
    _assert_outputs_equal(
        relic_loss(online, target, **kwargs), relic_loss(online[:, perm], target[:, perm], **kwargs)
    )


@pytest.mark.parametrize("divergence", ["kl", "js"])
@pytest.mark.parametrize("perm", [(1, 0, 2), (2, 0, 1), (2, 1, 0)])
def test_permuting_views_leaves_outputs_unchanged(perm, divergence):
    online, target = make_views(3, 7, 6, seed=22)
    kwargs = dict(temperature=0.15, kl_weight=1.3, divergence=divergence)
    idx = list(perm)
    _assert_outputs_equal(
        relic_loss(online, target, **kwargs), relic_loss(online[idx], target[idx], **kwargs)
    )


def test_permuting_views_of_only_one_input_changes_the_loss():
    # Sanity check that the symmetry test above is not vacuous.
    online, target = make_views(3, 7, 6, seed=22)
    base = relic_loss(online, target, temperature=0.15, kl_weight=1.3)
    moved = relic_loss(online[[1, 2, 0]], target, temperature=0.15, kl_weight=1.3)
    assert abs(float(base.loss) - float(moved.loss)) > 1e-6


@pytest.mark.parametrize("normalize", [True, False])
def test_two_view_kl_invariance_is_mean_of_both_directions(normalize):
    online, target = make_views(2, 6, 4, seed=31)
    tau = 0.3
    o, t = online, target
    if normalize:
        o = o / o.norm(dim=-1, keepdim=True)
        t = t / t.norm(dim=-1, keepdim=True)
    total = 0.0
    for i in range(6):
        log_p01 = torch.log_softmax(torch.stack([o[0, i] @ t[1, j] for j in range(6)]) / tau, dim=0)
        log_p10 = torch.log_softmax(torch.stack([o[1, i] @ t[0, j] for j in range(6)]) / tau, dim=0)
        kl_fwd = float((log_p01.exp() * (log_p01 - log_p10)).sum())
        kl_bwd = float((log_p10.exp() * (log_p10 - log_p01)).sum())
        assert abs(kl_fwd - kl_bwd) > 1e-8  # the two directions genuinely differ
        total += 0.5 * (kl_fwd + kl_bwd)
    out = relic_loss(online, target, temperature=tau, kl_weight=1.0, normalize=normalize, divergence="kl")
    assert _close(out.invariance, total / 6, rtol=1e-10)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_views", [2, 3])
def test_js_invariance_is_between_zero_and_log_two(n_views, seed):
    online, target = make_views(n_views, 5, 4, seed=100 + seed, noise=5.0)
    out = relic_loss(online, target, temperature=0.01, kl_weight=1.0, divergence="js")
    assert 0.0 < float(out.invariance) <= math.log(2.0) + 1e-12


# --------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("divergence", ["kl", "js"])
@pytest.mark.parametrize("n_views", [2, 3])
def test_gradcheck_through_online_and_target(n_views, divergence, normalize):
    online, target = make_views(n_views, 3, 4, seed=41)
    online.requires_grad_(True)
    target.requires_grad_(True)

    def fn(o: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = relic_loss(o, t, temperature=0.5, kl_weight=0.7, normalize=normalize, divergence=divergence)
        return out.loss, out.contrastive, out.invariance

    assert torch.autograd.gradcheck(fn, (online, target), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_detached_target_receives_no_gradient(divergence):
    online, target = make_views(3, 5, 4, seed=51, dtype=torch.float32)
    online.requires_grad_(True)
    target.requires_grad_(True)
    out = relic_loss(online, target.detach(), temperature=0.1, kl_weight=1.0, divergence=divergence)
    assert out.loss.requires_grad
    out.loss.backward()
    assert target.grad is None
    assert online.grad is not None
    assert torch.isfinite(online.grad).all()
    assert online.grad.abs().max() > 0


@pytest.mark.parametrize("divergence", ["kl", "js"])
def test_undetached_target_receives_gradient_also_from_invariance(divergence):
    online, target = make_views(3, 5, 4, seed=52)
    target.requires_grad_(True)
    out = relic_loss(online, target, temperature=0.1, kl_weight=1.0, divergence=divergence)
    (grad_inv,) = torch.autograd.grad(out.invariance, target)
    assert torch.isfinite(grad_inv).all()
    assert grad_inv.abs().max() > 0


# --------------------------------------------------------------------------------------
# Numerical robustness
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("divergence", ["kl", "js"])
@pytest.mark.parametrize(
    ("scale", "normalize"), [(1e4, True), (1e-4, True), (1.0, True), (10.0, False), (1.0, False)]
)
def test_finite_loss_and_gradients_at_extreme_scales_and_temperature(scale, normalize, divergence, dtype):
    online, target = make_views(3, 16, 32, seed=61, dtype=dtype, noise=3.0)
    online = (online * scale).requires_grad_(True)
    target = (target * scale).requires_grad_(True)
    out = relic_loss(
        online, target, temperature=0.01, kl_weight=1.0, normalize=normalize, divergence=divergence
    )
    for t in (out.loss, out.contrastive, out.invariance):
        assert torch.isfinite(t), (t, scale, normalize)
    assert math.isfinite(out.accuracy)
    out.loss.backward()
    assert torch.isfinite(online.grad).all()
    assert torch.isfinite(target.grad).all()
    assert online.grad.abs().max() > 0
    if divergence == "js":
        assert float(out.invariance.detach()) <= math.log(2.0) + 1e-5


@pytest.mark.parametrize("divergence", ["kl", "js"])
@pytest.mark.parametrize("scale", [1e4, 1e-4])
def test_normalized_loss_is_scale_invariant(scale, divergence):
    online, target = make_views(3, 8, 16, seed=62, dtype=torch.float32)
    kwargs = dict(temperature=0.01, kl_weight=1.0, divergence=divergence)
    _assert_outputs_equal(
        relic_loss(online, target, **kwargs), relic_loss(online * scale, target * scale, **kwargs), rtol=1e-3
    )


# --------------------------------------------------------------------------------------
# The module wrapper
# --------------------------------------------------------------------------------------


def test_public_api_is_reexported():
    assert relic_rl.relic_loss is relic_loss
    assert relic_rl.ReLICLoss is ReLICLoss
    assert relic_rl.ReLICLossOutput is ReLICLossOutput
    assert issubclass(ReLICLoss, torch.nn.Module)


def test_module_defaults_match_function():
    online, target = make_views(3, 6, 5, seed=71)
    _assert_outputs_equal(
        ReLICLoss()(online, target), relic_loss(online, target, temperature=0.1, kl_weight=1.0)
    )


@pytest.mark.parametrize(
    ("temperature", "kl_weight", "normalize", "divergence"),
    [(0.05, 0.0, True, "kl"), (1.0, 2.0, False, "js"), (0.3, 0.5, False, "kl")],
)
def test_module_matches_function(temperature, kl_weight, normalize, divergence):
    online, target = make_views(2, 6, 5, seed=72)
    module = ReLICLoss(
        temperature=temperature, kl_weight=kl_weight, normalize=normalize, divergence=divergence
    )
    expected = relic_loss(
        online,
        target,
        temperature=temperature,
        kl_weight=kl_weight,
        normalize=normalize,
        divergence=divergence,
    )
    _assert_outputs_equal(module(online, target), expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, r"temperature.*>\s*0"),
        ({"temperature": -0.1}, r"temperature.*>\s*0"),
        ({"kl_weight": -1.0}, r"kl_weight.*>=\s*0"),
        ({"divergence": "l2"}, r"divergence.*'l2'"),
    ],
)
def test_module_validates_hyperparameters_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReLICLoss(**kwargs)


def test_module_accepts_zero_kl_weight():
    module = ReLICLoss(kl_weight=0.0)
    online, target = make_views(2, 4, 3, seed=73)
    out = module(online, target)
    torch.testing.assert_close(out.loss, out.contrastive)


# --------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------


def _ok(v: int = 2, n: int = 4, d: int = 3, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.ones(v, n, d, dtype=dtype)


def _call(online, target, **overrides):
    kwargs = dict(temperature=0.1, kl_weight=1.0, divergence="kl")
    kwargs.update(overrides)
    return relic_loss(online, target, **kwargs)


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match=r"same shape.*\(2, 4, 3\).*\(2, 4, 5\)"):
        _call(_ok(), _ok(d=5))
    with pytest.raises(ValueError, match=r"same shape"):
        _call(_ok(v=3), _ok(v=2))


@pytest.mark.parametrize("shape", [(4, 3), (2, 4, 3, 1), (12,)])
@pytest.mark.parametrize("which", ["online", "target"])
def test_non_3d_inputs_raise(shape, which):
    bad = torch.ones(shape)
    args = (bad, bad) if which == "online" else (_ok(), bad)
    with pytest.raises(ValueError, match=r"3-D"):
        _call(*args)


def test_single_view_raises():
    with pytest.raises(ValueError, match=r"(?i)(V\s*>=\s*2|at least 2 .*views?).*V=1"):
        _call(_ok(v=1), _ok(v=1))


def test_single_sample_raises():
    with pytest.raises(ValueError, match=r"(?i)(N\s*>=\s*2|at least 2 samples).*N=1"):
        _call(_ok(n=1), _ok(n=1))


@pytest.mark.parametrize("temperature", [0.0, -0.5, -1])
def test_non_positive_temperature_raises(temperature):
    with pytest.raises(ValueError, match=r"temperature.*>\s*0"):
        _call(_ok(), _ok(), temperature=temperature)


def test_negative_kl_weight_raises():
    with pytest.raises(ValueError, match=r"kl_weight.*>=\s*0.*-0\.5"):
        _call(_ok(), _ok(), kl_weight=-0.5)


@pytest.mark.parametrize("divergence", ["l2", "KL ", "wasserstein"])
def test_unknown_divergence_raises(divergence):
    with pytest.raises(ValueError, match=r"(?s)divergence.*kl.*js"):
        _call(_ok(), _ok(), divergence=divergence)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8])
@pytest.mark.parametrize("which", ["online", "target"])
def test_non_floating_dtype_raises(dtype, which):
    bad = _ok(dtype=dtype)
    args = (bad, _ok()) if which == "online" else (_ok(), bad)
    with pytest.raises(ValueError, match=r"(?i)dtype.*float"):
        _call(*args)


def test_valid_boundary_values_do_not_raise():
    # V = 2, N = 2 and kl_weight = 0 are all allowed.
    for dtype, divergence in itertools.product((torch.float32, torch.float64), ("kl", "js")):
        online = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.1], [0.1, 1.0]]], dtype=dtype)
        out = _call(online, online.clone(), kl_weight=0, divergence=divergence)
        assert torch.isfinite(out.loss)


def test_the_training_path_checks_shapes_but_does_not_revalidate_the_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import relic_rl.losses as losses_module
    from relic_rl.config import ReLICConfig
    from relic_rl.objectives import configured_relic_loss

    gen = torch.Generator().manual_seed(3)
    online, target = torch.randn(3, 6, 8, generator=gen), torch.randn(3, 6, 8, generator=gen)
    config = ReLICConfig(temperature=0.2, kl_weight=0.5, divergence="js")
    expected = losses_module.relic_loss(online, target, temperature=0.2, kl_weight=0.5, divergence="js")
    module = ReLICLoss(temperature=0.2, kl_weight=0.5, divergence="js")  # validated here, once

    def must_not_run(*args: object) -> None:
        raise AssertionError("hyperparameters re-validated on a training step")

    monkeypatch.setattr(losses_module, "check_hyperparameters", must_not_run)
    out = configured_relic_loss(config, online, target)
    for got in (out, module(online, target)):
        assert torch.equal(got.loss, expected.loss)
        assert torch.equal(got.invariance, expected.invariance)
        assert float(got.accuracy) == pytest.approx(expected.accuracy)
    # Shapes are still checked on every call.
    with pytest.raises(ValueError, match=r"same shape"):
        configured_relic_loss(config, online, target[:, :5])
    with pytest.raises(ValueError, match=r"at least 2 augmented views"):
        configured_relic_loss(config, online[:1], target[:1])
