"""`gearshift.compile(model, device="daemon:/path.sock")` on the in-loop path: record ->
profile -> plan -> enforce as on the fake GPU, every clock lock requested through a dry-run
daemon, time and energy from the fake GPU's boundary signals and energy counter."""

import re

import pytest

torch = pytest.importorskip("torch")

import gearshift  # noqa: E402
from test_fake_gpu import FAST, STATUS_KEYS, enforced_for, tiny_gpt, train  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_daemon_device_goes_through_every_phase_with_locks_through_the_daemon(monkeypatch):
    from test_daemon import Daemon

    monkeypatch.setenv("GEARSHIFT_FAKE_GPU", "h100-sxm")
    d = Daemon(backend="dry-run")
    try:
        g = gearshift.compile(tiny_gpt(), device=f"daemon:{d.socket}", **FAST)
        run = g.gearshift
        assert run.device.kind == "daemon" and run.online is not None
        losses = train(g, until=enforced_for(3))
        st = run.status()
        assert st["phase"] == "enforce", st["fallback_reason"]
        assert all(st["steps_by_phase"][p] >= 1 for p in ("record", "profile", "plan",
                                                          "enforce"))
        assert st["mode"] == "measured" and st["options_measured"] == st["options_total"]
        assert "nothing to overlap" in st["overlap_profile"]
        assert run.online.session.backend is run.device.clock_backend()  # one connection
        # the keys are the fake GPU's own
        f = gearshift.compile(tiny_gpt(), device="fake-gpu", **FAST)
        train(f, steps=2)
        assert set(st) == set(f.gearshift.status()) and STATUS_KEYS <= set(st)
        f.gearshift.close()
        # every profiled clock below the top one was locked by the daemon (dry-run: logged)
        locked = {int(m.group(1)) for e in d.events()
                  if (m := re.search(r"lock gpu=0 mhz=(\d+)", e))}
        assert set(run.online.search.candidates[1:]) <= locked, (locked, d.events()[-5:])
        assert len(losses) == sum(st["steps_by_phase"].values())
        run.close()
        d.wait_event(r"reset gpu=0")
    finally:
        d.close()
