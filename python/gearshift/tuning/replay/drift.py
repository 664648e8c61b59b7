"""The drift experiment: online tuning vs a stale schedule vs default clocks, on the sim GPU.

A GPT-like layer stack trains alone on the GPU; at iteration ``drift_at`` a co-located job
arrives and takes most of the HBM bandwidth (the simulated H100 keeps ``shared_bandwidth`` of
it). Partitions turn memory-bound, and their best clock moves down.
Compared over the same iterations, all on the simulated GPU (GPU energy only, simulated):

- default: every partition at the highest clock (the driver default);
- stale: the best plan for the GPU alone, from a free offline profile, never updated;
- online: ``OnlineTuner`` from a cold start, profiling just in time, re-planning on drift;
- oracle: the best offline plan for whichever condition is current (a bound, not a method).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import ConfigError
from ...objective import zeus_cost
from ..online import OnlineConfig, OnlineTuner, SimRunner


@dataclass
class DriftReport:
    iterations: int
    drift_at: int
    energy_j: dict            # method -> total energy over the run
    time_s: dict              # method -> total time
    detected_at: int | None   # first iteration at/after the drift that flagged it
    recovered_at: int | None  # first iteration from which online stays near the oracle
    replans: int
    profile_iterations: int
    per_iteration_cost: dict = field(default_factory=dict)

    @property
    def recovery_iterations(self) -> int | None:
        return None if self.recovered_at is None else self.recovered_at - self.drift_at


def phase_kind_partitioning(trace):
    """Cut wherever the phase or the kernel kind (compute/comm) changes."""
    from ...model import Partitioning

    cuts = [0] + [i for i in range(1, len(trace))
                  if trace.kernels[i - 1].phase != trace.kernels[i].phase
                  or trace.kernels[i - 1].kind != trace.kernels[i].kind]
    return Partitioning.from_cuts(trace, cuts, strategy="phase-kind")


def offline_plan(device, trace, partitioning, candidates, cost) -> list[int]:
    from ...model import NO_OVERLAP

    t, e = device.profile_options(trace, partitioning, [(f, NO_OVERLAP) for f in candidates])
    return [candidates[i] for i in cost(t, e).argmin(axis=0)]


def run_drift_experiment(iterations: int = 1200, drift_at: int = 300,
                         preset: str = "h100-sxm", eta: float = 1.0, seed: int = 0,
                         noise: float = 0.01, shared_bandwidth: float = 0.1,
                         recovery_tolerance: float = 0.02, **tuner_kwargs) -> DriftReport:
    import numpy as np

    from ...devices.sim import SimDevice, get_preset
    from ...devices.sim.workloads import gpt_stack_trace

    if not 0 < drift_at < iterations:
        raise ConfigError(f"drift_at={drift_at} must fall inside the {iterations} iterations",
                          "pick 0 < drift_at < iterations")
    trace = gpt_stack_trace(layers=4, seq=4096, micro_batch=2)
    parts = phase_kind_partitioning(trace)
    alone = get_preset(preset)
    shared = alone.with_(mem_bw_bytes_s=alone.mem_bw_bytes_s * shared_bandwidth)
    cfg = OnlineConfig(candidates_mhz=list(alone.freqs_mhz)[::6], eta=eta,
                       reference_power_w=alone.tdp_w, seed=seed, **tuner_kwargs)

    def cost(t, e):
        return zeus_cost(e, t, cfg.eta, cfg.reference_power_w)

    plan_before = offline_plan(SimDevice(alone), trace, parts, cfg.candidates_mhz, cost)
    plan_after = offline_plan(SimDevice(shared), trace, parts, cfg.candidates_mhz, cost)
    top = [cfg.candidates_mhz[0]] * len(parts)

    def play(choose, noise_level, tuner_factory=None):
        runner = SimRunner(SimDevice(alone), trace, parts, noise=noise_level, seed=seed)
        tuner = tuner_factory(runner) if tuner_factory else None
        out, detected = [], None
        for i in range(iterations):
            if i == drift_at:
                runner.drift(device=SimDevice(shared))
            if tuner is None:
                runner.run(choose(i))
            else:
                entry = tuner.step()
                if entry.drifted and detected is None and i >= drift_at:
                    detected = i
            out.append((runner.last.time_s, runner.last.energy_j))
        return np.array(out), tuner, detected

    runs = {"default": play(lambda i: top, 0.0)[0],
            "stale": play(lambda i: plan_before, 0.0)[0],
            "oracle": play(lambda i: plan_before if i < drift_at else plan_after, 0.0)[0]}
    runs["online"], tuner, detected = play(None, noise, lambda r: OnlineTuner(r, cfg))

    costs = {k: cost(v[:, 0], v[:, 1]) for k, v in runs.items()}
    near = costs["online"] <= (1 + recovery_tolerance) * costs["oracle"]
    recovered = next((i for i in range(drift_at, iterations - 4)
                      if near[i:i + 5].all() and near[i:].mean() >= 0.95), None)
    return DriftReport(
        iterations, drift_at,
        {k: float(v[:, 1].sum()) for k, v in runs.items()},
        {k: float(v[:, 0].sum()) for k, v in runs.items()},
        detected, recovered, sum(e.replanned for e in tuner.log),
        sum(e.mode == "profile" for e in tuner.log), costs)
