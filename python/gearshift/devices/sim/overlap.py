"""Communication kernels and their contention with compute kernels (fitted on measured A100 data).

Pure, vectorised numpy functions (every argument may be an array; they broadcast). The
parameters live in :class:`OverlapParams`, fitted by ``calibration_overlap.fit`` on the Kareus
A100 attention/all-reduce microbenchmark (``gearshift/data/kareus_a100_attn``) and stored in
``overlap_a100.json`` beside this file (versioned; ``load_params``).

Communication kernel (a collective on ``ctas`` thread blocks of ``block_threads`` threads)::

    x        = f / f_max                                        (SM clock ratio)
    r_cta    = cta_rate_bytes_s * (block_threads / 1024)^block_exponent * x^clock_exponent
    bw       = ((ctas * r_cta)^-p + link_bw_bytes_s^-p)^(-1/p)   smooth min: CTA- or link-bound
    t_comm   = latency_s + link_bytes / bw                       link_bytes = payload x algo factor
    P_comm   = sm_power_w * comm_activity * ctas / sm_count * phi(f)
               + link_power_w * bw / link_bw_bytes_s             dynamic, on top of the base power

Contention while a compute kernel (solo parts t_c, t_m from kernel.py) runs beside it::

    compute:  t_c' = t_c * sm_count / (sm_count - ctas)          SMs taken by the comm CTAs
              t_m' = t_m * bw_mem / (bw_mem - comm DRAM rate)     DRAM bandwidth taken
              busy' = max(t_c', t_m') + alpha * min(t_c', t_m')  -> stretch s_c = busy'/busy
    comm:     s_m = 1 + (slow_compute * u_c + slow_memory * u_m) * (1024 / block_threads)^block_contention
              (u_c, u_m: the compute kernel's compute and memory utilisation, t_c/busy, t_m/busy)

Both progress at 1/s while they overlap and at full speed alone. Energy of a span: the base
power (static + leakage at f) x wall time, plus every kernel's solo dynamic energy, plus the
stall power of a stretched compute kernel x its extra time, plus P_comm x the collective's wall
time (``span_energy_j``).

How a timeline calls it: per partition, compute the kernels' ``KernelCost`` at the partition's
clock (``kernel.kernel_costs(..., comm_sms, comm_block=...)``: every collective runs this kernel
law with ``library_params(preset)``, NCCL's figures, at its CTA count and block size, the
library's defaults where none is given, so ``sms=0`` and ``sms=<comm_sms_default>`` are the
same collective), then either

* in its own dependency-true event sweep (what ``timeline.Timeline._overlapped`` does), take
  the pairwise factors ``pair_stretch(library_params(preset), preset, t_c, t_m, busy, ctas,
  comm_mem_bytes, comm_busy, block)`` -> (s_c, s_m) per (collective, compute kernel): while they
  overlap the compute kernel progresses at 1/s_c and the collective at 1/s_m; the time a kernel
  loses is charged at its stall power (``KernelCost.stall_power_w``); or
* ``sweep_window(compute_time_s, stretch_compute, stretch_comm, comm_time_s_, launch_op,
  complete_op)`` for one Kareus window (the collective of the other nanobatch starts with
  compute op ``launch_op``, op ``complete_op + 1`` waits for it), vectorised over
  configurations: each op's start/end and the collective's start/end, plus the time lost;
  ``span_energy_j`` turns those into the span's energy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources

import numpy as np

FORMAT = "gearshift.overlap_params"
VERSION = 1
DEFAULT_BLOCK_THREADS = 1024   # NCCL / MSCCL++ default block size on Ampere/Hopper

# link bytes per payload byte for a ring over n ranks (what crosses each GPU's link)
ALGO_FACTOR = {
    "all_reduce": lambda n: 2.0 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
}
# DRAM bytes a collective moves per payload byte (read send buffer, write receive buffer; a
# reduction also reads and writes the accumulator): what it takes from the compute kernels
MEM_FACTOR = {"all_reduce": 3.0, "reduce_scatter": 2.0}


@dataclass(frozen=True)
class OverlapParams:
    """Communication-kernel and contention parameters (fitted unless marked assumed)."""

    cta_rate_bytes_s: float = 6.5e9    # link bytes/s one 1024-thread CTA moves at f_max
    block_exponent: float = 0.8        # per-CTA rate ~ (block/1024)^e
    link_bw_bytes_s: float = 80e9      # saturated rate of the collective (bus-bandwidth bound)
    smooth_p: float = 2.0              # sharpness of the CTA-bound / link-bound transition
    latency_s: float = 20e-6           # fixed launch + handshake time of one collective
    clock_exponent: float = 0.25       # assumed: a CTA is NVLink-latency bound, weakly clocked
    slow_compute: float = 0.3          # comm slowdown per unit compute utilisation beside it
    slow_memory: float = 0.3           # comm slowdown per unit memory utilisation beside it
    block_contention: float = 1.0      # smaller blocks hide less latency when sharing an SM
    comm_activity: float = 0.5         # SM activity of a comm CTA relative to a compute one
    link_power_w: float = 20.0         # NVLink + copy-engine power at the saturated rate
    source: str = "assumed defaults (not fitted)"

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, d: dict) -> "OverlapParams":
        from ...errors import ConfigError  # noqa: PLC0415

        if d.get("format") != FORMAT or d.get("version") != VERSION:
            raise ConfigError(f"overlap parameters are not {FORMAT} v{VERSION}",
                              "refit with `python -m gearshift.devices.sim.calibration_overlap`")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def with_(self, **changes) -> "OverlapParams":
        return replace(self, **changes)


_PARAMS_CACHE: dict = {}


def load_params(name: str = "overlap_a100.json") -> OverlapParams:
    """The fitted parameters shipped with the package (defaults if the file is absent)."""
    if name in _PARAMS_CACHE:
        return _PARAMS_CACHE[name]
    f = resources.files("gearshift.devices.sim") / name
    q = OverlapParams()
    if f.is_file():
        doc = json.loads(f.read_text())
        q = OverlapParams.from_json(doc.get("comm", doc))
    _PARAMS_CACHE[name] = q
    return q


# ---- the library a trainer runs (NCCL): the same kernel law, anchored on published figures ----
# The fitted parameters above describe the kernel Kareus measured (MSCCL++, 2 GPUs, 1-20 CTAs).
# Every collective the simulator runs is NCCL's (what Megatron runs, and how gearshift gives a
# collective its SMs: a communicator with a CTA limit), with the same law and these figures:
NCCL_BLOCK_THREADS = 512       # threads per CTA (NCCL_NTHREADS default, NCCL environment docs)
NCCL_LINK_EFFICIENCY = 0.8     # ~20 % protocol overhead on NVLink (NCCL maintainer, nccl-tests#212)
NCCL_SMOOTH_P = 4.0            # assumed: channels are independent rings, a sharp CTA/link knee
NCCL_BASE_LATENCY_S = 8.4e-6   # NCCL src/graph/tuning.cc: Ring/Simple base latency
NCCL_STEP_LATENCY_S = 3.4e-6   # NCCL src/graph/tuning.cc: NVLink Ring/Simple latency per step
_LIB_CACHE: dict = {}


def ring_steps(comm_op: str, world_size: int) -> int:
    """Ring steps of a collective over ``world_size`` ranks (each pays one hop's latency)."""
    n = max(int(world_size), 2)
    if comm_op == "all_reduce":
        return 2 * (n - 1)
    if comm_op in ALGO_FACTOR:
        return n - 1
    return 1


def library_params(preset) -> OverlapParams:
    """NCCL's collective kernel on ``preset`` as :class:`OverlapParams`.

    Link-bound ceiling: ``NCCL_LINK_EFFICIENCY`` x the published per-direction link bandwidth.
    Per-CTA rate: NCCL's topology search splits the link bandwidth over its channels (one CTA
    each), so ``comm_sms_default`` CTAs of ``NCCL_BLOCK_THREADS`` threads together reach the
    ceiling's CTA-bound rate; with the knee ``NCCL_SMOOTH_P`` the default achieves 2^(-1/p) =
    84 % of the ceiling (A100: 202 GB/s bus bandwidth, nccl-tests reports ~200-208 GB/s).
    Block exponent, clock exponent and contention: the fitted / assumed values of the measured
    kernel (``load_params``). Power: the preset's NCCL figures (assumed)."""
    key = (preset.key, preset.link_bw_bytes_s, preset.comm_sms_default, preset.comm_activity,
           preset.link_power_w, preset.max_freq_mhz)
    if key in _LIB_CACHE:
        return _LIB_CACHE[key]
    fit = load_params()
    ceiling = NCCL_LINK_EFFICIENCY * preset.link_bw_bytes_s
    per_cta = ceiling / preset.comm_sms_default      # at NCCL_BLOCK_THREADS and f_max
    q = fit.with_(
        cta_rate_bytes_s=per_cta / (NCCL_BLOCK_THREADS / DEFAULT_BLOCK_THREADS)
        ** fit.block_exponent,
        link_bw_bytes_s=ceiling, smooth_p=NCCL_SMOOTH_P, latency_s=NCCL_BASE_LATENCY_S,
        comm_activity=preset.comm_activity, link_power_w=preset.link_power_w,
        source=f"NCCL on {preset.key}: anchored on published figures (docs/simulator.md)")
    _LIB_CACHE[key] = q
    return q


def library_latency_s(steps):
    """NCCL's latency of a ring collective of ``steps`` steps (``ring_steps``)."""
    return NCCL_BASE_LATENCY_S + np.asarray(steps, dtype=np.float64) * NCCL_STEP_LATENCY_S


# ---- the communication kernel ---------------------------------------------------------------
def link_bytes(payload_bytes, comm_op: str, world_size: int):
    """Bytes that cross each GPU's link for a collective of ``payload_bytes`` per rank."""
    algo = ALGO_FACTOR.get(comm_op, lambda _n: 1.0)(max(int(world_size), 2))
    return np.asarray(payload_bytes, dtype=np.float64) * algo


def comm_bandwidth_bytes_s(q: OverlapParams, ctas, block_threads, freq_mhz, max_freq_mhz):
    """Achieved link rate of a collective on ``ctas`` CTAs of ``block_threads`` threads."""
    ctas = np.maximum(np.asarray(ctas, dtype=np.float64), 1.0)
    b = np.asarray(block_threads, dtype=np.float64) / DEFAULT_BLOCK_THREADS
    x = np.asarray(freq_mhz, dtype=np.float64) / float(max_freq_mhz)
    cta_bw = ctas * q.cta_rate_bytes_s * b ** q.block_exponent * x ** q.clock_exponent
    p = q.smooth_p
    return (cta_bw ** -p + q.link_bw_bytes_s ** -p) ** (-1.0 / p)


def comm_time_s(q: OverlapParams, link_bytes_, ctas, block_threads, freq_mhz, max_freq_mhz,
                latency_s=None):
    """Solo time of a collective moving ``link_bytes_`` over the link (``latency_s``: per
    collective, e.g. ``library_latency_s``; default ``q.latency_s``)."""
    bw = comm_bandwidth_bytes_s(q, ctas, block_threads, freq_mhz, max_freq_mhz)
    lat = q.latency_s if latency_s is None else np.asarray(latency_s, dtype=np.float64)
    return lat + np.asarray(link_bytes_, dtype=np.float64) / bw


def comm_power_w(q: OverlapParams, ctas, block_threads, freq_mhz, max_freq_mhz, sm_count: int,
                 sm_power_w: float, phi_f):
    """Dynamic power of a running collective (on top of the base power)."""
    bw = comm_bandwidth_bytes_s(q, ctas, block_threads, freq_mhz, max_freq_mhz)
    ctas = np.asarray(ctas, dtype=np.float64)
    return sm_power_w * q.comm_activity * ctas / sm_count * phi_f \
        + q.link_power_w * bw / q.link_bw_bytes_s


# ---- contention -------------------------------------------------------------------------------
def compute_stretch(t_c_s, t_m_s, ctas, sm_count: int, comm_mem_rate_bytes_s, mem_bw_bytes_s,
                    alpha: float):
    """Factor by which a compute kernel (solo parts t_c, t_m) stretches beside a collective.

    The collective's CTAs take ``ctas`` of the SMs (compute part) and its DRAM traffic takes
    bandwidth (memory part; at most 90 % of it, so a kernel never stops)."""
    t_c = np.asarray(t_c_s, dtype=np.float64)
    t_m = np.asarray(t_m_s, dtype=np.float64)
    free = np.maximum(sm_count - np.asarray(ctas, dtype=np.float64), 1.0) / sm_count
    avail = np.maximum(mem_bw_bytes_s - np.asarray(comm_mem_rate_bytes_s, dtype=np.float64),
                       0.1 * mem_bw_bytes_s)
    tc2 = t_c / free
    tm2 = t_m * mem_bw_bytes_s / avail
    busy = np.maximum(t_c, t_m) + alpha * np.minimum(t_c, t_m)
    busy2 = np.maximum(tc2, tm2) + alpha * np.minimum(tc2, tm2)
    return np.where(busy > 0, busy2 / np.where(busy > 0, busy, 1.0), 1.0)


def comm_stretch(q: OverlapParams, u_c, u_m, block_threads):
    """Factor by which a collective slows beside a compute kernel of utilisations u_c, u_m."""
    b = DEFAULT_BLOCK_THREADS / np.asarray(block_threads, dtype=np.float64)
    return 1.0 + (q.slow_compute * np.asarray(u_c) + q.slow_memory * np.asarray(u_m)) \
        * b ** q.block_contention


def pair_stretch(q: OverlapParams, preset, t_c_s, t_m_s, busy_s, comm_ctas, comm_mem_bytes,
                 comm_busy_s, comm_block_threads=DEFAULT_BLOCK_THREADS):
    """(s_c, s_m), each (n_comm, n_comp): the stretch of every compute kernel (solo parts t_c,
    t_m, busy time) beside every collective (CTAs, DRAM bytes, solo busy time), and of the
    collective beside it. What an event sweep multiplies the overlapped durations by."""
    t_c = np.asarray(t_c_s, dtype=np.float64)[None, :]
    t_m = np.asarray(t_m_s, dtype=np.float64)[None, :]
    busy = np.maximum(np.asarray(busy_s, dtype=np.float64), 1e-30)[None, :]
    ctas = np.asarray(comm_ctas, dtype=np.float64)[:, None]
    rate = (np.asarray(comm_mem_bytes, dtype=np.float64)
            / np.maximum(np.asarray(comm_busy_s, dtype=np.float64), 1e-30))[:, None]
    bw = preset.mem_bw_bytes_s * preset.mem_efficiency
    s_c = compute_stretch(t_c, t_m, ctas, preset.sm_count, rate, bw, preset.overlap_alpha)
    s_m = comm_stretch(q, t_c / busy, np.minimum(t_m / busy, 1.0),
                       np.broadcast_to(np.asarray(comm_block_threads, dtype=np.float64),
                                       ctas.shape))
    return s_c, np.broadcast_to(s_m, s_c.shape)


# ---- a window of compute ops with one collective beside them --------------------------------
def sweep_window(compute_time_s, stretch_compute, stretch_comm, comm_time_s_, launch_op,
                 complete_op, op_ready_s=None, comm_ready_s=None):
    """Two streams: a chain of compute ops and one collective, vectorised over configurations.

    ``compute_time_s``, ``stretch_compute``, ``stretch_comm``: (K,) or (N, K) per compute op
    (solo time and the two stretch factors while op k runs beside the collective).
    ``comm_time_s_``: (N,) solo time of the collective. ``launch_op``/``complete_op``: (N,) the
    collective starts when op ``launch_op`` starts and op ``complete_op + 1`` waits for it
    (``launch_op = -1``: serial, the collective runs first and op 0 waits for it).
    ``op_ready_s``: (K,) or (N, K) earliest start of each op (its launch by the host, e.g.
    eager-mode dispatch); ``comm_ready_s``: (N,) earliest start of the collective (default: the
    start of op ``launch_op``). Data dependencies hold: op k starts after op k-1 ends, op
    ``complete_op + 1`` after the collective ends.

    Returns (op_start_s, op_end_s, comm_start_s, comm_end_s, op_extra_s, comm_extra_s): the
    ``_extra_s`` are the time each kernel lost to contention (for the stall energy).
    """
    launch = np.atleast_1d(np.asarray(launch_op, dtype=np.int64))
    complete = np.atleast_1d(np.asarray(complete_op, dtype=np.int64))
    n = max(len(launch), len(np.atleast_1d(comm_time_s_)))
    d = np.broadcast_to(np.asarray(compute_time_s, dtype=np.float64), (n, np.shape(
        compute_time_s)[-1])).copy()
    k_ops = d.shape[1]
    sc = np.broadcast_to(np.asarray(stretch_compute, dtype=np.float64), d.shape)
    sm = np.broadcast_to(np.asarray(stretch_comm, dtype=np.float64), d.shape)
    ready = np.zeros(d.shape) if op_ready_s is None else \
        np.broadcast_to(np.asarray(op_ready_s, dtype=np.float64), d.shape)
    launch = np.broadcast_to(launch, (n,))
    complete = np.broadcast_to(complete, (n,))
    serial = launch < 0
    w = np.broadcast_to(np.asarray(comm_time_s_, dtype=np.float64), (n,)).copy()  # solo work left
    given = comm_ready_s is not None
    c_ready = np.broadcast_to(np.asarray(comm_ready_s if given else 0.0, dtype=np.float64),
                              (n,)).copy()
    # a collective with a ready time starts then (its launch, independent of the compute stream);
    # without one it starts with op ``launch_op``
    c_start = np.where(given | serial, np.maximum(c_ready, 0.0), np.inf)
    c_end = np.where(serial, c_start + w, np.inf)
    w = np.where(serial, 0.0, w)
    c_extra = np.zeros(n)
    tw = np.where(np.isfinite(c_start), c_start, 0.0)   # the collective has progressed to here
    t = np.zeros(n)                   # compute stream free from this time
    starts = np.zeros(d.shape)
    ends = np.zeros(d.shape)
    extra = np.zeros(d.shape)

    def advance_alone(until):
        """The collective runs alone (nothing on the compute stream) up to ``until``."""
        nonlocal w, tw, c_end
        active = (w > 0) & np.isfinite(c_start)
        a = np.maximum(tw, c_start)
        span = np.clip(until - a, 0.0, None)
        done = active & (span >= w)
        c_end = np.where(done, a + w, c_end)
        w = np.where(active, np.maximum(w - span, 0.0), w)
        tw = np.where(active, np.maximum(tw, until), tw)

    for k in range(k_ops):
        s = np.maximum(t, ready[:, k])
        if not given:
            begins = launch == k
            c_start = np.where(begins, s, c_start)
            tw = np.where(begins, s, tw)
        # op k waits for the collective when it is the first op after the window
        must_wait = (complete + 1 == k) | (serial & (k == 0))
        advance_alone(s)
        pending = must_wait & (w > 0)
        if pending.any():
            # finish alone from max(tw, c_start) (nothing else runs meanwhile)
            fin = np.maximum(tw, c_start) + w
            c_end = np.where(pending, fin, c_end)
            s = np.where(pending, np.maximum(s, fin), s)
            w = np.where(pending, 0.0, w)
            tw = np.where(pending, fin, tw)
        s = np.where(must_wait, np.maximum(s, np.where(np.isfinite(c_end), c_end, s)), s)
        starts[:, k] = s
        dk, sck, smk = d[:, k], sc[:, k], sm[:, k]
        # solo part before the collective starts within this op (it may start mid-op)
        solo = np.clip(c_start - s, 0.0, None)
        solo = np.where((w > 0) & np.isfinite(c_start), solo, np.inf)
        solo_done = solo >= dk
        rem = np.where(solo_done, 0.0, dk - np.where(np.isfinite(solo), solo, 0.0))
        t0 = s + np.where(solo_done, dk, np.where(np.isfinite(solo), solo, 0.0))
        # concurrent part: compute at 1/sc, collective at 1/sm
        conc = ~solo_done & (rem > 0)
        comm_outlasts = w * smk >= rem * sck
        dur_c = np.where(comm_outlasts, rem * sck, w * smk + rem - w * smk / sck)
        end = np.where(conc, t0 + dur_c, t0)
        used = np.where(comm_outlasts, rem * sck / smk, w)     # comm solo work done in the op
        c_fin = conc & ~comm_outlasts
        c_end = np.where(c_fin, t0 + w * smk, c_end)
        over = np.where(comm_outlasts, rem * sck, w * smk)     # overlapped wall time
        extra[:, k] = np.where(conc, over - over / sck, 0.0)
        c_extra = c_extra + np.where(conc, over - over / smk, 0.0)
        w = np.where(conc, w - used, w)
        w = np.where(c_fin, 0.0, w)
        tw = np.where(conc, end, tw)
        ends[:, k] = end
        t = end
    # the collective still running after the last op finishes alone
    left = (w > 0) & np.isfinite(c_start)
    fin = np.maximum(tw, c_start) + w
    c_end = np.where(left, fin, c_end)
    return starts, ends, c_start, c_end, extra, c_extra


def span_energy_j(base_power_w, span_s, dyn_energy_j, stall_power_w, extra_s,
                  comm_power_w_, comm_wall_s):
    """Energy of an overlapped span (one GPU): base x wall + solo dynamic energy + contention
    stalls + the collective's dynamic power x its wall time. Sums over the last axis."""
    return (np.asarray(base_power_w) * np.asarray(span_s)
            + np.sum(np.asarray(dyn_energy_j) + np.asarray(stall_power_w) * np.asarray(extra_s),
                     axis=-1)
            + np.asarray(comm_power_w_) * np.asarray(comm_wall_s))
