"""Per-stage instruction orders of 1F1B and GPipe, and the dependency graph between them."""

from __future__ import annotations

from ..errors import ConfigError

INSTRUCTIONS = ("forward", "backward")   # index 0 and 1 in every array of this package
KINDS = ("1f1b", "gpipe")
_LETTER = {"F": 0, "B": 1}


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


def pipeline_order(kind: str, stages: int, microbatches: int) -> list[list[tuple[int, int]]]:
    """Each stage's program order as ``(instruction, microbatch)``; instruction 0=F, 1=B.

    1F1B (PipeDream-Flush / Megatron): stage s runs ``min(S-s-1, N)`` warm-up forwards, then
    alternates one forward and one backward, then drains the remaining backwards.
    GPipe: every forward, then every backward, both in microbatch order.
    """
    check_shape(stages, microbatches)
    kind = kind.lower()
    out: list[list[tuple[int, int]]] = []
    for s in range(stages):
        if kind == "gpipe":
            seq = [(0, m) for m in range(microbatches)] + [(1, m) for m in range(microbatches)]
        elif kind == "1f1b":
            warm = min(stages - s - 1, microbatches)
            seq = [(0, m) for m in range(warm)]
            f, b = warm, 0
            while f < microbatches:
                seq.append((0, f))
                seq.append((1, b))
                f, b = f + 1, b + 1
            seq += [(1, m) for m in range(b, microbatches)]
        else:
            raise ConfigError(f"unknown pipeline kind '{kind}'", f"use one of {', '.join(KINDS)}")
        out.append(seq)
    return out


def parse_sequence(text: str) -> list[tuple[int, int]]:
    """``"FFBFBB"`` -> [(0,0),(0,1),(1,0),(0,2),(1,1),(1,2)]: the k-th F (B) is microbatch k."""
    seq, count = [], [0, 0]
    for i, ch in enumerate(text.strip().upper()):
        if ch not in _LETTER:
            raise ConfigError(f"instruction sequence has '{ch}' at position {i}",
                              "write the sequence with the letters F (forward) and B (backward)")
        k = _LETTER[ch]
        seq.append((k, count[k]))
        count[k] += 1
    return seq


def dependencies(order: list[list[tuple[int, int]]]) -> dict[tuple[int, int, int],
                                                              list[tuple[int, int, int]]]:
    """Predecessors of every op ``(stage, instruction, microbatch)``.

    F(s,m) after F(s-1,m); B(s,m) after B(s+1,m), and on the last stage after F(S-1,m); every
    op after the one before it in its stage's program order.
    """
    stages = len(order)
    preds: dict[tuple[int, int, int], list[tuple[int, int, int]]] = {}
    for s, seq in enumerate(order):
        prev = None
        for instr, m in seq:
            op = (s, instr, m)
            p = [prev] if prev is not None else []
            if instr == 0 and s > 0:
                p.append((s - 1, 0, m))
            if instr == 1:
                p.append((s + 1, 1, m) if s < stages - 1 else (s, 0, m))
            preds[op] = p
            prev = op
    return preds
