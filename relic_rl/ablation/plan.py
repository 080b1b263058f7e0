"""The plan of an ablation: its identity, its cells with their train commands and states.

:func:`make_plan` validates everything (grid, train flags, the ``--out`` folder, the configs of
existing run folders) and writes nothing; :func:`write_ablation_files` records the plan in the
folder once the ablation runs. The layout is described in :mod:`relic_rl.ablation.folder`.
"""

from __future__ import annotations

import dataclasses
import difflib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relic_rl.ablation.folder import (
    ABLATION_FILE,
    CELLS_DIR,
    LOGS_DIR,
    RUNS_DIR,
    CellState,
    check_out_dir,
    inspect_run,
    write_yaml_once,
)
from relic_rl.ablation.grid import (
    KL_KEY,
    RELIC_FIELDS,
    Cell,
    GridError,
    assemble_grid,
    expand_cells,
    format_value,
    parse_grid_specs,
)
from relic_rl.ablation.train_args import (
    AblateError,
    cell_flags,
    check_train_args,
    config_value,
    preflight,
    resolve,
    split_hyperparams,
    valid_grid_keys,
)

__all__ = ["AblationSpec", "Plan", "PlannedCell", "make_plan", "refresh_states", "write_ablation_files"]


@dataclass(frozen=True)
class AblationSpec:
    """What identifies an ablation: re-running with the same spec continues it.

    :param env_id: the env.
    :param total_timesteps: budget of every run.
    :param seeds: the seeds.
    :param grid: ``{key: [values]}``, the KL axis first.
    :param baseline: whether the no-aux baseline is included.
    :param train_args: the other train flags, as given.
    :param curl: whether the CURL variants are included.
    """

    env_id: str
    total_timesteps: int
    seeds: tuple[int, ...]
    grid: dict[str, list[Any]]
    baseline: bool
    train_args: tuple[str, ...]
    curl: bool = False

    def identity(self) -> dict[str, Any]:
        """The keys compared with an existing ``ablation.yaml``."""
        identity = {
            "env_id": self.env_id,
            "total_timesteps": self.total_timesteps,
            "seeds": list(self.seeds),
            "grid": {k: list(v) for k, v in self.grid.items()},
            "baseline": self.baseline,
            "train_args": list(self.train_args),
        }
        if self.curl:  # only then, so that ablation folders written before CURL still match
            identity["curl"] = True
        return identity


@dataclass(frozen=True)
class PlannedCell:
    """A cell with its train command, resolved config and state in the ablation folder.

    :param cell: the cell.
    :param train_args: arguments of ``python -m relic_rl.train`` for a fresh run.
    :param config: the resolved config (without ``meta``).
    :param state: ``new``; ``resume`` (an unfinished run with a checkpoint); ``restart`` (an unfinished
        run without a checkpoint: its folder is moved to ``OUT/attic/`` and the run starts over);
        or ``finished``.
    :param detail: what the existing run folder holds, for messages.
    :param done_timesteps: timesteps already done by an unfinished run.
    :param run_config: the resolved :class:`~relic_rl.runs.RunConfig`, which a new cell's run
        folder is written from.
    """

    cell: Cell
    train_args: tuple[str, ...]
    config: dict[str, Any]
    state: CellState
    detail: str = ""
    done_timesteps: int = 0
    run_config: Any = None


@dataclass(frozen=True)
class Plan:
    """The validated ablation.

    :param out: the ablation folder.
    :param spec: its identity.
    :param cells: every cell, in run order.
    :param command: the ablation command line.
    """

    out: Path
    spec: AblationSpec
    cells: list[PlannedCell] = field(default_factory=list)
    command: str = ""

    def run_dir(self, name: str) -> Path:
        """The run folder of a cell."""
        return self.out / RUNS_DIR / name

    def log_path(self, name: str) -> Path:
        """The log of a cell."""
        return self.out / LOGS_DIR / f"{name}.log"

    @property
    def to_run(self) -> list[PlannedCell]:
        """The cells that are not finished."""
        return [c for c in self.cells if c.state != "finished"]

    def describe(self) -> str:
        """The grid, the cells and the cost, as printed by ``--dry-run``."""
        spec = self.spec
        variants = list(dict.fromkeys(c.cell.variant for c in self.cells))
        steps = spec.total_timesteps
        remaining = sum(steps - c.done_timesteps for c in self.to_run)
        lines = [f"Ablation of {spec.env_id} in {self.out}", "grid:"]
        lines += [f"  {k}: {', '.join(format_value(v) for v in vs)}" for k, vs in spec.grid.items()]
        lines.append(f"baseline (no aux): {'yes' if spec.baseline else 'no'}")
        if spec.curl:
            lines.append("curl: yes")
        lines.append(f"seeds: {', '.join(str(s) for s in spec.seeds)}")
        lines.append(f"variants ({len(variants)}):")
        lines += [f"  {v}" for v in variants]
        lines.append(
            f"runs: {len(self.cells)} = {len(variants)} variants x {len(spec.seeds)} seeds; "
            f"cost: {len(self.cells)} runs x {steps:,} steps = {len(self.cells) * steps:,} env steps"
        )
        lines.append(
            f"to do now: {len(self.to_run)} runs ({sum(c.state == 'resume' for c in self.cells)} resumed), "
            f"{remaining:,} env steps; {sum(c.state == 'finished' for c in self.cells)} already finished"
        )
        lines.append("cells:")
        width = max(len(c.cell.name) for c in self.cells)
        for c in self.cells:
            detail = f"  ({c.detail})" if c.detail else ""
            lines.append(f"  {c.state:<8}  {c.cell.name:<{width}}{detail}".rstrip())
        first = self.to_run[0] if self.to_run else self.cells[0]
        lines.append(f"train command of {first.cell.name}:")
        lines.append(f"  python -m relic_rl.train {shlex.join(first.train_args)}")
        lines += [f"note: {note}" for note in self.notes()]
        return "\n".join(lines)

    def notes(self) -> list[str]:
        """Settings that make a poor ablation report (too few evaluations)."""
        agent = self.cells[0].config.get("agent", {}) if self.cells else {}
        episodes, freq = agent.get("eval_episodes"), agent.get("eval_freq")
        steps = self.spec.total_timesteps
        if episodes == 0:
            return ["eval_episodes is 0: the runs are never evaluated, so there will be no report."]
        if isinstance(freq, int) and freq * 2 > steps:
            points = steps // freq + (steps % freq != 0)
            suggested = max(1, steps // 10)
            return [
                f"eval_freq {freq:,} with {steps:,} steps gives {points} evaluation(s) per run, so the "
                f"learning curves have {points} point(s); for curves pass e.g. --eval-freq {suggested}."
            ]
        return []


def make_plan(
    *,
    env_id: str,
    seeds: Sequence[int],
    total_timesteps: int | None,
    kl_weights: Sequence[float] | None,
    grid_specs: Sequence[str],
    baseline: bool,
    train_args: Sequence[str],
    out: Path,
    command: str,
    check_models: bool = True,
    relic: bool = True,
    curl: bool = False,
) -> Plan:
    """Validate everything and build the plan; nothing is written.

    :param env_id: ``--env``.
    :param seeds: ``--seeds``.
    :param total_timesteps: ``--total-timesteps`` (``None``: the preset's ``n_timesteps``).
    :param kl_weights: ``--kl-weights`` (``None``: the preset's value and 0).
    :param grid_specs: the ``--grid`` specs.
    :param baseline: ``--baseline``.
    :param train_args: the other train flags.
    :param out: ``--out``.
    :param command: the ablation command line, recorded in ``ablation.yaml``.
    :param check_models: build the env and model of every variant once (train's preflight), so
        that an unknown env or a value SB3 rejects fails before anything runs.
    :param relic: include the ReLIC variants; False with ``baseline`` gives a grid of no-aux runs
        only (``ablate --aux none``), without the KL axis.
    :param curl: include the CURL variants (``ablate --aux curl``).
    :raises AblateError: on any user error (grid, flags, folder, changed configs).
    """
    try:
        extra_grid = parse_grid_specs(grid_specs)
    except GridError as err:
        raise AblateError(str(err)) from None
    if not seeds:
        raise AblateError("--seeds needs at least one seed.")
    if len(set(seeds)) != len(seeds):
        repeated = sorted({s for s in seeds if list(seeds).count(s) > 1})
        raise AblateError(f"--seeds repeats {repeated}; each seed may appear once.")
    check_train_args(train_args, [KL_KEY, *extra_grid])
    rest, user_items = split_hyperparams(train_args)

    def argv(cell: Cell | None, seed: int, budget: int | None) -> list[str]:
        flags, items = cell_flags(cell) if cell is not None else (["--aux", "relic"], [])
        base = ["--env", env_id, "--seed", str(seed)]
        if budget is not None:
            base += ["--total-timesteps", str(budget)]
        if cell is not None:
            base += ["--log-dir", str(out / RUNS_DIR), "--run-name", cell.name]
        all_items = [*user_items, *items]
        return [*base, *flags, *rest, *(["--hyperparams", *all_items] if all_items else []), "--no-progress"]

    _, probe = resolve(argv(None, seeds[0], total_timesteps), "The train flags")
    algo = str(probe["algo"])
    valid = valid_grid_keys(algo)
    unknown = [k for k in extra_grid if k not in valid]
    if unknown:
        close = [m for k in unknown for m in difflib.get_close_matches(k, valid, n=1)]
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise AblateError(
            f"Unknown grid key(s) {', '.join(unknown)} for {algo}.{hint} Valid keys: the ReLIC fields "
            f"{', '.join(RELIC_FIELDS)}; and the {algo} hyperparameters "
            f"{', '.join(k for k in valid if k not in RELIC_FIELDS)}."
        )
    budget = int(total_timesteps if total_timesteps is not None else probe["total_timesteps"])
    if not relic and kl_weights is not None:
        raise AblateError("--kl-weights needs the ReLIC variants; add relic to --aux or drop --kl-weights.")
    try:
        grid = (
            assemble_grid(kl_weights, extra_grid, config_value(probe, KL_KEY)) if relic else dict(extra_grid)
        )
        cells = expand_cells(grid, seeds, baseline, relic=relic, curl=curl)
    except GridError as err:
        raise AblateError(str(err)) from None

    planned: list[tuple[Cell, list[str], dict[str, Any]]] = []
    configs: dict[str, Any] = {}
    run_configs: dict[str, Any] = {}
    for cell in cells:
        args = argv(cell, cell.seed, budget)
        config, data = resolve(args, f"Cell {cell.name}")
        configs.setdefault(cell.variant, (cell.name, config))
        run_configs[cell.name] = config
        planned.append((cell, args, data))
    _check_axes_take_effect(planned)

    spec = AblationSpec(env_id, budget, tuple(seeds), grid, baseline, tuple(train_args), curl)
    check_out_dir(out, spec.identity())
    result = [
        PlannedCell(cell, tuple(args), data, "new", run_config=run_configs[cell.name])
        for cell, args, data in planned
    ]
    plan = refresh_states(Plan(out, spec, result, command))
    if check_models:  # last: the slowest check
        for name, config in configs.values():
            preflight(config, f"Cell {name}")
    return plan


def refresh_states(plan: Plan) -> Plan:
    """The plan with each cell's state read (again) from its run folder.

    :raises AblateError: when a run folder holds another config or is not a training run.
    """
    cells = []
    for c in plan.cells:
        state, detail, done = inspect_run(plan.run_dir(c.cell.name), c.config, c.cell.name)
        cells.append(dataclasses.replace(c, state=state, detail=detail, done_timesteps=done))
    return dataclasses.replace(plan, cells=cells)


def _check_axes_take_effect(planned: Sequence[tuple[Cell, list[str], dict[str, Any]]]) -> None:
    """Two values of an axis must give two configs; otherwise a train flag overrides the axis."""
    first_seed = planned[0][0].seed
    by_resolved: dict[tuple[str, str], list[Any]] = {}
    for cell, _, config in planned:
        # Baseline cells carry only the non-ReLIC axes, so they are checked on those alone.
        if cell.seed != first_seed:
            continue
        for key, value in cell.grid_params.items():
            values = by_resolved.setdefault((key, repr(config_value(config, key))), [])
            if not any(v == value for v in values):
                values.append(value)
    for (key, resolved), values in by_resolved.items():
        if len(values) > 1:
            shown = ", ".join(f"{key}={format_value(v)}" for v in values)
            raise AblateError(
                f"The grid values {shown} all give the same config ({key} = {resolved}): something else "
                "(a train flag or the preset) overrides the axis. Remove the override or the axis."
            )


def write_ablation_files(plan: Plan) -> None:
    """``ablation.yaml`` (once: it records the first command), ``cells/*.yaml``, ``runs/``, ``logs/``."""
    for sub in (CELLS_DIR, RUNS_DIR, LOGS_DIR):
        (plan.out / sub).mkdir(parents=True, exist_ok=True)
    path = plan.out / ABLATION_FILE
    if not path.is_file():
        write_yaml_once(path, {**plan.spec.identity(), "command": plan.command})
    for planned in plan.cells:
        write_yaml_once(plan.out / CELLS_DIR / f"{planned.cell.name}.yaml", planned.cell.to_yaml())
