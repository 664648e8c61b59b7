"""Session: installs a Schedule into the native runtime and always restores the clocks."""

from __future__ import annotations

import atexit
import logging
import os
import warnings
import weakref
from dataclasses import dataclass

from ..errors import ConfigError, FormatError, NativeUnavailableError, ScheduleMismatchError
log = logging.getLogger("gearshift.runtime")

SIGNAL_PATHS = ("cuda", "fake-lockstep", "fake-realtime")
_LIVE: "weakref.WeakSet[Session]" = weakref.WeakSet()
_CUPTI_WARNED = False


@dataclass(frozen=True)
class SwitchEvent:
    """One boundary the controller acted on (or skipped). Host times are steady-clock ns."""

    partition: int
    ordinal: int            # launch ordinal of the partition's first kernel
    iteration: int
    freq_mhz: int           # target clock; 0 for a reset
    action: str             # switched | skipped_same | superseded | reset | failed | ignored
    device_time_s: float | None  # fake device time when the boundary was seen (fake paths)
    signal_ns: int          # the device reached the boundary (fakes know; 0 on a real GPU)
    detect_ns: int
    call_ns: int
    done_ns: int

    @property
    def latency_us(self) -> float | None:
        """Boundary reached -> clock call began, in microseconds, when measurable."""
        if not self.signal_ns or not self.call_ns:
            return None
        return (self.call_ns - self.signal_ns) / 1e3


def _atexit_stop_all() -> None:
    for s in list(_LIVE):
        s.close()


atexit.register(_atexit_stop_all)


class Session:
    """Enforce ``schedule`` on GPU ``gpu`` through a clock backend; restores clocks on exit.

    backend: the clock backend the controller drives: a Device from the registry (its
        ``clock_backend()`` is used: ``gearshift.devices.open_device("nvml")``) or a native
        ``ClockBackend`` (``gearshift.runtime.make_backend("sim", supported_mhz=...)``).
        Its supported clocks are what the schedule is checked against.
    trace: the KernelTrace the schedule was planned from; with it, each partition's kernel names
        are checked as the hook observes them (without it only kernel counts are checked).
    mode: "apply" enforces the schedule; "record" records launches into a trace (no schedule).
    signal_path: "cuda" (stream writes on the real GPU), "fake-lockstep" (deterministic fake
        device, for replay and the sim backend) or "fake-realtime"; default: cuda when the
        backend drives a real GPU and libcuda loads, else fake-lockstep.
    auto_wrap: an iteration ends after ``schedule.num_kernels`` launches; set False and call
        ``step()`` at each iteration start to have the kernel count of every iteration checked.
    watchdog: start the helper that resets clocks if this process is killed outright
        (default: on for nvml and dry-run); ``watchdog_log`` is where it writes what it did.
    poll_spin_us, poll_sleep_us: how the controller waits for the GPU to reach a boundary: spin
        ``poll_spin_us``, then poll every ``poll_sleep_us``. ``poll_sleep_us=0`` spins until the
        boundary arrives (lowest latency; costs a host core while the GPU lags the CPU).
    """

    def __init__(self, schedule=None, backend=None, *, gpu: int = 0, trace=None,
                 mode: str = "apply", signal_path: str | None = None, trigger: str = "write",
                 auto_wrap: bool = True, watchdog: bool | None = None,
                 watchdog_log: str | os.PathLike | None = None,
                 handle_signals: bool = True, use_cupti: bool = True,
                 poll_spin_us: float = 200.0, poll_sleep_us: float = 10.0):
        if mode not in ("apply", "record"):
            raise ConfigError(f"unknown session mode {mode!r}", "use 'apply' or 'record'")
        if mode == "apply" and schedule is None:
            raise ConfigError("an apply session needs a schedule",
                              "pass a Schedule (gearshift plan), or mode='record' to trace")
        if signal_path is not None and signal_path not in SIGNAL_PATHS:
            raise ConfigError(f"unknown signal path {signal_path!r}",
                              f"use one of {', '.join(SIGNAL_PATHS)}")
        self.schedule = schedule
        self.trace = trace
        self.mode = mode
        self.gpu = gpu
        if backend is None or isinstance(backend, str):
            raise ConfigError(
                f"Session needs a clock backend object, not {backend!r}",
                "pass a device from gearshift.devices.open_device(...) (or its clock_backend()), "
                "e.g. Session(schedule, open_device('sim'))")
        self._backend_source = backend
        self._signal_path = signal_path
        self.signal_path = signal_path or ""     # the one in use, once started
        self._trigger = trigger
        self._auto_wrap = auto_wrap
        self._watchdog = watchdog
        self._watchdog_log = str(watchdog_log) if watchdog_log is not None else ""
        self._handle_signals = handle_signals
        self._use_cupti = use_cupti
        if poll_spin_us < 0 or poll_sleep_us < 0:
            raise ConfigError("poll_spin_us and poll_sleep_us must be >= 0",
                              "pass microseconds, e.g. poll_spin_us=200, poll_sleep_us=10")
        self._poll = dict(spin_us=float(poll_spin_us), sleep_poll_us=float(poll_sleep_us))
        self._rt = None
        self.backend = None
        self.cupti_active = False
        self.cupti_error = ""
        self._mismatch_warned = False
        self._dropped_warned = False
        self._refusal_warned = False

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> "Session":
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def start(self) -> "Session":
        if self._rt is not None:
            return self
        from .._native import library_status, native, native_dir  # noqa: PLC0415

        C = native()
        self.backend = self._clock_backend(C)
        path = self._signal_path or self._default_signal_path(library_status)
        self.signal_path = path
        hashes = self._expected_hashes(C) if self.mode == "apply" else []
        if self.mode == "apply":
            supported = self.backend.supported_sm_mhz(self.gpu)
            self.schedule.validate(supported_freqs_mhz=supported or None)
        rt = C.Runtime(self.backend, gpu=self.gpu, signal_path=path, trigger=self._trigger,
                       auto_wrap=self._auto_wrap, handle_signals=self._handle_signals,
                       **self._poll)
        if self.mode == "apply":
            s = self.schedule
            rt.install([e.start_kernel for e in s.entries], [e.freq_mhz for e in s.entries],
                       hashes, s.num_kernels)
        rt.start()
        self._rt = rt
        _LIVE.add(self)
        try:
            if self._want_watchdog():
                exe = native_dir() / "gearshift-watchdog"
                if not exe.exists():
                    raise NativeUnavailableError(
                        f"the watchdog helper is missing ({exe})",
                        "reinstall gearshift from source, or pass watchdog=False")
                rt.arm_watchdog(str(exe), self.backend.name, [self.gpu], self._watchdog_log)
            if self._use_cupti:
                sub = rt.subscribe()
                self.cupti_active = sub.active
                self.cupti_error = sub.error
                if not self.cupti_active:
                    self._warn_cupti_once(sub)
            rt.set_mode(self.mode)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Hook off, clocks reset, watchdog disarmed. Safe to call more than once."""
        rt, self._rt = self._rt, None
        if rt is None:
            return
        _LIVE.discard(self)
        try:
            self._final_rt = rt
            self._check_mismatch(rt)
        finally:
            rt.stop()

    # ---------------------------------------------------------------- during training
    def step(self) -> None:
        """A training iteration begins (record mode numbers launches from 0 again)."""
        rt = self._require()
        rt.begin_iteration()
        self._check_mismatch(rt)

    def mark(self, partition: int, stream: int | None = None) -> bool:
        """Fallback marker: partition ``partition`` starts now on ``stream`` (default: torch's
        current stream). Ignored (returns False) while the CUPTI hook is counting launches."""
        rt = self._require()
        if self.cupti_active:
            return False
        if stream is None:
            stream = _current_torch_stream()
        rt.mark(int(partition), int(stream))
        if int(partition) == 0:
            self._check_mismatch(rt)
        return True

    def sync(self) -> None:
        """Fake signal paths: run the fake device until it reached every posted boundary, so
        the controller has acted on each ``mark`` (the clock is then that partition's). A real
        GPU's stream reaches its boundaries by itself: nothing to do there."""
        rt = self._require()
        if self.signal_path.startswith("fake"):
            rt.run_fake_device()

    def replay(self, trace, iterations: int = 1, *, api: str = "runtime",
               default_kernel_s: float = 10e-6, step: bool = False,
               events: bool = True) -> list[SwitchEvent]:
        """Play ``trace``'s launches through the fake CUPTI callbacks on the fake device and return
        the switch events this produced (with launch ordinals and device times; none with
        ``events=False``, for callers that replay a step piecewise and read them once)."""
        rt = self._require()
        if not self.cupti_active:
            raise ConfigError("replay needs the (fake) CUPTI hook, which is not subscribed "
                              f"({self.cupti_error or 'use_cupti=False'})",
                              "create the session with use_cupti=True on a fake signal path")
        kernels = [(k.name, int(k.stream), k.grid, k.block,
                    int(round((k.duration_s if k.duration_s is not None else default_kernel_s) * 1e9)),
                    api) for k in trace.kernels]
        before = len(rt.switch_events()) if events else 0
        if step:
            rt.begin_iteration()
        rt.replay(kernels, iterations, step)
        self._check_mismatch(rt)
        return self.switch_events(before) if events else []

    # ---------------------------------------------------------------- results
    def switch_event_count(self) -> int:
        rt = self._rt or getattr(self, "_final_rt", None)
        return 0 if rt is None else len(rt.switch_events())

    def switch_events(self, start: int = 0) -> list[SwitchEvent]:
        """The controller's switch events from the ``start``-th on (a long session holds many:
        callers that poll pass how many they have seen)."""
        rt = self._rt or getattr(self, "_final_rt", None)
        if rt is None:
            return []
        out = []
        fake = self._fake_device()
        for e in rt.switch_events()[start:]:
            dev = e.device_ns / 1e9 if fake and e.detect_ns else None
            out.append(SwitchEvent(e.partition, e.ordinal, e.iteration, e.freq_mhz, e.action,
                                   dev, e.signal_ns, e.detect_ns, e.call_ns, e.done_ns))
        return out

    def clock_events(self) -> list:
        """The backend's own log of ClockEvent (dry-run: steady-clock t_ns; sim: device t_ns)."""
        if self.backend is None or not hasattr(self.backend, "events"):
            return []
        return list(self.backend.events())

    def records(self, iteration: int = -1) -> list:
        """Record mode's launches (native LaunchRecord: ordinal, name, stream, grid, block,
        timestamp_ns); ``iteration=-1``: all."""
        rt = self._rt or getattr(self, "_final_rt", None)
        return [] if rt is None else list(rt.records(iteration))

    def to_trace(self, iteration: int = 0, model: str = "", device: str = ""):
        """Record mode: one iteration's launches as a KernelTrace (source 'cupti')."""
        recs = [dict(r.to_dict(), grid=list(r.grid), block=list(r.block))
                for r in self.records(iteration)]
        from ..trace.cupti import from_cupti_records  # noqa: PLC0415

        return from_cupti_records(recs, model=model, device=device)

    def stats(self) -> dict:
        rt = self._rt or getattr(self, "_final_rt", None)
        return {} if rt is None else rt.stats().to_dict()

    @property
    def mismatch_reason(self) -> str | None:
        rt = self._rt or getattr(self, "_final_rt", None)
        return None if rt is None else rt.mismatch_reason

    @property
    def clock_refusals(self) -> int:
        """Clock requests the backend refused (another process holds the GPU's clocks through
        the daemon, no permission, ...): while this is above 0 the schedule is not enforced."""
        rt = self._rt or getattr(self, "_final_rt", None)
        return 0 if rt is None else rt.stats().clock_refusals

    @property
    def clock_refusal_reason(self) -> str | None:
        """Why the backend refused the last clock request, while any was refused."""
        rt = self._rt or getattr(self, "_final_rt", None)
        return rt.last_error if rt is not None and rt.stats().clock_refusals else None

    @property
    def current_mhz(self) -> int:
        """The clock the controller last set (0 = the driver's default)."""
        return self._require().current_mhz

    # ---------------------------------------------------------------- internals
    def _require(self):
        if self._rt is None:
            raise ConfigError("the session is not running", "use it inside `with Session(...)`")
        return self._rt

    def _clock_backend(self, C):
        from ..devices.base import Device  # noqa: PLC0415

        b = self._backend_source
        if isinstance(b, Device):
            b = b.clock_backend()
        if not isinstance(b, C.ClockBackend):
            raise ConfigError(f"Session's backend {type(b).__name__} is not a clock backend",
                              "pass a device from gearshift.devices.open_device(...) or a "
                              "native ClockBackend (gearshift.runtime.make_backend)")
        return b

    def _fake_device(self) -> bool:
        """A fake signal path (or the sim backend): events carry the fake device's time."""
        return self._is_sim() or self.signal_path.startswith("fake")

    def _is_sim(self) -> bool:
        return self.backend is not None and self.backend.name == "sim"

    def _want_watchdog(self) -> bool:
        if self._watchdog is not None:
            return bool(self._watchdog)
        return self.backend.name in ("nvml", "dry-run")

    def _default_signal_path(self, library_status) -> str:
        if self.backend.name in ("nvml", "dry-run") and library_status("cuda")["loaded"]:
            return "cuda"
        return "fake-lockstep"

    def _expected_hashes(self, C) -> list[int]:
        if self.trace is None:
            return []
        from ..model.trace import sequence_signature  # noqa: PLC0415

        s, names = self.schedule, self.trace.names()
        if len(names) != s.num_kernels or self.trace.signature() != s.model_signature:
            raise ScheduleMismatchError(
                f"the schedule was made for another model (schedule: {s.num_kernels} kernels, "
                f"signature {s.model_signature}; trace: {len(names)} kernels, signature "
                f"{self.trace.signature()})",
                "pass the trace the schedule was planned from, or re-plan for this model")
        ends = [e.start_kernel for e in s.entries[1:]] + [s.num_kernels]
        hashes = []
        for e, end in zip(s.entries, ends):
            part = names[e.start_kernel:end]
            if e.signature and e.signature != sequence_signature(part):
                raise FormatError(None, f"entries[{e.partition}].signature",
                                  f"{e.signature} does not match the trace's kernels "
                                  f"{e.start_kernel}..{end - 1} ({sequence_signature(part)})",
                                  "re-plan from this trace")
            hashes.append(int(C.partition_hash(part)))
        return hashes

    def _warn_cupti_once(self, sub: dict) -> None:
        global _CUPTI_WARNED
        if _CUPTI_WARNED:
            return
        _CUPTI_WARNED = True
        from .._native import library_status  # noqa: PLC0415

        cuda = library_status("cuda")
        why = sub.error if cuda["loaded"] else f"{sub.error}; libcuda: {cuda['error']}"
        warnings.warn(f"gearshift: the CUPTI launch hook is unavailable ({why}); falling "
                      "back to explicit markers at module boundaries (Session.mark / "
                      "install_module_markers)", RuntimeWarning, stacklevel=3)

    def _check_mismatch(self, rt) -> None:
        stats = rt.stats()
        if stats.clock_refusals and not self._refusal_warned:
            self._refusal_warned = True
            warnings.warn(f"gearshift: the clock backend refused a clock request "
                          f"({rt.last_error or 'no reason given'}); the schedule is not being "
                          "enforced and the GPU runs at the clocks someone else set. Refusals "
                          "are counted in status()['clock_refusals'].", RuntimeWarning,
                          stacklevel=3)
            log.warning("clock request refused: %s", rt.last_error)
        if not self._dropped_warned and self.mode == "apply" and stats.dropped_posts:
            self._dropped_warned = True
            why = rt.signal_unavailable_reason or "the stream write was refused"
            warnings.warn(f"gearshift: boundary signals could not be enqueued ({why}); clocks "
                          "are not being switched at those boundaries", RuntimeWarning,
                          stacklevel=3)
        reason = rt.mismatch_reason
        if reason and not self._mismatch_warned:
            self._mismatch_warned = True
            warnings.warn(f"gearshift: the schedule no longer matches what runs ({reason}); "
                          "clock switching stopped and clocks were restored to defaults. "
                          "Re-trace and re-plan if the model or its shapes changed.",
                          RuntimeWarning, stacklevel=3)
            log.warning("schedule mismatch: %s", reason)


def _current_torch_stream() -> int:
    import sys  # noqa: PLC0415

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return int(torch.cuda.current_stream().cuda_stream)
    return 0
