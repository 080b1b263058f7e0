"""Env construction for relic-rl: family presets, CarRacing-v2 compat, pixel VecEnvs.

* :func:`family_for` / :class:`EnvPreset`: which preprocessing an env id gets
  (``envs/*.yaml``).
* :func:`make_vec_env` / :func:`make_env_fn`: preprocessed, monitored, seeded envs.
* :func:`register_carracing_v2` / :class:`CarRacingV2Termination` /
  :func:`carracing_compat_note`: ``CarRacing-v2`` on gymnasium >= 1.0.
* :func:`is_image_observation_space`: what counts as pixels.
* :class:`EnvCreationError`: every env that cannot be built as asked.
"""

from relic_rl.environments.carracing import (
    CarRacingV2Termination,
    carracing_compat_note,
    is_carracing_v2_compat,
    register_carracing_v2,
)
from relic_rl.environments.errors import EnvCreationError
from relic_rl.environments.factory import EnvFactory, make_env_fn, make_raw_env, make_vec_env, monitor_path
from relic_rl.environments.preset import EnvPreset, family_for, load_env_presets, strip_module
from relic_rl.environments.spaces import is_image_box, is_image_observation_space
from relic_rl.environments.wrappers import AddChannelAxis, FrameSkip

__all__ = [
    "AddChannelAxis",
    "CarRacingV2Termination",
    "EnvCreationError",
    "EnvFactory",
    "EnvPreset",
    "FrameSkip",
    "carracing_compat_note",
    "family_for",
    "is_carracing_v2_compat",
    "is_image_box",
    "is_image_observation_space",
    "load_env_presets",
    "make_env_fn",
    "make_raw_env",
    "make_vec_env",
    "monitor_path",
    "register_carracing_v2",
    "strip_module",
]
