"""`gearshift bench switch` prints its figures, ending with the latency line."""

import re

from gearshift.cli import main


def test_bench_switch_quick_prints_figures(capsys):
    try:
        main(["bench", "switch", "--quick"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("# CPU fakes")
    assert any(line.startswith("hook_cost_ns_per_launch off=") for line in lines)
    assert sum(line.startswith("controller_cost_per_switch") for line in lines) == 2
    assert any("trigger=host_func" in line for line in lines)
    assert re.fullmatch(r"median_us=\d+\.\d+ p99_us=\d+\.\d+", lines[-1])
    med, p99 = (float(x.split("=")[1]) for x in lines[-1].split())
    assert 0 < med <= p99
