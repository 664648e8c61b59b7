"""Seeded fuzzing of every file kind gearshift reads and of the CLI's options (issue #18).

Each case feeds one malformed input to a reader (in process) or to the `gearshift` command
(through its own ``main``, in process). A case passes when the input is either accepted or
refused with a gearshift error (one clear line, exit status 2 from the CLI) within its time
limit. A case fails on any other exception (a raw traceback), on a hang, and when a non-finite,
out-of-range or boolean value put where a number belongs is accepted. The generator is seeded:
a failure names its case, and re-running reproduces it.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import signal
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from gearshift.errors import GearshiftError

SEED = 18
CASES_PER_JSON_KIND = 200
CASES_PER_CSV_KIND = 110
CASE_TIMEOUT_S = 10

# Values planted into a parsed file. A literal string "@NAME" is written into the JSON text
# as NAME itself, for what json.dumps cannot or will not write.
LITERALS = {
    "@NaN": "NaN", "@Infinity": "Infinity", "@-Infinity": "-Infinity", "@1e400": "1e400",
    "@-1e400": "-1e400", "@digits5000": "9" * 5000, "@-digits5000": "-" + "8" * 5000,
}
# must never be accepted where a number belongs
BAD_NUMBERS: list[Any] = [*LITERALS, 1e308, -1e308, 1e300, 2**63, -(2**63), 10**25, True, False]
OTHER_VALUES: list[Any] = [None, "", "x", "1980", -1, 0, 1, 0.5, -0.0, 10**12, 2**31, [], {},
                           [[[[[[1]]]]]], "\x00\x01", "é" * 3, [1, 2, 3], {"a": 1}]
# free-form parts of a file: what they hold is carried along, never computed with
FREE_FORM = ("meta",)


def _dump(data: Any) -> str:
    text = json.dumps(data)
    for key, lit in LITERALS.items():
        text = text.replace(json.dumps(key), lit)
    return text


def _leaves(data: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append((path + (k,), v))
            out += _leaves(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.append((path + (i,), v))
            out += _leaves(v, path + (i,))
    return out


def _set(data: Any, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        data = data[k]
    data[path[-1]] = value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _must_refuse(kind: str, path: tuple, value: Any) -> bool:
    """A number-valued leaf (outside free-form parts) now holding a bad number."""
    if any(p in FREE_FORM for p in path if isinstance(p, str)):
        return False
    if kind == "schedule" and path[:1] == ("predicted",) and isinstance(value, bool):
        # only the figures reports compute with are typed; the rest is informational
        return path[1] in ("time_s", "energy_j", "baseline_time_s", "baseline_energy_j")
    if kind == "profile" and path[:2] == ("device", "supported_freqs_mhz") and len(path) == 2:
        return False
    return True


# --------------------------------------------------------------------------- seed files
def _seed_files(d: Path) -> dict[str, Path]:
    from gearshift.devices.sim import SimDevice
    from gearshift.integrations.config import GearshiftConfig
    from gearshift.model import KernelRecord, KernelTrace
    from gearshift.partition import partition
    from gearshift.profile import profile_partitions
    from gearshift.report import RunPoint, RunSummary
    from gearshift.search.iteration import plan_iteration

    ks = []
    for layer in range(2):
        for phase in ("forward", "backward"):
            ks += [KernelRecord("gemm", phase=phase, module=f"layers.{layer}.mlp", flops=4e12,
                                bytes_read=2e8, bytes_written=1e8, grid=(8, 1, 1),
                                block=(128, 1, 1), duration_s=1e-3, timestamp_s=0.5),
                   KernelRecord("allreduce", kind="comm", phase=phase, comm_op="all_reduce",
                                comm_bytes=1e8, module=f"layers.{layer}.mlp"),
                   KernelRecord("scan", phase=phase, module=f"layers.{layer}.attn", flops=1e9,
                                bytes_read=8e9, bytes_written=8e9)]
    trace = KernelTrace(ks, model="synthetic", source="synthetic")
    parts = partition(trace, min_partition_s=0)
    dev = SimDevice("h100-sxm")
    prof = profile_partitions(trace, parts, dev, step_mhz=240, progress=False)
    frontier, schedule = plan_iteration(prof, parts, trace.signature(), dev.facts.name)
    run = RunSummary(dev.facts.name, "simulated", "gpu", RunPoint(0.01, 5.0, 3),
                     RunPoint(0.011, 6.0, 3), "iso-time", {"note": 1})
    files = {k: d / f"{k}.json" for k in ("trace", "partitioning", "profile", "frontier",
                                           "schedule", "run", "config")}
    trace.save(files["trace"])
    parts.save(files["partitioning"])
    prof.save(files["profile"])
    frontier.save(files["frontier"])
    schedule.save(files["schedule"])
    run.save(files["run"])
    GearshiftConfig(objective="iso-time", device="sim", min_freq_mhz=900).save(files["config"])
    files["frontier_csv"] = d / "frontier.csv"
    frontier.save(files["frontier_csv"])
    files["stage_profile"] = d / "stage_profile.csv"
    rows = ["stage,instruction,frequency,time,energy"]
    for s in range(2):
        for name, t in (("forward", 1.0), ("backward", 2.0)):
            for f, x in ((1000, 1.0), (2000, 0.6)):
                rows.append(f"{s},{name},{f},{t * x * (1 + s / 2)},{t * x * 100}")
    files["stage_profile"].write_text("\n".join(rows) + "\n")
    files["pipeline_plan"] = d / "plan.csv"
    rows = ["stage,instruction,microbatch,freq_mhz"]
    for s in range(2):
        for name in ("forward", "backward"):
            for m in range(3):
                rows.append(f"{s},{name},{m},{2000 if m % 2 else 1000}")
    files["pipeline_plan"].write_text("\n".join(rows) + "\n")
    files["zeus_power"] = d / "power.csv"
    files["zeus_power"].write_text("time_s,power_w\n" + "".join(
        f"{i * 0.01},{200 + 100 * math.sin(i / 3)}\n" for i in range(200)))
    files["zeus_log"] = d / "zeus_log.csv"
    files["zeus_log"].write_text("window_name,elapsed_time,gpu0_energy,gpu1_energy\n"
                                 "__ProfileDataLoader_300000,1.5,300.0,310.0\n"
                                 "__ProfileDataLoader_250000,1.6,280.0,281.0\n")
    files["kernel_names"] = d / "kernels.txt"
    files["kernel_names"].write_text("\n".join(["a", "b", "c", "d"] * 6) + "\n")
    return files


def _readers() -> dict[str, Callable[[Path], Any]]:
    from gearshift.integrations.config import GearshiftConfig
    from gearshift.model import Frontier, KernelTrace, Partitioning, Profile, Schedule
    from gearshift.pipeline import PipelinePlan, load_stage_profile
    from gearshift.report import RunSummary
    from gearshift.tuning.replay.zeus_trace import load_profile_windows

    return {
        "trace": KernelTrace.load, "partitioning": Partitioning.load, "profile": Profile.load,
        "frontier": Frontier.load, "frontier_csv": Frontier.load, "schedule": Schedule.load,
        "run": RunSummary.load, "config": GearshiftConfig.load,
        "stage_profile": load_stage_profile, "pipeline_plan": PipelinePlan.load,
        "zeus_log": load_profile_windows,
    }


# --------------------------------------------------------------------------- cases
@dataclass
class Case:
    name: str
    kind: str
    content: bytes | None = None     # the malformed file (None: the seed file unchanged)
    must_refuse: bool = False
    argv: list[str] = field(default_factory=list)  # CLI cases


def _byte_cases(rng: random.Random, kind: str, seed: bytes) -> list[Case]:
    """Whole-file damage, the same for every kind."""
    cut = rng.randrange(1, max(2, len(seed)))
    flip = bytearray(seed)
    for _ in range(3):
        flip[rng.randrange(len(flip))] = rng.randrange(256)
    return [
        Case(f"{kind}/empty", kind, b""),
        Case(f"{kind}/binary", kind, bytes(rng.randrange(256) for _ in range(512))),
        Case(f"{kind}/nul", kind, seed[:cut] + b"\x00" + seed[cut:]),
        Case(f"{kind}/latin1", kind, seed + "é".encode("latin-1")),
        Case(f"{kind}/utf16", kind, seed.decode().encode("utf-16")),
        Case(f"{kind}/truncated", kind, seed[:cut]),
        Case(f"{kind}/bitflip", kind, bytes(flip)),
        Case(f"{kind}/nest", kind, b"[" * 100_000 + b"]" * 100_000),
        Case(f"{kind}/nest-obj", kind, b'{"a":' * 3000 + b"1" + b"}" * 3000),
        Case(f"{kind}/digits", kind, b"9" * 5000),
        Case(f"{kind}/png", kind, b"\x89PNG\r\n\x1a\n" + bytes(64)),
    ]


def json_cases(rng: random.Random, kind: str, path: Path) -> list[Case]:
    seed = json.loads(path.read_text())
    leaves = _leaves(seed)
    cases = _byte_cases(rng, kind, path.read_bytes())
    while len(cases) < CASES_PER_JSON_KIND:
        data = json.loads(path.read_text())
        where, old = rng.choice(leaves)
        op = rng.random()
        if op < 0.6 and _is_number(old):
            value = rng.choice(BAD_NUMBERS)
            refuse = _must_refuse(kind, where, value)
        elif op < 0.9:
            value, refuse = rng.choice(BAD_NUMBERS + OTHER_VALUES), False
        else:  # drop the key or element
            parent = data
            for k in where[:-1]:
                parent = parent[k]
            del parent[where[-1]]
            cases.append(Case(f"{kind}/del{list(where)}", kind, _dump(data).encode()))
            continue
        _set(data, where, value)
        label = value if not isinstance(value, str) or len(value) < 12 else value[:12]
        cases.append(Case(f"{kind}/{list(where)}={label!r}", kind, _dump(data).encode(), refuse))
    return cases


CSV_BAD = ["nan", "inf", "-inf", "1e400", "1e308", "-1e308", "9" * 5000, "true"]
CSV_OTHER = ["", "x", "-1", "0", "0.5", "1e-320", "10", "2000", '"', "1,2", "\x00", "é"]


def csv_cases(rng: random.Random, kind: str, path: Path) -> list[Case]:
    lines = path.read_text().splitlines()
    header, rows = lines[0].split(","), [ln.split(",") for ln in lines[1:]]
    numeric = [j for j, v in enumerate(rows[0]) if _float_or_none(v) is not None]
    cases = _byte_cases(rng, kind, path.read_bytes())
    cases.append(Case(f"{kind}/header-only", kind, (lines[0] + "\n").encode()))
    cases.append(Case(f"{kind}/long-field", kind,
                      (lines[0] + "\n" + "1" * 200_000 + "\n").encode()))
    while len(cases) < CASES_PER_CSV_KIND:
        new = [list(r) for r in rows]
        i, j = rng.randrange(len(new)), rng.randrange(len(header))
        if j in numeric and rng.random() < 0.6:
            value, refuse = rng.choice(CSV_BAD), True
        else:
            value, refuse = rng.choice(CSV_BAD + CSV_OTHER), False
        new[i][j] = value
        if rng.random() < 0.1:
            new[i] = new[i][: rng.randrange(len(new[i]))]  # a short row
            refuse = False
        text = "\n".join([lines[0]] + [",".join(r) for r in new]) + "\n"
        cases.append(Case(f"{kind}/row{i}.{header[j]}={value[:12]!r}", kind, text.encode(),
                          refuse))
    return cases


def _float_or_none(text: str):
    try:
        return float(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------- running
class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Outcome:
    failures: list[str] = field(default_factory=list)
    refused: int = 0
    accepted: int = 0

    def check(self, case: Case, fn: Callable[[], Any], cli: bool = False) -> None:
        """``fn`` reads the case's input: a reader (returns what it read) or, with ``cli``, the
        command (returns its exit status; a refusal is a non-zero status with a message)."""
        try:
            with time_limit(CASE_TIMEOUT_S):
                got = fn()
        except GearshiftError as exc:
            self.refused += 1
            if "\n  fix:" not in str(exc) and exc.fix:
                self.failures.append(f"{case.name}: error without its fix line: {exc!r}")
            return
        except Hang as exc:
            self.failures.append(f"{case.name}: HANG {exc}")
            return
        except Exception:  # noqa: BLE001 - what the fuzz test is looking for
            tb = traceback.format_exc(limit=-3)
            self.failures.append(f"{case.name}: raw traceback\n{tb}")
            return
        if cli and got != 0:
            self.refused += 1
        elif got is None or case.must_refuse:
            self.failures.append(f"{case.name}: accepted silently")
        else:
            self.accepted += 1


def run_cli(argv: list[str]) -> int:
    """`gearshift ARGV` in process; returns the exit status, raises what main lets escape."""
    from gearshift.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            if code not in (0, 1, 2, 130):  # click usage errors are 2, ours are 2
                raise AssertionError(f"exit status {exc.code!r}") from None
            if code and not err.getvalue().strip():
                raise AssertionError("non-zero exit without a message") from None
            if "Traceback" in err.getvalue():
                raise AssertionError("a traceback was printed:\n" + err.getvalue()) from None
            return code
    return 0


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return _seed_files(tmp_path_factory.mktemp("fuzz-seeds"))


def test_seed_files_are_valid(seeds):
    for kind, reader in _readers().items():
        reader(seeds[kind])  # the fuzz cases damage good files, not files that were bad already


def test_fuzz_file_readers(seeds, tmp_path):
    rng = random.Random(SEED)
    readers = _readers()
    outcome, total = Outcome(), 0
    for kind, reader in readers.items():
        gen = csv_cases if seeds[kind].suffix == ".csv" else json_cases
        for n, case in enumerate(gen(rng, kind, seeds[kind])):
            p = tmp_path / f"{kind}-{n}{seeds[kind].suffix}"
            p.write_bytes(case.content)
            outcome.check(case, lambda: reader(p))
            total += 1
    print(f"file readers: {total} malformed cases, {outcome.refused} refused, "
          f"{outcome.accepted} accepted, {len(outcome.failures)} failures")
    assert total >= 1600
    assert not outcome.failures, f"{len(outcome.failures)} of {total}:\n" + \
        "\n".join(outcome.failures[:30])


# --------------------------------------------------------------------------- the CLI
# (kind of the malformed file, the command reading it, with {x} the file and {k} a seed file)
CLI_FILE_COMMANDS = [
    ("trace", ["partition", "{x}", "-o", "{out}.json", "--show", "1"], 40),
    ("partitioning", ["plan", "--profile", "{profile}", "--partitioning", "{x}",
                      "--schedule-out", "{out}.json", "--quiet"], 30),
    ("profile", ["plan", "--profile", "{x}", "--partitioning", "{partitioning}",
                 "--schedule-out", "{out}.json", "--quiet"], 40),
    ("schedule", ["run", "{x}", "--trace", "{trace}", "-n", "1", "--no-baseline", "--quiet"], 40),
    ("frontier", ["run", "{schedule}", "--trace", "{trace}", "-n", "1", "--quiet",
                  "--frontier", "{x}"], 30),
    ("stage_profile", ["sim", "pipeline", "--stage-profile", "{x}", "--plan", "{pipeline_plan}",
                       "--stages", "2", "--microbatches", "3", "--blocking-power-w", "50"], 30),
    ("pipeline_plan", ["sim", "pipeline", "--stage-profile", "{stage_profile}", "--plan", "{x}",
                       "--stages", "2", "--microbatches", "3", "--blocking-power-w", "50"], 30),
    ("zeus_power", ["tune", "iterations", "--power", "{x}"], 25),
    ("kernel_names", ["tune", "iterations", "--kernels", "{x}"], 15),
]

OPTION_VALUES = ["inf", "-inf", "nan", "1e400", "1e308", "-1e308", "9" * 5000, "-1", "0",
                 "true", "", "abc", "1e-320", "2147483648", "1000000000", "1e15", "0x10", "1_0"]
NON_FINITE = {"inf", "-inf", "nan", "1e400", "1e308", "-1e308", "9" * 5000}

# (base command, option to vary); the base is a valid, quick command
CLI_OPTIONS = [
    (["partition", "{trace}", "-o", "{out}.json", "--show", "1"],
     ["--min-partition-ms", "--switch-latency-ms", "--show"]),
    (["plan", "--profile", "{profile}", "--partitioning", "{partitioning}", "--schedule-out",
      "{out}.json", "--quiet"], ["--points", "--passes", "--tolerance"]),
    (["plan", "--stage-profile", "{stage_profile}", "--stages", "2", "--microbatches", "3",
      "--blocking-power-w", "50", "--plan-out", "{out}.csv", "--quiet"],
     ["--microbatches", "--time-scale"]),  # each plan that runs takes ~0.5 s
    (["sim", "pipeline", "--stage-profile", "{stage_profile}", "--plan", "{pipeline_plan}",
      "--stages", "2", "--microbatches", "3", "--blocking-power-w", "50"],
     ["--stages", "--microbatches", "--blocking-power-w", "--p2p-s", "--time-scale",
      "--energy-scale", "--virtual-stages"]),
    (["run", "{schedule}", "--trace", "{trace}", "-n", "1", "--no-baseline", "--quiet"],
     ["-n"]),
    (["sim", "run", "--trace", "{trace}", "--freq", "1980"], ["--freq", "--switch-latency-ms"]),
    (["tune", "iterations", "--power", "{zeus_power}"], ["--min-period-s", "--max-period-s"]),
    (["tune", "observe-batch-size", "--job", "j", "--batch-sizes", "32,64", "--default", "32",
      "--state", "{out}.sqlite", "--batch-size", "32", "--cost", "5"],
     ["--cost", "--batch-size", "--default", "--seed"]),
    (["daemon", "--backend", "dry-run", "--socket", "/proc/no-such-dir/gearshift.sock"],
     ["--lease-s", "--metrics-port"]),
    (["clock", "--socket", "/proc/no-such-dir/gearshift.sock", "hold", "1410"], ["--gpu"]),
    (["trace", "--model", "gpt-125m", "-o", "{out}.json"], ["--batch", "--seq", "--layers"]),
    (["tune", "online", "--iterations", "20", "--drift-at", "10"],
     ["--iterations", "--drift-at", "--eta", "--seed"]),
]


def _fill(argv: list[str], seeds: dict[str, Path], out: Path, x: Path | None = None) -> list[str]:
    names = {k: str(v) for k, v in seeds.items()}
    return [a.format(x=x, out=out, **names) for a in argv]


def test_cli_bases_are_valid(seeds, tmp_path):
    for n, (base, _) in enumerate(CLI_OPTIONS):
        if base[0] in ("daemon", "clock", "trace"):
            # daemon/clock fail by design (no such socket) after checking their options;
            # tracing takes ~10 s, and every trace case below is refused before it starts
            continue
        argv = _fill(base, seeds, tmp_path / f"base{n}")
        assert run_cli(argv) == 0, argv


def test_fuzz_cli(seeds, tmp_path):
    rng = random.Random(SEED + 1)
    outcome, total = Outcome(), 0
    gens = {"zeus_power": csv_cases, "kernel_names": csv_cases}
    for kind, argv, count in CLI_FILE_COMMANDS:
        seed = seeds[kind]
        gen = gens.get(kind) or (csv_cases if seed.suffix == ".csv" else json_cases)
        cases = gen(rng, kind, seed)
        for n, case in enumerate(rng.sample(cases, min(count, len(cases)))):
            x = tmp_path / f"cli-{kind}-{n}{seed.suffix}"
            x.write_bytes(case.content)
            args = _fill(argv, seeds, tmp_path / f"out-{kind}-{n}", x)
            case.name = f"gearshift {' '.join(argv[:2])} <{case.name}>"
            outcome.check(case, lambda: run_cli(args), cli=True)
            total += 1
    for n, (base, options) in enumerate(CLI_OPTIONS):
        for opt in options:
            for value in OPTION_VALUES:
                args = _fill(base, seeds, tmp_path / f"opt{n}-{total}") + [opt, value]
                case = Case(f"gearshift {' '.join(base[:2])} {opt} {value[:12]!r}", "cli",
                            must_refuse=value in NON_FINITE)
                outcome.check(case, lambda: run_cli(args), cli=True)
                total += 1
    print(f"CLI: {total} malformed cases, {outcome.refused} refused, "
          f"{outcome.accepted} ran, {len(outcome.failures)} failures")
    assert total >= 400
    assert not outcome.failures, f"{len(outcome.failures)} of {total}:\n" + \
        "\n".join(outcome.failures[:30])


def test_published_dataset_folders_are_checked(tmp_path):
    """`sim validate --data DIR` and `tune ... --data DIR` read published CSVs from a folder
    the user names: damaged copies are refused in one line."""
    import shutil
    from importlib.resources import files

    from gearshift.pipeline.replay import load_runs
    from gearshift.tuning.replay import zeus_trace

    data = Path(str(files("gearshift") / "data"))
    exp = tmp_path / "experiments"
    shutil.copytree(data / "perseus_a40" / "experiments", exp)
    zeus = tmp_path / zeus_trace.TRACE_DIR
    shutil.copytree(data / zeus_trace.TRACE_DIR / "trace", zeus / "trace")
    rng = random.Random(SEED)
    outcome, total = Outcome(), 0
    targets = [(exp / "measured_plans.csv", lambda: load_runs(exp)),
               (exp / "measured_instructions_by_plan.csv", lambda: load_runs(exp)),
               (zeus / "trace" / "summary_power_a40.csv",
                lambda: zeus_trace.load_power(tmp_path, "a40")),
               (zeus / "trace" / "summary_train.csv", lambda: zeus_trace.load_train(tmp_path))]
    for path, read in targets:
        good = path.read_bytes()
        lines = good.decode().splitlines()
        damaged = [b"", bytes(rng.randrange(256) for _ in range(300)), good[: len(good) // 3],
                   "é".encode("latin-1") + good, b"a,b\n1,2\n",
                   ("\n".join([lines[0], lines[1].replace(",", ",x", 3)] + lines[2:]) + "\n")
                   .encode(),
                   ("\n".join([lines[0], ",".join(["inf"] * lines[0].count(","))] + lines[1:])
                    + "\n").encode()]
        if path.parent == exp:  # a readable table replays ~175 runs (10+ s): only refusals
            damaged = [damaged[i] for i in (0, 1, 3, 4, 6)]
        for n, content in enumerate(damaged):
            path.write_bytes(content)
            outcome.check(Case(f"{path.name}#{n}", "published"), read)
            total += 1
        path.write_bytes(good)
    assert not outcome.failures, "\n".join(outcome.failures)
    assert outcome.refused >= total - 4  # a truncated or shifted table can still be readable
