"""Pipeline-parallel execution from per-stage profiles (the Perseus-style emulator).

A stage profile gives, for every (stage, forward|backward, SM clock), the time and energy of one
microbatch's computation; a plan assigns a clock to every (stage, instruction, microbatch). The
executor runs the 1F1B or GPipe dependency graph and returns the iteration time (makespan) and
energy (computation energy plus blocking power for every second a stage waits).
"""

from .executor import PipelineGraph, PipelineResult, execute, execute_sequences
from .order import INSTRUCTIONS, KINDS, dependencies, parse_sequence, pipeline_order
from .plan import PipelinePlan
from .stage_profile import StageProfile, load_stage_profile

__all__ = [
    "INSTRUCTIONS", "KINDS", "PipelineGraph", "PipelinePlan", "PipelineResult", "StageProfile",
    "dependencies", "execute", "execute_sequences", "load_stage_profile", "parse_sequence",
    "pipeline_order",
]
