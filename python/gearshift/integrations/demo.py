"""The demo: the whole flow on the simulated H100 for a GPT preset, in well under a minute."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import GearshiftConfig

DEMO_MODEL = "gpt-1.3b-tp4"     # tensor-parallel: its collectives make overlap choices matter
DEMO_GPU = "h100-sxm"
# Every other supported clock and the four placements that matter most on this model: the
# iso-time saving stays within 0.1 point of the full option set and the search runs ~4x faster.
DEMO_FREQ_STEP_MHZ = 30
DEMO_OVERLAPS = ("serial", "window0-99", "window0-99/sms=8", "window1-99")


@dataclass
class DemoResult:
    plan: object
    run: object
    plot: Path
    table: str
    out_dir: Path


def run_demo(model: str = DEMO_MODEL, gpu: str = DEMO_GPU, iterations: int = 5,
             out_dir: str | Path = "gearshift-demo", objective: str = "iso-time",
             progress: bool = True) -> DemoResult:
    from ..devices.sim import SimDevice  # noqa: PLC0415
    from ..profile.progress import Stage  # noqa: PLC0415
    from ..report import report  # noqa: PLC0415
    from ..trace import trace_preset  # noqa: PLC0415
    from ..plan import plan_for  # noqa: PLC0415
    from .run import run_schedule  # noqa: PLC0415

    out = Path(out_dir)
    device = SimDevice(gpu)
    with Stage(f"tracing one training step of {model} (shapes only, no GPU)", progress):
        trace = trace_preset(model)
    config = GearshiftConfig(objective=objective, device="sim", sim_preset=gpu,
                             artifacts_dir=str(out), freq_step_mhz=DEMO_FREQ_STEP_MHZ,
                             overlaps=DEMO_OVERLAPS,
                             progress=progress)
    plan = plan_for(trace, device, config)
    run = run_schedule(device, trace, plan.schedule, plan.partitioning, iterations,
                       baseline=plan.frontier.baseline.choices if plan.frontier.baseline
                       else None, progress=progress)
    run.save(out / "run.json")
    png, table = report(plan.frontier, out / "frontier.png", plan.schedule, run,
                        title=f"{model} training step on the simulated {device.preset.name}")
    return DemoResult(plan, run, png, table, out)
