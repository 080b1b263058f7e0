"""What counts as a pixel observation for ReLIC."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces


def is_image_box(space: spaces.Space) -> bool:
    """Whether ``space`` is a single image: a ``Box`` of dtype ``uint8``, bounds exactly
    0 and 255, and shape ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``.

    The layout of a 3-D shape is not decided here (Stable-Baselines3 treats the smallest
    of the first and last axes as the channel axis); every axis must be at least 1.

    :param space: the space to test.
    :return: True for an image ``Box``.
    """
    if not isinstance(space, spaces.Box):
        return False
    if space.dtype != np.uint8 or len(space.shape) not in (2, 3) or min(space.shape) < 1:
        return False
    return bool(np.all(space.low == 0) and np.all(space.high == 255))


def is_image_observation_space(space: spaces.Space) -> bool:
    """Whether an env with this observation space gives ReLIC pixels to work on.

    True for an image ``Box`` (see :func:`is_image_box`: ``uint8`` in [0, 255] with
    shape ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``), and for a ``Dict`` space with at
    least one such image entry (other entries, e.g. proprioception, are allowed).
    False for everything else: flat or float ``Box`` spaces (state vectors, RAM), a
    ``uint8`` Box with other bounds, ``Discrete``, ``Tuple`` and so on.

    :param space: an env's observation space.
    :return: True when the observations contain an image.
    """
    if isinstance(space, spaces.Dict):
        return any(is_image_box(sub) for sub in space.spaces.values())
    return is_image_box(space)


def describe_space(space: spaces.Space) -> str:
    """A short description of ``space`` for messages, e.g. ``Box(float32, shape=(8,))``."""
    if isinstance(space, spaces.Box):
        return f"Box({space.dtype}, shape={space.shape}, low={space.low.min()}, high={space.high.max()})"
    if isinstance(space, spaces.Dict):
        inner = ", ".join(f"{k!r}: {describe_space(v)}" for k, v in space.spaces.items())
        return f"Dict({inner})"
    return repr(space)
