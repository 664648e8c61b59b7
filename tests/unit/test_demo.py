"""`gearshift demo` end to end on a tiny GPT preset, plus the stage subcommands it chains."""

import json

import pytest

for mod in ("torch", "gearshift.trace", "gearshift.partition", "gearshift.search.iteration"):
    pytest.importorskip(mod)

from gearshift.cli import main  # noqa: E402
from gearshift.report import RunSummary  # noqa: E402


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    main(["demo", "--model", "gpt-tiny-tp2", "--iterations", "2", "--out", str(out), "--quiet"])
    return out


def test_demo_writes_every_stage_and_the_plot(demo_dir):
    for name in ("trace", "partitioning", "profile", "frontier", "schedule", "run"):
        data = json.loads((demo_dir / f"{name}.json").read_text())
        assert data["format"].startswith("gearshift.")
    png = (demo_dir / "frontier.png").read_bytes()
    assert png[:4] == b"\x89PNG"
    run = RunSummary.load(demo_dir / "run.json")
    assert run.source == "simulated" and run.baseline is not None
    assert run.gearshift.iterations == 2


def test_demo_output_is_labelled_simulated(tmp_path, capsys):
    main(["demo", "--model", "gpt-tiny-tp2", "--iterations", "1", "--out", str(tmp_path),
          "--quiet"])
    out = capsys.readouterr().out
    assert "SIMULATED" in out and "all-max baseline" in out
    assert f"plot: {tmp_path / 'frontier.png'}" in out
    # the baselines side by side, each labelled, and gearshift's savings against them
    for tag in ("(a) Megatron default", "(b) 2 nanobatches", "(c) (b) + per-instruction",
                "(d) gearshift"):
        assert tag in out
    assert out.count("(SIMULATED)") >= 3


def test_demo_baselines_are_honest(demo_dir):
    """(a) is Megatron's default and gearshift never reports beating it by weakening it: the
    chosen schedule re-run on the simulator is within its plan, and the run's baseline is (a)
    re-simulated from a fresh device."""
    from gearshift.devices.sim import SimDevice
    from gearshift.model import KernelTrace
    from gearshift.trace import trace_preset

    run = RunSummary.load(demo_dir / "run.json")
    assert "Megatron default" in run.meta["baseline"]
    a = SimDevice("a100-sxm").run_iteration(trace_preset("gpt-tiny-tp2"), advance=False)
    assert run.baseline.time_s == pytest.approx(a.time_s, rel=1e-6)
    assert run.baseline.energy_j == pytest.approx(a.energy_j, rel=1e-6)
    # the schedule records the nanobatch split of the trace it was planned on
    sched = json.loads((demo_dir / "schedule.json").read_text())
    trace = KernelTrace.load(demo_dir / "trace.json")
    assert sched["nanobatches"] == trace.nanobatches


def test_stage_commands_chain_from_files(demo_dir, tmp_path, capsys):
    main(["profile", str(demo_dir / "trace.json"), str(demo_dir / "partitioning.json"),
          "-o", str(tmp_path / "p.json"), "--freq-step", "120", "--quiet",
          "--preset", "a100-sxm"])
    main(["run", str(demo_dir / "schedule.json"), "--trace", str(demo_dir / "trace.json"),
          "--frontier", str(demo_dir / "frontier.json"), "-n", "2", "--quiet",
          "--preset", "a100-sxm", "-o", str(tmp_path / "run.json")])
    out = capsys.readouterr().out
    assert "SIMULATED" in out and "change" in out
    assert RunSummary.load(tmp_path / "run.json").gearshift.iterations == 2


def test_schedule_for_another_device_is_a_clean_error(demo_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", str(demo_dir / "schedule.json"), "--trace", str(demo_dir / "trace.json"),
              "--preset", "h100-sxm", "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "another device" in err and "fix:" in err and "Traceback" not in err


def test_demo_rejects_a_bad_objective(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--objective", "fastest-please", "--quiet"])
    assert exc.value.code == 2
    assert "max-slowdown=X" in capsys.readouterr().err


def test_default_demo_runs_end_to_end(tmp_path):
    """The README's main job (llama-3.2-3b-tp8 on the simulated A100) with its defaults: the
    plan it keeps may be the nanobatched one, and its frontier must then belong to that plan
    (report refuses a frontier of another model signature)."""
    import json

    main(["demo", "--iterations", "1", "--out", str(tmp_path), "--quiet"])
    frontier = json.loads((tmp_path / "frontier.json").read_text())
    schedule = json.loads((tmp_path / "schedule.json").read_text())
    assert (tmp_path / "frontier.png").stat().st_size > 0
    sig = frontier.get("meta", {}).get("model_signature")
    assert sig is None or sig == schedule.get("model_signature")
