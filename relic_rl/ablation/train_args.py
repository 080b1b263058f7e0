"""The ``relic_rl.train`` side of an ablation: which flags a cell passes, and checking them.

Every cell is resolved as ``relic_rl.train`` would, so that a bad key or value fails early, naming the
cell; :func:`preflight` catches what only construction reveals (unknown env id, a value SB3 rejects).
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
#: Train flags that set an agent key, contradicting a grid axis of it (``--total-timesteps``: OWN_FLAGS).
AGENT_FLAGS = {key: flag for key, flag in agent_flags().items() if key != "n_timesteps"}
_AXIS_OF_FLAG = {flag: key for key, flag in {**RELIC_FLAGS, **AGENT_FLAGS}.items()}
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
    """``(other flags, hyperparams items)`` of train flags ``args``: the ablation passes one merged
    ``--hyperparams`` (user's items, then the cell's), whatever train does with repeated flags."""
    rest: list[str] = []
    items: list[str] = []
    in_hyperparams = False
    for token in args:
        if _flag_name(token) == "--hyperparams":
            in_hyperparams = True
            items += token.split("=", 1)[1:]  # --hyperparams=a=1
        elif in_hyperparams and not token.startswith("--"):
            items.append(token)
        else:
            in_hyperparams = False
            rest.append(token)
    return rest, items


def check_train_args(args: Sequence[str], grid_keys: Sequence[str]) -> None:
    """Raise AblateError for train flags the ablation sets itself or that contradict a grid axis."""
    rest, items = split_hyperparams(args)
    for token in rest:
        name = _flag_name(token)
        if name in OWN_FLAGS:
            raise AblateError(f"The train flag {name} cannot be given to an ablation: {OWN_FLAGS[name]}.")
        axis = _AXIS_OF_FLAG.get(name)
        if axis in grid_keys:
            raise AblateError(
                f"{name} contradicts the grid, which sweeps {axis}; drop {name} or the {axis} axis."
            )
    for item in items:
        key = item.split("=", 1)[0].strip()
        if key in OWN_HYPERPARAMS:
            raise AblateError(f"--hyperparams {item}: {key} is set by the ablation; {OWN_HYPERPARAMS[key]}.")
        field_ = key.removeprefix("relic.")
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
            flags += [RELIC_FLAGS[key], format_value(value)]
        else:
            items.append(f"{'relic.' if key in RELIC_FIELDS else ''}{key}={to_yaml_text(value)}")
    return flags, items


def resolve(argv: Sequence[str], what: str) -> tuple[Any, dict[str, Any]]:
    """The :class:`~relic_rl.runs.RunConfig` of train arguments ``argv`` and its plain-data form
    (``config.yaml`` without ``meta``); train's user errors become AblateErrors prefixed by ``what``."""
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
    """Build the env and model of ``config`` once on the CPU (train's preflight); AblateError if it fails."""
    import torch

    from relic_rl.experiment import preflight as train_preflight

    threads = torch.get_num_threads()
    # OpenMP threads competing for busy cores make building a small model ~100x slower.
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
