"""Honest single-GPU baselines next to gearshift (issue #13), all on one (simulated) device.

- (a) **Megatron's default**: the microbatch whole (no nanobatches), tensor-parallel collectives
  serial, every kernel at the top clock. What a user gets with gearshift switched off.
- (a+) Megatron + per-instruction clocks (Perseus-like): (a)'s program, one clock per forward /
  backward / optimizer instruction: a frontier. Kareus's published comparison is against it.
- (b) **nanobatching with a fixed default overlap** (``NANOBATCH_DEFAULT_OVERLAP``: each
  collective launched beside the other nanobatch's first op, awaited at the partition's end, on
  the library's SMs and block size) at the top clock.
- (c) (b)'s program with **per-instruction clocks** (Perseus-like): a frontier; its top-clock
  point is (b).
- (d) **gearshift**: per-partition clock and overlap window / SM count (the planned frontier).

Instruction frontiers come from the same device as everything else: each phase of the step
(forward, backward, optimizer) profiled at every candidate clock with the program's fixed
overlap, composed exactly (phases run one after another). Savings of (d) against a point are
iso-time (least energy of (d) within that time) and iso-energy (least time within that energy);
against a frontier, the largest such saving over its points ("up to", as Kareus reports).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model import NO_OVERLAP, Frontier, KernelTrace, Overlap, Partitioning, Profile, ProfileEntry


@dataclass
class Point:
    time_s: float
    energy_j: float


@dataclass
class Baselines:
    """Every figure simulated on ``device`` (GPU energy), one iteration of one GPU."""

    device: str
    a: Point
    a_clocks: Frontier          # (a+) Megatron + per-instruction clocks
    b: Point
    c: Frontier                 # nanobatching + per-instruction clocks
    d: Frontier                 # gearshift
    d_selected: Point | None = None
    d_as_run: Point | None = None
    meta: dict = field(default_factory=dict)

    def savings(self) -> dict:
        """Iso-time energy and iso-energy time savings of (d) against (a), (a+) and (c)
        (fractions; None where (d) cannot reach the baseline's time or energy)."""
        d = _arrays(self.d)
        out = {}
        for key, pts in (("a", [self.a]), ("b", [self.b]), ("a_clocks", _points(self.a_clocks)),
                         ("c", _points(self.c))):
            out[key] = {"iso_time_energy": _best(pts, d, "time"),
                        "iso_energy_time": _best(pts, d, "energy")}
        return out


def _points(fr: Frontier) -> list[Point]:
    return [Point(p.time_s, p.energy_j) for p in fr.points]


def _arrays(fr: Frontier) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([p.time_s for p in fr.points]), np.array([p.energy_j for p in fr.points]))


def _best(pts: list[Point], d, kind: str) -> float | None:
    t, e = d
    best = None
    for p in pts:
        if kind == "time":          # least energy at no more time
            ok = t <= p.time_s * (1 + 1e-9)
            s = 1.0 - e[ok].min() / p.energy_j if ok.any() else None
        else:                       # least time at no more energy
            ok = e <= p.energy_j * (1 + 1e-9)
            s = 1.0 - t[ok].min() / p.time_s if ok.any() else None
        if s is not None and (best is None or s > best):
            best = s
    return best


def phase_partitioning(trace: KernelTrace) -> Partitioning:
    """One partition per instruction: the forward, backward and optimizer runs of the step."""
    cuts = [0] + [i for i in range(1, len(trace))
                  if trace.kernels[i].phase != trace.kernels[i - 1].phase]
    return Partitioning.from_cuts(trace, cuts, strategy="phase")


def instruction_frontier(trace: KernelTrace, device, freqs_mhz, overlap: Overlap,
                         objective: str = "iso-time") -> Frontier:
    """Frontier of one clock per instruction with ``overlap`` fixed (Perseus-like)."""
    from .iteration import plan_iteration  # noqa: PLC0415

    parts = phase_partitioning(trace)
    options = [(int(f), overlap) for f in freqs_mhz]
    times, energies = device.profile_options(trace, parts, options)
    entries = []
    for j, (f, _) in enumerate(options):
        for p in parts.partitions:
            ov = overlap if p.has_comm else NO_OVERLAP
            entries.append(ProfileEntry(p.index, f, ov, float(times[j, p.index]),
                                        float(energies[j, p.index])))
    prof = Profile(device.facts, entries, len(parts), parts.signature(),
                   source=getattr(device, "source", "simulated"),
                   extra={"default_overlap": overlap.key()}).validate()
    frontier, _ = plan_iteration(prof, parts, objective=objective)
    return frontier


def top_clock_point(trace: KernelTrace, device, overlap: Overlap) -> Point:
    """The whole step at the top clock, ``overlap`` on every partition with a collective (one
    partition per instruction, clock settled: no switch)."""
    parts = phase_partitioning(trace)
    top = device.facts.max_freq_mhz
    res = device.run_iteration(trace, parts,
                               [(top, overlap if p.has_comm else NO_OVERLAP)
                                for p in parts.partitions],
                               advance=False, switch_latency_s=0.0)
    return Point(res.time_s, res.energy_j)


def compare(trace_a: KernelTrace, trace_b: KernelTrace, device, freqs_mhz, plan_d,
            default_overlap: str | None = None) -> Baselines:
    """(a), (a+), (b), (c) from the traces, (d) from ``plan_d`` (a Frontier gearshift planned
    on ``trace_b``)."""
    from ..profile.options import FRAMEWORK_OVERLAP, NANOBATCH_DEFAULT_OVERLAP  # noqa: PLC0415

    serial = Overlap.parse(FRAMEWORK_OVERLAP)
    nano = Overlap.parse(default_overlap or NANOBATCH_DEFAULT_OVERLAP)
    return Baselines(
        device=device.name,
        a=top_clock_point(trace_a, device, serial),
        a_clocks=instruction_frontier(trace_a, device, freqs_mhz, serial),
        b=top_clock_point(trace_b, device, nano),
        c=instruction_frontier(trace_b, device, freqs_mhz, nano),
        d=plan_d,
        meta={"nanobatches": trace_b.nanobatches, "default_overlap": nano.key(),
              "framework_overlap": serial.key(), "source": "simulated"})


def table(bl: Baselines) -> str:
    """Side by side, for people; every figure simulated."""
    from ..report.table import format_table  # noqa: PLC0415

    def fr(f: Frontier) -> str:
        return f"{len(f)} points, {f.points[0].time_s * 1e3:.1f}-{f.points[-1].time_s * 1e3:.1f} ms"

    rows = [["(a) Megatron default: serial, no nanobatches, all-max",
             f"{bl.a.time_s * 1e3:.2f}", f"{bl.a.energy_j:.2f}", "point"],
            ["(a+) (a) + per-instruction clocks (Perseus-like)",
             f"{bl.a_clocks.points[0].time_s * 1e3:.2f}",
             f"{min(p.energy_j for p in bl.a_clocks.points):.2f}", fr(bl.a_clocks)],
            [f"(b) {bl.meta['nanobatches']} nanobatches, {bl.meta['default_overlap']}, all-max",
             f"{bl.b.time_s * 1e3:.2f}", f"{bl.b.energy_j:.2f}", "point"],
            ["(c) (b) + per-instruction clocks (Perseus-like)",
             f"{bl.c.points[0].time_s * 1e3:.2f}",
             f"{min(p.energy_j for p in bl.c.points):.2f}", fr(bl.c)],
            ["(d) gearshift: clock + overlap per partition",
             f"{bl.d.points[0].time_s * 1e3:.2f}",
             f"{min(p.energy_j for p in bl.d.points):.2f}", fr(bl.d)]]
    head = ["baseline (SIMULATED, GPU energy, one iteration)", "fastest ms", "least J", "kind"]
    return format_table([head] + rows)


def savings_lines(bl: Baselines) -> list[str]:
    s = bl.savings()

    def pct(x):
        return "unreachable" if x is None else f"{x * 100:.2f} %"

    names = {"a": "(a) Megatron default", "a_clocks": "(a+) Megatron + per-instruction clocks",
             "c": "(c) nanobatching + per-instruction clocks"}
    out = []
    for key, name in names.items():
        scope = "" if key == "a" else " (best over its frontier)"
        out.append(f"(d) vs {name}{scope}: {pct(s[key]['iso_time_energy'])} less energy at "
                   f"iso-time, {pct(s[key]['iso_energy_time'])} less time at iso-energy "
                   f"(SIMULATED)")
    return out
