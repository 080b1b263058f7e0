"""Env construction for relic-rl: family presets (:func:`family_for`), pixel VecEnvs (:func:`make_vec_env`),
``CarRacing-v2`` on gymnasium >= 1.0, and ``FastCarRacing`` (imported on first use: it needs Box2D).
"""

from typing import TYPE_CHECKING, Any

from gymnasium.error import DependencyNotInstalled

from relic_rl.environments.carracing import (
    RENDERERS,
    VERIFIED_GYMNASIUM,
    CarRacingV2Termination,
    carracing_compat_note,
    fast_render_supported,
    is_carracing_v2_compat,
    make_target,
    register_carracing_v2,
    renderer_note,
)
from relic_rl.environments.errors import BOX2D_HINT, EnvCreationError
from relic_rl.environments.factory import EnvFactory, make_env_fn, make_raw_env, make_vec_env, monitor_path
from relic_rl.environments.preset import EnvPreset, family_for, load_env_presets, strip_module
from relic_rl.environments.spaces import is_image_box, is_image_observation_space
from relic_rl.environments.wrappers import AddChannelAxis, FrameSkip

if TYPE_CHECKING:
    from relic_rl.environments.fast_carracing import FastCarRacing as FastCarRacing


def __getattr__(name: str) -> Any:
    # Not in __all__, so that `from ... import *` works without the box2d extra.
    if name == "FastCarRacing":
        try:
            from relic_rl.environments.fast_carracing import FastCarRacing
        except (ImportError, DependencyNotInstalled) as e:
            # AttributeError, so that hasattr() and introspection tools see "not available".
            raise AttributeError(f"FastCarRacing is not available: {e}. {BOX2D_HINT}") from e
        return FastCarRacing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RENDERERS",
    "VERIFIED_GYMNASIUM",
    "AddChannelAxis",
    "CarRacingV2Termination",
    "EnvCreationError",
    "EnvFactory",
    "EnvPreset",
    "FrameSkip",
    "carracing_compat_note",
    "family_for",
    "fast_render_supported",
    "is_carracing_v2_compat",
    "is_image_box",
    "is_image_observation_space",
    "load_env_presets",
    "make_env_fn",
    "make_raw_env",
    "make_target",
    "make_vec_env",
    "monitor_path",
    "register_carracing_v2",
    "renderer_note",
    "strip_module",
]
