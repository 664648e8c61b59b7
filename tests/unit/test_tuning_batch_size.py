import sqlite3

import numpy as np
import pytest

from gearshift.errors import ConfigError, FormatError
from gearshift.tuning.batch_size import BatchSizeOptimizer, StateMismatchError

ARMS = [16, 32, 64, 128, 256]
TRUE_COST = {16: 9.0, 32: 5.0, 64: 3.0, 128: 4.0, 256: 7.0}


def play(bso, n, rng, start=0):
    picks = []
    for r in range(start, start + n):
        b = bso.predict()
        bso.observe(b, TRUE_COST[b] * rng.lognormal(0, 0.1), True, r)
        picks.append(b)
    return picks


def test_explores_from_default_down_then_up_and_prunes_failures():
    bso = BatchSizeOptimizer("job", ARMS, 64, state_path=None)
    assert bso.predict() == 64
    bso.observe(64, 3.0, True, 0)
    assert bso.predict() == 32
    bso.observe(32, 5.0, False, 1)        # fails: smaller sizes are not tried
    assert bso.predict() == 128
    bso.observe(128, 4.0, True, 2)
    bso.observe(256, 7.0, True, 3)
    assert not bso.exploring
    assert bso.surviving_arms() == [64, 128, 256]
    assert {bso.predict() for _ in range(3)} <= {64, 128, 256}


def test_converges_to_cheapest_arm_and_is_seeded():
    a = play(BatchSizeOptimizer("job", ARMS, 64, None, seed=3), 40, np.random.default_rng(1))
    b = play(BatchSizeOptimizer("job", ARMS, 64, None, seed=3), 40, np.random.default_rng(1))
    assert a == b
    assert a[-10:].count(64) >= 8


def test_state_persists_across_processes(tmp_path):
    path = tmp_path / "state.sqlite"
    rng = np.random.default_rng(0)
    one = BatchSizeOptimizer("job", ARMS, 64, path, seed=1)
    first = play(one, 10, rng)
    one.close()
    two = BatchSizeOptimizer("job", ARMS, 64, path, seed=1)
    assert len(two.store.observations()) == 10 and not two.exploring
    # resuming gives exactly what an uninterrupted optimizer would have chosen
    ref = BatchSizeOptimizer("job", ARMS, 64, None, seed=1)
    rng2 = np.random.default_rng(0)
    assert play(ref, 10, rng2) == first
    assert play(two, 5, rng, 10) == play(ref, 5, rng2, 10)


def test_refuses_state_of_another_job(tmp_path):
    path = tmp_path / "state.sqlite"
    BatchSizeOptimizer("resnet-nightly", ARMS, 64, path).close()
    with pytest.raises(StateMismatchError) as err:
        BatchSizeOptimizer("bert-weekly", ARMS, 64, path)
    assert "resnet-nightly" in err.value.problem and "bert-weekly" in err.value.problem
    with pytest.raises(StateMismatchError, match="batch sizes"):
        BatchSizeOptimizer("resnet-nightly", ARMS[:3], 64, path)


def test_corrupt_state_and_bad_input(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(FormatError):
        BatchSizeOptimizer("job", ARMS, 64, bad)
    with pytest.raises(ConfigError, match="default batch size"):
        BatchSizeOptimizer("job", ARMS, 48, None)
    bso = BatchSizeOptimizer("job", ARMS, 64, None)
    with pytest.raises(ConfigError):
        bso.observe(48, 1.0, True, 0)
    with pytest.raises(ConfigError):
        bso.observe(64, float("inf"), True, 0)


def test_regret_on_zeus_trace_shrinks(shared_data):
    from gearshift.tuning.replay.recurrence import simulate

    res = simulate(shared_data, "imagenet/resnet50", "v100", eta=0.5, recurrences=30, seed=0)
    assert len(res.costs) == 30
    early = np.mean(res.regret[:8])
    late = np.mean(res.regret[-8:])
    assert late < early
    assert abs(late) < 0.1 * res.best_fixed_cost    # within 10% of the best fixed arm at the end
    assert res.cumulative_regret[-1] == pytest.approx(sum(res.regret))


def test_cli_batch_size(shared_data, tmp_path):
    from click.testing import CliRunner

    from gearshift.cli import cli

    res = CliRunner().invoke(cli, ["tune", "batch-size", "--data", str(shared_data),
                                   "--workload", "squad/bert_base_uncased", "--recurrences",
                                   "12", "--seeds", "1", "--state", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "squad/bert_base_uncased" in res.output
    assert list(tmp_path.glob("*.sqlite"))
    sqlite3.connect(next(tmp_path.glob("*.sqlite"))).execute("SELECT * FROM observation")


def test_cli_next_and_observe_round_trip(tmp_path, capsys):
    from gearshift.cli import main

    common = ["--job", "nightly", "--batch-sizes", "32,64,128", "--default", "64",
              "--state", str(tmp_path / "s.sqlite")]
    main(["tune", "next-batch-size", *common])
    assert capsys.readouterr().out.strip() == "64"
    main(["tune", "observe-batch-size", *common, "--batch-size", "64", "--cost", "100"])
    main(["tune", "next-batch-size", *common])
    assert capsys.readouterr().out.strip().splitlines()[-1] == "32"
    with pytest.raises(SystemExit) as ex:
        main(["tune", "next-batch-size", "--job", "other", *common[2:]])
    err = capsys.readouterr().err
    assert ex.value.code == 2 and "'nightly'" in err and "'other'" in err
