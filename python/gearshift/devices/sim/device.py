"""SimDevice: the simulated GPU behind the Device protocol, plus fast whole-iteration runs."""

from __future__ import annotations

import numpy as np

from ...errors import DeviceError, UnsupportedClockError
from ...model import NO_OVERLAP, DeviceFacts, Overlap
from .kernel import KernelArrays
from .presets import GPUPreset, get_preset
from .timeline import IterationResult, Timeline, normalise_choices


class SimDevice:
    """A simulated GPU. Its counters advance only when it runs something (or ``idle``).

    ``set_sm_clock`` takes effect for the next run, after the preset's switch latency (the
    old clock runs meanwhile), like a real clock lock issued between iterations.
    """

    kind = "sim"

    def __init__(self, preset: str | GPUPreset = "h100-sxm", switch_latency_s: float | None = None,
                 power_cap: bool = True):
        self.preset = get_preset(preset) if isinstance(preset, str) else preset
        if switch_latency_s is not None:
            self.preset = self.preset.with_(switch_latency_s=float(switch_latency_s))
        self.facts: DeviceFacts = self.preset.facts()
        self.power_cap = power_cap
        self._time_s = 0.0
        self._energy_j = 0.0
        self._applied_mhz = self.preset.max_freq_mhz   # the clock running now
        self._locked_mhz: int | None = None            # None: driver default (max boost)
        self._timelines: dict = {}

    # ---- Device protocol -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.preset.name} (simulated)"

    @property
    def capabilities(self):
        from ..base import Capabilities  # noqa: PLC0415

        return Capabilities(simulated=True, clock_control=True, energy_source="simulated",
                            switch_latency_s=self.preset.switch_latency_s)

    def clock_backend(self):
        """A fresh native ``sim`` backend with this preset's clocks and switch latency (the
        runtime's controller drives it; the simulator then prices the clocks it set)."""
        from ...runtime.backends import make_backend  # noqa: PLC0415

        return make_backend("sim", supported_mhz=list(self.facts.supported_freqs_mhz),
                            default_mhz=self.facts.max_freq_mhz,
                            switch_latency_s=self.preset.switch_latency_s)

    def energy_j(self) -> float:
        return self._energy_j

    def time_s(self) -> float:
        return self._time_s

    def set_sm_clock(self, freq_mhz: int) -> None:
        f = int(freq_mhz)
        if f not in set(self.preset.freqs_mhz):
            raise UnsupportedClockError(
                f"{f} MHz is not a supported SM clock of the simulated {self.preset.name} "
                f"({self.preset.min_freq_mhz}..{self.preset.max_freq_mhz} MHz, 15 MHz steps)",
                "pick one of device.facts.supported_freqs_mhz")
        self._locked_mhz = f

    def reset_sm_clock(self) -> None:
        self._locked_mhz = None

    @property
    def sm_clock_mhz(self) -> int:
        """The clock the next run asks for (locked, or the default maximum)."""
        return self._locked_mhz if self._locked_mhz is not None else self.preset.max_freq_mhz

    def idle(self, seconds: float) -> None:
        """Advance the counters by ``seconds`` of waiting at the idle power."""
        if seconds < 0:
            raise DeviceError(f"cannot idle for {seconds} s", "pass a duration >= 0")
        self._time_s += seconds
        self._energy_j += seconds * self.preset.idle_power_w

    # ---- simulation ----------------------------------------------------------------------
    def timeline(self, trace, partitioning=None) -> Timeline:
        """The compiled (trace, partitioning) pair, cached by their signatures."""
        if partitioning is not None:
            partitioning.check_trace(trace)
            bounds = tuple((p.start, p.end) for p in partitioning.partitions)
        else:
            bounds = ((0, len(trace)),)
        key = (id(trace), len(trace), trace.signature(), bounds)
        tl = self._timelines.get(key)
        if tl is None:
            if len(self._timelines) > 16:
                self._timelines.clear()
            ka = KernelArrays.from_trace(trace, self.preset)
            tl = Timeline(self.preset, ka, [b[0] for b in bounds], [b[1] for b in bounds],
                          deps=[k.deps for k in trace.kernels])
            self._timelines[key] = tl
        return tl

    def run_iteration(self, trace, partitioning=None, choices=None, *, advance: bool = True,
                      switch_latency_s: float | None = None) -> IterationResult:
        """Run one iteration: ``choices`` is one (freq_mhz, Overlap) per partition (or
        Choice objects, or a Schedule); None runs every partition at the current clock.

        Starts from the clock now running, leaves the last partition's clock running, and
        (with ``advance``) adds the iteration to the energy/time counters.
        """
        tl = self.timeline(trace, partitioning)
        if choices is None:
            freqs = np.full(tl.num_partitions, self.sm_clock_mhz, dtype=np.int64)
            overlaps = [NO_OVERLAP] * tl.num_partitions
        else:
            freqs, overlaps = normalise_choices(choices, tl.num_partitions)
        res = tl.run(freqs, overlaps, initial_freq_mhz=self._applied_mhz,
                     switch_latency_s=switch_latency_s, power_cap=self.power_cap)
        if advance:
            self._time_s += res.time_s
            self._energy_j += res.energy_j
            self._applied_mhz = int(freqs[-1])
            self._locked_mhz = int(freqs[-1]) if choices is not None else self._locked_mhz
        return res

    def profile_options(self, trace, partitioning, options) -> tuple[np.ndarray, np.ndarray]:
        """Time and energy of every partition under every option, each ``(len(options), P)``.

        Each option ``(freq_mhz, Overlap)`` is applied to every partition, with the clock
        already settled (no switch latency): what a profiler that locks the clock, warms up and
        then measures each partition records. Overlap choices on partitions without
        communication behave as ``none``.
        """
        tl = self.timeline(trace, partitioning)
        times = np.zeros((len(options), tl.num_partitions))
        energies = np.zeros_like(times)
        for i, opt in enumerate(options):
            f, ov = (opt if isinstance(opt, (tuple, list)) else (opt, NO_OVERLAP))
            ov = Overlap.parse(ov) if isinstance(ov, str) else ov
            res = tl.run(np.full(tl.num_partitions, int(f), dtype=np.int64),
                         [ov] * tl.num_partitions, initial_freq_mhz=int(f),
                         switch_latency_s=0.0, power_cap=self.power_cap)
            times[i] = res.partition_time_s
            energies[i] = res.partition_energy_j
        return times, energies
