"""Partition / Partitioning: contiguous runs of kernel ordinals worth one clock setting each."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FormatError
from ._io import Fields, envelope, open_envelope, read_json, write_json
from .trace import KernelTrace, sequence_signature

PARTITIONING_VERSION = 1


@dataclass
class Partition:
    """Kernels ``start`` (inclusive) to ``end`` (exclusive) of the iteration."""

    index: int
    start: int
    end: int
    label: str = ""          # for people: "layers.3 fwd attn", "allgather+qkv"
    signature: str = ""      # sequence_signature of the kernel names in [start, end)
    phase: str = "forward"
    has_comm: bool = False
    expected_time_s: float | None = None  # estimate used for merging short partitions

    @property
    def num_kernels(self) -> int:
        return self.end - self.start

    def to_json(self) -> dict:
        d = {"index": self.index, "start": self.start, "end": self.end, "label": self.label,
             "signature": self.signature, "phase": self.phase, "has_comm": self.has_comm}
        if self.expected_time_s is not None:
            d["expected_time_s"] = self.expected_time_s
        return d

    @classmethod
    def from_fields(cls, f: Fields) -> "Partition":
        has_comm = f.data.get("has_comm", False)
        f.used.add("has_comm")
        if not isinstance(has_comm, bool):
            raise f.fail("has_comm", f"expected true or false, got {has_comm!r}", "write true/false")
        return cls(index=f.int("index", required=True, minimum=0),
                   start=f.int("start", required=True, minimum=0),
                   end=f.int("end", required=True, minimum=1),
                   label=f.str("label", ""), signature=f.str("signature", ""),
                   phase=f.str("phase", "forward"), has_comm=has_comm,
                   expected_time_s=f.float("expected_time_s", nonnegative=True))


@dataclass
class Partitioning:
    """A cover of the trace's kernel ordinals [0, num_kernels) by consecutive partitions."""

    partitions: list[Partition]
    num_kernels: int
    trace_signature: str = ""
    strategy: str = ""
    min_partition_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.partitions)

    def signature(self) -> str:
        """Identifies model and cut points together; a schedule is bound to it."""
        return sequence_signature([self.trace_signature] +
                                  [f"{p.start}:{p.end}:{p.signature}" for p in self.partitions])

    def boundaries(self) -> list[int]:
        """Kernel ordinals at which a partition begins (what the runtime's table holds)."""
        return [p.start for p in self.partitions]

    def validate(self, path: str | None = None) -> "Partitioning":
        if not self.partitions:
            raise FormatError(path, "partitions", "there are no partitions",
                              "partition a non-empty trace")
        expect = 0
        for i, p in enumerate(self.partitions):
            where = f"partitions[{i}]"
            if p.index != i:
                raise FormatError(path, where + ".index", f"is {p.index}, expected {i}",
                                  "number partitions 0, 1, 2, ... in order")
            if p.start != expect:
                raise FormatError(path, where + ".start",
                                  f"is {p.start} but the previous partition ended at {expect}",
                                  "partitions must be contiguous and cover every kernel once")
            if p.end <= p.start:
                raise FormatError(path, where + ".end", f"{p.end} is not after start {p.start}",
                                  "every partition needs at least one kernel")
            expect = p.end
        if expect != self.num_kernels:
            raise FormatError(path, "num_kernels",
                              f"partitions cover {expect} kernels but the trace has {self.num_kernels}",
                              "re-run `gearshift partition` on the trace")
        return self

    def check_trace(self, trace: KernelTrace) -> None:
        if trace.signature() != self.trace_signature or len(trace) != self.num_kernels:
            raise FormatError(None, "trace_signature",
                              f"partitioning is for trace {self.trace_signature} "
                              f"({self.num_kernels} kernels), not {trace.signature()} "
                              f"({len(trace)} kernels)",
                              "partition this trace again with `gearshift partition`")

    @staticmethod
    def from_cuts(trace: KernelTrace, cuts: list[int], labels: list[str] | None = None,
                  strategy: str = "", min_partition_s: float = 0.0) -> "Partitioning":
        """Build from the start ordinals of each partition (cuts[0] must be 0)."""
        names = trace.names()
        ends = list(cuts[1:]) + [len(trace)]
        parts = []
        for i, (s, e) in enumerate(zip(cuts, ends)):
            ks = trace.kernels[s:e]
            phases = {k.phase for k in ks}
            parts.append(Partition(
                index=i, start=s, end=e, label=(labels[i] if labels else f"p{i}"),
                signature=sequence_signature(names[s:e]),
                phase=ks[0].phase if len(phases) == 1 else "mixed" if ks else "forward",
                has_comm=any(k.kind == "comm" for k in ks)))
        return Partitioning(parts, len(trace), trace.signature(), strategy,
                            min_partition_s).validate()

    def to_json(self) -> dict:
        return envelope("partitioning", PARTITIONING_VERSION, {
            "trace_signature": self.trace_signature, "num_kernels": self.num_kernels,
            "strategy": self.strategy, "min_partition_s": self.min_partition_s,
            "signature": self.signature(),
            "partitions": [p.to_json() for p in self.partitions],
        }, self.extra)

    @classmethod
    def from_json(cls, data, path: str | None = None) -> "Partitioning":
        f = open_envelope(data, "partitioning", PARTITIONING_VERSION, path)
        raw = f.list("partitions", required=True)
        parts = [Partition.from_fields(f.child("partitions", i, r)) for i, r in enumerate(raw)]
        out = cls(parts, num_kernels=f.int("num_kernels", required=True, minimum=1),
                  trace_signature=f.str("trace_signature", ""), strategy=f.str("strategy", ""),
                  min_partition_s=f.float("min_partition_s", 0.0, nonnegative=True))
        f.str("signature")
        out.extra = {k: v for k, v in f.unknown().items() if k not in ("format", "version")}
        return out.validate(path)

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Partitioning":
        return cls.from_json(read_json(path), str(path))
