"""Run iterations under a schedule (and the all-max baseline) inside measurement windows."""

from __future__ import annotations

from ..model import Choice, KernelTrace, Partitioning, Schedule
from ..report.summary import RunPoint, RunSummary
from .enforce import Enforcer


def baseline_choices(partitioning: Partitioning, device, default_overlap: str = "serial"):
    """Top clock everywhere, the framework's overlap where a partition communicates."""
    from ..model import NO_OVERLAP, Overlap  # noqa: PLC0415

    top = device.facts.max_freq_mhz
    ov = Overlap.parse(default_overlap)
    return [Choice(f"p{p.index}", top, ov if p.has_comm else NO_OVERLAP)
            for p in partitioning.partitions]


def run_schedule(device, trace: KernelTrace, schedule: Schedule,
                 partitioning: Partitioning | None = None, iterations: int = 5,
                 baseline: list | None = None, with_baseline: bool = True,
                 progress: bool = False, timeline_out=None) -> RunSummary:
    """``iterations`` baseline iterations, then as many under ``schedule``, each block in its own
    gearshift.measure window on ``device``; per-iteration means in the summary.
    ``timeline_out``: write the last scheduled iteration's kernel timeline there as Chrome
    trace events (simulated devices)."""
    from ..monitor import Monitor  # noqa: PLC0415
    from ..profile.progress import Progress  # noqa: PLC0415

    enf = Enforcer(device, trace, schedule, partitioning, baseline)
    if enf.baseline is None:
        enf.baseline = baseline_choices(enf.partitioning, device)
    mon = Monitor(devices=device, rapl=False)
    bar = Progress(progress)
    bar.start(iterations * (2 if with_baseline else 1),
              f"running {iterations} iterations" + (" (baseline, then gearshift)"
                                                    if with_baseline else ""))
    base_pt = None
    try:
        if with_baseline:
            device.reset_sm_clock()
            mon.begin_window("baseline")
            for _ in range(iterations):
                enf.baseline_step()
                bar.advance()
            m = mon.end_window("baseline")
            base_pt = RunPoint(m.time_s / iterations, m.energy_j("gpu") / iterations, iterations)
        res = None
        mon.begin_window("gearshift")
        switches = 0
        for _ in range(iterations):
            res = enf.step()
            switches += getattr(res, "num_switches", 0) if res is not None else 0
            bar.advance()
        m = mon.end_window("gearshift")
    finally:
        bar.stop()
        enf.close()
    if timeline_out is not None:
        if res is None or not hasattr(res, "kernel_start_s"):
            from ..errors import ConfigError  # noqa: PLC0415

            raise ConfigError(f"{device.name} reports no kernel timeline",
                              "write --timeline-out from a simulated run (--device sim)")
        from ..devices.sim.chrome_trace import write_chrome_trace  # noqa: PLC0415

        part_of = [p.index for p in enf.partitioning.partitions for _ in range(p.start, p.end)]
        write_chrome_trace(timeline_out, trace, res, part_of)
    return RunSummary(device.name, m.source, "gpu",
                      RunPoint(m.time_s / iterations, m.energy_j("gpu") / iterations, iterations),
                      base_pt, schedule.objective,
                      meta={"clock_switches_per_iteration": switches / iterations,
                            "model_signature": schedule.model_signature})
