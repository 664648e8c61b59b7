"""``gearshift.pipelining.wrap``: per-instruction clocks for torch.distributed.pipelining.

``wrap(schedule, **config)`` returns the schedule with ``.gearshift`` attached. Its steps go
through four phases (``.gearshift.status()``, the keys of ``gearshift.compile``'s runner):

- ``record`` (first step, untouched): checks that the instructions each rank runs are the
  program order the planner assumes (pipeline/order.py), and captures each local stage's input
  shapes.
- ``profile`` (one step per clock option, Perseus-style): every instruction of the step runs at
  that clock and is measured; progress is shown (``progress=True``).
- ``plan``: the ranks gather their measured stage profiles over the schedule's process group,
  rank 0 plans the whole pipeline (search/pipeline_plan.py) and broadcasts the plan.
- ``enforce``: each instruction runs at its planned clock; the native runtime's controller
  switches the clock at the instruction boundary (a ``Session`` mark per instruction).

Simulated device (``device="sim"``): each local stage's forward and backward are traced on meta
(trace_step) and priced on the simulated GPU at every clock; zero-bubble I and W each take half
of the backward (StageProfile.with_split). Every rank keeps a simulated clock: an instruction
starts when its rank is free and, when it reads another rank's output, when that output was
sent (the sender's simulated end time travels on a side channel beside torch's own send);
iteration time is the latest end over ranks, energy the instructions' energies plus the
blocking power for every second a rank waits, as in ``gearshift sim pipeline``. Clock-switch
latency is not charged (the pipeline executor does not model it either). On other devices the
profiling of instructions is not implemented: the wrapper falls back (steps run untouched).

Whatever fails inside gearshift, the training step still runs; failures are agreed across
ranks at the end of a step, so every rank falls back together, with one warning.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from .errors import ConfigError, GearshiftError

log = logging.getLogger("gearshift.pipelining")

SCHEDULE_KINDS = {
    "Schedule1F1B": "1f1b", "ScheduleGPipe": "gpipe",
    "ScheduleInterleaved1F1B": "interleaved-1f1b", "ScheduleLoopedBFS": "looped-bfs",
    "ScheduleInterleavedZeroBubble": "zb-interleaved", "ScheduleZBVZeroBubble": "zbv",
    "ScheduleDualPipeV": "dualpipev",
}
PIPELINE_KEYS = ("blocking_power_w",)


def wrap(schedule, config=None, *, blocking_power_w: float | None = None, **overrides):
    """Attach gearshift to a torch.distributed.pipelining schedule; returns the schedule.

    ``config``/``overrides``: the fields of ``gearshift.compile``'s GearshiftConfig (objective,
    device, sim_preset, schedule_path, artifacts_dir, min_freq_mhz, freq_step_mhz, progress).
    ``schedule_path``: a plan CSV (``gearshift plan --plan-out``'s format): used if it exists,
    else written by rank 0 after planning. ``artifacts_dir``: rank 0 writes the measured stage
    profile, the frontier and the plan there. ``blocking_power_w``: power of one GPU while it
    waits (default: the simulated GPU's idle power). Call it on every rank.
    """
    from .integrations.config import GearshiftConfig  # noqa: PLC0415

    config = config or GearshiftConfig()
    if overrides:
        config = config.replace(**overrides)
    runner = PipelineRunner(schedule, config, blocking_power_w)
    original = schedule.step

    def step(*args, **kwargs):
        return runner.step(original, *args, **kwargs)

    schedule.step = step
    schedule.gearshift = runner
    return schedule


def _kind_of(schedule) -> str:
    for cls in type(schedule).__mro__:
        if cls.__name__ in SCHEDULE_KINDS:
            return SCHEDULE_KINDS[cls.__name__]
    raise ConfigError(f"gearshift.pipelining.wrap does not know the schedule "
                      f"{type(schedule).__name__}",
                      f"use one of torch.distributed.pipelining's {', '.join(SCHEDULE_KINDS)}")


class _Failed(GearshiftError):
    pass


class PipelineRunner:
    """The gearshift side of one rank of a wrapped schedule (``schedule.gearshift``)."""

    def __init__(self, schedule, config, blocking_power_w: float | None = None):
        import torch.distributed as dist  # noqa: PLC0415

        from .pipeline.executor import graph_for  # noqa: PLC0415

        self.config = config
        self.kind = _kind_of(schedule)
        stages = list(getattr(schedule, "_stages", None) or [schedule._stage])
        self.stages = {int(st.stage_index): st for st in stages}
        first = stages[0]
        self.group = first.group
        self.rank, self.ranks = int(first.group_rank), int(first.group_size)
        self.microbatches = int(schedule._n_microbatches)
        self.graph = graph_for(self.kind, self.ranks, self.microbatches, len(stages))
        g = self.graph
        mine = sorted(int(s) for s in np.flatnonzero(g.stage_rank == self.rank))
        if mine != sorted(self.stages):
            raise ConfigError(f"rank {self.rank} holds stages {sorted(self.stages)}, the {self.kind} "
                              f"schedule puts {mine} there", "build the stages as torch's "
                              "schedule expects (its stage-to-rank mapping)")
        self.program = list(g.order.rank_ops[self.rank])
        self._edges()
        self.blocking_power_w = blocking_power_w
        self.phase = "record"
        self.steps_by_phase = {p: 0 for p in ("record", "profile", "plan", "enforce", "fallback")}
        self.fallback_reason: str | None = None
        self.clocks: list[int] = []
        self.options_measured = 0
        self.plan = None                     # PipelinePlan (all model stages)
        self.planned: dict = {}              # planned and baseline figures (simulated)
        self.executed_clocks: list[int] = []   # clock of every instruction, last step
        self.switch_events: list = []          # the native controller's events, last step
        self.last: dict = {}                   # simulated time/energy of the last step
        self._inputs: dict = {}
        self._cost = None                    # (stage, instr) -> (time_s, energy_j) per clock
        self._measured: dict = {}            # (stage, instr, clock) -> (time_s, energy_j)
        self._session = None
        self._failed: str | None = None
        self._dist = dist
        self._patch()
        # a side channel beside torch's own sends: one gloo group over the same ranks
        self._ranks_global = dist.get_process_group_ranks(self.group) if self.group is not None \
            else list(range(dist.get_world_size()))
        self._side = dist.new_group(ranks=self._ranks_global, backend="gloo")
        try:
            self.device = self._open_device()
        except GearshiftError as e:
            self.device = None
            self._fallback(str(e))

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        """One dict; the keys of ``gearshift.compile``'s runner plus the pipeline's own."""
        saving = self.planned.get("energy_saving")
        return {
            "phase": self.phase,
            "steps_by_phase": dict(self.steps_by_phase),
            "options_measured": self.options_measured,
            "options_total": len(self.clocks),
            "planned_energy_saving_pct": None if saving is None else 100.0 * saving,
            "fallback_reason": self.fallback_reason,
            "schedule": self.kind, "rank": self.rank, "ranks": self.ranks,
            "virtual_stages": self.graph.stages // self.graph.ranks,
            "microbatches": self.microbatches,
            "switches": sum(1 for e in self.switch_events if e.action == "switched"),
            "iteration_time_s": self.last.get("time_s"),
            "iteration_energy_j": self.last.get("energy_j"),
            "energy_scope": "gpu+blocking, all ranks", "source": "simulated",
        }

    def fallback(self, reason: str) -> None:
        """Every later step runs untouched (on every rank: agreed at the end of the step)."""
        self._failed = self._failed or str(reason)

    # ------------------------------------------------------------------ steps
    def step(self, original, *args, **kwargs):
        if self.phase == "fallback":
            self.steps_by_phase["fallback"] += 1
            return original(*args, **kwargs)
        phase = self.phase
        self._begin(phase)
        out = original(*args, **kwargs)
        self.steps_by_phase[phase] += 1
        self._guard(self._end_local, phase)
        # collectives only once every rank knows that every rank is still in
        if self._agree():
            self._guard(self._end_collective, phase)
            self._agree()
        return out

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - gearshift's failure, never the user's step
            self.fallback(f"{type(e).__name__}: {e}")

    def _begin(self, phase: str) -> None:
        self._now_s = 0.0
        self._busy_s = 0.0
        self._energy_j = 0.0
        self._pending = []
        self.executed_clocks = []
        self._ops_seen = []
        if phase == "profile":
            f = self.clocks[self.options_measured]
            self._guard(self._start_session, [f] * len(self.program))
        elif phase == "enforce":
            self._guard(self._start_session, self._plan_clocks())

    def _end_local(self, phase: str) -> None:
        for w in self._pending:
            w.wait()
        self._pending = []
        self._stop_session()
        if self._ops_seen != self.program:
            raise _Failed(f"rank {self.rank} ran {len(self._ops_seen)} instructions that are not "
                          f"the {self.kind} order gearshift plans for", "report the torch version")
        if phase == "record":
            self._build_costs()
            self._clock_options()

    def _end_collective(self, phase: str) -> None:
        if phase == "record":
            self.phase = "enforce" if self._load_plan() else "profile"
            return
        self._finish_timeline()
        if phase == "profile":
            self.options_measured += 1
            if self.config.progress and self.rank == 0:
                log.warning("gearshift.pipelining: profiled %d/%d clocks (%d MHz)",
                            self.options_measured, len(self.clocks),
                            self.clocks[self.options_measured - 1])
            if self.options_measured == len(self.clocks):
                self.phase = "plan"
                self._plan()
                self.phase = "enforce"

    def _agree(self) -> bool:
        """All ranks fall back together when any rank failed; True when none did."""
        import torch  # noqa: PLC0415

        flag = torch.tensor([1.0 if self._failed else 0.0])
        self._dist.all_reduce(flag, op=self._dist.ReduceOp.MAX, group=self._side)
        if flag.item() > 0:
            if self.phase != "fallback":
                self._fallback(self._failed or "another rank fell back")
            return False
        return True

    def _fallback(self, reason: str) -> None:
        self._stop_session()
        self.phase = "fallback"
        self.fallback_reason = reason
        self._failed = self._failed or reason
        warnings.warn(f"gearshift.pipelining (rank {self.rank}): {reason}; the schedule now "
                      "runs untouched at default clocks", RuntimeWarning, stacklevel=3)

    # ------------------------------------------------------------------ instructions
    def _patch(self) -> None:
        from .pipeline.order import B, F, I, W  # noqa: PLC0415

        for idx, stage in self.stages.items():
            fwd, bwd, wgt = (stage.forward_one_chunk, stage.backward_one_chunk,
                             stage.backward_weight_one_chunk)

            def forward_one_chunk(mb, *a, _i=idx, _f=fwd, **kw):
                return self._instr((_i, F, int(mb)), _f, mb, *a, **kw)

            def backward_one_chunk(mb, *a, _i=idx, _f=bwd, **kw):
                full = kw.get("full_backward", a[1] if len(a) > 1 else True)
                return self._instr((_i, B if full else I, int(mb)), _f, mb, *a, **kw)

            def backward_weight_one_chunk(mb, *a, _i=idx, _f=wgt, **kw):
                return self._instr((_i, W, int(mb)), _f, mb, *a, **kw)

            stage.forward_one_chunk = forward_one_chunk
            stage.backward_one_chunk = backward_one_chunk
            stage.backward_weight_one_chunk = backward_weight_one_chunk
            stage.submod.register_forward_pre_hook(self._capture(idx), with_kwargs=True)

    def _capture(self, idx: int):
        def hook(module, args, kwargs):
            if self.phase == "record" and idx not in self._inputs:
                import torch  # noqa: PLC0415
                from torch.utils._pytree import tree_map  # noqa: PLC0415

                def meta(x):
                    return torch.empty_like(x, device="meta") if isinstance(x, torch.Tensor) \
                        else x
                self._inputs[idx] = (tree_map(meta, args), tree_map(meta, kwargs))
        return hook

    def _instr(self, op, fn, *args, **kwargs):
        self._ops_seen.append(op)
        if self.phase in ("fallback", "record"):
            return fn(*args, **kwargs)
        # the side channel runs even after a failure in this step, so no rank waits forever
        start = self._now_s
        try:
            start = max(start, self._recv_end(op))
        except Exception as e:  # noqa: BLE001
            self.fallback(f"{type(e).__name__}: {e}")
        freq = None
        if not self._failed:
            try:
                freq = self._switch(len(self._ops_seen) - 1, op)
            except Exception as e:  # noqa: BLE001
                self.fallback(f"{type(e).__name__}: {e}")
        out = fn(*args, **kwargs)
        end = start
        if freq is not None and not self._failed:
            try:
                end = self._account(op, freq, start)
            except Exception as e:  # noqa: BLE001
                self.fallback(f"{type(e).__name__}: {e}")
        self._send_end(op, end)
        return out

    def _switch(self, i: int, op) -> int:
        """The instruction boundary: the native runtime's controller sets its clock."""
        if i >= len(self.program) or self.program[i] != op:
            raise _Failed(f"rank {self.rank} ran {op} where the {self.kind} order has "
                          f"{self.program[i] if i < len(self.program) else 'nothing'}",
                          "report the torch version")
        self._session.mark(i)
        self._session.sync()
        f = int(self._session.current_mhz)
        self.executed_clocks.append(f)
        return f

    def _account(self, op, freq_mhz: int, start: float) -> float:
        t, e = self._price(op, freq_mhz)
        end = start + t
        self._now_s = end
        self._busy_s += t
        self._energy_j += e
        if self.phase == "profile":
            self._measured[(op[0], op[1], freq_mhz)] = (t, e)
        return end

    def _recv_end(self, op) -> float:
        import torch  # noqa: PLC0415

        src = self._recv_from.get(op)
        if src is None:
            return 0.0
        t = torch.zeros(1, dtype=torch.float64)
        self._dist.recv(t, src=self._ranks_global[src[0]], group=self._side, tag=src[1])
        return float(t.item())

    def _send_end(self, op, end: float) -> None:
        import torch  # noqa: PLC0415

        for dst, tag in self._send_to.get(op, ()):
            msg = torch.tensor([end], dtype=torch.float64)
            self._pending.append(self._dist.isend(msg, dst=self._ranks_global[dst],
                                                  group=self._side, tag=tag))

    def _edges(self) -> None:
        """Cross-rank data edges of this rank's ops: whom to tell an op's end, whom to ask."""
        g = self.graph
        ops = list(zip(g.op_stage.tolist(), g.op_instr.tolist(), g.op_mb.tolist()))
        self._send_to: dict = {}
        self._recv_from: dict = {}
        for i, c in enumerate(g.cross):
            if c < 0 or not g.cross_is_p2p[i]:
                continue
            tag = int(g.op_flat[c])
            src_rank, dst_rank = int(g.op_rank[c]), int(g.op_rank[i])
            if src_rank == self.rank:
                self._send_to.setdefault(ops[c], []).append((dst_rank, tag))
            if dst_rank == self.rank:
                self._recv_from[ops[i]] = (src_rank, tag)

    def _finish_timeline(self) -> None:
        import torch  # noqa: PLC0415

        t = torch.tensor([self._now_s], dtype=torch.float64)
        self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX, group=self._side)
        time_s = float(t.item())
        mine = self._energy_j + self._p_block() * (time_s - self._busy_s)
        e = torch.tensor([mine], dtype=torch.float64)
        self._dist.all_reduce(e, op=self._dist.ReduceOp.SUM, group=self._side)
        self.last = {"time_s": time_s, "energy_j": float(e.item()), "rank_energy_j": mine,
                     "rank_busy_s": self._busy_s}

    # ------------------------------------------------------------------ the simulated GPU
    def _open_device(self):
        from .devices.open import open_device  # noqa: PLC0415

        # switch latency is not charged here, as in the pipeline executor (see the docstring)
        dev = open_device(self.config.device, preset=self.config.sim_preset, switch_latency_s=0.0)
        if not dev.capabilities.simulated:
            raise _Failed(f"profiling pipeline instructions on {dev.name} is not implemented "
                          "(only the simulated GPU)", "use device='sim'")
        return dev

    def _p_block(self) -> float:
        if self.blocking_power_w is not None:
            return float(self.blocking_power_w)
        return float(self.device.preset.idle_power_w)

    def _clock_options(self) -> None:
        from .profile.options import candidate_freqs  # noqa: PLC0415

        self.clocks = candidate_freqs(self.device.facts, min_freq_mhz=self.config.min_freq_mhz,
                                      step_mhz=self.config.freq_step_mhz)

    def _build_costs(self) -> None:
        """Each local stage's forward and backward on the simulated GPU at every clock."""
        from .model import Partitioning  # noqa: PLC0415
        from .trace import trace_step  # noqa: PLC0415

        freqs = sorted(self.device.facts.supported_freqs_mhz)
        self._freqs = np.array(freqs, dtype=np.int64)
        self._cost = {}
        for idx, stage in self.stages.items():
            if idx not in self._inputs:
                raise _Failed(f"stage {idx} never ran a forward in the first step",
                              "train with the wrapped schedule's step()")
            args, kwargs = self._inputs[idx]
            inputs = kwargs if kwargs and not args else args if len(args) != 1 else args[0]
            # the loss's own kernels are a rounding error next to a stage's layers
            trace = trace_step(stage.submod, inputs, loss_fn=lambda out: _total(out),
                               optimizer_factory=False, model_name=f"stage{idx}")
            phases = [k.phase for k in trace.kernels]
            if "backward" not in phases or phases.index("backward") == 0:
                raise _Failed(f"stage {idx} has no forward or no backward kernels",
                              "give every stage parameters it trains")
            cut = phases.index("backward")
            parts = Partitioning.from_cuts(trace, [0, cut], ["forward", "backward"])
            t, e = self.device.profile_options(trace, parts, [(f, "none") for f in freqs])
            for k in range(2):
                self._cost[(idx, k)] = (t[:, k].copy(), e[:, k].copy())
            for k in (2, 3):        # I and W: half a backward each (StageProfile.with_split)
                self._cost[(idx, k)] = (t[:, 1] / 2, e[:, 1] / 2)

    def _price(self, op, freq_mhz: int) -> tuple[float, float]:
        j = int(np.searchsorted(self._freqs, freq_mhz))
        t, e = self._cost[(op[0], op[1])]
        return float(t[j]), float(e[j])

    # ------------------------------------------------------------------ the native runtime
    def _start_session(self, freqs: list[int]) -> None:
        from .model import Schedule, ScheduleEntry  # noqa: PLC0415
        from .runtime import Session  # noqa: PLC0415

        labels = [f"s{s}/{'FBIW'[k]}/{m}" for s, k, m in self.program]
        sched = Schedule([ScheduleEntry(i, i, int(f), label=lab)
                          for i, (f, lab) in enumerate(zip(freqs, labels))],
                         f"pipeline:{self.kind}:rank{self.rank}", self.device.name,
                         len(self.program), objective=self.config.objective)
        self._session = Session(sched, backend=self.device, use_cupti=False,
                                handle_signals=False, signal_path="fake-lockstep").start()

    def _stop_session(self) -> None:
        s, self._session = self._session, None
        if s is not None:
            self.switch_events = s.switch_events()
            s.close()

    # ------------------------------------------------------------------ planning
    def _plan_clocks(self) -> list[int]:
        f = self.plan.freq_mhz
        return [int(f[s, k, m]) for s, k, m in self.program]

    def measured_rows(self) -> list[tuple]:
        """This rank's measured stage profile rows (stage, instruction, freq, time, energy).
        A stage that runs only I and W (zero bubble) gets B = I + W; where the schedule splits
        backwards, a stage that runs only B gets I = W = B/2 (StageProfile.with_split)."""
        from .pipeline.order import INSTRUCTIONS  # noqa: PLC0415

        m = dict(self._measured)
        split = self.graph.kinds == 4
        for s, k, f in list(m):
            if k in (2, 3) and (s, 1, f) not in m and (s, 2, f) in m and (s, 3, f) in m:
                (ti, ei), (tw, ew) = m[(s, 2, f)], m[(s, 3, f)]
                m[(s, 1, f)] = (ti + tw, ei + ew)
            if split and k == 1 and (s, 2, f) not in m:
                t, e = m[(s, 1, f)]
                m[(s, 2, f)] = m[(s, 3, f)] = (t / 2, e / 2)
        return [(s, INSTRUCTIONS[k], f, t, e) for (s, k, f), (t, e) in sorted(m.items())]

    def _plan(self) -> None:
        from .pipeline import StageProfile  # noqa: PLC0415
        from .search.pipeline_plan import plan_pipeline  # noqa: PLC0415

        rows = [None] * self.ranks
        self._dist.all_gather_object(rows, self.measured_rows(), group=self._side)
        box = [None]
        if self.rank == 0:
            profile = StageProfile.from_records([r for rk in rows for r in rk],
                                                source="gearshift.pipelining (measured)")
            res = plan_pipeline(profile, self.kind, self.ranks, self.microbatches,
                                self._p_block(), self.config.objective,
                                virtual_stages=self.graph.stages // self.graph.ranks)
            box = [{"freq_mhz": res.plan.freq_mhz, "time_s": res.result.time_s,
                    "energy_j": res.result.energy_j, "baseline_time_s": res.baseline.time_s,
                    "baseline_energy_j": res.baseline.energy_j, "energy_saving": res.saving}]
            self._save(profile, res)
        self._dist.broadcast_object_list(box, src=self._ranks_global[0], group=self._side)
        from .pipeline import PipelinePlan  # noqa: PLC0415

        got = box[0]
        self.plan = PipelinePlan(np.asarray(got.pop("freq_mhz")), "gearshift.pipelining")
        self.planned = got

    def _save(self, profile, res) -> None:
        from pathlib import Path  # noqa: PLC0415

        d = self.config.artifacts_dir
        if d:
            Path(d).mkdir(parents=True, exist_ok=True)
            profile.save(Path(d) / "stage_profile.csv")
            res.plan.save(Path(d) / "plan.csv")
            res.frontier.save(Path(d) / "frontier.csv")
        if self.config.schedule_path:
            res.plan.save(self.config.schedule_path)

    def _load_plan(self) -> bool:
        """A saved plan (schedule_path) skips profiling; every rank reads the same file."""
        from pathlib import Path  # noqa: PLC0415

        from .pipeline import PipelinePlan  # noqa: PLC0415

        path = self.config.schedule_path
        if not path or not Path(path).exists():
            return False
        plan = PipelinePlan.load(path, self.graph.stages, self.microbatches)
        plan.check(self.graph.stages, self.microbatches, None, self.graph)
        bad = sorted(set(int(f) for f in plan.freq_mhz[plan.freq_mhz > 0]) -
                     set(self.device.facts.supported_freqs_mhz))
        if bad:
            raise ConfigError(f"the plan {path} uses {bad[0]} MHz, which "
                              f"{self.device.name} does not support",
                              "delete it to re-plan for this device")
        self.plan = plan
        return True

    def close(self) -> None:
        self._stop_session()


def _total(out):
    import torch  # noqa: PLC0415

    if isinstance(out, torch.Tensor):
        return out.float().sum()
    parts = [o.float().sum() for o in (out.values() if isinstance(out, dict) else out)
             if isinstance(o, torch.Tensor)]
    return sum(parts)
