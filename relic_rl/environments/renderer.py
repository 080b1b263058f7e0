"""Which renderer relic-rl's CarRacing envs draw with (the ``renderer`` env kwarg), decided in one place.

``"fast"`` (default, :class:`~relic_rl.environments.fast_carracing.FastCarRacing`) falls back to
``"stock"`` (gymnasium's own), warning once per process and reason, when the installed gymnasium is
outside :data:`VERIFIED_GYMNASIUM` or this pygame build's ``Vector2.rotate_rad`` gives other doubles
than :func:`rotate`. Importing this module needs neither Box2D nor pygame.
"""

from __future__ import annotations

import math
import re
import warnings

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from relic_rl.environments.errors import EnvCreationError

__all__ = [
    "DEFAULT_RENDERER",
    "RENDERERS",
    "VERIFIED_GYMNASIUM",
    "check_renderer",
    "fast_render_supported",
    "fast_renderer_usable",
    "renderer_status",
    "rotate",
    "rotation",
    "use_fast_renderer",
]

#: Values of the ``renderer`` env kwarg of relic-rl's CarRacing envs.
RENDERERS: tuple[str, ...] = ("fast", "stock")
DEFAULT_RENDERER = "fast"

#: gymnasium releases whose CarRacing rendering the fast renderer reproduces: (lowest, first unverified).
VERIFIED_GYMNASIUM: tuple[tuple[int, int, int], tuple[int, int, int]] = ((1, 4, 0), (1, 5, 0))

_WARNED_UNSUPPORTED = False
_ARITHMETIC_OK: bool | None = None
_WARNED_ARITHMETIC = False
_FALLBACK = "CarRacing renders with gymnasium's own (slower) renderer. Observations are unaffected."


def check_renderer(renderer: object) -> str:
    """The ``renderer`` env kwarg, validated (:class:`EnvCreationError` for an invalid one)."""
    if not isinstance(renderer, str) or renderer not in RENDERERS:
        raise EnvCreationError(
            f"CarRacing's env kwarg renderer must be one of {list(RENDERERS)}, got {renderer!r}: "
            "'fast' is relic-rl's pixel-identical renderer (the default), 'stock' gymnasium's own. "
            "Fix it in env_kwargs (e.g. --env-kwargs renderer=stock)."
        )
    return renderer


def _version_tuple(version: str) -> tuple[int, int, int]:
    """``"1.5.0rc1"`` -> ``(1, 5, 0)``: the leading numeric parts; missing parts count as 0."""
    match = re.match(r"(\d*)(?:\.(\d*))?(?:\.(\d*))?", version)
    assert match is not None  # every string matches
    major, minor, micro = (int(p or 0) for p in match.groups())
    return major, minor, micro


def _verified_range() -> str:
    return ",<".join(".".join(map(str, v)) for v in VERIFIED_GYMNASIUM)


def fast_render_supported(version: str | None = None, *, warn: bool = True) -> bool:
    """Whether the fast renderer is verified for gymnasium ``version`` (None: the installed one).

    :param warn: on an unverified version, warn (once per process) that the stock renderer is used.
    """
    global _WARNED_UNSUPPORTED
    installed = gym.__version__ if version is None else version
    low, high = VERIFIED_GYMNASIUM
    supported = low <= _version_tuple(installed) < high
    if not supported and warn and not _WARNED_UNSUPPORTED:
        _WARNED_UNSUPPORTED = True
        warnings.warn(
            f"relic-rl's fast CarRacing renderer is verified for gymnasium >={_verified_range()}, but "
            f"gymnasium {installed} is installed; {_FALLBACK} Install a verified gymnasium to get the "
            "faster renderer.",
            RuntimeWarning,
            stacklevel=2,
        )
    return supported


# pygame's Vector2.rotate_rad reduces the angle with fmod(angle, 2*pi) and treats angles
# within `epsilon` of a quarter turn as exact quarter turns (Vector2's default epsilon).
_TWO_PI = 2.0 * math.pi
_HALF_PI = math.pi / 2.0
_VECTOR_EPSILON = 1e-6


def rotation(angle: float) -> tuple[float, float, int]:
    """The rotation ``Vector2.rotate_rad(angle)`` applies, as ``(cos, sin, quarter)``: ``quarter`` is -1,
    or 0-3 when pygame treats the angle as exact quarter turns (coordinates swapped and negated)."""
    a = math.fmod(angle, _TWO_PI)
    if a < 0:
        a += _TWO_PI
    if math.fmod(a + _VECTOR_EPSILON, _HALF_PI) < 2 * _VECTOR_EPSILON:
        return 1.0, 0.0, int((a + _VECTOR_EPSILON) / _HALF_PI) % 4
    return math.cos(a), math.sin(a), -1


def rotate(points: NDArray[np.float64], angle: float) -> NDArray[np.float64]:
    """Rotate ``(..., 2)`` points by ``angle``, bit-identically to ``Vector2(p).rotate_rad(angle)``."""
    x, y = points[..., 0], points[..., 1]
    cos, sin, quarter = rotation(angle)
    out = np.empty(points.shape, dtype=np.float64)
    if quarter < 0:
        # Two products, then the sum: the same three roundings as pygame's C code.
        out[..., 0] = cos * x - sin * y
        out[..., 1] = sin * x + cos * y
        return out
    for _ in range(quarter):
        x, y = -y, x
    out[..., 0] = x
    out[..., 1] = y
    return out


def _arithmetic_matches_pygame() -> bool:
    """Whether :func:`rotate` gives pygame's doubles here (a compiler fusing ``cos*x - sin*y`` into one
    rounding would not), on 64 angles, general and at quarter turns."""
    import pygame

    rng = np.random.default_rng(12345)
    angles = [
        *rng.uniform(-20.0, 20.0, 48).tolist(),
        *(k * _HALF_PI + d for k in (-3, 1, 2, 4) for d in (0, 3e-7, -3e-7, 2e-6)),
    ]
    for angle in angles:
        points = rng.normal(0.0, 500.0, (8, 2))
        expected = [list(pygame.math.Vector2(x, y).rotate_rad(angle)) for x, y in points.tolist()]
        if rotate(points, angle).tolist() != expected:
            return False
    return True


def _arithmetic_ok() -> bool:
    """The arithmetic self-check, cached per process."""
    global _ARITHMETIC_OK
    if _ARITHMETIC_OK is None:
        _ARITHMETIC_OK = _arithmetic_matches_pygame()
    return _ARITHMETIC_OK


def fast_renderer_usable(*, warn: bool = True) -> bool:
    """Whether ``FastCarRacing`` can render here: a verified gymnasium and pygame arithmetic that
    :func:`rotate` reproduces (needs pygame); ``warn``: warn once per process and reason if not."""
    global _WARNED_ARITHMETIC
    if not fast_render_supported(warn=warn):
        return False
    ok = _arithmetic_ok()
    if not ok and warn and not _WARNED_ARITHMETIC:
        _WARNED_ARITHMETIC = True
        warnings.warn(
            "relic-rl's fast CarRacing renderer cannot reproduce this pygame build's Vector2 rotation "
            f"bit for bit, so {_FALLBACK}",
            RuntimeWarning,
            stacklevel=2,
        )
    return ok


def use_fast_renderer(renderer: object, *, warn: bool = True) -> bool:
    """Whether ``renderer`` asks for the fast renderer and it is usable (warning as above if not).

    :raises EnvCreationError: for a ``renderer`` other than ``"fast"`` or ``"stock"``.
    """
    return check_renderer(renderer) == "fast" and fast_renderer_usable(warn=warn)


def renderer_status(renderer: object) -> str | None:
    """The start summary's sentence on the renderer ``renderer`` gives here; None if invalid. Never warns."""
    if renderer == "stock":
        return "CarRacing renders with gymnasium's own renderer (renderer=stock)."
    if renderer != "fast":
        return None
    own = "CarRacing renders with gymnasium's own renderer: relic-rl's fast renderer"
    if not fast_render_supported(warn=False):
        return f"{own} is verified for gymnasium >={_verified_range()}, not {gym.__version__}."
    try:
        ok = _arithmetic_ok()
    except ImportError:
        ok = True  # no pygame: creating the env reports the missing box2d extra
    if not ok:
        return f"{own} cannot reproduce this pygame build's arithmetic bit for bit."
    return (
        "CarRacing renders with relic-rl's fast renderer (pixel-identical to gymnasium's; "
        "--env-kwargs renderer=stock for gymnasium's own)."
    )
