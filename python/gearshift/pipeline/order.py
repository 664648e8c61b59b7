"""Per-rank instruction orders of pipeline schedules, and the dependencies between them.

An op is ``(stage, instruction, microbatch)``; instruction 0=F (forward), 1=B (full backward),
2=I (backward for the input, zero-bubble), 3=W (backward for the weights). A schedule is one
program order per rank (GPU); with virtual stages a rank runs several model stages.

1F1B and GPipe are built here, so planning them needs no torch: torch runs these two
single-stage schedules from hand-written loops (``_step_microbatches``), and the orders below are
what those loops execute (the distributed test records it); their ``pipeline_order`` IR is only a
visualisation aid, and for 1F1B it omits the last rank's first forward. Every other schedule's order is read from torch.distributed.pipelining's
own schedule objects (``pipeline/schedules.py``), so what is planned is what the engine runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

INSTRUCTIONS = ("forward", "backward", "backward_input", "backward_weight")
LETTERS = "FBIW"
F, B, I, W = 0, 1, 2, 3
# --pipeline names -> (torch schedule class, allowed virtual stages per rank or None = any >= 1,
# default virtual stages)
SCHEDULES = {
    "1f1b": ("Schedule1F1B", (1,), 1),
    "gpipe": ("ScheduleGPipe", (1,), 1),
    "interleaved-1f1b": ("ScheduleInterleaved1F1B", None, 2),
    "looped-bfs": ("ScheduleLoopedBFS", None, 2),
    "zb-interleaved": ("ScheduleInterleavedZeroBubble", None, 2),
    "zbv": ("ScheduleZBVZeroBubble", (2,), 2),
    "dualpipev": ("ScheduleDualPipeV", (2,), 2),
}
KINDS = tuple(SCHEDULES)
_LETTER = {"F": F, "B": B, "I": I, "W": W}


# The planner's DAG has 2*S*N computations and every array is S x 2 x N: a million computations
# plans in minutes, a billion would not fit in memory.
MAX_COMPUTATIONS = 1_000_000


def check_shape(stages: int, microbatches: int) -> None:
    if int(stages) < 1:
        raise ConfigError(f"a pipeline needs at least one stage, got {stages}",
                          "pass --stages S with S >= 1")
    if int(microbatches) < 1:
        raise ConfigError(f"a pipeline needs at least one microbatch, got {microbatches}",
                          "pass --microbatches N with N >= 1")
    if 2 * int(stages) * int(microbatches) > MAX_COMPUTATIONS:
        raise ConfigError(f"{stages} stages x {microbatches} microbatches is "
                          f"{2 * int(stages) * int(microbatches)} computations, more than "
                          f"{MAX_COMPUTATIONS}", "pass the pipeline's real --stages and "
                          "--microbatches")


def check_kind(kind: str) -> str:
    kind = str(kind).lower()
    if kind not in SCHEDULES:
        raise ConfigError(f"unknown pipeline kind '{kind}'", f"use one of {', '.join(KINDS)}")
    return kind


def virtual_stages_of(kind: str, virtual_stages: int | None) -> int:
    """The model stages per rank of ``kind``: the given value (checked) or the default."""
    kind = check_kind(kind)
    _, allowed, default = SCHEDULES[kind]
    v = default if virtual_stages is None else int(virtual_stages)
    if v < 1 or (allowed is not None and v not in allowed):
        want = " or ".join(map(str, allowed)) if allowed else "a whole number >= 1"
        raise ConfigError(f"{kind} runs {want} stage(s) per rank, not --virtual-stages {v}",
                          f"pass --virtual-stages {allowed[0] if allowed else default} "
                          "(or leave it out)")
    return v


@dataclass(frozen=True)
class ScheduleOrder:
    """A schedule's program order per rank. ``rank_ops[r]`` lists rank r's ops in the order it
    runs them; ``stage_rank[s]`` is the rank that holds model stage s."""

    kind: str
    ranks: int
    stages: int                     # model stages = ranks x virtual stages
    microbatches: int
    rank_ops: tuple                 # tuple per rank of (stage, instruction, microbatch)
    stage_rank: tuple

    @property
    def virtual_stages(self) -> int:
        return self.stages // self.ranks

    @property
    def split_backward(self) -> bool:
        """True when some backward runs as I + W (the arrays then need all four slots)."""
        return any(k >= I for ops in self.rank_ops for _, k, _ in ops)

    def letters(self, rank: int) -> str:
        return " ".join(f"{s}{LETTERS[k]}{m}" for s, k, m in self.rank_ops[rank])


def pipeline_order(kind: str, stages: int, microbatches: int) -> list[list[tuple[int, int]]]:
    """1F1B or GPipe: each stage's program order as ``(instruction, microbatch)``.

    1F1B (PipeDream-Flush / Megatron): stage s runs ``min(S-s-1, N)`` warm-up forwards, then
    alternates one forward and one backward, then drains the remaining backwards.
    GPipe: every forward, then every backward, both in microbatch order.
    """
    check_shape(stages, microbatches)
    kind = check_kind(kind)
    if kind not in ("1f1b", "gpipe"):
        raise ConfigError(f"{kind} has several stages per rank or split backwards",
                          "use schedule_order() for it")
    out: list[list[tuple[int, int]]] = []
    for s in range(stages):
        if kind == "gpipe":
            seq = [(F, m) for m in range(microbatches)] + [(B, m) for m in range(microbatches)]
        else:
            warm = min(stages - s - 1, microbatches)
            seq = [(F, m) for m in range(warm)]
            f, b = warm, 0
            while f < microbatches:
                seq.append((F, f))
                seq.append((B, b))
                f, b = f + 1, b + 1
            seq += [(B, m) for m in range(b, microbatches)]
        out.append(seq)
    return out


def schedule_order(kind: str, stages: int, microbatches: int,
                   virtual_stages: int | None = None) -> ScheduleOrder:
    """The program order of ``kind`` on ``stages`` ranks (``virtual_stages`` model stages each)."""
    check_shape(stages, microbatches)
    kind = check_kind(kind)
    v = virtual_stages_of(kind, virtual_stages)
    check_shape(stages * v, microbatches)  # every model stage's computations, not only ranks'
    stages, microbatches = int(stages), int(microbatches)
    if kind in ("1f1b", "gpipe"):
        per_stage = pipeline_order(kind, stages, microbatches)
        ops = tuple(tuple((s, k, m) for k, m in seq) for s, seq in enumerate(per_stage))
        return ScheduleOrder(kind, stages, stages, microbatches, ops, tuple(range(stages)))
    from .schedules import torch_order  # noqa: PLC0415 - torch only for these schedules

    rank_ops, stage_rank = torch_order(SCHEDULES[kind][0], stages, v, microbatches)
    return ScheduleOrder(kind, stages, stages * v, microbatches,
                         tuple(tuple(r) for r in rank_ops), tuple(stage_rank))


def order_from_sequences(order: list[list[tuple[int, int]]]) -> ScheduleOrder:
    """One rank per stage, each running ``(instruction, microbatch)`` ops of its own stage."""
    ops = tuple(tuple((s, int(k), int(m)) for k, m in seq) for s, seq in enumerate(order))
    n = 1 + max((m for seq in ops for _, _, m in seq), default=-1)
    return ScheduleOrder("sequences", len(ops), len(ops), n, ops, tuple(range(len(ops))))


def parse_sequence(text: str) -> list[tuple[int, int]]:
    """``"FFBFBB"`` -> [(0,0),(0,1),(1,0),(0,2),(1,1),(1,2)]: the k-th F (B, I, W) is
    microbatch k."""
    seq, count = [], [0, 0, 0, 0]
    for i, ch in enumerate(text.strip().upper()):
        if ch not in _LETTER:
            raise ConfigError(f"instruction sequence has '{ch}' at position {i}",
                              "write the sequence with the letters F (forward) and B (backward), "
                              "or I and W (split backward)")
        k = _LETTER[ch]
        seq.append((k, count[k]))
        count[k] += 1
    return seq


def data_pred(op: tuple[int, int, int], stages: int, grad_of) -> tuple[int, int, int] | None:
    """The op whose output ``op`` reads (its send/receive partner, or its own I for a W).

    F(s,m) reads F(s-1,m); B or I of (s,m) reads the input gradient of (s+1,m) (its B or I,
    ``grad_of(s+1, m)``), or on the last stage its own F; W(s,m) follows I(s,m).
    """
    s, k, m = op
    if k == F:
        return (s - 1, F, m) if s > 0 else None
    if k == W:
        return (s, I, m)
    return (s + 1, grad_of(s + 1, m), m) if s < stages - 1 else (s, F, m)


def dependencies(order) -> dict[tuple[int, int, int], list[tuple[int, int, int]]]:
    """Predecessors of every op ``(stage, instruction, microbatch)``: the op before it on its
    rank, and the op whose output it reads (see ``data_pred``)."""
    so = order if isinstance(order, ScheduleOrder) else order_from_sequences(order)
    grad = {(s, m): k for ops in so.rank_ops for s, k, m in ops if k in (B, I)}
    preds: dict[tuple[int, int, int], list[tuple[int, int, int]]] = {}
    for ops in so.rank_ops:
        prev = None
        for op in ops:
            p = [prev] if prev is not None else []
            d = data_pred(op, so.stages, lambda s, m: grad.get((s, m), B))
            if d is not None and d != prev:
                p.append(d)
            preds[op] = p
            prev = op
    return preds
