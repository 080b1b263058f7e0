"""Build preprocessed pixel envs and vectorised envs from an env id and its family preset.

One env (:func:`make_env_fn`), innermost first::

    gym.make(env_id, **env_kwargs)       # preset env_kwargs, overridden by the user's
    -> Monitor                           # raw env: true game scores and episode lengths
    -> AtariWrapper                      # atari family only
    -> FrameSkip(frame_skip)             # if frame_skip > 1
    -> ResizeObservation(resize)         # if resize
    -> GrayscaleObservation(keep_dim)    # if grayscale
    -> AddChannelAxis                    # if the observation is still (H, W)

and the vectorised env (:func:`make_vec_env`)::

    DummyVecEnv | SubprocVecEnv -> VecFrameStack(frame_stack) -> VecTransposeImage

so the policy sees channels-first ``uint8`` images. Monitor sits on the raw env (as in SB3's and
rl-zoo3's ``make_vec_env``): returns before Atari reward clipping, Atari episodes spanning all lives,
lengths in env steps before frame skipping.
"""

from __future__ import annotations

import functools
import inspect
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
from gymnasium import error as gym_error, spaces
from gymnasium.envs.registration import load_env_creator
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecFrameStack,
    VecTransposeImage,
)

from relic_rl.environments.carracing import (
    CARRACING_V2_ID,
    is_carracing_v2_compat,
    make_target,
    register_carracing_v2,
)
from relic_rl.environments.errors import ATARI_HINT, BOX2D_HINT, EnvCreationError
from relic_rl.environments.preset import EnvPreset, family_for, strip_module
from relic_rl.environments.spaces import describe_space, is_image_observation_space
from relic_rl.environments.wrappers import AddChannelAxis, FrameSkip

VecEnvKind = Literal["dummy", "subproc"]
StartMethod = Literal["forkserver", "spawn"]
VEC_ENV_KINDS: tuple[str, ...] = ("dummy", "subproc")
START_METHODS: tuple[str, ...] = ("forkserver", "spawn")

MONITOR_SUFFIX = ".monitor.csv"


def _is_atari(env_id: str, preset: EnvPreset) -> bool:
    return preset.atari_wrapper or strip_module(env_id).startswith("ALE/")


def prepare_registry(env_id: str, preset: EnvPreset) -> None:
    """Register the compat ``CarRacing-v2`` or ale-py's Atari envs if ``env_id`` needs them (idempotent).

    :raises EnvCreationError: if ale-py is needed but missing.
    """
    if strip_module(env_id) == CARRACING_V2_ID:
        register_carracing_v2()
    if _is_atari(env_id, preset):
        try:
            import ale_py
        except ImportError as e:
            raise EnvCreationError(f"Cannot import ale-py ({e}). {ATARI_HINT}") from None
        gym.register_envs(ale_py)  # gymnasium >= 1.0 no longer registers them by itself


def _accepted_kwargs(env_id: str) -> list[str] | None:
    """Keyword names the env's constructor accepts; None for ``**kwargs`` or when not inspectable."""
    target = make_target(env_id)
    spec = gym.registry.get(strip_module(env_id)) if isinstance(target, str) else target
    if spec is None or spec.entry_point is None:
        return None
    try:
        creator = spec.entry_point if callable(spec.entry_point) else load_env_creator(spec.entry_point)
        params = inspect.signature(creator).parameters.values()
    except (ImportError, ValueError, TypeError, AttributeError, gym_error.Error):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.kind in named]


def _missing_module_name(exc: BaseException) -> str | None:
    """The module named by a ModuleNotFoundError (gymnasium re-raises it without ``name``)."""
    for e in (exc, exc.__cause__, exc.__context__):
        name = getattr(e, "name", None)
        if isinstance(e, ModuleNotFoundError) and name:
            return str(name)
    return None


def _needs_box2d(env_id: str, preset: EnvPreset, exc: BaseException) -> bool:
    if preset.family == "carracing" or strip_module(env_id).startswith("CarRacing"):
        return True
    text = str(exc).lower()
    return "box2d" in text or "pygame" in text or _missing_module_name(exc) in ("Box2D", "pygame")


def make_raw_env(
    env_id: str,
    preset: EnvPreset,
    env_kwargs: Mapping[str, Any],
    user_kwargs: Mapping[str, Any] | None = None,
) -> gym.Env[Any, Any]:
    """``gym.make(env_id, **env_kwargs)``, every failure turned into an :class:`EnvCreationError`.

    :param user_kwargs: the part of ``env_kwargs`` the user gave (to attribute a rejected keyword);
        ``None`` means all of them.
    """
    prepare_registry(env_id, preset)
    try:
        with warnings.catch_warnings():
            if is_carracing_v2_compat(strip_module(env_id)):
                # gymnasium warns that v2 is "out of date"; using it is deliberate here.
                warnings.filterwarnings("ignore", message=r".*is out of date.*")
            return gym.make(make_target(env_id), **env_kwargs)
    except (gym_error.UnregisteredEnv, gym_error.DeprecatedEnv) as e:
        raise EnvCreationError(
            f"Unknown environment id {env_id!r}. gymnasium says: {e} Atari games are named "
            "`ALE/<Game>-v5` or `<Game>NoFrameskip-v4`; your own envs can be given as "
            "`module:EnvId`, where importing `module` registers `EnvId`. List the registered ids "
            'with: python -c "import gymnasium; gymnasium.pprint_registry()".'
        ) from None
    except gym_error.DependencyNotInstalled as e:
        hint = BOX2D_HINT if _needs_box2d(env_id, preset, e) else "Install the package it names."
        raise EnvCreationError(f"Cannot create {env_id!r}: a dependency is missing ({e}). {hint}") from None
    except ImportError as e:
        missing = _missing_module_name(e)
        if _needs_box2d(env_id, preset, e):
            raise EnvCreationError(
                f"Cannot create {env_id!r}: module {missing or '?'} is missing. {BOX2D_HINT}"
            ) from None
        if _is_atari(env_id, preset) and missing is not None and missing.startswith("ale_py"):
            raise EnvCreationError(f"Cannot create {env_id!r}: {e}. {ATARI_HINT}") from None
        if ":" in env_id:
            module = env_id.split(":", 1)[0]
            raise EnvCreationError(
                f"Cannot import the module {module!r} named in env id {env_id!r} ({e}). Make sure it "
                "is installed or that its folder is on PYTHONPATH (also for subprocess workers), and "
                "that importing it registers the env."
            ) from None
        raise EnvCreationError(f"Cannot create {env_id!r}: an import failed ({e}).") from None
    except TypeError as e:
        accepted = _accepted_kwargs(env_id)
        rejected = [k for k in env_kwargs if accepted is not None and k not in accepted]
        if rejected:
            user = set(user_kwargs) if user_kwargs is not None else set(env_kwargs)
            origin = [
                f"{k!r} (from {'env_kwargs' if k in user else 'the ' + preset.family + ' preset'})"
                for k in rejected
            ]
            raise EnvCreationError(
                f"{env_id} does not accept the keyword argument{'s' if len(rejected) > 1 else ''} "
                f"{', '.join(origin)}. Its constructor accepts: {', '.join(accepted or []) or 'none'}. "
                "Fix or remove it in env_kwargs."
            ) from None
        raise EnvCreationError(
            f"Creating {env_id} with env_kwargs {dict(env_kwargs)!r} failed with a TypeError: {e}. "
            "Check the names and types of env_kwargs against the env's constructor."
        ) from None


def _check_pixels(env: gym.Env[Any, Any], env_id: str) -> None:
    space = env.observation_space
    if is_image_observation_space(space):
        return
    env.close()
    raise EnvCreationError(
        f"{env_id} has observations {describe_space(space)}, but ReLIC learns from pixels: it needs "
        "image observations, a uint8 Box in [0, 255] of shape (H, W), (H, W, C) or (C, H, W), or a "
        "Dict holding one. Use a pixel version of the env, e.g. create it with render_mode='rgb_array' "
        "and wrap it in gymnasium.wrappers.AddRenderObservation(env, render_only=True), registered "
        "under its own id."
    )


def _check_hwc_image(env: gym.Env[Any, Any], env_id: str, preset: EnvPreset, what: str, rgb: bool) -> None:
    space = env.observation_space
    ok = (
        isinstance(space, spaces.Box)
        and is_image_observation_space(space)
        and (len(space.shape) == 2 or not is_image_space_channels_first(space))
        and (not rgb or (len(space.shape) == 3 and space.shape[-1] == 3))
    )
    if not ok:
        env.close()
        need = "(H, W, 3) RGB images" if rgb else "(H, W) or (H, W, C) images"
        raise EnvCreationError(
            f"The {preset.family!r} env preset asks for {what}, which works on {need}, but {env_id} "
            f"gives {describe_space(space)} at that point. Use an env preset without {what} "
            "(pass preset=...) or an env with channels-last image observations."
        )


def monitor_path(monitor_dir: str | Path, rank: int) -> Path:
    """The CSV that Monitor writes for env ``rank`` in ``monitor_dir``."""
    return Path(monitor_dir) / f"{rank}{MONITOR_SUFFIX}"


def _check_monitor_free(monitor_dir: str | Path, ranks: range) -> None:
    taken = [str(path) for r in ranks if (path := monitor_path(monitor_dir, r)).exists()]
    if taken:
        raise EnvCreationError(
            f"Monitor file(s) {', '.join(taken)} already exist; relic-rl does not overwrite results of "
            "an earlier run. Use a new monitor_dir (run folder) or move the old files away."
        )


@dataclass(frozen=True)
class EnvFactory:
    """A picklable ``() -> gym.Env`` building one preprocessed env; made by :func:`make_env_fn`.

    ``env_kwargs`` are the preset's merged with the user's (``user_kwargs``, kept for messages).
    """

    env_id: str
    preset: EnvPreset
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    user_kwargs: dict[str, Any] = field(default_factory=dict)
    rank: int = 0
    seed: int | None = None
    monitor_dir: str | None = None
    atari_wrapper_kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> gym.Env[Any, Any]:
        env = make_raw_env(self.env_id, self.preset, self.env_kwargs, self.user_kwargs)
        _check_pixels(env, self.env_id)
        filename = None
        if self.monitor_dir is not None:
            _check_monitor_free(self.monitor_dir, range(self.rank, self.rank + 1))
            os.makedirs(self.monitor_dir, exist_ok=True)
            filename = os.path.join(self.monitor_dir, str(self.rank))
        env = self._preprocess(Monitor(env, filename=filename))
        if self.seed is not None:
            env.action_space.seed(self.seed + self.rank)
        return env

    def _preprocess(self, env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
        preset = self.preset
        try:
            if preset.atari_wrapper:
                from stable_baselines3.common.atari_wrappers import AtariWrapper

                env = AtariWrapper(env, **self.atari_wrapper_kwargs)
            if preset.frame_skip > 1:
                env = FrameSkip(env, preset.frame_skip)
            if preset.resize is not None:
                _check_hwc_image(env, self.env_id, preset, f"resize {list(preset.resize)}", rgb=False)
                env = gym.wrappers.ResizeObservation(env, (preset.resize[0], preset.resize[1]))
            if preset.grayscale:
                _check_hwc_image(env, self.env_id, preset, "grayscale", rgb=True)
                env = gym.wrappers.GrayscaleObservation(env, keep_dim=True)
            space = env.observation_space
            return AddChannelAxis(env) if isinstance(space, spaces.Box) and len(space.shape) == 2 else env
        except gym_error.DependencyNotInstalled as e:
            # Resizing (and SB3's AtariWrapper) need OpenCV, a dependency of relic-rl itself.
            raise EnvCreationError(
                f"Preprocessing {self.env_id!r} needs a package that is not installed: {e}. "
                'Reinstall relic-rl with its dependencies (`pip install "relic-rl"` pulls in '
                "opencv-python-headless)."
            ) from e


def make_env_fn(
    env_id: str,
    preset: EnvPreset,
    *,
    seed: int | None,
    rank: int,
    env_kwargs: Mapping[str, Any] | None = None,
    monitor_dir: str | Path | None = None,
    atari_wrapper_kwargs: Mapping[str, Any] | None = None,
) -> Callable[[], gym.Env[Any, Any]]:
    """A picklable callable (an :class:`EnvFactory`) creating env ``rank``, preprocessed by ``preset``.

    :param env_id: gymnasium env id; ``module:EnvId`` imports ``module`` first (also in workers).
    :param seed: base seed (the action space gets ``seed + rank``), or None.
    :param env_kwargs: ``gym.make`` keyword arguments, overriding the preset's key by key.
    :param monitor_dir: folder for ``<rank>.monitor.csv`` (never overwritten), or None for memory only.
    :param atari_wrapper_kwargs: ``AtariWrapper`` options, overriding the preset's.
    """
    user_kwargs = dict(env_kwargs or {})
    merged_atari = {**preset.atari_wrapper_kwargs, **dict(atari_wrapper_kwargs or {})}
    if merged_atari and not preset.atari_wrapper:
        raise EnvCreationError(
            f"atari_wrapper_kwargs were given for {env_id!r}, but its env family {preset.family!r} "
            "does not use AtariWrapper."
        )
    return EnvFactory(
        env_id=env_id,
        preset=preset,
        env_kwargs={**preset.env_kwargs, **user_kwargs},
        user_kwargs=user_kwargs,
        rank=rank,
        seed=seed,
        monitor_dir=None if monitor_dir is None else str(monitor_dir),
        atari_wrapper_kwargs=merged_atari,
    )


def _wants_transpose(space: spaces.Space) -> bool:
    subspaces = space.spaces.values() if isinstance(space, spaces.Dict) else [space]
    return any(is_image_space(s) and not is_image_space_channels_first(s) for s in subspaces)  # type: ignore[arg-type]


def make_vec_env(
    env_id: str,
    *,
    n_envs: int = 1,
    seed: int | None = 0,
    vec_env: VecEnvKind = "dummy",
    env_kwargs: Mapping[str, Any] | None = None,
    monitor_dir: str | Path | None = None,
    preset: EnvPreset | None = None,
    start_method: StartMethod | None = None,
    atari_wrapper_kwargs: Mapping[str, Any] | None = None,
) -> VecEnv:
    """``n_envs`` preprocessed copies of ``env_id`` as one SB3 VecEnv (channels-first observations).

    Env ``i`` resets with seed ``seed + i`` first, so equal arguments and actions give equal observations.
    ``env_id``, ``seed`` (None: unseeded), ``env_kwargs``, ``monitor_dir`` and ``atari_wrapper_kwargs``
    are as for :func:`make_env_fn`.

    :param n_envs: number of envs, >= 1.
    :param vec_env: ``"dummy"`` (all envs in this process) or ``"subproc"`` (one process per env).
    :param preset: the family preset; None looks it up with :func:`~relic_rl.environments.family_for`.
    :param start_method: for ``"subproc"``: ``"forkserver"`` or ``"spawn"`` (``fork`` can deadlock with
        PyTorch threads); None lets SB3 choose. Workers must be able to import a ``module:EnvId`` module.
    :raises EnvCreationError: for an unknown id, a missing optional dependency, rejected ``env_kwargs``,
        non-image observations or an existing Monitor file.
    """
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise EnvCreationError(f"n_envs must be an integer >= 1, got {n_envs!r}.")
    if vec_env not in VEC_ENV_KINDS:
        raise EnvCreationError(f"vec_env must be one of {list(VEC_ENV_KINDS)}, got {vec_env!r}.")
    if start_method is not None and start_method not in START_METHODS:
        raise EnvCreationError(
            f"start_method must be one of {list(START_METHODS)} or None, got {start_method!r} "
            "('fork' is unsafe with PyTorch threads)."
        )
    preset = family_for(env_id) if preset is None else preset
    if monitor_dir is not None:
        _check_monitor_free(monitor_dir, range(n_envs))
    make = functools.partial(
        make_env_fn,
        env_id,
        preset,
        seed=seed,
        env_kwargs=env_kwargs,
        atari_wrapper_kwargs=atari_wrapper_kwargs,
    )
    env_fns = [make(rank=rank, monitor_dir=monitor_dir) for rank in range(n_envs)]
    venv: VecEnv
    if vec_env == "subproc":
        # A worker failing to create its env dies with a broken pipe; here the error reaches the caller.
        make(rank=0)().close()
        venv = SubprocVecEnv(env_fns, start_method=start_method)
    else:
        venv = DummyVecEnv(env_fns)
    if seed is not None:
        venv.seed(seed)
    if preset.frame_stack > 1:
        venv = VecFrameStack(venv, n_stack=preset.frame_stack)
    if _wants_transpose(venv.observation_space):
        venv = VecTransposeImage(venv)
    return venv
