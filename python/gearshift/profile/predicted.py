"""Predicted mode: no permission to lock clocks, so only the default clock is measured.

Each partition's other clocks are predicted from that partition's own default-clock
measurement with the simulated GPU's response, fitted to the measurements per partition:

- the simulated GPU runs the step's op-level trace (the torch ops the step runs) cut where the
  recorded partitions are cut (the same kernels when the traces match one for one, as on the
  fake GPU; else at the same fractions of the step's time);
- time: partition p at clock f takes ``t_p(ref) * T_p(f) / T_p(ref)``, its measured reference
  time scaled by its *own* simulated response (a GEMM partition slows with the clock, a
  memory-bound one hardly does);
- energy: the reference step's measured energy is split over the partitions by their
  simulated powers times their measured times (one scale fitted so that the split sums to the
  measurement), and each partition's energy at f is its share times its own simulated energy
  ratio ``E_p(f) / E_p(ref)``.

Every figure it gives is labelled ``predicted``; its error against a real GPU is the
simulator's own (docs/online-profiling.md gives the error measured on the fake GPU, where
the simulator is the truth and only the fit and the measurement can err).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import NO_OVERLAP, Partitioning


@dataclass
class PartitionPredictor:
    """``predict(p, (freq_mhz, overlap)) -> (time_s, energy_j)``; ``split``: each partition's
    fitted share of the reference step's energy."""

    clocks: list[int]
    time_ratio: np.ndarray        # (clocks, P): simulated T_p(f) / T_p(ref)
    energy_ratio: np.ndarray      # (clocks, P): simulated E_p(f) / E_p(ref)
    ref_time_s: np.ndarray        # (P,): measured
    ref_energy_j: np.ndarray      # (P,): the measured step energy, split by fitted power
    split: np.ndarray             # (P,) shares summing to 1

    def __call__(self, p: int, option) -> tuple[float, float]:
        f = int(option[0])
        i = int(np.argmin([abs(c - f) for c in self.clocks]))
        return (float(self.ref_time_s[p] * self.time_ratio[i, p]),
                float(self.ref_energy_j[p] * self.energy_ratio[i, p]))


def op_cuts(op_trace, recorded_starts: list[int], recorded_kernels: int,
            ref_times_s: np.ndarray, sim) -> list[int]:
    """The op-level trace's kernels where the recorded partitions start: the same indices
    when both traces have the same kernels, else the op kernels whose simulated start (at the
    reference clock) is nearest each partition's measured start, as a fraction of the step."""
    n = len(op_trace)
    if n == recorded_kernels:
        return list(recorded_starts)
    res = sim.run_iteration(op_trace, None, [(sim.facts.max_freq_mhz, NO_OVERLAP)],
                            advance=False)
    starts = np.asarray(res.kernel_start_s, dtype=np.float64)
    frac = starts / max(float(res.time_s), 1e-12)
    want = np.concatenate([[0.0], np.cumsum(ref_times_s)[:-1]]) / max(ref_times_s.sum(), 1e-12)
    cuts = [0]
    for w in want[1:]:
        k = int(np.argmin(np.abs(frac - w)))
        cuts.append(min(max(k, cuts[-1] + 1), n - (len(want) - len(cuts))))
    return cuts


def fit_predictor(sim, op_trace, cuts: list[int], clocks: list[int], reference_mhz: int,
                  ref_times_s: np.ndarray, ref_step_energy_j: float) -> PartitionPredictor:
    """The simulated GPU's per-partition response fitted to the reference measurements."""
    parts = Partitioning.from_cuts(op_trace, list(cuts))
    supported = set(sim.facts.supported_freqs_mhz)
    use = [f for f in clocks if f in supported] or [sim.facts.max_freq_mhz]
    ref = reference_mhz if reference_mhz in supported else sim.facts.max_freq_mhz
    t, e = sim.profile_options(op_trace, parts, [(f, NO_OVERLAP) for f in use] +
                               [(ref, NO_OVERLAP)])
    t_ref, e_ref = t[-1], e[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        time_ratio = np.where(t_ref > 0, t[:-1] / t_ref, 1.0)
        energy_ratio = np.where(e_ref > 0, e[:-1] / e_ref, 1.0)
        power = np.where(t_ref > 0, e_ref / t_ref, 0.0)
    ref_times_s = np.asarray(ref_times_s, dtype=np.float64)
    weight = power * ref_times_s
    if weight.sum() <= 0:
        weight = ref_times_s.copy()
    split = weight / weight.sum()
    return PartitionPredictor(use, time_ratio, energy_ratio, ref_times_s,
                              split * float(ref_step_energy_j), split)
