"""Execute a kernel trace, partition by partition, under per-partition (clock, overlap) choices.

Model (docs/simulator.md has the equations):
- Two streams per GPU: compute kernels run in launch order on the compute stream, collectives
  in launch order on the communication stream. Data dependencies (``KernelRecord.deps``) and
  stream order hold always: no kernel starts before the kernels it reads from have ended.
- ``serial``/``none`` (Megatron's default): every kernel in launch order, one at a time; a
  collective runs alone right after its producer and its consumer waits for it.
- ``window<L>-<C>``: each collective of the partition is paired with the compute kernels that
  follow it up to the next collective (its segment; in a nanobatched trace, the other
  nanobatch's sublayer). It is launched when segment op L starts and the compute stream waits
  for it before op C+1; a segment op that reads the collective waits for it in any case (the
  launch is pulled forward to that op when the window would start later). A partition is done
  when both streams are: windows never reach past their partition.
- Concurrent kernels contend: a comm kernel holds ``comm_sms`` SMs, so a compute kernel's
  compute part stretches by SM / (SM - comm_sms), and its memory part by the DRAM bandwidth the
  comm kernel takes; the comm kernel slows by the compute kernel's DRAM share.
- Energy = base power (static + leakage at the clock) x wall time + every kernel's dynamic
  energy + stall power for the time contention adds to it + switch energy.
- The power limit throttles a partition whose average power at its clock exceeds the TDP to
  the highest supported clock under it: its serial average power for a serial partition, its
  overlapped average power (both streams, contention stalls included, over the overlapped
  duration) for an overlapped one.
- A clock switch requested at a partition boundary takes effect ``switch_latency_s`` later;
  meanwhile the old clock runs (a partition shorter than that runs wholly at the old clock, and
  the switch carries on into the next).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import ConfigError, UnsupportedClockError
from ...model import NO_OVERLAP, Overlap
from . import overlap as ovl
from .kernel import KernelArrays, KernelCost, kernel_costs
from .presets import GPUPreset


@dataclass
class IterationResult:
    """One simulated iteration. Every figure is simulated (``source``), GPU only."""

    time_s: float
    energy_j: float
    static_energy_j: float           # base power (static + leakage) x wall time
    dynamic_energy_j: float          # kernels' dynamic energy, contention stalls included
    switch_energy_j: float
    partition_time_s: np.ndarray     # (P,)
    partition_energy_j: np.ndarray   # (P,)
    partition_freq_mhz: np.ndarray   # (P,) requested clock
    partition_eff_freq_mhz: np.ndarray  # (P,) clock after power capping (switch-free part)
    kernel_start_s: np.ndarray       # (K,) from the iteration's start
    kernel_end_s: np.ndarray
    num_switches: int
    kernel_stream: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    device: str = ""
    source: str = "simulated"
    energy_scope: str = "gpu"
    meta: dict = field(default_factory=dict)


def normalise_choices(choices, num_partitions: int) -> tuple[np.ndarray, list[Overlap]]:
    """(freq_mhz, Overlap) pairs, Choice objects or a Schedule -> arrays; checks the length."""
    entries = getattr(choices, "entries", choices)
    freqs, overlaps = [], []
    for c in entries:
        if isinstance(c, (tuple, list)):
            f, o = (c[0], c[1] if len(c) > 1 else NO_OVERLAP)
        else:
            f, o = c.freq_mhz, getattr(c, "overlap", NO_OVERLAP)
        if isinstance(o, str):
            o = Overlap.parse(o)
        freqs.append(int(f))
        overlaps.append(o or NO_OVERLAP)
    if len(freqs) != num_partitions:
        raise ConfigError(f"{len(freqs)} choices for {num_partitions} partitions",
                          "give one (freq_mhz, overlap) choice per partition")
    return np.array(freqs, dtype=np.int64), overlaps


class Timeline:
    """A trace's kernels and partition bounds on one preset; runs choice vectors fast."""

    def __init__(self, preset: GPUPreset, ka: KernelArrays, starts, ends, deps=None):
        self.preset = preset
        self.ka = ka
        self.starts = np.asarray(starts, dtype=np.int64)
        self.ends = np.asarray(ends, dtype=np.int64)
        self.num_partitions = len(self.starts)
        # deps[i]: ordinals kernel i reads from, None = unknown (waits for everything before it)
        self.deps = list(deps) if deps is not None else [None] * len(ka)
        # compute stream 0, communication stream 1 (collectives keep to theirs, serial or not)
        self.stream = ka.is_comm.astype(np.int64)
        self._segs: dict = {}
        self.part_of = np.repeat(np.arange(self.num_partitions), self.ends - self.starts)
        self.has_comm = np.add.reduceat(ka.is_comm.astype(np.int64), self.starts) > 0
        self.clocks = np.array(sorted(preset.freqs_mhz), dtype=np.int64)
        self._supported = set(int(c) for c in preset.freqs_mhz)
        # memo across runs: per-clock kernel costs (per comm-SM assignment) and the results of
        # partitions that need an event sweep; a search re-runs the same options many times
        self._cost_memo: dict = {}
        self._part_memo: dict = {}
        self._ov_cap_memo: dict = {}      # (p, requested clock, overlap) -> capped clock

    # ---- per-clock costs -------------------------------------------------------------
    def _costs(self, cache: dict, f: int, comm_sms: np.ndarray) -> KernelCost:
        c = cache.get(f)
        if c is None:
            c = cache[f] = kernel_costs(self.ka, self.preset, float(f), comm_sms, power_cap=False,
                                        comm_block=cache.get("comm_block"))
        return c

    def _pavg(self, cache, f: int, comm_sms) -> np.ndarray:
        """Average power of every partition run serially at clock ``f``."""
        key = ("pavg", f)
        if key not in cache:
            c = self._costs(cache, f, comm_sms)
            cache[key] = (np.add.reduceat(c.energy_j, self.starts)
                          / np.add.reduceat(c.time_s, self.starts))
        return cache[key]

    def _capped(self, cache, comm_sms, f_req: np.ndarray) -> np.ndarray:
        """Effective clock of every partition under the TDP (partition-average power).

        Bisection over the supported clocks, all over-limit partitions at once."""
        tdp = self.preset.tdp_w
        eff = f_req.copy()
        over = np.zeros(len(f_req), dtype=bool)
        for f in np.unique(f_req):
            m = f_req == f
            over |= m & (self._pavg(cache, int(f), comm_sms) > tdp)
        idx = np.flatnonzero(over)
        if len(idx) == 0:
            return eff
        lo = np.zeros(len(idx), dtype=np.int64)
        hi = np.searchsorted(self.clocks, f_req[idx])
        while True:
            active = hi - lo > 1
            if not active.any():
                break
            mid = (lo + hi) // 2
            ok = np.empty(len(idx), dtype=bool)
            for c in np.unique(mid[active]):
                sel = active & (mid == c)
                ok[sel] = self._pavg(cache, int(self.clocks[c]), comm_sms)[idx[sel]] <= tdp
            lo = np.where(active & ok, mid, lo)
            hi = np.where(active & ~ok, mid, hi)
        eff[idx] = self.clocks[lo]
        return eff

    def _ov_power(self, cache, comm_sms, p: int, f: int, ov: Overlap) -> float:
        """Average power of partition ``p`` run overlapped at clock ``f``."""
        t, st, dy, _, _ = self._partition(cache, comm_sms, p, f, ov)
        return (st + dy) / t if t > 0 else 0.0

    def _ov_capped(self, cache, comm_sms, p: int, f_req: int, ov: Overlap) -> int:
        """Clock of an overlapped partition under the TDP.

        Overlap packs the same work into less time, so the partition's power while both
        streams run is higher than its serial power: the limiter has to see the overlapped
        average, not the serial one. Bisection over the supported clocks <= ``f_req``; each
        probe is one (memoised) event sweep, and a partition within the limit costs one probe.
        """
        key = (p, f_req, ov)
        got = self._ov_cap_memo.get(key)
        if got is not None:
            return got
        tdp = self.preset.tdp_w
        if self._ov_power(cache, comm_sms, p, f_req, ov) <= tdp:
            out = f_req
        else:
            # invariant: clocks[lo] is within the limit (or the lowest clock), clocks[hi] is not
            lo, hi = 0, int(np.searchsorted(self.clocks, f_req))
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self._ov_power(cache, comm_sms, p, int(self.clocks[mid]), ov) <= tdp:
                    lo = mid
                else:
                    hi = mid
            out = int(self.clocks[lo])
        if len(self._ov_cap_memo) > 200_000:
            self._ov_cap_memo.clear()
        self._ov_cap_memo[key] = out
        return out

    # ---- one partition -----------------------------------------------------------------
    def _serial_order(self, c: KernelCost, p: int, order: np.ndarray):
        """Kernels one after another in ``order``: (time, static J, dynamic J, starts, ends)."""
        s = self.starts[p]
        d = c.time_s[order]
        ends = np.cumsum(d)
        start = np.zeros(len(order))
        end = np.zeros(len(order))
        start[order - s] = ends - d
        end[order - s] = ends
        t = float(ends[-1])
        return t, float(c.gap_power_w[s]) * t, float(c.dyn_energy_j[order].sum()), start, end

    def _segments_of(self, p: int):
        """Partition ``p`` as (compute ops before its first collective, [(collective, its
        segment's compute ops, index of the first segment op that reads it)])."""
        got = self._segs.get(p)
        if got is not None:
            return got
        s, e = int(self.starts[p]), int(self.ends[p])
        comm = self.ka.is_comm
        pre: list[int] = []
        segs: list = []
        for i in range(s, e):
            if comm[i]:
                segs.append((i, []))
            elif segs:
                segs[-1][1].append(i)
            else:
                pre.append(i)
        out = []
        for m, ops in segs:
            first = len(ops)
            for j, i in enumerate(ops):
                d = self.deps[i]
                if d is None or m in d:
                    first = j
                    break
            out.append((m, np.array(ops, dtype=np.int64), first))
        got = self._segs[p] = (np.array(pre, dtype=np.int64), out)
        return got

    def _contention(self, c: KernelCost, m: int, ops: np.ndarray, comm_sms: np.ndarray,
                    block_size: int = 0):
        """Slow-down factors of compute ``ops`` (sig_c) and of collective ``m`` (sig_m) while
        they run together: devices/sim/overlap.py's contention model (calibrated on Kareus's
        measured A100 overlap)."""
        pr = self.preset
        # the stretch of each op beside the collective and of the collective (overlap.py)
        sms = comm_sms[m] if comm_sms[m] > 0 else pr.comm_sms_default
        sig_c, sig_m = ovl.pair_stretch(ovl.library_params(pr), pr, c.t_c[ops], c.t_m[ops],
                                        c.busy_s[ops], [sms], [self.ka.mem_bytes[m]],
                                        [c.busy_s[m]],
                                        block_size or ovl.NCCL_BLOCK_THREADS)
        return sig_c[0], sig_m[0]

    def _overlapped(self, c: KernelCost, p: int, ov: Overlap, comm_sms: np.ndarray):
        """Event sweep of one partition whose collectives run in their windows."""
        s, e = self.starts[p], self.ends[p]
        start = np.zeros(e - s)
        end = np.zeros(e - s)
        extra = np.zeros(e - s)
        pre, segs = self._segments_of(p)
        d = c.time_s
        t = 0.0
        for i in pre:
            start[i - s], t = t, t + d[i]
            end[i - s] = t
        for m, ops, first in segs:
            n = len(ops)
            wait = min(ov.complete_op + 1, n, first)      # op that waits for the collective
            launch = min(ov.launch_op, wait)              # op whose start launches it
            for i in ops[:launch]:
                start[i - s], t = t, t + d[i]
                end[i - s] = t
            start[m - s] = t
            rm = float(d[m])                               # collective's remaining solo work
            m_end = None
            j = launch
            if j < wait:
                sig_c, sig_m = self._contention(c, m, ops[j:wait], comm_sms, ov.block_size)
            while j < wait and m_end is None:
                i = ops[j]
                sc, sm_ = sig_c[j - launch], sig_m[j - launch]
                start[i - s] = t
                dt_c, dt_m = d[i] * sc, rm * sm_
                if dt_c < dt_m:           # the compute op ends first
                    t += dt_c
                    rm -= dt_c / sm_
                    extra[i - s] += dt_c - d[i]
                    extra[m - s] += dt_c - dt_c / sm_
                    end[i - s] = t
                else:                     # the collective ends inside op i: i runs on alone
                    done = dt_m / sc
                    extra[i - s] += dt_m - done
                    extra[m - s] += dt_m - rm
                    m_end = t + dt_m
                    t = m_end + (d[i] - done)
                    end[i - s] = t
                j += 1
            if m_end is None:             # the collective outlives its window: it runs alone
                t += rm                   # and the compute stream waits for it
                m_end = t
            end[m - s] = m_end
            for i in ops[j:]:
                start[i - s], t = t, t + d[i]
                end[i - s] = t
        dyn = float(c.dyn_energy_j[s:e].sum() + (c.stall_power_w[s:e] * extra[:]).sum())
        return t, float(c.gap_power_w[s]) * t, dyn, start, end

    def _partition(self, cache, comm_sms, p: int, f: int, ov: Overlap):
        overlapped = self.has_comm[p] and ov.overlapped
        key = (p, f, ov) if overlapped else None
        if key is not None and key in self._part_memo:
            return self._part_memo[key]
        c = self._costs(cache, f, comm_sms)
        if not overlapped:
            return self._serial_order(c, p, np.arange(self.starts[p], self.ends[p]))
        out = self._overlapped(c, p, ov, comm_sms)
        if len(self._part_memo) > 200_000:
            self._part_memo.clear()
        self._part_memo[key] = out
        return out

    def _serial_all(self, cache, comm_sms, eff: np.ndarray):
        """Every partition run serially at its clock, vectorised: per-partition figures and
        per-kernel local starts/ends."""
        n = len(self.ka)
        d = np.empty(n)
        dyn = np.empty(n)
        base = np.empty(n)
        eff_k = eff[self.part_of]
        for f in np.unique(eff):
            c = self._costs(cache, int(f), comm_sms)
            m = eff_k == f
            d[m], dyn[m], base[m] = c.time_s[m], c.dyn_energy_j[m], c.gap_power_w[m]
        t = np.add.reduceat(d, self.starts)
        csum = np.cumsum(d)
        before = np.concatenate([[0.0], csum])[self.starts][self.part_of]
        end = csum - before
        return t, base[self.starts] * t, np.add.reduceat(dyn, self.starts), end - d, end

    def _segments(self, cache, comm_sms, p, ov, running, landing, t_now, latency, eff_of):
        """Partition ``p`` under the clocks in effect while it runs; consumes the landings.

        ``landing``: requested (issue time, clock) not yet in effect, oldest first. Work
        advances linearly in time at each clock (the split a switch makes inside a partition).
        Kernels keep the order of the schedule at the clock the partition starts at, its time
        axis warped piecewise-linearly onto the clocks that run: a monotone map, so data flow
        and stream order hold across a switch as they hold at one clock.
        """
        s, e = self.starts[p], self.ends[p]
        runs = {}

        def at(f):
            if f not in runs:
                runs[f] = self._partition(cache, comm_sms, p, eff_of(f, p), ov)
            return runs[f]

        w, t_loc, st, dy = 0.0, 0.0, 0.0, 0.0
        clock = running
        pieces = []                       # (work fraction at its start, local time there, T)
        ref = None
        while True:
            T, ST, DY, LS, LE = at(clock)
            land_t = (landing[0][0] + latency - t_now) if landing else np.inf
            if land_t <= t_loc:                 # already landed: switch before running
                clock = landing.pop(0)[1]
                continue
            if ref is None:
                ref = (T, LS, LE)
            finish = t_loc + (1.0 - w) * T
            w_end = 1.0 if finish <= land_t else w + (land_t - t_loc) / T
            frac = w_end - w
            st += frac * ST
            dy += frac * DY
            pieces.append((w, t_loc, T))
            t_loc, w = min(finish, land_t), w_end
            if w >= 1.0 - 1e-12:
                break
            clock = landing.pop(0)[1]
        T0, LS0, LE0 = ref
        w0 = np.array([pc[0] for pc in pieces])
        tl0 = np.array([pc[1] for pc in pieces])
        Ts = np.array([pc[2] for pc in pieces])

        def warp(x):
            pos = np.clip(x / T0, 0.0, 1.0) if T0 > 0 else np.zeros_like(x)
            k = np.clip(np.searchsorted(w0, pos, side="right") - 1, 0, len(w0) - 1)
            return np.minimum(tl0[k] + (pos - w0[k]) * Ts[k], t_loc)

        return t_loc, st, dy, warp(LS0), warp(LE0), clock

    # ---- a whole iteration ---------------------------------------------------------------
    def run(self, freqs_mhz, overlaps, initial_freq_mhz: int | None = None,
            switch_latency_s: float | None = None, power_cap: bool = True) -> IterationResult:
        pr = self.preset
        f_req = np.asarray(freqs_mhz, dtype=np.int64)
        if len(f_req) != self.num_partitions or len(overlaps) != self.num_partitions:
            raise ConfigError(f"{len(f_req)} choices for {self.num_partitions} partitions",
                              "give one (freq_mhz, overlap) choice per partition")
        bad = [int(f) for f in np.unique(f_req) if int(f) not in self._supported]
        if bad:
            raise UnsupportedClockError(
                f"{bad[0]} MHz is not a supported SM clock of the simulated {pr.name} "
                f"({pr.min_freq_mhz}..{pr.max_freq_mhz} MHz in 15 MHz steps)",
                "choose clocks from the device's supported list (DeviceFacts.supported_freqs_mhz)")
        latency = pr.switch_latency_s if switch_latency_s is None else float(switch_latency_s)
        if latency < 0:
            raise ConfigError(f"switch latency {latency} s is negative", "pass a latency >= 0")
        applied = int(pr.max_freq_mhz if initial_freq_mhz is None else initial_freq_mhz)
        comm_sms = np.array([o.comm_sms for o in overlaps], dtype=np.float64)[self.part_of]
        comm_block = np.array([o.block_size for o in overlaps], dtype=np.float64)[self.part_of]
        sms_key = (comm_sms[self.ka.is_comm].tobytes(), comm_block[self.ka.is_comm].tobytes())
        if len(self._cost_memo) > 64:
            self._cost_memo.clear()
        # per (comm SMs, block size) assignment: kernel costs per clock, and the block sizes
        cache = self._cost_memo.setdefault(sms_key, {"comm_block": comm_block})
        eff = self._capped(cache, comm_sms, f_req) if power_cap else f_req.copy()
        overlapped = self.has_comm & np.array([o.overlapped for o in overlaps])
        if power_cap:
            for p in np.flatnonzero(overlapped):
                eff[p] = self._ov_capped(cache, comm_sms, p, int(f_req[p]), overlaps[p])
        capped_at: dict = {}

        def eff_of(f_requested: int, p: int) -> int:
            """The clock partition p really runs at when ``f_requested`` is set."""
            if f_requested == f_req[p]:
                return int(eff[p])
            if not power_cap:
                return f_requested
            if overlapped[p]:
                return self._ov_capped(cache, comm_sms, p, f_requested, overlaps[p])
            if f_requested not in capped_at:
                capped_at[f_requested] = self._capped(
                    cache, comm_sms, np.full(self.num_partitions, f_requested))
            return int(capped_at[f_requested][p])

        # the common case, vectorised: every partition serial at its own clock
        part_t, part_st, part_dy, lstart, lend = self._serial_all(cache, comm_sms, eff)
        for p in np.flatnonzero(overlapped):
            s, e = self.starts[p], self.ends[p]
            part_t[p], part_st[p], part_dy[p], lstart[s:e], lend[s:e] = \
                self._partition(cache, comm_sms, p, int(eff[p]), overlaps[p])
        # Clock switches, as a delay line: a clock requested at a partition boundary runs from
        # ``latency`` later until the next request lands. One pass over the partitions; only
        # those running (partly) at a clock other than their own are recomputed.
        prev = np.concatenate([[applied], f_req[:-1]])
        switch_at = (f_req != prev).astype(np.float64)
        switches = int(switch_at.sum())
        landing: list = []           # (issue time, clock) not yet in effect
        running = applied
        t_now = 0.0
        for p in range(self.num_partitions):
            if switch_at[p]:
                landing.append((t_now, int(f_req[p])))
            while landing and landing[0][0] + latency <= t_now:
                running = landing.pop(0)[1]
            if not landing and running == f_req[p]:
                t_now += part_t[p]
                continue
            s, e = self.starts[p], self.ends[p]
            part_t[p], part_st[p], part_dy[p], lstart[s:e], lend[s:e], running = \
                self._segments(cache, comm_sms, p, overlaps[p], running, landing, t_now,
                               latency, eff_of)
            t_now += part_t[p]
        sw_e = switch_at * pr.switch_energy_j
        part_e = part_st + part_dy + sw_e
        offsets = np.concatenate([[0.0], np.cumsum(part_t)[:-1]])
        return IterationResult(
            time_s=float(part_t.sum()), energy_j=float(part_e.sum()),
            static_energy_j=float(part_st.sum()), dynamic_energy_j=float(part_dy.sum()),
            switch_energy_j=float(sw_e.sum()), partition_time_s=part_t,
            partition_energy_j=part_e, partition_freq_mhz=f_req, partition_eff_freq_mhz=eff,
            kernel_start_s=lstart + offsets[self.part_of],
            kernel_end_s=lend + offsets[self.part_of], num_switches=switches, device=pr.name,
            kernel_stream=self.stream,
            meta={"switch_latency_s": latency, "power_cap": bool(power_cap)})


def dependency_violations(deps, stream, start_s, end_s, tol_s: float = 1e-9) -> list[str]:
    """What breaks data flow or stream order on a timeline (empty when nothing does).

    ``deps[i]``: the kernels kernel i reads from (None: every earlier kernel); ``stream[i]``:
    its stream. A kernel must start at or after the end of everything it reads from, and
    kernels on one stream must not overlap.
    """
    start = np.asarray(start_s, dtype=np.float64)
    end = np.asarray(end_s, dtype=np.float64)
    out: list[str] = []
    prefix_end = np.maximum.accumulate(np.concatenate([[-np.inf], end]))[:-1]
    for i, d in enumerate(deps):
        need = prefix_end[i] if d is None else (end[list(d)].max() if len(d) else -np.inf)
        if start[i] < need - tol_s:
            out.append(f"kernel {i} starts at {start[i]:.9f} s before its input is ready "
                       f"({need:.9f} s)")
    stream = np.asarray(stream)
    for s in np.unique(stream):
        idx = np.flatnonzero(stream == s)
        idx = idx[np.lexsort((end[idx], start[idx]))]
        bad = np.flatnonzero(start[idx[1:]] < end[idx[:-1]] - tol_s)
        for b in bad[:5]:
            out.append(f"kernels {idx[b]} and {idx[b + 1]} overlap on stream {s}")
    return out
