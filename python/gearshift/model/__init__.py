"""Data types crossing stage boundaries; each reads and writes a versioned file format."""

from .frontier import Choice, Frontier, FrontierPoint
from .partition import Partition, Partitioning
from .profile import NO_OVERLAP, DeviceFacts, Overlap, Profile, ProfileEntry
from .schedule import Schedule, ScheduleEntry
from .trace import KernelRecord, KernelTrace, sequence_signature

__all__ = [
    "Choice", "DeviceFacts", "Frontier", "FrontierPoint", "KernelRecord", "KernelTrace",
    "NO_OVERLAP", "Overlap", "Partition", "Partitioning", "Profile", "ProfileEntry", "Schedule",
    "ScheduleEntry", "sequence_signature",
]
