"""Where the simulated Kareus setting leaves room for per-partition tuning, and what halving a GEMM costs.

Two diagnostics behind docs/simulator.md ("Why per-partition tuning adds little here"), on one
middle layer of llama-3.2-3b-tp8 (microbatch 8 x 4096, the simulated A100; all SIMULATED):

1. **GEMM wave quantisation when a microbatch is split in two.** A GEMM runs as output tiles
   over the SMs in waves; the last wave is partly empty, so the useful share of the GEMM's
   issue time is ``tiles / (SMs x ceil(tiles / SMs))`` (NVIDIA, "Matrix Multiplication
   Background User's Guide", wave quantization). cuBLAS picks the tile per shape (not known
   here), so it is given for 256x128 and 128x128 tiles. The kernel model has no such term
   (its ``gemm_efficiency`` is one fitted figure); this bounds what it leaves out.
2. **Per-partition clock sensitivity** (Kareus's partitions: one nanobatch's collective beside
   the other's sublayer): per partition, the fastest option's time and energy at 900 MHz over
   1410 MHz. Per-partition clocks gain only where partitions differ; a partition whose time
   barely grows at 900 MHz (the collective outlasts the compute beside it) is where a low
   clock is free.

3. **Eager host dispatch.** A kernel cannot start before the host has launched it. The
   simulator charges 3 us per launch (``launch_s``) and no host time: a graph-captured or
   host-ahead program. Kareus's own microbenchmark (eager Transformer Engine ops) fits
   ``host_op_s`` = 162 us per op (``overlap_a100.json``, docs/simulator.md). Per instruction:
   the simulated GPU time against a host floor of kernels x ``host_op_s`` (every kernel read as
   one dispatched op: an upper bound for fused or multi-kernel ops), with and without
   nanobatches. Where the floor exceeds the GPU time, the instruction would be host-bound.

Run: ``python bench/kareus_gap.py`` (about 30 s).
"""

from __future__ import annotations

import math
import re
from collections import Counter

TILES = ((256, 128), (128, 128))
MM = re.compile(r"aten::mm\((\d+)x(\d+),(\d+)x(\d+)\)")


def wave_efficiency(m: int, n: int, tile_m: int, tile_n: int, sms: int) -> float:
    """Useful share of a GEMM's waves: tiles / (SMs x waves)."""
    tiles = math.ceil(m / tile_m) * math.ceil(n / tile_n)
    return tiles / (sms * math.ceil(tiles / sms))


def gemm_wave_table(trace, sms: int) -> tuple[list[tuple], dict]:
    """Per GEMM shape: (count, M, K, N, FLOPs share, efficiency per tile); and per tile the
    FLOP-weighted mean efficiency of the trace's GEMMs."""
    shapes = Counter()
    flops = Counter()
    for k in trace.kernels:
        hit = MM.match(k.name)
        if hit:
            m, kk, _k2, n = map(int, hit.groups())
            shapes[(m, kk, n)] += 1
            flops[(m, kk, n)] += 2.0 * m * kk * n
    total = sum(flops.values())
    rows = [(c, m, kk, n, flops[(m, kk, n)] / total,
             [wave_efficiency(m, n, tm, tn, sms) for tm, tn in TILES])
            for (m, kk, n), c in shapes.items()]
    mean = {t: sum(r[4] * r[5][i] for r in rows) for i, t in enumerate(TILES)}
    return rows, mean


def clock_sensitivity(trace, device, lo_mhz: int = 900, hi_mhz: int = 1410):
    """Per partition (Kareus's: a cut before every collective): phase, the fastest option's
    time at ``hi_mhz`` and its time and energy ratios at ``lo_mhz``."""
    from gearshift.partition import partition
    from gearshift.profile import profile_partitions

    parts = partition(trace, strategy="comm", min_partition_s=0.0)
    prof = profile_partitions(trace, parts, device, freqs_mhz=[lo_mhz, hi_mhz], progress=False)
    by = prof.by_partition()
    out = []
    for p in parts.partitions:
        best = {}
        for o in by[p.index]:
            if o.freq_mhz not in best or o.time_s < best[o.freq_mhz].time_s:
                best[o.freq_mhz] = o
        hi, lo = best[hi_mhz], best[lo_mhz]
        out.append((p.index, p.phase, p.has_comm, hi.time_s, lo.time_s / hi.time_s,
                    lo.energy_j / hi.energy_j))
    return out


def host_floor(trace, device, overlap: str, host_op_s: float, freq_mhz: int = 1410):
    """Per instruction (forward, backward): (kernels, simulated GPU time, kernels x host_op_s)."""
    from gearshift.model import Overlap
    from gearshift.search.baselines import phase_partitioning

    parts = phase_partitioning(trace)
    t, _ = device.profile_options(trace, parts, [(freq_mhz, Overlap.parse(overlap))])
    out = {}
    for p, col in zip(parts.partitions, t[0]):
        if p.phase in ("forward", "backward"):
            n = p.end - p.start
            k, g, h = out.get(p.phase, (0, 0.0, 0.0))
            out[p.phase] = (k + n, g + float(col), h + n * host_op_s)
    return out


def main() -> int:
    from gearshift.devices import open_device
    from gearshift.devices.sim.presets import get_preset
    from gearshift.trace import trace_preset

    sms = get_preset("a100-sxm").sm_count
    print("1. GEMM wave quantisation (SIMULATED trace shapes; A100, 108 SMs)")
    means = {}
    for nb in (1, 2):
        tr = trace_preset("llama-3.2-3b-tp8", layers=1, pp_stage="middle", batch=8,
                          nanobatches=nb)
        rows, means[nb] = gemm_wave_table(tr, sms)
        print(f"  {'microbatch' if nb == 1 else 'nanobatch'} ({nb} per microbatch):")
        for c, m, kk, n, share, eff in sorted(rows, key=lambda r: -r[4]):
            print(f"    {c}x M={m:5d} K={kk:5d} N={n:4d}  {100 * share:4.1f} % of FLOPs  "
                  + "  ".join(f"{tm}x{tn}: {e:.3f}" for (tm, tn), e in zip(TILES, eff)))
    for t in TILES:
        loss = 1 - means[2][t] / means[1][t]
        print(f"  tile {t[0]}x{t[1]}: FLOP-weighted wave efficiency {means[1][t]:.3f} -> "
              f"{means[2][t]:.3f} (GEMM time +{100 * loss:.1f} % from halving)")

    print("2. per-partition clock sensitivity, 900 vs 1410 MHz (SIMULATED, fastest option)")
    dev = open_device("sim", preset="a100-sxm")
    tr = trace_preset("llama-3.2-3b-tp8", layers=1, pp_stage="middle", batch=8, nanobatches=2)
    rows = clock_sensitivity(tr, dev)
    total = sum(r[3] for r in rows)
    flat = 0.0
    for i, phase, comm, t, rt, re_ in rows:
        tag = "collective-bound" if rt < 1.1 else ""
        flat += t if rt < 1.1 else 0.0
        print(f"    {i:2d} {phase:9s} {'comm' if comm else '    '} {1e3 * t:6.2f} ms  "
              f"time x{rt:.2f}  energy x{re_:.2f}  {tag}")
    print(f"  time in partitions whose time grows < 10 % at 900 MHz: {100 * flat / total:.1f} %")

    from gearshift.devices.sim.calibration_overlap import load_stored
    from gearshift.profile.options import FRAMEWORK_OVERLAP, NANOBATCH_DEFAULT_OVERLAP

    host_op_s = float(load_stored()["bench"]["host_op_s"])
    print(f"3. eager host dispatch floor at {1e6 * host_op_s:.0f} us per kernel (fitted on "
          "Kareus's eager microbenchmark) vs SIMULATED GPU time, 1410 MHz, one layer")
    for nb, ov in ((1, FRAMEWORK_OVERLAP), (2, NANOBATCH_DEFAULT_OVERLAP)):
        tr = trace_preset("llama-3.2-3b-tp8", layers=1, pp_stage="middle", batch=8,
                          nanobatches=nb)
        for phase, (k, g, h) in host_floor(tr, dev, ov, host_op_s).items():
            print(f"    {nb} nanobatch(es) {phase:8s}: {k:3d} kernels, GPU {1e3 * g:6.2f} ms, "
                  f"host floor {1e3 * h:6.2f} ms{'  host-bound' if h > g else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
