"""`gearshift trace` and `gearshift partition` from the command line."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from gearshift.cli import main  # noqa: E402
from gearshift.model import KernelTrace, Partitioning  # noqa: E402


def test_trace_then_partition(tmp_path, capsys):
    main(["trace", "--model", "gpt-tiny-tp2", "--batch", "1", "--out", str(tmp_path / "t.json")])
    out = capsys.readouterr().out
    t = KernelTrace.load(tmp_path / "t.json")
    assert f"{len(t)} kernels" in out and "FLOP" in out and "all_gather" in out
    assert t.meta["config"]["batch"] == 1
    main(["partition", str(tmp_path / "t.json"), "--out", str(tmp_path / "p.json"),
          "--min-partition-ms", "0", "--show", "0"])
    out = capsys.readouterr().out
    p = Partitioning.load(tmp_path / "p.json")
    p.check_trace(t)
    assert f"-> {len(p)} partitions" in out and "%" in out and "+all_gather" in out


def test_unknown_preset_lists_the_presets(capsys):
    with pytest.raises(SystemExit) as e:
        main(["trace", "--model", "gpt-9b"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown model preset 'gpt-9b'" in err and "gpt-1.3b" in err and "resnet50" in err
    with pytest.raises(SystemExit):
        main(["trace", "--model", "gpt-tiny", "--batch", "0"])
    assert "--batch 0 must be >= 1" in capsys.readouterr().err


def test_partition_of_a_missing_or_empty_trace(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["partition", str(tmp_path / "none.json")])
    assert e.value.code == 2 and "does not exist" in capsys.readouterr().err
    (tmp_path / "empty.json").write_text(
        '{"format": "gearshift.kernel_trace", "version": 1, "kernels": []}')
    with pytest.raises(SystemExit):
        main(["partition", str(tmp_path / "empty.json")])
    assert "the trace is empty" in capsys.readouterr().err


def test_list_presets(capsys):
    main(["trace", "--list"])
    assert "gpt-1.3b" in capsys.readouterr().out.split()


def test_partition_with_a_simulated_gpu(tmp_path, capsys):
    main(["trace", "--model", "gpt-tiny", "--out", str(tmp_path / "t.json")])
    capsys.readouterr()
    main(["partition", str(tmp_path / "t.json"), "--preset", "a40", "--out", str(tmp_path / "p.json")])
    assert "a40" in capsys.readouterr().out
    from gearshift.devices.sim.presets import get_preset  # noqa: PLC0415

    assert Partitioning.load(tmp_path / "p.json").min_partition_s == pytest.approx(
        2 * get_preset("a40").switch_latency_s)
