"""The demo: Kareus's setting on the simulated A100, gearshift next to honest baselines.

Llama-3.2-3B with tensor parallelism 8 (one rank's share), microbatch 4 at sequence 4096, split
into 2 nanobatches for (b)-(d). Baselines (search/baselines.py): (a) Megatron's default (no
nanobatches, collectives serial, all-max clocks: gearshift switched off), (b) nanobatching with
a fixed default overlap at all-max clocks, (c) (b) with per-instruction clocks (Perseus-like),
(d) gearshift. Every figure is simulated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InfeasibleSelectionError
from .config import GearshiftConfig

DEMO_MODEL = "llama-3.2-3b-tp8"
DEMO_GPU = "a100-sxm"
DEMO_NANOBATCHES = 2
# Kareus's A100 clock range, in its 30 MHz steps
DEMO_MIN_FREQ_MHZ = 900
DEMO_FREQ_STEP_MHZ = 30
# the overlap options that matter most here (serial is always profiled too)
DEMO_OVERLAPS = ("serial", "window0-99", "window0-99/sms=6", "window0-99/sms=12", "window0-2")


@dataclass
class DemoResult:
    plan: object
    run: object
    baselines: object
    plot: Path
    table: str
    out_dir: Path


def run_demo(model: str = DEMO_MODEL, gpu: str = DEMO_GPU, iterations: int = 5,
             out_dir: str | Path = "gearshift-demo", objective: str = "iso-time",
             progress: bool = True, nanobatches: int = DEMO_NANOBATCHES,
             layers: int | None = None) -> DemoResult:
    from ..devices.sim import SimDevice  # noqa: PLC0415
    from ..plan import save_artifacts  # noqa: PLC0415
    from ..profile import candidate_freqs  # noqa: PLC0415
    from ..profile.progress import Stage  # noqa: PLC0415
    from ..report import RunPoint, RunSummary, report  # noqa: PLC0415
    from ..search import baselines as bl  # noqa: PLC0415
    from ..trace import trace_preset  # noqa: PLC0415
    from .run import run_schedule  # noqa: PLC0415

    out = Path(out_dir)
    device = SimDevice(gpu)
    config = GearshiftConfig(objective=objective, device="sim", sim_preset=gpu,
                             artifacts_dir=str(out), freq_step_mhz=DEMO_FREQ_STEP_MHZ,
                             min_freq_mhz=DEMO_MIN_FREQ_MHZ, overlaps=DEMO_OVERLAPS,
                             progress=progress)
    sizes = {"layers": layers} if layers else {}
    with Stage(f"tracing one training step of {model} (shapes only, no GPU)", progress):
        trace_a = trace_preset(model, **sizes)
    with Stage(f"tracing it again as {nanobatches} nanobatches", progress):
        trace = trace_preset(model, nanobatches=nanobatches, **sizes)
    freqs = candidate_freqs(device.facts, min_freq_mhz=config.min_freq_mhz,
                            step_mhz=config.freq_step_mhz)
    with Stage("running the baselines (a+) and (b), (c)", progress):
        base = bl.compare(trace_a, trace, device, freqs, plan_d=None)
    # gearshift plans the program with and without nanobatches and keeps the better one: on a
    # small model nanobatches only add launch overhead
    plan_a = _plan(trace_a, device, config, freqs, None)
    a_point = plan_a.frontier.baseline        # (a): serial, top clock, every partition
    base.a = bl.Point(a_point.time_s, a_point.energy_j)
    plan_b = _plan(trace, device, config, freqs, (a_point.time_s, a_point.energy_j))
    plan, frontier = _better(plan_a, plan_b, objective)
    schedule = plan.schedule
    trace, parts = plan.trace, plan.partitioning
    save_artifacts(plan, out)
    plan.frontier = frontier
    base.d = frontier
    base.meta["chosen_nanobatches"] = trace.nanobatches
    # (a) as run: the microbatch whole, serial, top clock, as many iterations as gearshift
    device.reset_sm_clock()
    a_time = a_energy = 0.0
    for _ in range(iterations):
        r = device.run_iteration(trace_a)
        a_time, a_energy = a_time + r.time_s, a_energy + r.energy_j
    g = run_schedule(device, trace, schedule, parts, iterations, with_baseline=False,
                     progress=progress)
    run = RunSummary(g.device, g.source, g.energy_scope, g.gearshift,
                     RunPoint(a_time / iterations, a_energy / iterations, iterations),
                     schedule.objective, meta={**g.meta, "baseline": "(a) Megatron default: "
                                               "no nanobatches, serial collectives, all-max",
                                               "nanobatches": trace.nanobatches})
    base.d_as_run = bl.Point(g.gearshift.time_s, g.gearshift.energy_j)
    run.save(out / "run.json")
    png, table = report(frontier, out / "frontier.png", schedule, run,
                        title=f"{model} training step on the simulated {device.preset.name}")
    return DemoResult(plan, run, base, png, table, out)


def _plan(trace, device, config, freqs, baseline_point):
    from ..partition import partition  # noqa: PLC0415
    from ..plan import Plan  # noqa: PLC0415
    from ..profile import profile_partitions  # noqa: PLC0415
    from ..profile.progress import Stage  # noqa: PLC0415
    from ..search.iteration import plan_iteration  # noqa: PLC0415

    show = config.progress
    parts = partition(trace, switch_latency_s=device.capabilities.switch_latency_s)
    prof = profile_partitions(trace, parts, device, freqs_mhz=freqs, overlaps=config.overlaps,
                              progress=show)
    with Stage(f"searching the frontier of {trace.nanobatches} nanobatch(es) "
               f"({config.objective})", show):
        try:
            frontier, schedule = plan_iteration(prof, parts, trace.signature(),
                                                device.facts.name, objective=config.objective,
                                                baseline_point=baseline_point,
                                                nanobatches=trace.nanobatches)
        except InfeasibleSelectionError:
            if baseline_point is None:
                raise
            # the split program cannot meet the objective against (a): keep its frontier
            frontier, schedule = plan_iteration(prof, parts, trace.signature(),
                                                device.facts.name, objective="fastest",
                                                baseline_point=baseline_point,
                                                nanobatches=trace.nanobatches)
            schedule.extra["infeasible"] = config.objective
    schedule.extra.setdefault("model", trace.model)
    return Plan(trace, parts, prof, frontier, schedule)


def _better(plan_a, plan_b, objective: str):
    """The plan whose selection is better under ``objective``, and both frontiers' Pareto
    union (what gearshift can reach with or without nanobatches)."""
    from ..model import Frontier  # noqa: PLC0415
    from ..search.select import select  # noqa: PLC0415

    pts = sorted(plan_a.frontier.points + plan_b.frontier.points,
                 key=lambda p: (p.time_s, p.energy_j))
    front, best_e = [], float("inf")
    for p in pts:
        if p.energy_j < best_e:
            front.append(p)
            best_e = p.energy_j
    if plan_b.schedule.extra.get("infeasible"):
        chosen = plan_a
    else:
        sa, sb = (select(plan.frontier, objective) for plan in (plan_a, plan_b))
        if objective.startswith("iso-energy"):
            pick_b = (sb.time_s, sb.energy_j) < (sa.time_s, sa.energy_j)
        else:
            pick_b = (sb.energy_j, sb.time_s) < (sa.energy_j, sa.time_s)
        chosen = plan_b if pick_b else plan_a
    # the union is reported beside the chosen schedule, so it carries that plan's model
    # signature and device (report refuses a frontier of another model)
    union = Frontier(front, energy_scope=plan_a.frontier.energy_scope,
                     source=plan_a.frontier.source, baseline=plan_a.frontier.baseline,
                     meta={**chosen.frontier.meta, "union_of_nanobatches": [1, 2]})
    return chosen, union
