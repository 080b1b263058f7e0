"""Building blocks of the ablation CLI (:mod:`relic_rl.ablate`).

* :mod:`relic_rl.ablation.grid`: parsing ``--grid`` specs and expanding them into cells;
* :mod:`relic_rl.ablation.train_args`: the ``relic_rl.train`` flags of a cell, resolved and checked;
* :mod:`relic_rl.ablation.folder`: the ablation folder's layout, lock and existing runs;
* :mod:`relic_rl.ablation.plan`: the validated plan (identity, cells, commands, states);
* :mod:`relic_rl.ablation.runner`: running a plan and concluding each run's outcome;
* :mod:`relic_rl.ablation.backends`: running the commands in a local process pool or as Ray tasks;
* :mod:`relic_rl.ablation.progress`: the per-run progress lines;
* :mod:`relic_rl.ablation.hparams`: the TensorBoard HParams export.
"""

from relic_rl.ablation.grid import Cell, GridError, expand_cells, parse_grid_specs, split_values

__all__ = ["Cell", "GridError", "expand_cells", "parse_grid_specs", "split_values"]
