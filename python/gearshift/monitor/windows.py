"""Measurement windows: time and energy per GPU, CPU package and DRAM, and a node estimate.

Like Zeus's monitor: ``begin_window(name)`` / ``end_window(name)`` (windows may nest and
overlap), or ``with monitor.window(name) as m``. Every energy figure says what it covers
(``scope``: gpu, cpu, dram, node) and how it was obtained (``source``: measured, simulated,
replayed); the node figure is an estimate and says which parts it adds.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from ..errors import ConfigError, DeviceError
from .gpu import (CounterRead, CurrentDeviceCounters, DeviceCounters, NoGpuCounters,
                  NvmlCounters)
from .rapl import POWERCAP_ROOT, RaplReader

SCOPES = ("gpu", "cpu", "dram", "node")


@dataclass(frozen=True)
class EnergyFigure:
    scope: str             # gpu | cpu | dram | node
    component: str         # gpu0, package-0, package-0/dram, node
    energy_j: float
    source: str            # measured | simulated | replayed
    estimated: bool = False
    note: str = ""


@dataclass
class Measurement:
    """One closed window. ``wall_time_s`` is always measured (the host's monotonic clock);
    ``time_s`` is the device's time (simulated time on the simulator, else the wall time).
    A part with no figure is in ``unavailable`` with the reason: never a 0 that means
    "not measured"."""

    name: str
    time_s: float
    figures: list[EnergyFigure]
    wall_time_s: float
    unavailable: dict[str, str] = field(default_factory=dict)   # part -> why it is missing
    time_source: str = "measured"     # how time_s was obtained: measured | simulated | replayed
    started_at: float = 0.0           # Unix time the window opened

    def energy_j(self, scope: str = "gpu") -> float:
        if scope not in SCOPES:
            raise ConfigError(f"unknown energy scope '{scope}'", f"use one of {', '.join(SCOPES)}")
        figs = [f for f in self.figures if f.scope == scope]
        if not figs:
            why = self.unavailable.get(scope, "not measured in this window")
            raise DeviceError(f"no {scope} energy in window '{self.name}' ({why})",
                              "read the scopes listed in Measurement.figures")
        return float(sum(f.energy_j for f in figs))

    @property
    def gpu_energy_j(self) -> dict[str, float]:
        return {f.component: f.energy_j for f in self.figures if f.scope == "gpu"}

    @property
    def source(self) -> str:
        gpu = {f.source for f in self.figures if f.scope == "gpu"}
        return gpu.pop() if len(gpu) == 1 else "measured"

    def to_json(self) -> dict:
        return {"name": self.name, "started_at": self.started_at,
                "wall_time_s": self.wall_time_s, "time_s": self.time_s,
                "time_source": self.time_source,
                "figures": [asdict(f) for f in self.figures], "unavailable": dict(self.unavailable)}

    def rows(self) -> list[dict]:
        """One row per energy figure and per part not measured (the CSV log's rows)."""
        base = {"name": self.name, "started_at": self.started_at,
                "wall_time_s": self.wall_time_s, "time_s": self.time_s,
                "time_source": self.time_source}
        out = [dict(base, scope=f.scope, component=f.component, energy_j=f.energy_j,
                    source=f.source, estimated=f.estimated, note=f.note) for f in self.figures]
        out += [dict(base, scope=part, component="", energy_j="", source="not measured",
                     estimated=False, note=why) for part, why in self.unavailable.items()]
        return out

    def __str__(self) -> str:
        lines = [f"window '{self.name}': wall time {self.wall_time_s:.4g} s (measured)"]
        if self.time_source != "measured":
            lines.append(f"  device time {self.time_s:.4g} s ({self.time_source})")
        for f in self.figures:
            tag = f"{f.source}{', estimated' if f.estimated else ''}"
            lines.append(f"  {f.scope:<4} {f.component:<16} {f.energy_j:12.4f} J  [{tag}]"
                         + (f"  {f.note}" if f.note else ""))
        for part, why in self.unavailable.items():
            lines.append(f"  {part:<4} not measured: {why}")
        return "\n".join(lines)


@dataclass
class _Open:
    gpu: CounterRead
    rapl_j: dict[str, float]
    wall_s: float
    started_at: float = 0.0


class Monitor:
    """Energy monitor over a set of GPUs (or gearshift devices), RAPL, and the rest of the node.

    - ``devices``: ``"auto"`` (the device gearshift is running on in this process if any, else
      every GPU NVML sees, else the simulated GPU), ``"nvml"``, a Device, or a list of Devices.
    - ``gpu_indices``: which NVML GPUs (default all).
    - ``rapl``: read CPU package and DRAM energy where the kernel lets us.
    - ``node_idle_power_w``: power of the node's other parts (fans, NICs, disks, PSU losses);
      when set, each window adds a ``node`` figure = GPU + CPU + DRAM + this x time.
    """

    def __init__(self, devices="auto", gpu_indices: list[int] | None = None, rapl: bool = True,
                 node_idle_power_w: float | None = None, rapl_root: str = POWERCAP_ROOT,
                 poll_interval_s: float = 30.0):
        if node_idle_power_w is not None and node_idle_power_w < 0:
            raise ConfigError(f"node_idle_power_w={node_idle_power_w} is negative",
                              "give the other parts' idle power in W (>= 0)")
        self.gpus = _gpu_counters(devices, gpu_indices)
        self.node_idle_power_w = node_idle_power_w
        self.unavailable: dict[str, str] = {}
        # RAPL measures this host's CPU over wall time; next to a simulated GPU's simulated
        # time the two would not describe the same run, so it is left out there.
        if rapl and not getattr(self.gpus, "simulated_time", False):
            self.rapl = RaplReader.discover(rapl_root)
            if not self.rapl.zones:
                self.unavailable["cpu"] = "; ".join(f"{k}: {v}" for k, v in
                                                    self.rapl.unreadable.items())
        else:
            self.rapl = None
            self.unavailable["cpu"] = ("not measured next to a simulated GPU" if rapl
                                       else "RAPL reading was turned off")
        self._windows: dict[str, _Open] = {}
        self._lock = threading.Lock()
        self._poll_interval_s = poll_interval_s
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()

    # ---- windows ---------------------------------------------------------------------------
    def begin_window(self, name: str) -> None:
        with self._lock:
            if name in self._windows:
                raise ConfigError(f"window '{name}' is already open",
                                  "end it first, or give the nested window another name")
            self._windows[name] = _Open(self.gpus.read(), self._rapl_now(), time.monotonic(),
                                        time.time())
            self._ensure_poller()

    def end_window(self, name: str) -> Measurement:
        with self._lock:
            start = self._windows.pop(name, None)
            if start is None:
                raise ConfigError(f"window '{name}' was never begun",
                                  f"call begin_window('{name}') first")
            end = self.gpus.read()
            rapl_end = self._rapl_now()
        wall = time.monotonic() - start.wall_s
        begin = start.gpu
        if begin.origin != end.origin:
            begin = CounterRead(0.0, {c: 0.0 for c in end.energy_j}, end.origin)
        simulated = bool(getattr(self.gpus, "simulated_time", False))
        elapsed = end.time_s - begin.time_s if simulated else wall
        unavailable = dict(self.unavailable)
        figs = []
        gpu_missing = self._gpu_missing(end, elapsed, simulated)
        if gpu_missing:
            unavailable["gpu"] = gpu_missing
            elapsed = wall          # no device ran: the window's time is the host's
            simulated = False
        else:
            figs = [EnergyFigure("gpu", c, end.energy_j[c] - begin.energy_j.get(c, 0.0),
                                 self.gpus.source, note=self._gpu_note(c)) for c in end.energy_j]
        scopes = self.rapl.scopes() if self.rapl else {}
        for label, total in rapl_end.items():
            figs.append(EnergyFigure(scopes[label], label, total - start.rapl_j.get(label, 0.0),
                                     "measured"))
        if self.rapl and not any(f.scope == "dram" for f in figs):
            unavailable.setdefault("dram", "no readable RAPL dram zone")
        if self.node_idle_power_w is not None and figs:
            figs.append(self._node_figure(figs, elapsed))
        elif self.node_idle_power_w is None:
            unavailable["node"] = "set node_idle_power_w to estimate the whole node"
        else:
            unavailable["node"] = "nothing measured to add the rest of the node to"
        return Measurement(name, elapsed, figs, wall, unavailable,
                           self.gpus.source if simulated else "measured", start.started_at)

    def _gpu_missing(self, end: CounterRead, elapsed: float, simulated: bool) -> str:
        """Why the window has no GPU figure ('' when it has one)."""
        if isinstance(self.gpus, NoGpuCounters):
            return self.gpus.why
        if isinstance(self.gpus, CurrentDeviceCounters) and self.gpus._current() is None:
            return ("no GPU this process can read (NVML unavailable) and no gearshift device "
                    "in use")
        if simulated and elapsed <= 0.0:
            return ("the simulated GPU ran no iteration in this window: it prices only steps "
                    "gearshift runs (gearshift.compile / torch.compile backend)")
        return ""

    @contextmanager
    def window(self, name: str):
        handle = WindowHandle(name)
        self.begin_window(name)
        try:
            yield handle
        finally:
            handle.result = self.end_window(name)

    def close(self) -> None:
        self._stop.set()
        self.gpus.close()

    # ---- internals ---------------------------------------------------------------------------
    def _gpu_note(self, component: str) -> str:
        names = getattr(self.gpus, "names", {})
        return names.get(component, "") if names.get(component) != component else ""

    def _node_figure(self, figs: list[EnergyFigure], elapsed_s: float) -> EnergyFigure:
        parts = sum(f.energy_j for f in figs if f.scope in ("gpu", "cpu", "dram"))
        have = sorted({f.scope for f in figs if f.scope in ("gpu", "cpu", "dram")})
        rest = self.node_idle_power_w * elapsed_s
        missing = [s for s in ("cpu", "dram") if s not in have]
        note = (f"{' + '.join(have)} + {self.node_idle_power_w:g} W configured for the rest of "
                f"the node x {elapsed_s:.4g} s" + (f"; {', '.join(missing)} not included"
                                                    if missing else ""))
        return EnergyFigure("node", "node", parts + rest, self.gpus.source, estimated=True,
                            note=note)

    def _rapl_now(self) -> dict[str, float]:
        return self.rapl.poll() if self.rapl and self.rapl.zones else {}

    def _ensure_poller(self) -> None:
        # RAPL registers wrap (about every 15-60 min at full load): read them while a window is
        # open so no wrap is missed.
        if not (self.rapl and self.rapl.zones) or (self._poller and self._poller.is_alive()):
            return
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, name="gearshift-rapl", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.wait(self._poll_interval_s):
            with self._lock:
                if not self._windows:
                    return
                self.rapl.poll()


class WindowHandle:
    """What ``with measure(...) as m`` yields; ``m.result`` is set when the block ends."""

    def __init__(self, name: str):
        self.name = name
        self.result: Measurement | None = None

    def __getattr__(self, item):
        # m.energy_j("gpu"), m.time_s ... read through to the result once the block is over
        if item in ("name", "result"):
            raise AttributeError(item)
        if self.result is None:
            raise AttributeError(f"window '{self.name}' is still open; read it after the with-block")
        return getattr(self.result, item)

    def __str__(self) -> str:
        return str(self.result) if self.result else f"<open window '{self.name}'>"


# ---- the process's current device and default monitor --------------------------------------
_current_device = None
_default_monitor: Monitor | None = None


def set_current_device(device) -> None:
    """Record the device gearshift runs on, so ``measure()`` reports it by default."""
    global _current_device, _default_monitor
    _current_device = device
    # a default monitor that follows the current device keeps its open windows; one bound to
    # other counters is rebuilt (after its windows close) to report the new device
    if _default_monitor is not None and not isinstance(_default_monitor.gpus,
                                                       CurrentDeviceCounters):
        if not _default_monitor._windows:
            _default_monitor = None


def current_device():
    return _current_device


def _gpu_counters(devices, gpu_indices):
    if devices == "auto":
        if _current_device is not None and getattr(_current_device, "kind", "") not in (
                "sim", "replay"):
            return DeviceCounters([_current_device])
        try:
            if _current_device is None:
                return NvmlCounters(gpu_indices)
        except DeviceError:
            pass
        return CurrentDeviceCounters(current_device)
    if devices == "nvml":
        return NvmlCounters(gpu_indices)
    if devices == "sim":
        from ..devices import open_device  # noqa: PLC0415

        return DeviceCounters([open_device("sim")])
    if isinstance(devices, NoGpuCounters):
        return devices
    if isinstance(devices, (list, tuple)):
        if not devices:
            return NoGpuCounters("no GPU was given to measure")
        return DeviceCounters(devices)
    if hasattr(devices, "energy_j"):
        return DeviceCounters([devices])
    raise ConfigError(f"cannot measure devices={devices!r}",
                      "pass 'auto', 'nvml', 'sim', a Device, or a list of Devices")


def default_monitor() -> Monitor:
    global _default_monitor
    if _default_monitor is None:
        _default_monitor = Monitor()
    return _default_monitor


class measure:
    """Measure a block or every call of a function: wall time (always), device time, and
    each energy figure with its scope and source.

        with gearshift.measure("step") as m:      # m.wall_time_s, m.energy_j("gpu"), print(m)
            train_step()

        @gearshift.measure("epoch", log="energy.csv")   # the function's result is returned;
        def epoch(): ...                                 # epoch.measurements lists each call

    Windows nest, and one ``measure`` may be entered again (recursion, re-use, threads): each
    entry is its own window. ``log``: a ``.csv`` (one row per figure, and per part not
    measured) or ``.jsonl`` file every closed window is appended to. ``options`` build a
    dedicated Monitor (devices=, node_idle_power_w=, ...).
    """

    def __init__(self, name: str = "window", monitor: Monitor | None = None, *,
                 log: str | None = None, **options):
        self.name = name
        self._monitor = monitor
        self._options = options
        self.log = log
        if log is not None and not str(log).endswith((".csv", ".jsonl")):
            raise ConfigError(f"measure log {log!r} is neither .csv nor .jsonl",
                              "name the log file *.csv or *.jsonl")
        self.measurements: list[Measurement] = []
        self._open = threading.local()

    def _mon(self) -> Monitor:
        if self._monitor is None and self._options:
            self._monitor = Monitor(**self._options)
        return self._monitor or default_monitor()

    def __enter__(self) -> "WindowHandle":
        global _serial
        stack = self._open.__dict__.setdefault("stack", [])
        with _serial_lock:
            _serial += 1
            key = f"{self.name}#{_serial}"
        mon = self._mon()
        mon.begin_window(key)
        handle = WindowHandle(self.name)
        stack.append((mon, key, handle))
        return handle

    def __exit__(self, *exc) -> bool:
        mon, key, handle = self._open.stack.pop()
        m = mon.end_window(key)
        m.name = self.name
        handle.result = m
        self.measurements.append(m)
        if self.log:
            append_log(self.log, m)
        return False

    def __call__(self, func):
        import functools  # noqa: PLC0415

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self:
                return func(*args, **kwargs)

        wrapper.measurements = self.measurements
        return wrapper


_serial = 0
_serial_lock = threading.Lock()
_CSV_FIELDS = ("name", "started_at", "wall_time_s", "time_s", "time_source", "scope",
               "component", "energy_j", "source", "estimated", "note")


def append_log(path, m: Measurement) -> None:
    """Append one closed window to a .csv (header written once) or .jsonl log."""
    import csv  # noqa: PLC0415
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    p = Path(path)
    if p.suffix == ".jsonl":
        with p.open("a") as f:
            f.write(json.dumps(m.to_json()) + "\n")
        return
    new = not p.exists() or p.stat().st_size == 0
    with p.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=_CSV_FIELDS)
        if new:
            w.writeheader()
        w.writerows(m.rows())
