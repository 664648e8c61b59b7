"""Segments: contiguous kernel runs that the strategies cut and the merger joins.

A kernel's place in the model is (phase, block, part): ``blocks.3.attn.qkv`` in the forward pass
is ("forward", "blocks.3", "attn"); the block is the path up to the first numbered component
(the repeated unit), the part is the component below it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import KernelTrace

PHASE_TAG = {"forward": "fwd", "backward": "bwd", "optimizer": "opt", "other": "other",
             "mixed": "mixed"}


def block_and_part(module: str) -> tuple[str, str]:
    parts = module.split(".") if module else []
    for i, p in enumerate(parts):
        if p.isdigit():
            return ".".join(parts[: i + 1]), (parts[i + 1] if i + 1 < len(parts) else "")
    return (parts[0] if parts else ""), (parts[1] if len(parts) > 1 else "")


@dataclass
class Segment:
    start: int
    end: int
    time_s: float
    phase: str
    blocks: list[str]
    parts: list[str]
    comm_ops: list[str] = field(default_factory=list)
    heavy: bool = False                # holds FLOP-counted work (matmul, conv, attention)

    @property
    def block(self) -> str:
        return self.blocks[0] if len(self.blocks) == 1 else ""

    def label(self) -> str:
        if len(self.blocks) == 1:
            where = self.blocks[0] or "top"
        else:
            where = f"{self.blocks[0] or 'top'}..{self.blocks[-1] or 'top'}"
        bits = [where, PHASE_TAG.get(self.phase, self.phase)]
        parts = [p for p in self.parts if p]
        if parts and len(self.blocks) == 1:
            bits.append("+".join(parts))
        label = " ".join(bits)
        return label + ("".join(f" +{c}" for c in self.comm_ops) if self.comm_ops else "")

    def joined(self, other: "Segment") -> "Segment":
        a, b = (self, other) if self.start < other.start else (other, self)
        return Segment(a.start, b.end, a.time_s + b.time_s,
                       a.phase if a.phase == b.phase else "mixed",
                       _union(a.blocks, b.blocks), _union(a.parts, b.parts),
                       a.comm_ops + b.comm_ops, a.heavy or b.heavy)


def _union(a: list[str], b: list[str]) -> list[str]:
    return a + [x for x in b if x not in a]


def runs(trace: KernelTrace, times: list[float], cut_before: list[bool]) -> list[Segment]:
    """Split the trace at every index where ``cut_before`` is true (and at phase changes)."""
    segs: list[Segment] = []
    for i, k in enumerate(trace.kernels):
        block, part = block_and_part(k.module)
        if not segs or cut_before[i] or segs[-1].phase != k.phase:
            segs.append(Segment(i, i, 0.0, k.phase, [block], [part]))
        s = segs[-1]
        s.end = i + 1
        s.time_s += times[i]
        if block not in s.blocks:
            s.blocks.append(block)
        if part not in s.parts:
            s.parts.append(part)
        if k.kind == "comm":
            s.comm_ops.append(k.comm_op or "comm")
        elif k.flops:
            s.heavy = True
    return segs
