"""Devices: ``nvml`` (a real GPU), ``dry-run`` (a real GPU whose clocks are never changed) and
``sim`` (the calibrated simulated GPU, the default where there is no GPU)."""
