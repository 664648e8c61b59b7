"""Synthetic, physically plausible profiles for the search tests and benches (no simulator).

Compute-bound time scales as 1/f, memory-bound time is flat, the two meet in a smooth
roofline; power = static + activity * c * V(f)^2 * f with V flat below a knee and rising above
it. Overlapping communication shortens the partition but takes SMs from compute and adds
memory contention, so its best clock differs from the serial one. Energies are total GPU
energy (static included), as the simulated GPU and an energy counter report them.
"""

from __future__ import annotations

import numpy as np

from gearshift.model import DeviceFacts, Overlap, Partitioning, Profile, ProfileEntry
from gearshift.model.partition import Partition

FREQS_MHZ = tuple(range(345, 1981, 15))       # an H100's 110 SM clocks
NUM_SMS = 132
STATIC_W = 95.0
OVERLAPS = (Overlap("serial"), Overlap.window(0, 7), Overlap.window(0, 7, comm_sms=8),
            Overlap.window(0, 7, comm_sms=16), Overlap.window(0, 7, comm_sms=32),
            Overlap.window(2, 7, 16), Overlap.window(4, 7, 16))


def device(freqs=FREQS_MHZ) -> DeviceFacts:
    return DeviceFacts("synthetic-h100", tuple(freqs), static_power_w=STATIC_W,
                       idle_power_w=70.0, tdp_w=700.0)


def volt(f):
    f = np.asarray(f, dtype=float)
    return 0.70 + 0.35 * np.clip((f - 1100.0) / (1980.0 - 1100.0), 0.0, None)


def dyn_power_w(f, activity):
    return 480.0 * activity * (volt(f) / 1.05) ** 2 * (np.asarray(f) / 1980.0)


def compute_time_s(f, compute_s, memory_s, sms=NUM_SMS, contention=1.0):
    c = compute_s * (1980.0 / np.asarray(f, dtype=float)) * (NUM_SMS / sms)
    m = memory_s * contention
    return (c ** 4 + m ** 4) ** 0.25


def option(f, ov: Overlap, compute_s, memory_s, comm_s, activity):
    """(time_s, energy_j) of one partition at clock f with overlap choice ov."""
    if ov.mode in ("none", "serial") or comm_s == 0:
        tc = compute_time_s(f, compute_s, memory_s)
        total = tc + comm_s
        energy = STATIC_W * total + dyn_power_w(f, activity) * tc + 45.0 * comm_s
        return float(total), float(energy)
    sms = ov.comm_sms or 16
    comm = comm_s * (16.0 / sms) ** 0.35                 # fewer SMs: slower collective
    tc = compute_time_s(f, compute_s, memory_s, NUM_SMS - sms, contention=1.0 + 0.25 * sms / 32)
    lead = tc * (ov.launch_op / 8.0)
    total = max(tc, lead + comm) + 0.02 * min(tc, comm)  # sync and launch cost of overlapping
    energy = (STATIC_W * total + dyn_power_w(f, activity) * tc * (1.0 + 0.04 * sms / 16)
              + (45.0 + 0.8 * sms) * comm)
    return float(total), float(energy)


def partition_params(rng: np.random.Generator, has_comm: bool):
    compute_s = rng.uniform(0.2e-3, 3e-3)
    memory_s = compute_s * rng.uniform(0.2, 1.6)
    comm_s = compute_s * rng.uniform(0.3, 1.2) if has_comm else 0.0
    activity = rng.uniform(0.5, 1.0)
    return compute_s, memory_s, comm_s, activity


def make_profile(num_partitions=6, seed=0, freqs=FREQS_MHZ, comm_every=2,
                 energy_includes_static=True, noise=0.0):
    """(Profile, Partitioning): partition i has communication when i % comm_every == 0."""
    rng = np.random.default_rng(seed)
    entries, parts = [], []
    for i in range(num_partitions):
        has_comm = comm_every > 0 and i % comm_every == 0
        params = partition_params(rng, has_comm)
        overlaps = OVERLAPS if has_comm else (Overlap(),)
        for f in freqs:
            for ov in overlaps:
                t, e = option(f, ov, *params)
                if noise:
                    t *= 1 + noise * rng.standard_normal()
                    e *= 1 + noise * rng.standard_normal()
                if not energy_includes_static:
                    e -= STATIC_W * t
                entries.append(ProfileEntry(i, f, ov, t, e))
        parts.append(Partition(i, 10 * i, 10 * i + 10, label=f"part{i}", signature=f"sig{i}",
                               has_comm=has_comm))
    partitioning = Partitioning(parts, 10 * num_partitions, trace_signature="trace-abc",
                                strategy="synthetic").validate()
    profile = Profile(device(freqs), entries, num_partitions, partitioning.signature(),
                      source="simulated",
                      energy_scope="gpu" if energy_includes_static else "gpu-dynamic")
    return profile.validate(), partitioning
