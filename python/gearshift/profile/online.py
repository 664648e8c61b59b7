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

**Waiting out the clock switch.** A lock takes effect ``latency_s`` (the device's switch
latency) after it is requested. A round's steps are counted only from one latency after its
first step ended (the session's first locks have landed), and inside a step the probe requests
partition p's clock *ahead*: its schedule has an extra entry at the last kernel that starts at
least ``latency_s`` before p (in the previous partition, or the previous step for p = 0), and
one at the first kernel of p that leaves at most ``latency_s`` of p at the option, where the
reference clock is requested back (``probe_layout``). So p runs at the option from its first
kernel to its last, and the other partitions at the reference up to a kernel's worth of time:
the measurement contains no transition. Kernel start times come from the reference round (the
partitions' measured times, split over their kernels by the recorded durations); p's time at
the option is re-estimated from the round's first settled step (``Round.relayout``).

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


@dataclass(frozen=True)
class ProbeLayout:
    """Where a probe's steps request clocks: the probe schedule's entries start at ``cuts``
    (kernel indices; every partition's start among them), entry i requesting ``clocks[i]`` and
    belonging to partition ``owner[i]``. ``lead_in``/``lead_out``: the kernels where partition
    p's option and the reference are requested ahead of p's start and end (None: at p's
    boundaries, no lead)."""

    cuts: tuple[int, ...]
    clocks: tuple
    owner: tuple[int, ...]
    lead_in: int | None = None
    lead_out: int | None = None


def probe_layout(probe: "Probe", starts: list[int], reference: Option, latency_s: float = 0.0,
                 offsets_s: np.ndarray | None = None,
                 option_time_s: float | None = None) -> ProbeLayout:
    """The probe's schedule layout. ``starts``: the partitions' first kernels; ``offsets_s``:
    every kernel's start in a reference step, then the step's end (N + 1 values); with
    ``latency_s`` > 0 partition p's clock is requested ``latency_s`` ahead of its start and the
    reference ``latency_s`` ahead of its end at the option (``option_time_s``: p's time at the
    option; default: its reference time), so that both land on p's boundaries."""
    n = len(starts)
    plain = ProbeLayout(tuple(starts), tuple(probe.choices(n, reference)), tuple(range(n)))
    if probe.partition is None or latency_s <= 0 or offsets_s is None or n < 2:
        return plain                     # one partition: the clock holds across steps
    if probe.option[1] != reference[1]:
        # an overlap option is placed by the overlap pass per partition: its probe keeps one
        # entry per partition (the rounds still wait the latency out before counting)
        return plain
    off = np.asarray(offsets_s, dtype=np.float64)
    num_kernels = len(off) - 1
    p = probe.partition
    s = starts[p]
    e = starts[p + 1] if p + 1 < n else num_kernels
    step_s = off[-1]
    t_p = off[e] - off[s]
    # lead in: the last kernel starting >= latency before p, outside p (cyclic: in the previous
    # step's tail for p = 0), so that p's clock lands before p; none when there is no room
    tau = off[s] - latency_s
    if tau < 0:
        tau += step_s
    k_in = int(np.searchsorted(off[:-1], tau, side="right")) - 1
    if k_in < 0 or s <= k_in < e or latency_s >= step_s - t_p:
        k_in = None
    # lead out: the first kernel of p leaving <= latency of p at the option, so that the
    # reference lands after p ends (p's time is measured wholly at the option)
    scale = (option_time_s / t_p) if (option_time_s and t_p > 0) else 1.0
    left = (off[e] - off[s + 1:e]) * scale
    hit = np.nonzero(left <= latency_s)[0]
    k_out = int(s + 1 + hit[0]) if len(hit) else None
    cuts = sorted(set(starts) | {k for k in (k_in, k_out) if k is not None})
    owner, clocks = [], []
    for c in cuts:
        q = int(np.searchsorted(starts, c, side="right")) - 1
        owner.append(q)
        if q == p and (k_out is None or c < k_out):
            clocks.append(probe.option)
        elif c == k_in:                  # the option's clock, in another partition
            clocks.append((probe.option[0], reference[1]))
        else:
            clocks.append(reference)
    return ProbeLayout(tuple(cuts), tuple(clocks), tuple(owner), k_in, k_out)


def reference_offsets(starts: list[int], times_s: np.ndarray,
                      kernel_s: np.ndarray | None, num_kernels: int) -> np.ndarray:
    """Every kernel's start in a reference step, then its end: each partition's measured time
    split over its kernels by their recorded durations (equally where none is recorded)."""
    ends = list(starts[1:]) + [num_kernels]
    out = np.zeros(num_kernels + 1)
    t = 0.0
    for s, e, dt in zip(starts, ends, times_s):
        w = np.asarray(kernel_s[s:e], dtype=np.float64) if kernel_s is not None else None
        if w is None or len(w) != e - s or not np.all(w >= 0) or w.sum() <= 0:
            w = np.ones(e - s)
        out[s:e] = t + float(dt) * np.concatenate([[0.0], np.cumsum(w)[:-1]]) / w.sum()
        t += float(dt)
    out[num_kernels] = t
    return out


MAX_RELAYOUTS = 2    # re-estimates of p's time at the option within one round


@dataclass
class Round:
    """One probe's measurement: steps' partition times and the counter reads. ``settle_s``:
    steps count only from this long after the round's first step ended (the clock switch
    latency: the first locks have landed); ``layout``: the probe schedule's entries (default:
    one per partition)."""

    probe: Probe
    num_partitions: int
    warmup: int = 1
    steps: int = 0
    times: list[np.ndarray] = field(default_factory=list)
    reads: list[tuple[float, int]] = field(default_factory=list)
    settle_s: float = 0.0
    layout: ProbeLayout | None = None
    offsets_s: np.ndarray | None = None     # reference step's kernel starts (for relayout)
    reference: Option | None = None
    relayouts: int = 0
    settled_steps: int = 0
    total_steps: int = 0                    # every step the round ran, restarts included
    _prev: object = None
    _ready_at: float | None = None
    _sub: list[np.ndarray] = field(default_factory=list)
    _ends: list[float] = field(default_factory=list)
    _bounds: list[list[float]] = field(default_factory=list)

    def add(self, sample) -> None:
        """A step's StepSample (boundary times, reads, and its end when the device knows it;
        otherwise the next step's first boundary ends it)."""
        self.steps += 1
        self.total_steps += 1
        start = _start_of(sample)
        if self.steps <= self.warmup or self._ready_at is None or start is None or \
                start < self._ready_at:
            if self._ready_at is None and self.steps >= self.warmup:
                end = sample.end_s if sample.end_s is not None else (
                    sample.reads[-1][0] if sample.reads else None)
                if end is not None:
                    self._ready_at = end + self.settle_s
            self._prev = None
            return
        self.settled_steps += 1
        if sample.end_s is not None:
            self._close(sample, sample.end_s)
        elif self._prev is not None and sample.boundary_s:
            self._close(self._prev, sample.boundary_s[0])
        self._prev = sample
        self.reads.extend(r for r in sample.reads if not self.reads or r[0] >= self.reads[-1][0])

    def _close(self, sample, end_s) -> None:
        b = list(sample.boundary_s)
        owner = self.layout.owner if self.layout is not None else tuple(range(self.num_partitions))
        if end_s is None or len(b) != len(owner) or any(x is None for x in b):
            return
        d = np.diff(np.asarray(b + [end_s], dtype=np.float64))
        if np.all(d >= 0):
            self._sub.append(d)
            self._ends.append(float(end_s))
            self._bounds.append(b)
            self.times.append(np.bincount(owner, weights=d, minlength=self.num_partitions))

    def edges(self) -> tuple:
        """((q, seconds), ...): how long, on average over the counted steps, a partition ran at
        the option instead of the reference (negative: p at the reference instead of the
        option) because the locks land ``settle_s`` after the requests, which fall on kernel
        starts: the lead-in kernel's request lands before p starts (q = the partition it lies
        in), the lead-out's after p ends (q = the next partition); without a lead, the
        request at p's end runs the next partition's first ``settle_s`` at the option."""
        lay, p = self.layout, self.probe.partition
        if p is None or lay is None or not self._bounds or self.settle_s <= 0:
            return ()
        cuts, lat = list(lay.cuts), self.settle_s
        b = np.asarray(self._bounds, dtype=np.float64)
        end = np.asarray(self._ends, dtype=np.float64)
        i_p = next(i for i, q in enumerate(lay.owner) if q == p)
        after = next((i for i, q in enumerate(lay.owner) if q > p), None)
        t_next = b[:, after] if after is not None else end
        out = []
        if lay.lead_in is not None:
            i_in = cuts.index(lay.lead_in)
            # p = 0: the lead-in lies in the step's tail, the step before p's
            lead = (b[:, i_p] - b[:, i_in]) if i_in < i_p else (end - b[:, i_in])
            dt = float(np.mean(lead)) - lat
            out.append((lay.owner[i_in] if dt > 0 else p, dt))
        nxt = (p + 1) % self.num_partitions
        if lay.lead_out is not None:
            tail = t_next - b[:, cuts.index(lay.lead_out)]
            dt = lat - float(np.mean(tail))
            out.append((nxt if dt > 0 else p, dt))
        elif nxt != p:
            out.append((nxt, lat))
        return tuple((int(q), float(dt)) for q, dt in out if dt != 0)

    def relayout(self) -> ProbeLayout | None:
        """After the first settled step: the layout again with p's time at the option measured
        from the part of p before the lead-out request (where the option is surely in force);
        the new layout when its lead-out kernel moved (the round restarts on it), else None."""
        lay = self.layout
        if (lay is None or lay.lead_out is None or not self._sub or self.offsets_s is None
                or self.relayouts >= MAX_RELAYOUTS):
            return None
        p = self.probe.partition
        head_i = [i for i, (c, q) in enumerate(zip(lay.cuts, lay.owner)) if q == p and
                  c < lay.lead_out]
        head_s = float(sum(self._sub[-1][i] for i in head_i))
        off = self.offsets_s
        s = lay.cuts[head_i[0]]
        e = next((c for c, q in zip(lay.cuts, lay.owner) if q > p), len(off) - 1)
        head_ref = off[lay.lead_out] - off[s]
        if head_ref <= 0 or head_s <= 0:
            return None
        starts = [c for c, q, prev in zip(lay.cuts, lay.owner, (-1,) + lay.owner[:-1])
                  if q != prev]
        new = probe_layout(self.probe, starts, self.reference, self.settle_s, off,
                           (off[e] - off[s]) * head_s / head_ref)
        if new.cuts == lay.cuts:
            return None
        self.relayouts += 1
        self.layout = new
        self.steps, self.settled_steps, self._ready_at, self._prev = 0, 0, None, None
        self.times, self._sub, self.reads, self._ends, self._bounds = [], [], [], [], []
        return new

    def estimate(self) -> tuple[np.ndarray | None, float | None, float]:
        """(partition times s, step energy J, relative error bound of the step energy)."""
        if not self.times:
            return None, None, float("inf")
        t = np.mean(self.times, axis=0)
        power, err = window_power_w(self.reads)
        if power is None:
            return t, None, err
        return t, power * float(t.sum()), err


def _start_of(sample) -> float | None:
    if sample.boundary_s and sample.boundary_s[0] is not None:
        return float(sample.boundary_s[0])
    return float(sample.reads[0][0]) if sample.reads else None


@dataclass
class Measured:
    times_s: np.ndarray       # every partition's time in the round (s)
    step_energy_j: float
    error: float              # relative bound of step_energy_j
    steps: int
    # (partition q, seconds): q ran that long at the probe's option instead of the reference
    # (negative: p itself at the reference) because a lock landed a kernel off p's boundary
    edges: tuple = ()


class OptionSearch:
    """Which probes run, and the per-partition profile the measured rounds imply.

    ``options[p]``: partition p's candidate (freq_mhz, overlap) options; ``reference`` must be
    in each. ``partitions``: the ones to profile (all by default; drift re-profiles a few).
    ``only_reference``: measure the reference probe only (no permission to lock clocks).
    """

    def __init__(self, options: list[list[Option]], reference: Option,
                 partitions: list[int] | None = None, only_reference: bool = False,
                 target_error: float | None = None, *, latency_s: float = 0.0,
                 starts: list[int] | None = None, kernel_s=None,
                 num_kernels: int | None = None):
        self.options = [list(o) for o in options]
        self.reference = reference
        self.num_partitions = len(options)
        self.partitions = list(range(self.num_partitions)) if partitions is None else \
            sorted(set(partitions))
        self.only_reference = only_reference
        self.target_error = TARGET_ERROR if target_error is None else target_error
        # the clock switch latency rounds wait out, and where the partitions' kernels lie
        self.latency_s = float(latency_s or 0.0)
        self.starts = list(starts) if starts is not None else None
        self.kernel_s = None if kernel_s is None else np.asarray(kernel_s, dtype=np.float64)
        self.num_kernels = num_kernels
        self.ref: Measured | None = None
        self.measured: dict[tuple[int, Option], Measured] = {}
        self._deltas: dict | None = None
        # each partition's share of the reference step's energy (None: its time share); the
        # predicted mode sets the simulated powers' split fitted to the measurement
        self.split: np.ndarray | None = None
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

    def new_round(self, probe: Probe) -> Round:
        """The round that measures ``probe``: its layout requests p's clock ahead of p's
        boundaries by the switch latency, and its steps count once the first locks landed."""
        off = None
        if self.ref is not None and self.starts is not None and self.num_kernels:
            off = reference_offsets(self.starts, self.ref.times_s, self.kernel_s,
                                    self.num_kernels)
        starts = self.starts if self.starts is not None else list(range(self.num_partitions))
        layout = probe_layout(probe, starts, self.reference, self.latency_s, off,
                              self._option_time_guess(probe))
        return Round(probe, self.num_partitions, settle_s=self.latency_s, layout=layout,
                     offsets_s=off, reference=self.reference)

    def _option_time_guess(self, probe: Probe) -> float | None:
        """p's time at the option before the round measures it: that of p's measured option
        with the nearest clock (the reference's at first)."""
        if probe.partition is None or self.ref is None:
            return None
        p, f = probe.partition, probe.option[0]
        seen = [(abs(o[0] - f), m.times_s[p]) for (q, o), m in self.measured.items() if q == p]
        return float(min(seen)[1]) if seen else float(self.ref.times_s[p])

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
        m = Measured(np.asarray(t, dtype=np.float64), float(e), float(err), rnd.total_steps,
                     rnd.edges())
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
        share = self.share(p) if self.split is None else float(self.split[p])
        gauge = share * self.ref.step_energy_j
        if o == self.reference:
            return float(self.ref.times_s[p]), gauge
        m = self.measured.get((p, o))
        if m is None:
            return None
        return self.option_time_s(p, o), gauge + self.deltas()[(p, o)]

    def option_time_s(self, p: int, o: Option) -> float:
        """p's measured time at o; where a lock landed a kernel inside p (p ran ``d`` at the
        reference: its work there takes ``d t_p(o) / t_p(ref)`` at o), corrected for it."""
        m = self.measured[(p, o)]
        d = -sum(dt for q, dt in m.edges if q == p)
        t, t_ref = float(m.times_s[p]), float(self.ref.times_s[p])
        if d <= 0 or d >= t_ref:
            return t
        return (t - d) / (1 - d / t_ref)

    def deltas(self) -> dict:
        """e_p(o) - e_p(ref) of every measured option: the round's step energy minus the
        reference's, less what the locks' landing a kernel off p's boundaries cost there
        (``Measured.edges``, ``_edge_cost``). The costs depend on the other options' differences
        at o, so all are solved together by fixed-point iteration."""
        key = (id(self.ref), tuple((k, id(m)) for k, m in self.measured.items()))
        if self._deltas is not None and self._deltas[0] == key:
            return self._deltas[1]
        raw = {k: m.step_energy_j - self.ref.step_energy_j for k, m in self.measured.items()}
        d = dict(raw)
        for _ in range(50):
            fits = {o: self._rate_fit(d, o) for o in {o for (_p, o) in d}}
            new = {}
            for (p, o), m in self.measured.items():
                own, other = 1.0, 0.0
                by_q: dict[int, float] = {}
                for q, dt in m.edges:
                    by_q[q] = by_q.get(q, 0.0) + dt
                for q, dt in by_q.items():
                    if q == p:     # p's own edge at the reference: at p's own average rate
                        own += dt / self.ref.times_s[p]
                    else:
                        other += self._edge_cost(q, dt, m, d, o, fits[o])
                new[(p, o)] = (raw[(p, o)] - other) / own if own > 0 else raw[(p, o)]
            done = all(abs(new[k] - d[k]) <= 1e-12 + 1e-9 * abs(d[k]) for k in d)
            d = new
            if done:
                break
        self._deltas = (key, d)
        return d

    def _rate_fit(self, d: dict, o: Option):
        """Energy difference per second of reference time against the time ratio, fitted
        over the partitions measured at o: y = a + b x (None with fewer than two ratios)."""
        x, y = [], []
        for (q, oo), m in self.measured.items():
            if oo == o and self.ref.times_s[q] > 0:
                x.append(m.times_s[q] / self.ref.times_s[q])
                y.append(d[(q, oo)] / self.ref.times_s[q])
        if len(x) < 2 or np.ptp(x) < 1e-6:
            return None
        b, a = np.polyfit(np.asarray(x), np.asarray(y), 1)
        return float(a), float(b)

    def _edge_cost(self, q: int, dt: float, m: Measured, d: dict, o: Option, fit) -> float:
        """What ``dt`` seconds of partition q at o instead of the reference added to the
        round's step energy. The work done in them takes ``dt * s`` at the reference, s read
        from how much q's measured time grew in the round (``dt (1 - s)``); its energy
        difference per second of reference time is the fit at the work's own time ratio 1/s
        (an edge kernel can be memory-bound in a GEMM partition), else q's average rate."""
        grew = float(m.times_s[q] - self.ref.times_s[q])
        s = min(1.2, max(0.2, 1.0 - grew / dt)) if dt > 0 else 1.0
        if fit is not None:
            a, b = fit
            return dt * s * (a + b / s)
        mq = self.measured.get((q, o))
        if mq is None or (q, o) not in d:
            return 0.0
        return dt * d[(q, o)] / mq.times_s[q]

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

    def error_bounds_pct(self) -> dict[str, float]:
        """Each measured option's relative energy error bound in % (the reference probe's is
        its step energy's): the counter's resolution and the update brackets, as
        ``option_error``."""
        out = {"ref": 100 * self.ref.error} if self.ref is not None else {}
        out.update({option_key(p, o): 100 * self.option_error(p, o) for (p, o) in self.measured})
        return out

    def accounting(self) -> str:
        """One line for status(): how many steps the options took and the worst bound."""
        steps = self.steps_per_option()
        if not steps:
            return "profiling: nothing measured yet"
        n = np.array(list(steps.values()))
        worst = max(self.error_bounds_pct().values())
        return (f"measured: {len(n)} probes (reference + options) took {int(n.sum())} steps, "
                f"{int(n.min())}/{int(np.median(n))}/{int(n.max())} min/median/max per probe, "
                f"to an energy error bound of <= {worst:.2f} % (target "
                f"{100 * self.target_error:.0f} %); rounds wait out a {self.latency_s * 1e3:.1f} "
                "ms clock switch")

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
                                "reference probe; the reference step split by " + (
                                    "time share" if self.split is None else
                                    "the simulated GPU's powers fitted to it (predicted)"),
                "reference_option": option_key(0, self.reference).split("@", 1)[1],
                # rounds waited this long after locks, and requested p's clock this far ahead
                "switch_latency_s": self.latency_s,
                "landing_edges_s": {option_key(p, o): [list(e) for e in m.edges]
                                    for (p, o), m in self.measured.items() if m.edges},
                **(extra or {})}
        return Profile(device_facts, entries, self.num_partitions, partitioning_signature,
                       source=source, energy_scope="gpu", extra=meta)


def clock_options(freqs_mhz: list[int], overlaps: list[Overlap] | None = None) -> list[Option]:
    """(clock x overlap) options, highest clock first; ``NO_OVERLAP`` without overlaps."""
    ovs = overlaps or [NO_OVERLAP]
    return [(int(f), ov) for f in sorted(freqs_mhz, reverse=True) for ov in ovs]
