"""`gearshift plan` (one GPU): baselines (a)-(d) side by side, and GP/EHVI sampling of the
options with the fraction measured and the hypervolume reached per partition (issue #13)."""

from __future__ import annotations

import pytest

from gearshift.cli import main
from gearshift.model import Profile


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("planb")
    main(["trace", "--model", "llama-tiny-tp2", "-o", str(d / "a.json")])
    main(["trace", "--model", "llama-tiny-tp2", "--nanobatches", "2", "-o", str(d / "b.json")])
    main(["partition", str(d / "b.json"), "-o", str(d / "p.json"), "--min-partition-ms", "0",
          "--show", "0"])
    main(["profile", str(d / "b.json"), str(d / "p.json"), "-o", str(d / "prof.json"),
          "--preset", "a100-sxm", "--min-freq", "900", "--freq-step", "30", "--quiet"])
    return d


def test_plan_prints_the_baselines_side_by_side(files, capsys):
    d = files
    main(["plan", "--profile", str(d / "prof.json"), "--partitioning", str(d / "p.json"),
          "--trace", str(d / "b.json"), "--baselines-trace", str(d / "a.json"),
          "--preset", "a100-sxm", "--select", "fastest", "--schedule-out", str(d / "s.json")])
    out = capsys.readouterr().out
    for tag in ("(a) Megatron default", "(a+)", "(b) 2 nanobatches", "(c) (b) + per-instruction",
                "(d) gearshift", "less energy at iso-time", "less time at iso-energy"):
        assert tag in out
    assert out.count("(SIMULATED)") == 3


def test_plan_samples_measured_options(files, capsys, tmp_path):
    d = files
    prof = Profile.load(d / "prof.json")
    prof.source = "measured"              # as if each option cost a real measurement
    prof.save(tmp_path / "measured.json")
    main(["plan", "--profile", str(tmp_path / "measured.json"), "--partitioning",
          str(d / "p.json"), "--frontier-out", str(tmp_path / "f.json")])
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("partition ")]
    assert len(rows) == prof.num_partitions
    import json

    meta = json.loads((tmp_path / "f.json").read_text())["meta"]["sampling"]
    for r in meta:
        assert r["measured"] <= max(2, int(0.15 * r["options"] + 1e-9))
        assert 0.0 < r["hv_frac"] <= 1.0 + 1e-9
        assert r["predicted"] >= 0 and r["pred_err_max"] < 0.05
    sel = json.loads((tmp_path / "f.json").read_text())["meta"]["sampling_selected"]
    assert sel["claimed_energy_j"] == pytest.approx(sel["profile_energy_j"], rel=0.02)
    assert sel["claimed_time_s"] == pytest.approx(sel["profile_time_s"], rel=0.02)
    assert "selected plan:" in out and "predicted points" in out
    measured = sum(r["measured"] for r in meta) / sum(r["options"] for r in meta)
    assert measured < 0.2
    # a simulated profile is searched exhaustively unless asked
    main(["plan", "--profile", str(d / "prof.json"), "--partitioning", str(d / "p.json"),
          "--frontier-out", str(tmp_path / "g.json")])
    assert "measured" not in capsys.readouterr().out.split("frontier of")[0]
