"""What one search pass did and gained: one report for the iteration and the pipeline search."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PassReport:
    index: int                 # 0 = the initial sweep, 1, 2, ... = refinement passes
    time_quantum_s: float      # time resolution of the frontier after the pass
    points: int                # iteration: frontier points; pipeline: iteration times solved
    gain_rel: float            # largest relative energy drop of any point the pass could reach
    selected_time_s: float     # the selected (or target) point after the pass; nan if none
    selected_energy_j: float
    seconds: float             # wall time the pass took
    partitions_searched: int = 0   # iteration search: partitions the pass re-composed
    error_bound_s: float = 0.0     # iteration search: composition's time error bound
