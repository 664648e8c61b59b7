"""Planning across ranks under torch.distributed: profile locally, plan on rank 0, enforce locally.

Every rank traces and profiles its own partitions on its own device (ranks differ: a slower
GPU, an unbalanced shard). The partition signatures are compared first, because a rank that
runs a different kernel sequence would make any joint plan meaningless: every rank then raises
the same error naming the odd rank(s), instead of some ranks hanging in a collective.
Profiles are gathered to rank 0, which plans; each rank's schedule is broadcast back.

The plan assumes ranks meet at every partition boundary (collectives keep data- and
tensor-parallel ranks in lockstep): a partition lasts as long as its slowest rank, and a rank
that finishes early waits at idle power. For each partition, rank 0 tries every candidate
finishing time (one per (rank, clock) option), lets each rank take its cheapest clock that
meets it, and keeps the cheapest under ``eta*E + (1-eta)*P_ref*T`` summed over ranks: exact
for this model, and it slows the fast ranks down into the slack the slow one leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TraceError
from ..objective import check_eta, zeus_cost
from ..model import NO_OVERLAP, Profile, ProfileEntry, Schedule, ScheduleEntry


@dataclass
class JointPlan:
    freqs_mhz: list[list[int]]     # [rank][partition]
    time_s: float                  # predicted iteration time (slowest rank per partition)
    energy_j: float                # predicted energy of all ranks, idle waiting included


def profile_rank(trace, partitioning, device, freqs_mhz) -> Profile:
    t, e = device.profile_options(trace, partitioning, [(int(f), NO_OVERLAP) for f in freqs_mhz])
    entries = [ProfileEntry(p, int(f), NO_OVERLAP, float(t[i, p]), float(e[i, p]))
               for i, f in enumerate(freqs_mhz) for p in range(len(partitioning))]
    return Profile(device=device.facts, entries=entries, num_partitions=len(partitioning),
                   partitioning_signature=partitioning.signature(), source="simulated"
                   if getattr(device, "kind", "") == "sim" else "measured")


def plan_synchronized(profiles: list[Profile], eta: float = 1.0,
                      reference_power_w: float | None = None) -> JointPlan:
    eta = check_eta(eta)
    ranks = len(profiles)
    p_ref = reference_power_w if reference_power_w is not None else sum(
        pr.device.tdp_w for pr in profiles)
    n_parts = profiles[0].num_partitions
    freqs = [[0] * n_parts for _ in range(ranks)]
    total_t = total_e = 0.0
    for p in range(n_parts):
        opts = [pr.options(p) for pr in profiles]
        best = None
        for deadline in sorted({o.time_s for rank_opts in opts for o in rank_opts}):
            energy, picks = 0.0, []
            for r, rank_opts in enumerate(opts):
                ok = [o for o in rank_opts if o.time_s <= deadline * (1 + 1e-12)]
                if not ok:
                    break
                idle_w = profiles[r].device.idle_power_w
                o = min(ok, key=lambda o: o.energy_j + idle_w * (deadline - o.time_s))
                energy += o.energy_j + idle_w * (deadline - o.time_s)
                picks.append(o.freq_mhz)
            else:
                cost = zeus_cost(energy, deadline, eta, p_ref)
                if best is None or cost < best[0]:
                    best = (cost, deadline, energy, picks)
        _, deadline, energy, picks = best
        for r in range(ranks):
            freqs[r][p] = picks[r]
        total_t += deadline
        total_e += energy
    return JointPlan(freqs, total_t, total_e)


def evaluate_synchronized(profiles: list[Profile], freqs_mhz: list[list[int]]):
    """(time_s, energy_j) of given per-rank clocks under the same lockstep model."""
    total_t = total_e = 0.0
    for p in range(profiles[0].num_partitions):
        opts = [pr.lookup(p, freqs_mhz[r][p]) for r, pr in enumerate(profiles)]
        d = max(o.time_s for o in opts)
        total_t += d
        total_e += sum(o.energy_j + pr.device.idle_power_w * (d - o.time_s)
                       for o, pr in zip(opts, profiles))
    return total_t, total_e


def schedule_for(plan: JointPlan, rank: int, trace, partitioning, device_name: str,
                 eta: float) -> Schedule:
    entries = [ScheduleEntry(partition=i, start_kernel=part.start, freq_mhz=f,
                             signature=part.signature, label=part.label)
               for i, (part, f) in enumerate(zip(partitioning.partitions, plan.freqs_mhz[rank]))]
    return Schedule(entries=entries, model_signature=trace.signature(), device=device_name,
                    num_kernels=len(trace), objective="cost",
                    predicted={"time_s": plan.time_s, "energy_j": plan.energy_j},
                    extra={"rank": rank, "world_size": len(plan.freqs_mhz), "eta": eta,
                           "planned_on": "rank 0, all ranks jointly"})


def check_same_trace(signatures: list[tuple[str, int]]) -> None:
    """Raise on every rank alike when one rank's kernel sequence differs from its peers'."""
    from collections import Counter

    common, _ = Counter(signatures).most_common(1)[0]
    odd = [r for r, s in enumerate(signatures) if s != common]
    if odd:
        shown = ", ".join(f"rank {r}: {signatures[r][0]} ({signatures[r][1]} partitions)"
                          for r in odd)
        raise TraceError(
            f"rank(s) {odd} traced a different iteration than their peers "
            f"({common[0]}, {common[1]} partitions); {shown}",
            "make every rank run the same model and step (same layers, same partitioner "
            "settings), or plan each rank separately")


def distributed_plan(trace, partitioning, device, freqs_mhz, eta: float = 1.0,
                     group=None) -> Schedule:
    """Collective: every rank calls it; returns this rank's schedule."""
    import torch.distributed as dist

    rank, world = dist.get_rank(group), dist.get_world_size(group)
    sigs: list = [None] * world
    dist.all_gather_object(sigs, (partitioning.signature(), len(partitioning)), group=group)
    check_same_trace(sigs)
    prof = profile_rank(trace, partitioning, device, freqs_mhz).to_json()
    gathered = [None] * world if rank == 0 else None
    dist.gather_object(prof, gathered, dst=0, group=group)
    box: list = [None]
    if rank == 0:
        profiles = [Profile.from_json(p) for p in gathered]
        plan = plan_synchronized(profiles, eta)
        box = [[schedule_for(plan, r, trace, partitioning, profiles[r].device.name,
                             eta).to_json() for r in range(world)]]
    dist.broadcast_object_list(box, src=0, group=group)
    return Schedule.from_json(box[0][rank])


def enforce(schedule: Schedule, trace, partitioning, device, iterations: int = 1):
    """Run iterations on this rank's device with its own schedule; returns the last result."""
    schedule.check_compatible(trace.signature(), device.facts.name)
    res = None
    for _ in range(iterations):
        res = device.run_iteration(trace, partitioning,
                                   [(e.freq_mhz, e.overlap) for e in schedule.entries])
    return res
