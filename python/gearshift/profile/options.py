"""Candidate (SM clock, overlap) options a profile measures."""

from __future__ import annotations

from ..errors import ConfigError
from ..model import NO_OVERLAP, DeviceFacts, Overlap

# Communication placements worth trying (Kareus's space, thinned): the collective of the other
# nanobatch launched with the first compute op or held back two ops, completed by the end of the
# partition (window indices past the last op mean the last op) or early, on the library's SMs
# or on fewer. Windows only overlap anything on a nanobatched trace (trace/nanobatch.py); on
# others every consumer waits for its collective and a window runs as serial does.
DEFAULT_OVERLAPS = ("serial", "window0-99", "window0-99/sms=8", "window0-99/sms=24",
                    "window2-99", "window0-2")
# What a training framework does without gearshift (Megatron: tensor-parallel collectives
# serial); the all-max baseline (a) uses it, and switching gearshift off reproduces it.
FRAMEWORK_OVERLAP = "serial"
# The fixed overlap of baseline (b)/(c): nanobatching with the library's defaults, the
# collective launched with the other nanobatch's first op and awaited at the partition's end.
NANOBATCH_DEFAULT_OVERLAP = "window0-99"
# Below this fraction of the top clock, runs are long and dear on every profiled workload.
DEFAULT_MIN_FREQ_FRACTION = 0.5


def candidate_freqs(facts: DeviceFacts, freqs_mhz=None, *, min_freq_mhz: int | None = None,
                    step_mhz: int | None = None) -> list[int]:
    """The clocks to profile, highest first: ``freqs_mhz`` as given (each must be supported), or
    the supported clocks from ``min_freq_mhz`` (default half the top clock) up, thinned to
    ``step_mhz`` apart; the top clock is always kept (the baseline runs there)."""
    supported = sorted(set(facts.supported_freqs_mhz), reverse=True)
    if freqs_mhz is not None:
        bad = [f for f in freqs_mhz if f not in supported]
        if bad:
            raise ConfigError(f"{bad[0]} MHz is not a supported SM clock of {facts.name}",
                              f"pick from {supported[-1]}..{supported[0]} MHz "
                              "(see `gearshift info`)")
        return sorted(set(int(f) for f in freqs_mhz), reverse=True)
    lo = min_freq_mhz if min_freq_mhz is not None else int(facts.max_freq_mhz *
                                                            DEFAULT_MIN_FREQ_FRACTION)
    out: list[int] = []
    for f in supported:
        if f < lo:
            break
        if not out or step_mhz is None or out[-1] - f >= step_mhz:
            out.append(f)
    if not out:
        raise ConfigError(f"no supported clock of {facts.name} is >= {lo} MHz",
                          "lower min_freq_mhz")
    return out


def parse_overlaps(overlaps) -> list[Overlap]:
    """Overlap choices from strings or Overlap objects; ``serial`` first (it stands for
    ``none`` on partitions without communication)."""
    out: list[Overlap] = []
    for o in overlaps or DEFAULT_OVERLAPS:
        try:
            ov = Overlap.parse(o) if isinstance(o, str) else o
        except ValueError as exc:
            raise ConfigError(str(exc), "use serial or window<L>-<C>, optionally /sms=N and /block=B") from exc
        if ov == NO_OVERLAP:
            ov = Overlap("serial")
        if ov not in out:
            out.append(ov)
    if Overlap("serial") in out:
        out.remove(Overlap("serial"))
    return [Overlap("serial")] + out
