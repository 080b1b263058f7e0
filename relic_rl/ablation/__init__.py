"""Building blocks of the ablation CLI (:mod:`relic_rl.ablate`): ``grid`` (``--grid`` specs and cells),
``train_args`` (a cell's train flags, checked), ``folder`` (layout, lock, existing runs), ``plan``,
``runner``, ``backends`` (local pool or Ray), ``progress`` and ``hparams`` (TensorBoard export).
"""

from relic_rl.ablation.grid import Cell, GridError, expand_cells, parse_grid_specs, split_values

__all__ = ["Cell", "GridError", "expand_cells", "parse_grid_specs", "split_values"]
