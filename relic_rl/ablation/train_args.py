"""The ``relic_rl.train`` side of an ablation: which flags a cell passes, and checking them.

Every cell is resolved through :func:`relic_rl.train.resolve_run_config`, exactly as
``python -m relic_rl.train`` would resolve it, so that an unknown key or a bad value fails before
anything runs and names the cell; :func:`preflight` then builds one env and model
(:func:`relic_rl.experiment.preflight`) to catch what only construction reveals (an unknown env
id, a value SB3 rejects).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

from relic_rl.ablation.grid import RELIC_FIELDS, Cell, format_value, to_yaml_text
from relic_rl.errors import UserError
from relic_rl.flags import agent_flags, relic_flags

__all__ = [
    "OWN_FLAGS",
    "RELIC_FLAGS",
    "AblateError",
    "cell_flags",
    "check_train_args",
    "config_value",
    "plain",
    "preflight",
    "resolve",
    "split_hyperparams",
    "valid_grid_keys",
]

#: ReLIC fields that train has a flag for; the other fields go through ``--hyperparams relic.<key>=``.
RELIC_FLAGS = relic_flags()

#: Train flags that set an agent key; with that key on the grid they contradict it
#: (``--total-timesteps`` is the ablation's own, below).
AGENT_FLAGS = {key: flag for key, flag in agent_flags().items() if key != "n_timesteps"}

#: Train flags that the ablation sets itself, and what to use instead.
OWN_FLAGS = {
    "--env": "use --env of the ablation",
    "--seed": "use --seeds",
    "--total-timesteps": "use --total-timesteps of the ablation",
    "--log-dir": "use --out",
    "--run-name": "cells are named by the ablation",
    "--resume": "re-run the ablation to resume its runs",
    "--aux": "use --baseline for the no-aux variant, or --aux of the ablation",
    "--kl-weight": "use --kl-weights (or --grid kl_weight=...)",
}

#: ``--hyperparams`` keys that the ablation sets itself.
OWN_HYPERPARAMS = {"n_timesteps": "use --total-timesteps", "relic": "set relic.<field>=value"}

#: Agent keys that are not algorithm settings worth sweeping, so not grid axes.
NON_AXIS_AGENT_KEYS = ("relic", "n_timesteps", "policy")


class AblateError(UserError):
    """A user error: the CLI prints it as one paragraph and exits with 2."""


def _flag_name(token: str) -> str:
    return token.split("=", 1)[0]


def split_hyperparams(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate the ``--hyperparams`` items from the other train flags.

    The ablation passes one merged ``--hyperparams`` (the user's items, then the cell's), so that
    it does not depend on how train combines repeated flags.

    :return: ``(other flags, hyperparams items)``.
    """
    rest: list[str] = []
    items: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if _flag_name(token) == "--hyperparams":
            if "=" in token and token.startswith("--hyperparams="):
                items.append(token.split("=", 1)[1])
            i += 1
            while i < len(args) and not args[i].startswith("--"):
                items.append(args[i])
                i += 1
            continue
        rest.append(token)
        i += 1
    return rest, items


def _hyperparam_key(item: str) -> str:
    return item.split("=", 1)[0].strip()


def check_train_args(args: Sequence[str], grid_keys: Sequence[str]) -> None:
    """Reject train flags that the ablation sets itself or that contradict a grid axis.

    :raises AblateError: naming the flag and what to use instead.
    """
    rest, items = split_hyperparams(args)
    for token in rest:
        name = _flag_name(token)
        if name in OWN_FLAGS:
            raise AblateError(f"The train flag {name} cannot be given to an ablation: {OWN_FLAGS[name]}.")
        axis = next((k for k, flag in {**RELIC_FLAGS, **AGENT_FLAGS}.items() if flag == name), None)
        if axis in grid_keys:
            raise AblateError(
                f"{name} contradicts the grid, which sweeps {axis}; drop {name} or the {axis} axis."
            )
    for item in items:
        key = _hyperparam_key(item)
        if key in OWN_HYPERPARAMS:
            raise AblateError(f"--hyperparams {item}: {key} is set by the ablation; {OWN_HYPERPARAMS[key]}.")
        field_ = key.removeprefix("relic.") if key.startswith("relic.") else key
        if field_ in grid_keys and (key.startswith("relic.") == (field_ in RELIC_FIELDS)):
            raise AblateError(
                f"--hyperparams {item} contradicts the grid, which sweeps {field_}; drop one of them."
            )


def valid_grid_keys(algo: str) -> list[str]:
    """Keys ``--grid`` accepts for ``algo``: the ReLIC fields and the agent's hyperparameters."""
    from relic_rl.agent_config import valid_agent_keys

    agent = [k for k in valid_agent_keys(algo) if k not in NON_AXIS_AGENT_KEYS]
    return [*RELIC_FIELDS, *sorted(set(agent) - set(RELIC_FIELDS))]


def cell_flags(cell: Cell) -> tuple[list[str], list[str]]:
    """``(flags, hyperparams items)`` that set the cell's parameters in ``relic_rl.train``."""
    flags = ["--aux", cell.aux]
    items: list[str] = []
    for key, value in cell.grid_params.items():
        if key in RELIC_FLAGS:
            flags += [RELIC_FLAGS[key], value if isinstance(value, str) else format_value(value)]
        elif key in RELIC_FIELDS:
            items.append(f"relic.{key}={to_yaml_text(value)}")
        else:
            items.append(f"{key}={to_yaml_text(value)}")
    return flags, items


def resolve(argv: Sequence[str], what: str) -> tuple[Any, dict[str, Any]]:
    """``resolve_run_config(argv)`` and its ``to_dict()``, with train's user errors as AblateError.

    :param argv: train arguments.
    :param what: what is resolved, for messages (``"Cell kl_weight=1.0__seed=0"``).
    :return: the :class:`~relic_rl.runs.RunConfig` and its plain-data form (``config.yaml``
        without ``meta``, tuples as lists).
    """
    from relic_rl.train import resolve_run_config

    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            config = resolve_run_config(list(argv))
    except SystemExit as err:  # an argparse that exits instead of raising: usage on stderr
        lines = [line for line in stderr.getvalue().strip().splitlines() if line.strip()]
        message = lines[-1] if lines else f"exit code {err.code}"
        raise AblateError(f"{what}: relic_rl.train rejects its flags: {message}") from None
    except ValueError as err:  # UsageError, PresetError and EnvCreationError are ValueErrors
        raise AblateError(f"{what}: {err}") from None
    return config, plain(config.to_dict())


def preflight(config: Any, what: str) -> None:
    """Build the env and the model of ``config`` once (train's own preflight), on the CPU.

    :raises AblateError: when train would refuse the run (unknown env, rejected hyperparameters).
    """
    import torch

    from relic_rl.experiment import preflight as train_preflight

    threads = torch.get_num_threads()
    # One thread: building a small model is ~100x slower with several OpenMP threads competing
    # for busy cores (measured: 2.4 s vs 0.02 s on 2 loaded cores), and nothing here is parallel.
    torch.set_num_threads(1)
    try:
        train_preflight(config, device="cpu")
    except ValueError as err:
        raise AblateError(f"{what}: {err}") from None
    except Exception as err:  # the env's or the extractor's own code may raise anything
        raise AblateError(f"{what}: building its env and model failed: {type(err).__name__}: {err}") from None
    finally:
        torch.set_num_threads(threads)


def plain(value: Any) -> Any:
    """``value`` with tuples as lists and keys as strings, recursively, as it reads back from YAML."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def config_value(config: Mapping[str, Any], key: str) -> Any:
    """The value of grid key ``key`` in a resolved config (``agent.relic.<key>`` or ``agent.<key>``)."""
    agent = config.get("agent", {})
    return agent.get("relic", {}).get(key) if key in RELIC_FIELDS else agent.get(key)
