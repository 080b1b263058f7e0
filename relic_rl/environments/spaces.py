"""What counts as a pixel observation for ReLIC."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces


def is_image_box(space: spaces.Space) -> bool:
    """Whether ``space`` is a ``uint8`` Box with bounds 0 and 255 of shape ``(H, W)``, ``(H, W, C)`` or
    ``(C, H, W)`` (layout not decided here), every axis >= 1."""
    if not isinstance(space, spaces.Box) or space.dtype != np.uint8 or len(space.shape) not in (2, 3):
        return False
    return min(space.shape) >= 1 and bool(np.all(space.low == 0) and np.all(space.high == 255))


def is_image_observation_space(space: spaces.Space) -> bool:
    """Whether ``space`` gives ReLIC pixels: an image Box (:func:`is_image_box`) or a Dict holding one."""
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
