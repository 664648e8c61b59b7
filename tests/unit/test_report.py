"""Frontier plot, savings table, run summaries, and `gearshift report`."""

import pytest

from gearshift.cli import main
from gearshift.model import Choice, Frontier, FrontierPoint, Schedule, ScheduleEntry
from gearshift.report import RunPoint, RunSummary, markers_for, report, savings_rows
from gearshift.report.table import format_table


def frontier():
    pts = [FrontierPoint(1.0 + i * 0.1, 100.0 - 8 * i + 0.5 * i * i,
                         [Choice("p0", 1980 - 60 * i)]) for i in range(6)]
    base = FrontierPoint(1.0, 105.0, [Choice("p0", 1980)])
    return Frontier(pts, baseline=base, meta={"selected_index": 0})


def schedule(objective="iso-time", t=1.0, e=100.0):
    return Schedule([ScheduleEntry(0, 0, 1980)], "sig", "Fake GPU", 10, objective,
                    {"time_s": t, "energy_j": e, "baseline_time_s": 1.0,
                     "baseline_energy_j": 105.0, "objective_arg": None})


def test_savings_rows_compute_the_change():
    rows = savings_rows(2.0, 100.0, 2.1, 90.0)
    assert rows[3][1] == "+5.00 %" and rows[3][2] == "-10.00 %"
    assert savings_rows(1.0, 1.0, 1.0, 1.0)[3][1] == "+0.00 %"     # never "-0.00 %"
    text = format_table(rows, "title")
    assert text.splitlines()[0] == "title" and "all-max baseline" in text


def test_run_summary_round_trips(tmp_path):
    s = RunSummary("Fake GPU (simulated)", "simulated", "gpu", RunPoint(1.02, 95.0, 5),
                   RunPoint(1.0, 105.0, 5), "iso-time", {"clock_switches_per_iteration": 3})
    s.save(tmp_path / "run.json")
    again = RunSummary.load(tmp_path / "run.json")
    assert again == s
    assert again.energy_saving() == pytest.approx(1 - 95 / 105)
    assert again.slowdown() == pytest.approx(1.02)


def test_markers_and_plot(tmp_path):
    fr = frontier()
    run = RunSummary("Fake GPU", "simulated", "gpu", RunPoint(1.05, 99.0, 3), RunPoint(1.0, 105, 3))
    labels = [m.label for m in markers_for(fr, schedule(), run)]
    assert labels[0].startswith("all-max baseline") and any("planned" in x for x in labels)
    assert any("as run" in x for x in labels)
    assert not any("default schedule" in x for x in labels)        # chosen is the default
    other = markers_for(fr, schedule("max-slowdown", 1.3, 80.0))
    dflt = [m for m in other if m.label.startswith("default schedule")]
    assert len(dflt) == 1 and dflt[0].time_s <= 1.0 + 1e-9          # iso-time: at the baseline time
    png, table = report(fr, tmp_path / "plot.png", schedule(), run)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert "as run" in table and "planned" in table and "-4.76 %" in table


def test_cli_report(tmp_path, capsys):
    fr = frontier()
    fr.save(tmp_path / "f.json")
    schedule().save(tmp_path / "s.json")
    main(["report", str(tmp_path / "f.json"), "--schedule", str(tmp_path / "s.json"),
          "-o", str(tmp_path / "out.png")])
    out = capsys.readouterr().out
    assert "plot:" in out and (tmp_path / "out.png").exists()
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "f.json"), "-o", str(tmp_path / "out.jpg")])
    assert exc.value.code == 2
    assert "not a .png" in capsys.readouterr().err
