"""Profile: time and energy of every partition under every candidate (clock, overlap) option.

``profile_partitions(trace, partitioning, device)`` returns a ``Profile``. On the simulated GPU
it runs the simulator once per option; on a real GPU (nvml device) it locks each clock, runs the
training step you pass (``step``) and reads partition marks plus NVML's energy counter.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..model import KernelTrace, Partitioning, Profile
from .options import (DEFAULT_OVERLAPS, FRAMEWORK_OVERLAP, candidate_freqs,  # noqa: F401
                      parse_overlaps)
from .progress import Progress


def profile_partitions(trace: KernelTrace, partitioning: Partitioning, device=None, *,
                       freqs_mhz=None, min_freq_mhz: int | None = None,
                       step_mhz: int | None = None, overlaps=None, progress: bool = True,
                       step=None, partition_marks=None, iterations: int = 5) -> Profile:
    """Profile every partition of ``partitioning`` under every candidate option.

    - ``device``: a Device (default: the simulated GPU of GEARSHIFT_SIM_PRESET).
    - ``freqs_mhz`` or ``min_freq_mhz``/``step_mhz``: which clocks (see ``candidate_freqs``).
    - ``overlaps``: communication placements for partitions with communication
      (default ``DEFAULT_OVERLAPS``); partitions without it get one ``none`` option per clock.
    - ``step``/``partition_marks``: on a real GPU, run one training step / return the last
      step's P+1 partition marks.
    """
    partitioning.check_trace(trace)
    if device is None:
        from ..devices import open_device  # noqa: PLC0415

        device = open_device("sim")
    freqs = candidate_freqs(device.facts, freqs_mhz, min_freq_mhz=min_freq_mhz, step_mhz=step_mhz)
    bar = Progress(progress)
    has_comm = [p.has_comm or any(k.kind == "comm" for k in trace.kernels[p.start:p.end])
                for p in partitioning.partitions]
    if device.capabilities.simulated:
        from .simulated import profile_simulated  # noqa: PLC0415

        entries = profile_simulated(trace, partitioning, device, freqs, parse_overlaps(overlaps),
                                    bar)
        source = getattr(device, "source", "simulated")
    elif step is not None and partition_marks is not None:
        from .measured import profile_measured  # noqa: PLC0415

        sampler = _nvml_sampler(device)
        entries = profile_measured(len(partitioning), has_comm, device, freqs, step,
                                   partition_marks, bar, iterations=iterations,
                                   sampler_factory=sampler)
        source = "measured"
    else:
        raise ConfigError(f"profiling {device.name} needs the training step to run",
                          "pass step= and partition_marks= (gearshift.compile does), or profile "
                          "the simulated device (device='sim')")
    extra = {"trace_signature": trace.signature(), "model": trace.model,
             "freqs_mhz": freqs}
    if any(has_comm):
        extra["default_overlap"] = FRAMEWORK_OVERLAP
    return Profile(device.facts, entries, len(partitioning), partitioning.signature(),
                   source=source, energy_scope="gpu", extra=extra).validate()


def _nvml_sampler(device):
    handle = getattr(device, "nvml_handle", None)
    nvml = getattr(device, "nvml", None)
    if handle is None or nvml is None:
        return None            # energy then splits by partition time
    from .measured import PowerSampler  # noqa: PLC0415

    return lambda: PowerSampler(handle, nvml)


__all__ = ["DEFAULT_OVERLAPS", "candidate_freqs", "profile_partitions"]
