"""Unit ablation: which units a network needs for each class (Bau et al., PNAS 2020, on any model).

- :class:`~unitscope.ablation.hooks.UnitEdit` — a forward hook that zeroes (or sets to their mean) chosen
  units, for many ablation conditions in one pass.
- :func:`~unitscope.ablation.measure.measure_conditions` — per-image correctness and true-class score
  under each condition.
- :func:`~unitscope.ablation.sweep.ablate` — the sweep: every detected concept's units removed (and kept
  alone), against random units of the same number; returns the ``ablation.csv`` table.
"""

from unitscope.ablation.sweep import AblationResult, ablate

__all__ = ["AblationResult", "ablate"]
