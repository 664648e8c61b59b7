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


def test_stage_commands_chain_from_files(demo_dir, tmp_path, capsys):
    main(["profile", str(demo_dir / "trace.json"), str(demo_dir / "partitioning.json"),
          "-o", str(tmp_path / "p.json"), "--freq-step", "120", "--quiet"])
    main(["run", str(demo_dir / "schedule.json"), "--trace", str(demo_dir / "trace.json"),
          "--frontier", str(demo_dir / "frontier.json"), "-n", "2", "--quiet",
          "-o", str(tmp_path / "run.json")])
    out = capsys.readouterr().out
    assert "SIMULATED" in out and "change" in out
    assert RunSummary.load(tmp_path / "run.json").gearshift.iterations == 2


def test_schedule_for_another_device_is_a_clean_error(demo_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", str(demo_dir / "schedule.json"), "--trace", str(demo_dir / "trace.json"),
              "--preset", "a100-sxm", "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "another device" in err and "fix:" in err and "Traceback" not in err


def test_demo_rejects_a_bad_objective(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--objective", "fastest-please", "--quiet"])
    assert exc.value.code == 2
    assert "max-slowdown=X" in capsys.readouterr().err
