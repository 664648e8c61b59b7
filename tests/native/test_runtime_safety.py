"""Clocks come back on every exit path: SIGTERM (default action and chained handler), SIGINT
(KeyboardInterrupt), and SIGKILL of the trainer (the watchdog helper resets)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PRELUDE = textwrap.dedent("""
    import os, signal, sys, time
    from gearshift.model import KernelRecord, KernelTrace, Partitioning
    from gearshift.model.schedule import Schedule, ScheduleEntry
    from gearshift.runtime import Session, make_backend
    trace = KernelTrace([KernelRecord(name=f"k{i}", duration_s=1e-6) for i in range(8)])
    parts = Partitioning.from_cuts(trace, [0, 4])
    sched = Schedule([ScheduleEntry(0, 0, 1500), ScheduleEntry(1, 4, 1005)],
                     trace.signature(), "sim", 8)
    LOG = sys.argv[1]
""")


def run_child(body: str, log_path, **kw):
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", code, str(log_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


# Generous deadlines for what only has to happen eventually (a child starting, the watchdog
# noticing its trainer died): a process at nice 19 on a loaded 2-core machine can wait seconds
# for a core. Passing runs return as soon as it happened.
SLOW_S = 120.0


def wait_for(path, needle, timeout_s=SLOW_S):
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        if os.path.exists(path):
            text = open(path).read()
            if needle in text:
                return text
        time.sleep(0.02)
    return text


def test_sigterm_with_python_handler_resets_then_chains(tmp_path):
    p = run_child("""
        got = []
        signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
        with Session(sched, backend=make_backend("dry-run", supported_mhz=[1500, 1005]),
                     signal_path="fake-lockstep", watchdog=False) as s:
            s.replay(trace)
            before = s.current_mhz
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            ev = s.clock_events()
            print(before, got, ev[-1].reset, s._rt.disabled)
    """, tmp_path / "unused.log")
    out, err = p.communicate(timeout=SLOW_S)
    assert p.returncode == 0, err
    assert out.split() == ["1005", "[15]", "True", "True"]


def test_sigterm_default_action_still_kills_after_reset_and_watchdog_sees_it(tmp_path):
    log = tmp_path / "wd.log"
    p = run_child("""
        with Session(sched, backend=make_backend("dry-run", supported_mhz=[1500, 1005]),
                     signal_path="fake-lockstep", watchdog=True, watchdog_log=LOG) as s:
            s.replay(trace)
            print("ready", flush=True)
            time.sleep(30)
    """, log)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=SLOW_S)
    assert p.returncode == -signal.SIGTERM
    text = wait_for(log, "event=reset")
    assert "event=reset backend=dry-run gpu=0" in text


def test_sigint_raises_keyboardinterrupt_and_clocks_are_reset(tmp_path):
    # A shell's background jobs inherit SIGINT ignored, and Python then keeps it ignored: set
    # the interactive default so the test does not depend on how pytest was started.
    p = run_child("""
        signal.signal(signal.SIGINT, signal.default_int_handler)
        s = Session(sched, backend=make_backend("dry-run", supported_mhz=[1500, 1005]),
                    signal_path="fake-lockstep", watchdog=False)
        caught = False
        try:
            with s:
                s.replay(trace)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
        except KeyboardInterrupt:
            caught = True
        ev = s.clock_events()
        print(caught, [e.freq_mhz for e in ev if not e.reset], ev[-1].reset)
    """, tmp_path / "unused.log")
    out, err = p.communicate(timeout=SLOW_S)
    assert p.returncode == 0, err
    caught, rest = out.strip().split(" ", 1)
    assert rest == "[1500, 1005] True"
    assert caught == "True"


def test_ignored_sigint_stays_ignored_but_switching_stops(tmp_path):
    p = run_child("""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with Session(sched, backend=make_backend("dry-run", supported_mhz=[1500, 1005]),
                     signal_path="fake-lockstep", watchdog=False) as s:
            s.replay(trace)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            ev = s.clock_events()
            print(s._rt.disabled, ev[-1].reset)
    """, tmp_path / "unused.log")
    out, err = p.communicate(timeout=SLOW_S)
    assert p.returncode == 0, err
    assert out.split() == ["True", "True"]


def test_sigkill_of_the_trainer_is_caught_by_the_watchdog(tmp_path):
    log = tmp_path / "wd.log"
    p = run_child("""
        with Session(sched, backend=make_backend("dry-run", supported_mhz=[1500, 1005]),
                     signal_path="fake-lockstep", watchdog_log=LOG) as s:
            s.replay(trace)
            print("ready", s._rt.watchdog_pid, flush=True)
            time.sleep(30)
    """, log)
    line = p.stdout.readline().split()
    assert line[0] == "ready" and int(line[1]) > 0
    assert "event=armed" in wait_for(log, "event=armed")
    p.kill()
    p.wait(timeout=SLOW_S)
    text = wait_for(log, "event=reset")
    assert "event=reset backend=dry-run gpu=0 result=logged" in text
    assert "disarmed" not in text


def test_normal_exit_disarms_the_watchdog(tmp_path):
    log = tmp_path / "wd.log"
    p = run_child("""
        with Session(sched, backend=make_backend("dry-run", supported_mhz=[1500, 1005]),
                     signal_path="fake-lockstep", watchdog_log=LOG) as s:
            s.replay(trace)
    """, log)
    out, err = p.communicate(timeout=SLOW_S)
    assert p.returncode == 0, err
    text = wait_for(log, "event=disarmed")
    assert "event=disarmed" in text and "event=reset" not in text


@pytest.mark.parametrize("exc", ["SystemExit(3)", "RuntimeError('boom')"])
def test_session_left_open_is_reset_at_process_exit(exc):
    # Registered before gearshift is imported, so it runs after gearshift's own atexit stop.
    code = textwrap.dedent("""
        import atexit
        state = {}
        def report():
            b = state["s"].backend
            print("final", b.current_mhz(0), b.events()[-1].reset, flush=True)
        atexit.register(report)
    """) + PRELUDE + textwrap.dedent(f"""
        s = Session(sched, backend=make_backend("sim", supported_mhz=[1500, 1005]))
        state["s"] = s
        s.start()
        s.replay(trace)
        assert s.backend.current_mhz(0) == 1005
        raise {exc}
    """)
    p = subprocess.run([sys.executable, "-c", code, "unused"], capture_output=True, text=True,
                       timeout=SLOW_S)
    assert p.returncode != 0
    assert p.stdout.split() == ["final", "1500", "True"], p.stderr  # reset: back to the top clock
