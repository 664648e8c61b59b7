"""The simulated GPU: presets, kernel time/power model, timeline executor, calibration.

Every figure it produces is simulated; ``docs/simulator.md`` lists the model, which parameters
are published and which fitted, and the fidelity figures ``gearshift sim validate`` prints.
"""

from .device import SimDevice
from .presets import PRESETS, GPUPreset, get_preset
from .timeline import IterationResult, Timeline

__all__ = ["GPUPreset", "IterationResult", "PRESETS", "SimDevice", "Timeline", "get_preset"]
