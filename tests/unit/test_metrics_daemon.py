"""The daemon's metrics endpoint, scraped over loopback while a client holds a clock."""

from __future__ import annotations

import re
import time

from test_daemon import Daemon, hold_process
from test_metrics import sample, scrape


def test_daemon_metrics_endpoint():
    d = Daemon(backend="sim", extra=["--metrics-port", "0"])
    try:
        m = re.search(r"metrics at (http://127\.0\.0\.1:\d+/metrics)", d.stderr.read_text())
        assert m, d.stderr.read_text()
        url = m.group(1)
        text = scrape(url)
        assert sample(text, "gearshift_clock_switches_total", gpu=0) == 0
        assert sample(text, "gearshift_clock_held", gpu=0) == 0
        p = hold_process(d, 1410)
        text = scrape(url)
        assert sample(text, "gearshift_sm_clock_mhz", gpu=0) == 1410
        assert sample(text, "gearshift_clock_switches_total", gpu=0) == 1
        assert sample(text, "gearshift_clock_held", gpu=0) == 1
        p.kill()
        p.wait()
        d.wait_event(r"reset gpu=0 reason=disconnect")
        end = time.monotonic() + 60  # generous: the scrape thread may wait for a core
        while sample(scrape(url), "gearshift_clock_held", gpu=0) != 0:
            assert time.monotonic() < end
            time.sleep(0.05)
        assert sample(scrape(url), "gearshift_clock_resets_total", gpu=0) == 1
    finally:
        d.close()
