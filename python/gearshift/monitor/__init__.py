"""Energy monitor: measurement windows over GPUs, CPU package, DRAM and the whole node.

    with gearshift.measure("step") as m:
        train_step()
    print(m)                      # every figure with its scope and source
    m.energy_j("gpu"), m.time_s

or ``mon = gearshift.Monitor(node_idle_power_w=150)``, ``mon.begin_window("epoch")`` ...
``mon.end_window("epoch")``. On the simulated device the same calls report simulated figures.
"""

from .windows import (EnergyFigure, Measurement, Monitor, current_device, default_monitor,
                      measure, set_current_device)

__all__ = ["EnergyFigure", "Measurement", "Monitor", "current_device", "default_monitor",
           "measure", "set_current_device"]
