"""Readers for the Zeus NSDI '23 traces (../shared/data/zeus_nsdi23_traces) and the jobs on them.

The power trace gives, per (workload, batch size, power limit), one epoch's time and average
power (energy = time * power); the train trace gives, per (batch size, seed), the epoch at which
each target metric was reached (NaN = never). Both are replayed, not re-measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError, FormatError
from ..power_limit import PowerLimitMeasurement

GPUS = ("a40", "v100", "p100", "rtx6000")
TRACE_DIR = "zeus_nsdi23_traces"


@dataclass(frozen=True)
class TraceJob:
    """A recurring training job as the Zeus paper defines it on these traces."""

    dataset: str
    network: str
    target_metric: float
    default_batch_size: int
    max_epochs: int
    higher_is_better: bool = True

    @property
    def workload(self) -> str:
        return f"{self.dataset}/{self.network}"


# Targets and default batch sizes as in the Zeus paper's evaluation; librispeech's metric is a
# word error rate, where lower is better.
JOBS = {
    "cifar100/shufflenetv2": TraceJob("cifar100", "shufflenetv2", 0.60, 1024, 100),
    "imagenet/resnet50": TraceJob("imagenet", "resnet50", 0.65, 256, 100),
    "librispeech/deepspeech2": TraceJob("librispeech", "deepspeech2", 40.0, 192, 16, False),
    "movielens-1m/ncf": TraceJob("movielens-1m", "ncf", 0.41, 1024, 100),
    "squad/bert_base_uncased": TraceJob("squad", "bert_base_uncased", 84.0, 32, 6),
    "sentiment140/bert_base_uncased": TraceJob("sentiment140", "bert_base_uncased", 0.84, 128,
                                               10),
}


def trace_root(shared_data: str | Path) -> Path:
    root = Path(shared_data)
    if (root / TRACE_DIR).is_dir():
        root = root / TRACE_DIR
    if not (root / "trace").is_dir():
        raise FormatError(str(root), "trace/", "no Zeus trace directory here",
                          "pass the shared data folder (../shared/data) or "
                          "zeus_nsdi23_traces itself")
    return root


def load_power(shared_data: str | Path, gpu: str):
    from ...model._io import read_published_csv  # noqa: PLC0415

    if gpu not in GPUS:
        raise ConfigError(f"no Zeus power trace for GPU '{gpu}'", f"use one of {', '.join(GPUS)}")
    df = read_published_csv(trace_root(shared_data) / "trace" / f"summary_power_{gpu}.csv",
                            "Zeus power trace", ["dataset", "network", "batch_size",
                                                 "power_limit", "time_per_epoch",
                                                 "average_power"],
                            numeric=["batch_size", "power_limit", "time_per_epoch",
                                     "average_power"])
    df["workload"] = df["dataset"] + "/" + df["network"]
    df["energy_j"] = df["time_per_epoch"] * df["average_power"]
    df = df.rename(columns={"time_per_epoch": "time_s", "power_limit": "power_limit_w",
                            "average_power": "average_power_w"})
    return df


def load_train(shared_data: str | Path):
    from ...model._io import read_published_csv  # noqa: PLC0415

    df = read_published_csv(trace_root(shared_data) / "trace" / "summary_train.csv",
                            "Zeus train trace", ["dataset", "network", "batch_size"],
                            numeric=["batch_size"])
    df["workload"] = df["dataset"] + "/" + df["network"]
    return df


def measurements_for(power_df, workload: str, batch_size: int,
                     optimizer: str | None = None) -> list[PowerLimitMeasurement]:
    """One epoch per power limit, for one (workload, batch size) of a power trace."""
    rows = power_df[(power_df.workload == workload) & (power_df.batch_size == batch_size)]
    if optimizer is not None:
        rows = rows[rows.optimizer == optimizer]
    elif rows.optimizer.nunique() > 1:
        rows = rows[rows.optimizer == sorted(rows.optimizer.unique())[0]]
    if rows.empty:
        raise ConfigError(f"no power-trace rows for {workload} at batch size {batch_size}",
                          "pick a batch size listed in the trace")
    return [PowerLimitMeasurement(int(r.power_limit_w), float(r.time_s), float(r.energy_j))
            for r in rows.itertuples()]


def nearest_batch_size(available, wanted: int) -> int:
    """The trace's batch size closest to ``wanted`` on a log scale (not every GPU ran b0)."""
    return min(available, key=lambda b: (abs(math.log(b / wanted)), b))


def load_profile_windows(path: str | Path) -> tuple[list[PowerLimitMeasurement], int]:
    """A Zeus GlobalPowerLimitOptimizer profiling log: (one window per limit, GPU count)."""
    import re  # noqa: PLC0415

    from ...model._io import read_csv_frame, read_text  # noqa: PLC0415

    hint = "expect window_name, elapsed_time and gpuK_energy columns (a Zeus profiling log)"
    header = read_text(path, "Zeus profiling log").partition("\n")[0].split(",")
    gpu_cols = [c.strip() for c in header if re.fullmatch(r"gpu\d+_energy", c.strip())]
    if not gpu_cols:
        raise FormatError(str(path), "columns", "not a Zeus profiling log", hint)
    df = read_csv_frame(path, "Zeus profiling log", ["window_name", "elapsed_time", *gpu_cols],
                        hint, numeric=["elapsed_time", *gpu_cols])
    out = []
    for n, r in enumerate(df.itertuples(index=False), start=2):
        m = re.fullmatch(r".*_(\d{1,7})", str(r.window_name).strip())
        if not m:  # Zeus names a window by its power limit in mW: "..._300000"
            raise FormatError(str(path), f"row {n} column 'window_name'",
                              f"'{str(r.window_name)[:40]}' does not end in _<power limit>",
                              hint)
        energy = float(sum(getattr(r, c) for c in gpu_cols))
        if not (r.elapsed_time > 0 and energy >= 0):
            raise FormatError(str(path), f"row {n}", f"elapsed_time={r.elapsed_time}, "
                              f"energy={energy}", "time must be > 0 and energy >= 0")
        out.append(PowerLimitMeasurement(int(m.group(1)), float(r.elapsed_time), energy))
    if not out:
        raise FormatError(str(path), "<rows>", "the log has no windows", hint)
    return out, len(gpu_cols)
