"""Which renderer relic-rl's CarRacing envs draw with, decided in one place.

relic-rl's ``CarRacing-v2`` and the ``CarRacing-v3`` its factory builds take a ``renderer``
env kwarg: ``"fast"`` (default, :class:`~relic_rl.environments.fast_carracing.FastCarRacing`,
pixel-identical to gymnasium's) or ``"stock"`` (gymnasium's own). ``"fast"`` falls back to
gymnasium's renderer, saying so once per process and reason, when

* the installed gymnasium is outside :data:`VERIFIED_GYMNASIUM` (the releases whose
  rendering code the fast renderer reproduces), or
* this pygame build's ``Vector2.rotate_rad`` gives other doubles than :func:`rotate`
  (checked once per process), which pixel identity rests on.

This module needs neither Box2D nor pygame to import (pygame is imported by the arithmetic
check only), so the start summary can say which renderer a run uses
(:func:`renderer_note`) without building an env. It imports nothing of the CarRacing env
modules; they import it.
"""

from __future__ import annotations

import math
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

#: gymnasium releases whose CarRacing rendering code the fast renderer reproduces:
#: ``(lowest verified, first unverified)``, compared on (major, minor, micro).
VERIFIED_GYMNASIUM: tuple[tuple[int, int, int], tuple[int, int, int]] = ((1, 4, 0), (1, 5, 0))

_WARNED_UNSUPPORTED = False
_ARITHMETIC_OK: bool | None = None
_WARNED_ARITHMETIC = False


def check_renderer(renderer: object) -> str:
    """Validate the ``renderer`` env kwarg.

    :param renderer: the value given.
    :return: it, when valid.
    :raises EnvCreationError: naming the accepted values otherwise.
    """
    if not isinstance(renderer, str) or renderer not in RENDERERS:
        raise EnvCreationError(
            f"CarRacing's env kwarg renderer must be one of {list(RENDERERS)}, got {renderer!r}: "
            "'fast' is relic-rl's pixel-identical renderer (the default), 'stock' gymnasium's own. "
            "Fix it in env_kwargs (e.g. --env-kwargs renderer=stock)."
        )
    return renderer


def _version_tuple(version: str) -> tuple[int, int, int]:
    """``"1.4.0"`` -> ``(1, 4, 0)``; pre-release or local suffixes are ignored (``"1.5.0rc1"``
    -> ``(1, 5, 0)``); missing parts count as 0."""
    parts: list[int] = []
    for piece in version.split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits) if digits else 0)
        if digits != piece:
            break
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def _dotted(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def fast_render_supported(version: str | None = None, *, warn: bool = True) -> bool:
    """Whether the fast renderer is verified for this gymnasium version.

    :param version: a gymnasium version string; None means the installed one.
    :param warn: on an unverified version, warn (once per process) that the stock
        renderer is used instead.
    :return: True if ``VERIFIED_GYMNASIUM[0] <= version < VERIFIED_GYMNASIUM[1]``.
    """
    global _WARNED_UNSUPPORTED
    installed = gym.__version__ if version is None else version
    low, high = VERIFIED_GYMNASIUM
    supported = low <= _version_tuple(installed) < high
    if not supported and warn and not _WARNED_UNSUPPORTED:
        _WARNED_UNSUPPORTED = True
        warnings.warn(
            "relic-rl's fast CarRacing renderer is verified for gymnasium "
            f">={_dotted(low)},<{_dotted(high)}, but gymnasium {installed} is installed; CarRacing "
            "renders with gymnasium's own (slower) renderer. Observations are unaffected. Install a "
            "verified gymnasium to get the faster renderer.",
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
    """The rotation ``pygame.math.Vector2.rotate_rad(angle)`` applies, as
    ``(cos, sin, quarter)``.

    ``quarter`` is -1 for a general angle (use ``cos`` and ``sin``) or 0-3 when pygame
    treats the angle as an exact multiple of a quarter turn (then ``cos``/``sin`` are
    unused and coordinates are swapped and negated exactly).
    """
    a = math.fmod(angle, _TWO_PI)
    if a < 0:
        a += _TWO_PI
    if math.fmod(a + _VECTOR_EPSILON, _HALF_PI) < 2 * _VECTOR_EPSILON:
        return 1.0, 0.0, int((a + _VECTOR_EPSILON) / _HALF_PI) % 4
    return math.cos(a), math.sin(a), -1


def rotate(points: NDArray[np.float64], angle: float) -> NDArray[np.float64]:
    """Rotate ``(..., 2)`` points by ``angle`` radians, bit-identically to pygame's
    ``Vector2(p).rotate_rad(angle)`` for every point."""
    x = points[..., 0]
    y = points[..., 1]
    cos, sin, quarter = rotation(angle)
    out = np.empty(points.shape, dtype=np.float64)
    if quarter == 0:
        out[..., 0] = x
        out[..., 1] = y
    elif quarter == 1:
        out[..., 0] = -y
        out[..., 1] = x
    elif quarter == 2:
        out[..., 0] = -x
        out[..., 1] = -y
    elif quarter == 3:
        out[..., 0] = y
        out[..., 1] = -x
    else:
        # Two products, then the sum: the same three roundings as pygame's C code.
        out[..., 0] = cos * x - sin * y
        out[..., 1] = sin * x + cos * y
    return out


def _arithmetic_matches_pygame() -> bool:
    """Whether :func:`rotate` gives pygame's ``Vector2.rotate_rad`` doubles on this platform.

    Pixel identity rests on it; a pygame build whose C compiler fuses ``cos*x - sin*y``
    into one rounding (or a changed algorithm) would break it. Checked on 64 angles,
    general and at quarter turns, with 8 points each.
    """
    import pygame

    rng = np.random.default_rng(12345)
    angles = [
        *rng.uniform(-20.0, 20.0, 48).tolist(),
        *(k * _HALF_PI + d for k in (-3, 1, 2, 4) for d in (0, 3e-7, -3e-7, 2e-6)),
    ]
    for angle in angles:
        points = rng.normal(0.0, 500.0, (8, 2))
        expected = [
            tuple(pygame.math.Vector2(float(x), float(y)).rotate_rad(angle)) for x, y in points.tolist()
        ]
        if rotate(points, angle).tolist() != [list(p) for p in expected]:
            return False
    return True


def _arithmetic_ok() -> bool:
    """The arithmetic self-check, run once per process."""
    global _ARITHMETIC_OK
    if _ARITHMETIC_OK is None:
        _ARITHMETIC_OK = _arithmetic_matches_pygame()
    return _ARITHMETIC_OK


def fast_renderer_usable(*, warn: bool = True) -> bool:
    """Whether :class:`~relic_rl.environments.fast_carracing.FastCarRacing` can render here:
    a verified gymnasium release (:func:`fast_render_supported`) and pygame arithmetic that
    :func:`rotate` reproduces bit for bit (checked once per process; needs pygame).

    :param warn: warn (once per process and reason) when it cannot.
    """
    global _WARNED_ARITHMETIC
    if not fast_render_supported(warn=warn):
        return False
    ok = _arithmetic_ok()
    if not ok and warn and not _WARNED_ARITHMETIC:
        _WARNED_ARITHMETIC = True
        warnings.warn(
            "relic-rl's fast CarRacing renderer cannot reproduce this pygame build's Vector2 rotation "
            "bit for bit, so CarRacing renders with gymnasium's own (slower) renderer. Observations are "
            "unaffected.",
            RuntimeWarning,
            stacklevel=2,
        )
    return ok


def use_fast_renderer(renderer: object, *, warn: bool = True) -> bool:
    """The decision relic-rl's CarRacing entry points act on: whether ``renderer`` (the env
    kwarg) asks for the fast renderer and it is usable here.

    :param renderer: ``"fast"`` or ``"stock"``.
    :param warn: warn (once per process and reason) when ``"fast"`` falls back.
    :raises EnvCreationError: for another ``renderer``.
    """
    return check_renderer(renderer) == "fast" and fast_renderer_usable(warn=warn)


def renderer_status(renderer: object) -> str | None:
    """Which renderer ``renderer`` gives on this installation, in a sentence for a run's start
    summary; None for an invalid value (creating the env reports that). Never warns."""
    if renderer == "stock":
        return "CarRacing renders with gymnasium's own renderer (renderer=stock)."
    if renderer != "fast":
        return None
    if not fast_render_supported(warn=False):
        low, high = VERIFIED_GYMNASIUM
        return (
            "CarRacing renders with gymnasium's own renderer: relic-rl's fast renderer is verified for "
            f"gymnasium >={_dotted(low)},<{_dotted(high)}, not {gym.__version__}."
        )
    try:
        ok = _arithmetic_ok()
    except ImportError:
        ok = True  # no pygame: creating the env reports the missing box2d extra
    if not ok:
        return (
            "CarRacing renders with gymnasium's own renderer: relic-rl's fast renderer cannot reproduce "
            "this pygame build's arithmetic bit for bit."
        )
    return (
        "CarRacing renders with relic-rl's fast renderer (pixel-identical to gymnasium's; "
        "--env-kwargs renderer=stock for gymnasium's own)."
    )
