"""The one table of ``relic_rl.train``'s run flags: which define a run, and which set a preset key.

The train parser's ``--resume`` check and preset overrides and the ablation's flag checks derive
from it. No imports, so that the ablation's parser can read it without loading torch.
"""

from __future__ import annotations

#: Flags (argparse ``dest``) that set a preset key, and the key's path in the agent block.
PRESET_FLAGS: dict[str, tuple[str, ...]] = {
    "total_timesteps": ("n_timesteps",),
    "n_envs": ("n_envs",),
    "eval_freq": ("eval_freq",),
    "eval_episodes": ("eval_episodes",),
    "checkpoint_freq": ("checkpoint_freq",),
    "kl_weight": ("relic", "kl_weight"),
    "aux_weight": ("relic", "aux_weight"),
    "temperature": ("relic", "temperature"),
    "augmentation": ("relic", "augmentation"),
}

#: Every flag (argparse ``dest``) that the run's ``config.yaml`` records, so not allowed with ``--resume``.
RUN_FLAGS: tuple[str, ...] = (
    "env",
    "algo",
    "preset",
    "aux",
    "extractor",
    "seed",
    "vec_env",
    "env_kwargs",
    "hyperparams",
    "eval_domain_randomize",
    "log_dir",
    "run_name",
    *PRESET_FLAGS,
)


def option(dest: str) -> str:
    """The command-line spelling of an argparse ``dest``: ``kl_weight`` -> ``--kl-weight``."""
    return "--" + dest.replace("_", "-")


def relic_flags() -> dict[str, str]:
    """ReLIC field -> the train flag that sets it (``kl_weight`` -> ``--kl-weight``)."""
    return {path[1]: option(dest) for dest, path in PRESET_FLAGS.items() if path[0] == "relic"}


def agent_flags() -> dict[str, str]:
    """Top-level agent key -> the train flag that sets it (``n_envs`` -> ``--n-envs``)."""
    return {path[0]: option(dest) for dest, path in PRESET_FLAGS.items() if len(path) == 1}
