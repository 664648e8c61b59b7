"""Batch size across recurring runs of a job: a Gaussian Thompson-sampling bandit (Zeus).

Each recurrence trains the job to its target metric with one batch size (an arm) and pays a
cost (the Zeus time-energy cost to reach the target, retries included). Arms are first tried
once each, in Zeus's pruning order: the default batch size, then smaller ones until one fails
to reach the target, then larger ones likewise; arms that fail are dropped. After that, every
recurrence samples a plausible mean cost per arm from its posterior and runs the cheapest.

The bandit's state lives in a small SQLite file, so a job that recurs as separate processes
(nightly re-training) keeps learning. The file belongs to one job: opening it for another one
is refused, because mixing two jobs' costs would silently pick a batch size for neither.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError, FormatError, GearshiftError

DEFAULT_STATE_PATH = Path(".gearshift") / "batch_size.sqlite"
SCHEMA_VERSION = 1


class StateMismatchError(GearshiftError):
    """A persisted tuner state belongs to another job."""


@dataclass(frozen=True)
class Observation:
    recurrence: int
    batch_size: int
    cost: float
    reached: bool


class BanditStore:
    """SQLite persistence: the job the file belongs to, its arms, and every observation."""

    def __init__(self, path: str | Path | None, job_id: str, arms: Sequence[int]):
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(":memory:" if self.path is None else str(self.path))
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute("CREATE TABLE IF NOT EXISTS observation (recurrence INTEGER, "
                            "batch_size INTEGER, cost REAL, reached INTEGER)")
            meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise FormatError(str(self.path), "sqlite", f"not a gearshift state file ({exc})",
                              "delete it or pass another --state path") from None
        if not meta:
            self.db.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("schema", str(SCHEMA_VERSION)), ("job_id", job_id),
                ("arms", json.dumps(sorted(int(a) for a in arms)))])
            self.db.commit()
            return
        if meta.get("job_id") != job_id:
            raise StateMismatchError(
                f"state file {self.path} belongs to job '{meta.get('job_id')}', "
                f"not to job '{job_id}'",
                "pass a separate --state file per job, or the job id the file was made for")
        if int(meta.get("schema", 0)) > SCHEMA_VERSION:
            raise FormatError(str(self.path), "schema", "written by a newer gearshift",
                              "upgrade gearshift or start a new state file")
        stored = json.loads(meta["arms"])
        if stored != sorted(int(a) for a in arms):
            raise StateMismatchError(
                f"state file {self.path} for job '{job_id}' has batch sizes {stored}, "
                f"this run offers {sorted(arms)}",
                "keep the batch-size list fixed for a job, or start a new state file")

    def observations(self) -> list[Observation]:
        rows = self.db.execute("SELECT recurrence, batch_size, cost, reached FROM observation "
                               "ORDER BY rowid").fetchall()
        return [Observation(int(r), int(b), float(c), bool(x)) for r, b, c, x in rows]

    def add(self, obs: Observation) -> None:
        self.db.execute("INSERT INTO observation VALUES (?, ?, ?, ?)",
                        (obs.recurrence, obs.batch_size, obs.cost, int(obs.reached)))
        self.db.commit()

    def close(self) -> None:
        self.db.close()


class BatchSizeOptimizer:
    """Pruning exploration, then Gaussian Thompson sampling over the surviving batch sizes.

    ``predict()`` names the batch size for the next try; ``observe()`` records its cost and
    whether it reached the target. Sampling is seeded by (seed, number of observations), so a
    run resumed from the state file makes the same choice it would have made in one process.
    """

    def __init__(self, job_id: str, batch_sizes: Sequence[int], default_batch_size: int,
                 state_path: str | Path | None = DEFAULT_STATE_PATH, seed: int = 0,
                 prior_cv: float = 0.25):
        arms = sorted({int(b) for b in batch_sizes})
        if default_batch_size not in arms:
            raise ConfigError(f"default batch size {default_batch_size} is not among {arms}",
                              "add it to the batch-size list; it is where exploration starts")
        self.job_id = job_id
        self.arms = arms
        self.default_batch_size = int(default_batch_size)
        self.seed = seed
        self.prior_cv = prior_cv
        self.store = BanditStore(state_path, job_id, arms)

    # -- exploration order and arm statistics, all derived from the stored observations --
    def _explore_next(self, obs: list[Observation]) -> int | None:
        tried = {o.batch_size: o for o in obs}
        i0 = self.arms.index(self.default_batch_size)
        for direction in (self.arms[i0::-1], self.arms[i0 + 1:]):
            for b in direction:
                if b not in tried:
                    return b
                if not tried[b].reached:
                    break
        return None

    def surviving_arms(self, obs: list[Observation] | None = None) -> list[int]:
        obs = self.store.observations() if obs is None else obs
        good = {o.batch_size for o in obs if o.reached}
        return [b for b in self.arms if b in good]

    def arm_costs(self, obs: list[Observation] | None = None) -> dict[int, list[float]]:
        obs = self.store.observations() if obs is None else obs
        costs: dict[int, list[float]] = {}
        for o in obs:
            costs.setdefault(o.batch_size, []).append(o.cost)
        return costs

    def _posterior(self, costs: dict[int, list[float]], arms: list[int]):
        import numpy as np

        # Arms seen once have no spread of their own: borrow the pooled relative spread.
        cvs = [np.std(c, ddof=1) / np.mean(c) for c in costs.values() if len(c) >= 2
               and np.mean(c) > 0]
        cv = float(np.mean(cvs)) if cvs and np.mean(cvs) > 0 else self.prior_cv
        out = {}
        for b in arms:
            c = np.asarray(costs[b])
            sd = float(np.std(c, ddof=1)) if len(c) >= 2 else cv * float(c.mean())
            sd = max(sd, 1e-3 * abs(float(c.mean())) + 1e-12)
            out[b] = (float(c.mean()), sd / math.sqrt(len(c)))
        return out

    def predict(self) -> int:
        import numpy as np

        obs = self.store.observations()
        nxt = self._explore_next(obs)
        if nxt is not None:
            return nxt
        arms = self.surviving_arms(obs)
        if not arms:
            return self.default_batch_size
        post = self._posterior(self.arm_costs(obs), arms)
        rng = np.random.default_rng([self.seed, len(obs)])
        samples = {b: rng.normal(m, s) for b, (m, s) in post.items()}
        return min(samples, key=samples.get)

    @property
    def exploring(self) -> bool:
        return self._explore_next(self.store.observations()) is not None

    def best_known(self) -> int:
        """The surviving arm with the lowest mean cost so far (the default before any data)."""
        obs = self.store.observations()
        arms = self.surviving_arms(obs)
        if not arms:
            return self.default_batch_size
        costs = self.arm_costs(obs)
        return min(arms, key=lambda b: sum(costs[b]) / len(costs[b]))

    def observe(self, batch_size: int, cost: float, reached: bool, recurrence: int) -> None:
        if int(batch_size) not in self.arms:
            raise ConfigError(f"batch size {batch_size} is not an arm of job '{self.job_id}'",
                              f"use one of {self.arms}")
        if not (cost >= 0) or math.isinf(cost):
            raise ConfigError(f"cost must be a finite non-negative number, got {cost}",
                              "pass the Zeus cost of the run (joules)")
        self.store.add(Observation(int(recurrence), int(batch_size), float(cost),
                                   bool(reached)))

    def close(self) -> None:
        self.store.close()
