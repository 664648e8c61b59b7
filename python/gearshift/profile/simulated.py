"""Profile on the simulated GPU: run the simulator once per option for all partitions."""

from __future__ import annotations

from ..model import NO_OVERLAP, KernelTrace, Partitioning, ProfileEntry
from .progress import Progress


def profile_simulated(trace: KernelTrace, partitioning: Partitioning, device, freqs: list[int],
                      overlaps: list, progress: Progress) -> list[ProfileEntry]:
    comm = [p.has_comm for p in partitioning.partitions]
    # has_comm comes from the partitioner; trust the kernels when it was not set
    for i, p in enumerate(partitioning.partitions):
        comm[i] = comm[i] or any(k.kind == "comm" for k in trace.kernels[p.start:p.end])
    any_comm = any(comm)
    ovs = overlaps if any_comm else overlaps[:1]
    entries: list[ProfileEntry] = []
    progress.start(len(freqs) * len(ovs), f"profiling {len(partitioning)} partitions "
                   f"({len(freqs)} clocks x {len(ovs)} overlaps)")
    for f in freqs:
        for j, ov in enumerate(ovs):
            times, energies = device.profile_options(trace, partitioning, [(f, ov)])
            for p in range(len(partitioning)):
                if comm[p]:
                    entries.append(ProfileEntry(p, f, ov, float(times[0, p]), float(energies[0, p])))
                elif j == 0:
                    # without communication every placement is the same run: record it once
                    entries.append(ProfileEntry(p, f, NO_OVERLAP, float(times[0, p]),
                                                float(energies[0, p])))
            progress.advance()
    progress.stop()
    return entries
