"""Parameters fitted by ``calibration.fit_a40`` (values pasted from its output; re-run
``gearshift sim validate --refit`` to reproduce them) and their transfer to the other presets."""

from __future__ import annotations

from dataclasses import replace

A40_FITTED: dict = {
    "gemm_efficiency": 0.8808, "mem_efficiency": 0.4022, "mem_f_share": 0.0581,
    "overlap_alpha": 0.8274, "static_power_w": 63.23, "leak_power_w": 3.69,
    "sm_power_w": 406.25, "mem_power_w": 56.50, "stall_activity": 0.5662, "v_min": 0.7189,
    "f_knee_mhz": 1092,
}
# the workload knob of each profiled (model, instruction): element-wise traffic multiplier
A40_WORKLOAD: dict = {
    ("gpt3-175b", "forward"): 0.3519, ("gpt3-175b", "backward"): 7.2714,
    ("bloom", "forward"): 4.9866, ("bloom", "backward"): 2.2165,
}
A40_IDLE_W = 70.38
A40_TDP_W = 300.0
A40_FMAX = 1740
# dimensionless parameters carried over to the other presets: the memory share and the power
# curve's shape. The efficiencies are not: the A40 fit trades them against the per-curve
# workload knobs, so the other presets keep typical published-benchmark efficiencies.
SHAPE = ("mem_f_share", "stall_activity", "v_min")


def apply_fitted(preset):
    if not A40_FITTED:
        return preset
    changes = {k: A40_FITTED[k] for k in SHAPE if k in A40_FITTED}
    if preset.key == "a40":
        changes.update({k: v for k, v in A40_FITTED.items() if k not in changes})
        return replace(preset, **changes)
    # powers: busy-static scales with the idle power, dynamic with the TDP; knee with f_max
    idle_ratio = preset.idle_power_w / A40_IDLE_W
    tdp_ratio = preset.tdp_w / A40_TDP_W
    for k in ("static_power_w", "leak_power_w"):
        if k in A40_FITTED and preset.key not in OVERLAP_FITTED_KEYS:
            changes[k] = A40_FITTED[k] * idle_ratio
    for k in ("sm_power_w", "mem_power_w"):
        if k in A40_FITTED:
            changes[k] = A40_FITTED[k] * tdp_ratio
    if "f_knee_mhz" in A40_FITTED:
        changes["f_knee_mhz"] = int(round(A40_FITTED["f_knee_mhz"] * preset.max_freq_mhz
                                          / A40_FMAX))
    return replace(preset, **changes)


# presets whose power and efficiencies come from the overlap calibration (overlap_a100.json)
OVERLAP_FITTED_KEYS = ("a100-sxm", "h100-sxm")
H100_GEMM_POWER_W = 700.0     # assumed: a dense GEMM at the H100's max clock draws about its TDP


def apply_overlap_fit(preset):
    """A100: the figures fitted on the Kareus overlap data. H100: derived from them (presets.py
    says how). Others unchanged. Without the calibration file, the preset as it is."""
    if preset.key not in OVERLAP_FITTED_KEYS:
        return preset
    from .calibration_overlap import load_stored  # noqa: PLC0415

    doc = load_stored()
    if doc is None:
        return preset
    fit = doc["a100_preset"]
    if preset.key == "a100-sxm":
        return replace(preset, **fit)
    # H100: base power by the idle ratio; SM power so a dense GEMM (u_c = 1) at f_max draws
    # H100_GEMM_POWER_W; DRAM power and efficiencies kept (typical published-benchmark values)
    from .presets import A100_SXM  # noqa: PLC0415

    static = fit["static_power_w"] * preset.idle_power_w / A100_SXM.idle_power_w
    sm = H100_GEMM_POWER_W - static - preset.leak_power_w
    return replace(preset, static_power_w=static, sm_power_w=sm,
                   mem_power_w=fit["mem_power_w"])
