"""Configuration: frozen dataclasses, and the GEARSHIFT_* environment variables, read here once."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Environment:
    device: str = "auto"          # GEARSHIFT_DEVICE: auto | sim | nvml | dry-run | daemon:/path
    sim_preset: str = "h100-sxm"  # GEARSHIFT_SIM_PRESET
    daemon_socket: str = "/run/gearshift/gearshift.sock"  # GEARSHIFT_DAEMON_SOCKET
    log_level: str = "warning"    # GEARSHIFT_LOG


def validate_device(device: str) -> str:
    """``device`` when the device registry knows its kind (or it is ``auto``)."""
    from .devices.open import validate  # noqa: PLC0415

    return validate(device)


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        device=os.environ.get("GEARSHIFT_DEVICE", Environment.device),
        sim_preset=os.environ.get("GEARSHIFT_SIM_PRESET", Environment.sim_preset),
        daemon_socket=os.environ.get("GEARSHIFT_DAEMON_SOCKET", Environment.daemon_socket),
        log_level=os.environ.get("GEARSHIFT_LOG", Environment.log_level),
    )
    validate_device(env.device)
    return env
