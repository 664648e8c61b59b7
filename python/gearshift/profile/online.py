"""Online profiling inside the training loop: which options the next steps run, and what they cost.

**What can be measured.** Partition times come from the runtime's boundary signals (each step's
partition starts, the step's end). Energy comes from NVML's total-energy counter, which is
published only every few tens of ms in whole mJ: the reads are windowed between the first and
the last counter update seen in a round, whose times are bracketed by the reads around them, so
the window's energy is exact to the counter's resolution and its duration to the bracket widths
(``window_power_w``). Partitions are usually far shorter than the counter's update period, so
the counter cannot be read at a partition's boundaries: it measures *whole steps* only.

**Differential measurement** (docs/online-profiling.md). A *round* runs consecutive steps under
one *probe*: every partition at the reference option (the top clock, the framework's overlap)
except at most one, partition p at option o. The reference round gives the step energy E_ref;
the round of (p, o) gives E(p, o). Steps are sums of their partitions, so

    e_p(o) = e_p(ref) + E(p, o) - E_ref,

which sees every difference between partitions' power (a GEMM-heavy partition's power falls
faster with the clock than a memory-bound one's). Only the split of E_ref itself over partitions
is not observable from whole steps, and it need not be: the energy of any schedule is
E_ref + sum_p (e_p(x_p) - e_p(ref)), whatever the split. It is fixed by the partitions' time
shares of the reference step (``energy_split`` says so), which keeps every planned total exact.

**Error.** Each option's relative error bound is ((1 - s_p) dE_ref + dE(p, o)) / e_p(o), with
s_p the partition's time share and dE the window bounds above. The reference round runs until
its share of that is <= a quarter of ``TARGET_ERROR`` (1 %) for the smallest partition (an
option's energy may be well below the partition's reference share), each option
round until the option's total is <= ``TARGET_ERROR`` (or ``MAX_ROUND_STEPS``). How many steps
each option took, and its bound, are reported.

**Which options** (the requests): with at most ``EXHAUSTIVE_MAX`` options per partition every
one is measured; otherwise the sample-efficient search (``search.sampling.sample_frontier``,
GP-EHVI, ``SAMPLE_BUDGET`` of the options) asks for them one at a time, each request being one
round. Its synchronous ``measure`` callback is replayed: it is re-run from the start with the
measurements so far, and the first option it lacks is the next request (it is deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model import NO_OVERLAP, Overlap, Profile, ProfileEntry

TARGET_ERROR = 0.01
MAX_ROUND_STEPS = 4000
EXHAUSTIVE_MAX = 8          # options per partition measured all (sampling gains nothing)
SAMPLE_BUDGET = 0.15        # of a partition's options, when sampled

Option = tuple[int, Overlap]   # (freq_mhz, overlap), as the sampling search names options


def window_power_w(reads: list[tuple[float, int]], resolution_mj: float = 1.0):
    """(average power W, relative error bound) of the window between the first and last
    counter updates seen in ``reads`` (time-ordered ``(t_s, mj)``); (None, inf) without two."""
    if len(reads) < 3:
        return None, float("inf")
    t = np.array([r[0] for r in reads], dtype=np.float64)
    v = np.array([r[1] for r in reads], dtype=np.float64)
    changed = np.nonzero(np.diff(v) != 0)[0] + 1
    if len(changed) < 2:
        return None, float("inf")
    a, b = int(changed[0]), int(changed[-1])
    tau_a = (t[a - 1] + t[a]) / 2
    tau_b = (t[b - 1] + t[b]) / 2
    dt, de_mj = tau_b - tau_a, v[b] - v[a]
    if dt <= 0 or de_mj <= 0:
        return None, float("inf")
    bracket = ((t[a] - t[a - 1]) + (t[b] - t[b - 1])) / 2
    err = 2 * resolution_mj / de_mj + bracket / dt
    return de_mj / 1000.0 / dt, float(err)


def option_key(partition: int | None, option: Option | None) -> str:
    """``ref`` for the reference probe, ``p<i>@<MHz>/<overlap>`` for an option's."""
    if partition is None or option is None:
        return "ref"
    return f"p{partition}@{int(option[0])}/{option[1].key()}"


@dataclass(frozen=True)
class Probe:
    """What a round's steps run: every partition at the reference option, except
    ``partition`` at ``option`` (both None: the reference probe itself)."""

    partition: int | None = None
    option: Option | None = None

    @property
    def key(self) -> str:
        return option_key(self.partition, self.option)

    def choices(self, num_partitions: int, reference: Option) -> list[Option]:
        out = [reference] * num_partitions
        if self.partition is not None:
            out[self.partition] = self.option
        return out


@dataclass
class Round:
    """One probe's measurement: steps' partition times and the counter reads."""

    probe: Probe
    num_partitions: int
    warmup: int = 1
    steps: int = 0
    times: list[np.ndarray] = field(default_factory=list)
    reads: list[tuple[float, int]] = field(default_factory=list)
    _prev: object = None

    def add(self, sample) -> None:
        """A step's StepSample (boundary times, reads, and its end when the device knows it;
        otherwise the next step's first boundary ends it)."""
        self.steps += 1
        if self.steps <= self.warmup:
            self._prev = None
            return
        if sample.end_s is not None:
            self._close(sample, sample.end_s)
        elif self._prev is not None and sample.boundary_s:
            self._close(self._prev, sample.boundary_s[0])
        self._prev = sample
        self.reads.extend(r for r in sample.reads if not self.reads or r[0] >= self.reads[-1][0])

    def _close(self, sample, end_s) -> None:
        b = list(sample.boundary_s)
        if end_s is None or len(b) != self.num_partitions or any(x is None for x in b):
            return
        d = np.diff(np.asarray(b + [end_s], dtype=np.float64))
        if np.all(d >= 0):
            self.times.append(d)

    def estimate(self) -> tuple[np.ndarray | None, float | None, float]:
        """(partition times s, step energy J, relative error bound of the step energy)."""
        if not self.times:
            return None, None, float("inf")
        t = np.mean(self.times, axis=0)
        power, err = window_power_w(self.reads)
        if power is None:
            return t, None, err
        return t, power * float(t.sum()), err


@dataclass
class Measured:
    times_s: np.ndarray       # every partition's time in the round (s)
    step_energy_j: float
    error: float              # relative bound of step_energy_j
    steps: int


class OptionSearch:
    """Which probes run, and the per-partition profile the measured rounds imply.

    ``options[p]``: partition p's candidate (freq_mhz, overlap) options; ``reference`` must be
    in each. ``partitions``: the ones to profile (all by default; drift re-profiles a few).
    ``only_reference``: measure the reference probe only (no permission to lock clocks).
    """

    def __init__(self, options: list[list[Option]], reference: Option,
                 partitions: list[int] | None = None, only_reference: bool = False,
                 target_error: float = TARGET_ERROR):
        self.options = [list(o) for o in options]
        self.reference = reference
        self.num_partitions = len(options)
        self.partitions = list(range(self.num_partitions)) if partitions is None else \
            sorted(set(partitions))
        self.only_reference = only_reference
        self.target_error = target_error
        self.ref: Measured | None = None
        self.measured: dict[tuple[int, Option], Measured] = {}
        self._sampled_done: set[int] = set()
        for p in self.partitions:
            if reference not in self.options[p]:
                self.options[p].insert(0, reference)

    # ---- requests -----------------------------------------------------------------------
    def next_probe(self) -> Probe | None:
        if self.ref is None:
            return Probe()
        if self.only_reference:
            return None
        for p in self.partitions:               # one request per partition in turn
            o = self._request(p)
            if o is not None:
                return Probe(p, o)
        return None

    def _request(self, p: int) -> Option | None:
        opts = self.options[p]
        if len(opts) <= EXHAUSTIVE_MAX:
            return next((o for o in opts if o != self.reference and (p, o) not in self.measured),
                        None)
        if p in self._sampled_done:
            return None
        want = self._replay_sampling(p)
        if want is None:
            self._sampled_done.add(p)
        return want

    def _replay_sampling(self, p: int) -> Option | None:
        from ..search.sampling import sample_frontier  # noqa: PLC0415

        class _Need(Exception):
            pass

        def measure(freq_mhz, overlap):
            o = (int(freq_mhz), overlap)
            got = self.partition_option(p, o)
            if got is None:
                raise _Need(o)
            return got

        try:
            sample_frontier(self.options[p], measure, SAMPLE_BUDGET, partition=p, seed=p,
                            prefer_overlap=self.reference[1])
        except _Need as need:
            return need.args[0]
        return None

    # ---- results ------------------------------------------------------------------------
    def target_for(self, rnd: Round) -> float:
        """The step-energy error bound ``rnd`` must reach (see the module docstring)."""
        t, e, _ = rnd.estimate()
        if t is None or e is None or t.sum() <= 0:
            return self.target_error
        if rnd.probe.partition is None:
            share = t[self.partitions] / t.sum()
            worst = float(min(s / (1 - s) if s < 1 else np.inf for s in share))
            # a quarter: an option's energy can be well below its reference share
            return min(self.target_error, self.target_error / 4 * worst)
        p = rnd.probe.partition
        s = self.ref.times_s[p] / self.ref.times_s.sum()
        e_p = s * self.ref.step_energy_j + e - self.ref.step_energy_j
        room = self.target_error * e_p - (1 - s) * self.ref.error * self.ref.step_energy_j
        floor = self.target_error / 10 * max(e_p, 0.0)
        return max(room, floor) / e

    def done(self, rnd: Round) -> bool:
        _, e, err = rnd.estimate()
        return (e is not None and err <= self.target_for(rnd)) or rnd.steps >= MAX_ROUND_STEPS

    def record(self, rnd: Round) -> Measured:
        t, e, err = rnd.estimate()
        if e is None:
            raise RuntimeError(f"the energy counter did not update twice during {rnd.steps} "
                               f"steps of probe {rnd.probe.key}")
        m = Measured(np.asarray(t, dtype=np.float64), float(e), float(err), rnd.steps)
        if rnd.probe.partition is None:
            self.ref = m
        else:
            self.measured[(rnd.probe.partition, rnd.probe.option)] = m
        return m

    def share(self, p: int) -> float:
        return float(self.ref.times_s[p] / self.ref.times_s.sum())

    def partition_option(self, p: int, o: Option) -> tuple[float, float] | None:
        """(time s, energy J) of partition p at option o, or None if not measured: the
        reference step's energy split by time share, plus the whole-step difference."""
        if self.ref is None:
            return None
        gauge = self.share(p) * self.ref.step_energy_j
        if o == self.reference:
            return float(self.ref.times_s[p]), gauge
        m = self.measured.get((p, o))
        if m is None:
            return None
        return float(m.times_s[p]), gauge + m.step_energy_j - self.ref.step_energy_j

    def option_error(self, p: int, o: Option) -> float:
        got = self.partition_option(p, o)
        if got is None or got[1] <= 0:
            return float("inf")
        if o == self.reference:
            return self.ref.error
        m = self.measured[(p, o)]
        return ((1 - self.share(p)) * self.ref.error * self.ref.step_energy_j
                + m.error * m.step_energy_j) / got[1]

    # ---- counts -------------------------------------------------------------------------
    @property
    def candidates(self) -> list[int]:
        """The candidate clocks, highest first."""
        return sorted({int(o[0]) for opts in self.options for o in opts}, reverse=True)

    @property
    def options_total(self) -> int:
        return sum(len(self.options[p]) for p in self.partitions)

    @property
    def options_measured(self) -> int:
        if self.ref is None:
            return 0
        return len(self.partitions) + sum(1 for (p, _o) in self.measured if p in self.partitions)

    def steps_per_option(self) -> dict[str, int]:
        out = {"ref": self.ref.steps} if self.ref is not None else {}
        out.update({option_key(p, o): m.steps for (p, o), m in self.measured.items()})
        return out

    def profile(self, device_facts, partitioning_signature: str, source: str,
                extra: dict | None = None, predict=None) -> Profile:
        """The profiled partitions' measured options (with ``predict(p, option) -> (time_s,
        energy_j)``, also the others, predicted). Unmeasured options are left out: the
        planner sees what was measured, as the sampled search's frontiers do."""
        entries, how, bound = [], {}, {}
        for p in self.partitions:
            for o in self.options[p]:
                got = self.partition_option(p, o)
                src = "measured"
                if got is None and predict is not None:
                    got, src = predict(p, o), "predicted"
                if got is None:
                    continue
                t, e = got
                if e < 0:    # a differential below the reference split: keep it physical
                    e, src = 0.0, src + " (clamped at 0 J)"
                entries.append(ProfileEntry(p, int(o[0]), o[1], float(t), float(e)))
                key = option_key(p, o)
                how[key] = src
                if src.startswith("measured"):
                    bound[key] = self.option_error(p, o)
        meta = {"option_source": how, "steps_per_option": self.steps_per_option(),
                "energy_error_bound": bound,
                "energy_split": "differential: whole-step energy differences against the "
                                "reference probe; the reference step split by time share",
                "reference_option": option_key(0, self.reference).split("@", 1)[1],
                **(extra or {})}
        return Profile(device_facts, entries, self.num_partitions, partitioning_signature,
                       source=source, energy_scope="gpu", extra=meta)


def clock_options(freqs_mhz: list[int], overlaps: list[Overlap] | None = None) -> list[Option]:
    """(clock x overlap) options, highest clock first; ``NO_OVERLAP`` without overlaps."""
    ovs = overlaps or [NO_OVERLAP]
    return [(int(f), ov) for f in sorted(freqs_mhz, reverse=True) for ov in ovs]
