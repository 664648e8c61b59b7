"""A partition's time-energy frontier: the Pareto set of (time_s, energy_j) over its options.

An option is one (SM clock, overlap choice) pair. Energies on a frontier are always *total*
GPU energy of the partition, static included: composition then only has to add numbers, and a
caller whose profile left static power out states so once (``static_power_w``) and never again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import GearshiftError
from ..model.profile import Overlap, Profile, ProfileEntry

Option = tuple[int, Overlap]   # (freq_mhz, overlap)


@dataclass
class PartitionFrontier:
    """Pareto-optimal options of one partition, fastest first (time up, energy strictly down)."""

    partition: int
    time_s: np.ndarray
    energy_j: np.ndarray
    options: list[Option]
    num_options: int = 0          # options the partition has
    num_measured: int = 0         # options actually evaluated to find this frontier
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.options)

    def fastest(self) -> int:
        return 0

    def min_energy(self) -> int:
        return len(self.options) - 1


def pareto_indices(time_s: Sequence[float], energy_j: Sequence[float]) -> np.ndarray:
    """Indices of the Pareto-optimal points, ordered by time ascending (energy then descends).

    Ties in time keep the lower energy; exact duplicates keep the first given, so the result
    is deterministic for a fixed input order.
    """
    t = np.asarray(time_s, dtype=float)
    e = np.asarray(energy_j, dtype=float)
    if t.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(t.size), e, t))
    es = e[order]
    # a point survives iff its energy is strictly below every faster (or equally fast) one's
    prev_min = np.minimum.accumulate(np.concatenate(([np.inf], es[:-1])))
    return order[es < prev_min]


def hypervolume(time_s: Sequence[float], energy_j: Sequence[float],
                ref: tuple[float, float]) -> float:
    """Area dominated by the points and bounded by ``ref`` = (time_s, energy_j); 2-D, exact."""
    idx = pareto_indices(time_s, energy_j)
    t = np.asarray(time_s, dtype=float)[idx]
    e = np.asarray(energy_j, dtype=float)[idx]
    keep = (t < ref[0]) & (e < ref[1])
    t, e = t[keep], e[keep]
    if t.size == 0:
        return 0.0
    widths = np.diff(np.append(t, ref[0]))
    return float(np.sum(widths * (ref[1] - e)))


def best_subset_hypervolumes(time_s: Sequence[float], energy_j: Sequence[float],
                             ref: tuple[float, float], k_max: int | None = None) -> np.ndarray:
    """``out[k-1]``: the largest hypervolume any k points of a Pareto staircase (time-sorted,
    energy falling) reach, for k = 1..k_max: what a search that measures k options could at
    best reach, knowing the frontier. Exact (dynamic programme over the last point taken)."""
    t = np.asarray(time_s, dtype=float)
    e = np.asarray(energy_j, dtype=float)
    keep = (t < ref[0]) & (e < ref[1])
    t, e = t[keep], e[keep]
    n = t.size
    k_max = n if k_max is None else min(k_max, n)
    if n == 0 or k_max < 1:
        return np.zeros(max(k_max, 0))
    # best[j]: most area from points j.. with j taken, as many points as the round allows;
    # taking m after j adds the slab between them at j's energy
    step = (t[None, :] - t[:, None]) * (ref[1] - e)[:, None]
    step[np.tril_indices(n)] = -np.inf
    best = (ref[0] - t) * (ref[1] - e)
    out = [float(best.max())]
    for _ in range(2, k_max + 1):
        best = np.maximum(best, (step + best[None, :]).max(axis=1))
        out.append(float(best.max()))
    return np.array(out)


def fewest_points_for(frontier: PartitionFrontier, ref: tuple[float, float],
                      fraction: float) -> int:
    """The fewest points of ``frontier`` whose hypervolume reaches ``fraction`` of its own."""
    full = hypervolume(frontier.time_s, frontier.energy_j, ref)
    if full <= 0:
        return 1
    reach = best_subset_hypervolumes(frontier.time_s, frontier.energy_j, ref)
    return int(np.argmax(reach >= fraction * full * (1 - 1e-12)) + 1)


def frontier_from_points(partition: int, options: Sequence[Option], time_s: Sequence[float],
                         energy_j: Sequence[float], num_options: int | None = None,
                         num_measured: int | None = None) -> PartitionFrontier:
    """Pareto-prune evaluated options (energies already total) into a PartitionFrontier."""
    t = np.asarray(time_s, dtype=float)
    e = np.asarray(energy_j, dtype=float)
    if t.size == 0:
        raise GearshiftError(f"partition {partition} has no evaluated options",
                             "profile at least one (clock, overlap) option of every partition")
    idx = pareto_indices(t, e)
    return PartitionFrontier(partition, t[idx], e[idx], [options[i] for i in idx],
                             num_options if num_options is not None else len(options),
                             num_measured if num_measured is not None else len(options))


def partition_frontier(entries: Sequence[ProfileEntry], static_power_w: float = 0.0,
                       partition: int | None = None) -> PartitionFrontier:
    """Exhaustive frontier of one partition from its profiled options.

    ``static_power_w`` is added for each second of the option's time: pass the device's static
    power when the profile's energies exclude it, and 0 when they already include it (a GPU
    energy counter, the simulated GPU).
    """
    if not entries:
        raise GearshiftError(f"partition {partition} has no profiled options",
                             "profile every partition under at least one clock")
    part = entries[0].partition if partition is None else partition
    t = np.fromiter((e.time_s for e in entries), float, len(entries))
    e = np.fromiter((x.energy_j for x in entries), float, len(entries)) + static_power_w * t
    return frontier_from_points(part, [(x.freq_mhz, x.overlap) for x in entries], t, e)


def profile_frontiers(profile: Profile, *, energy_includes_static: bool) -> list[PartitionFrontier]:
    """Every partition's exhaustive frontier, energies total (static charged once)."""
    static = 0.0 if energy_includes_static else profile.device.static_power_w
    return [partition_frontier(opts, static, i) for i, opts in enumerate(profile.by_partition())]
