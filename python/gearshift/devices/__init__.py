"""Devices: one registry (``devices/open.py``) turns a device string into a Device.

Kinds: ``sim`` (the calibrated simulated GPU, the default where there is no GPU), ``nvml`` (a
real GPU), ``dry-run`` (a real GPU whose clocks are never changed) and ``daemon:/path.sock``
(clocks through the root-owned daemon); ``auto`` picks one and says why (``choose_auto``).
Register another kind with ``register(name, opener, help=...)``. Nothing here imports the
daemon package, torch or NVML until a device is opened.
"""

from .base import Capabilities, Device
from .open import AutoChoice, choose_auto, describe, kinds, open_device, register, resolve

__all__ = ["AutoChoice", "Capabilities", "Device", "choose_auto", "describe", "kinds",
           "open_device", "register", "resolve"]
