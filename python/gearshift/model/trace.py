"""KernelTrace: the ordered device kernels of one training iteration."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import FormatError
from ._io import Fields, envelope, open_envelope, read_json, write_json

KINDS = ("compute", "comm")
PHASES = ("forward", "backward", "optimizer", "other")
SOURCES = ("op-tracer", "cupti", "markers", "synthetic")
TRACE_VERSION = 1


def sequence_signature(names: Iterable[str]) -> str:
    """A stable 16-hex-digit digest of a kernel-name sequence (same model -> same signature)."""
    h = hashlib.sha256()
    for n in names:
        h.update(n.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


@dataclass
class KernelRecord:
    """One device kernel. Unknown quantities are None, never 0."""

    name: str
    kind: str = "compute"            # compute | comm
    phase: str = "forward"           # forward | backward | optimizer | other
    module: str = ""                 # module path it came from, e.g. "layers.3.attn"
    op: str = ""                     # framework op that launched it, e.g. "aten::mm"
    stream: int = 0
    flops: float | None = None
    bytes_read: float | None = None
    bytes_written: float | None = None
    comm_bytes: float | None = None  # payload of a collective / p2p, per rank
    comm_op: str = ""                # all_reduce | all_gather | reduce_scatter | p2p | ...
    grid: tuple[int, int, int] | None = None
    block: tuple[int, int, int] | None = None
    duration_s: float | None = None  # measured duration, when the trace came from a GPU
    timestamp_s: float | None = None # launch time, when recorded
    # Data flow: the ids (= launch ordinals in the trace) of the kernels whose results this one
    # reads, all earlier in the trace. None = unknown (a CUPTI trace): the simulator then waits
    # for every earlier kernel, so nothing overlaps it. () = reads nothing produced this step.
    deps: tuple[int, ...] | None = None
    nanobatch: int = 0               # which nanobatch of the microbatch it belongs to

    @property
    def bytes_total(self) -> float | None:
        if self.bytes_read is None and self.bytes_written is None:
            return None
        return (self.bytes_read or 0.0) + (self.bytes_written or 0.0)

    def to_json(self) -> dict:
        d: dict = {"name": self.name, "kind": self.kind, "phase": self.phase}
        for key in ("module", "op", "comm_op"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.stream:
            d["stream"] = self.stream
        for key in ("flops", "bytes_read", "bytes_written", "comm_bytes", "duration_s",
                    "timestamp_s"):
            v = getattr(self, key)
            if v is not None:
                d[key] = v
        if self.grid is not None:
            d["grid"] = list(self.grid)
        if self.block is not None:
            d["block"] = list(self.block)
        if self.deps is not None:
            d["deps"] = list(self.deps)
        if self.nanobatch:
            d["nanobatch"] = self.nanobatch
        return d

    @classmethod
    def from_fields(cls, f: Fields) -> "KernelRecord":
        def dims(key: str):
            v = f.list(key) if key in f.data and f.data[key] is not None else None
            if v is None:
                return None
            if len(v) != 3 or not all(isinstance(x, int) and not isinstance(x, bool)
                                      and 1 <= x <= 2**31 - 1 for x in v):
                raise f.fail(key, f"expected three positive integers, got {v!r}"[:200],
                             "write [x, y, z] with 1 <= x, y, z < 2**31 (CUDA's limit)")
            return (v[0], v[1], v[2])

        return cls(
            name=f.str("name", required=True),
            kind=f.str("kind", "compute", choices=KINDS),
            phase=f.str("phase", "forward", choices=PHASES),
            module=f.str("module", ""),
            op=f.str("op", ""),
            stream=f.int("stream", 0, minimum=0),
            flops=f.float("flops", nonnegative=True),
            bytes_read=f.float("bytes_read", nonnegative=True),
            bytes_written=f.float("bytes_written", nonnegative=True),
            comm_bytes=f.float("comm_bytes", nonnegative=True),
            comm_op=f.str("comm_op", ""),
            grid=dims("grid"),
            block=dims("block"),
            duration_s=f.float("duration_s", nonnegative=True),
            timestamp_s=f.float("timestamp_s"),
            deps=_deps(f),
            nanobatch=f.int("nanobatch", 0, minimum=0),
        )


def _deps(f: Fields) -> tuple[int, ...] | None:
    if f.data.get("deps") is None:
        f.used.add("deps")
        return None
    v = f.list("deps")
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        raise f.fail("deps", f"expected kernel ids (integers >= 0), got {v!r}",
                     "list the ids (launch ordinals) of the kernels this one reads from")
    return tuple(v)


@dataclass
class KernelTrace:
    """The kernel sequence of one iteration, in launch order (the index is the ordinal)."""

    kernels: list[KernelRecord]
    model: str = ""                  # a name for people, e.g. "gpt-1.3b"
    source: str = "op-tracer"        # op-tracer | cupti | markers | synthetic
    device: str = ""                 # device the trace was taken on ("meta" for op-tracer)
    meta: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.kernels)

    def names(self) -> list[str]:
        return [k.name for k in self.kernels]

    def signature(self) -> str:
        return sequence_signature(self.names())

    def total_flops(self) -> float:
        return float(sum(k.flops or 0.0 for k in self.kernels))

    def total_bytes(self) -> float:
        return float(sum(k.bytes_total or 0.0 for k in self.kernels))

    @property
    def nanobatches(self) -> int:
        return int(self.meta.get("nanobatches", 1) or 1)

    def has_deps(self) -> bool:
        return any(k.deps is not None for k in self.kernels)

    def validate(self, path: str | None = None) -> "KernelTrace":
        if not self.kernels:
            raise FormatError(path, "kernels", "the trace is empty",
                              "trace a training step that launches at least one kernel")
        for i, k in enumerate(self.kernels):
            if k.deps is not None and any(d >= i for d in k.deps):
                raise FormatError(path, f"kernels[{i}].deps",
                                  f"kernel {i} reads from {max(k.deps)}, which is not launched "
                                  "before it", "a kernel can only read results of earlier "
                                  "kernels; regenerate the trace")
        return self

    def to_json(self) -> dict:
        return envelope("kernel_trace", TRACE_VERSION, {
            "model": self.model, "source": self.source, "device": self.device,
            "signature": self.signature(), "meta": self.meta,
            "kernels": [k.to_json() for k in self.kernels],
        }, self.extra)

    @classmethod
    def from_json(cls, data, path: str | None = None) -> "KernelTrace":
        f = open_envelope(data, "kernel_trace", TRACE_VERSION, path)
        raw = f.list("kernels", required=True)
        kernels = [KernelRecord.from_fields(f.child("kernels", i, r)) for i, r in enumerate(raw)]
        trace = cls(kernels=kernels, model=f.str("model", ""),
                    source=f.str("source", "op-tracer", choices=SOURCES),
                    device=f.str("device", ""), meta=f.dict("meta"))
        stored = f.str("signature")
        trace.extra = {k: v for k, v in f.unknown().items() if k not in ("format", "version")}
        trace.validate(path)
        if stored is not None and stored != trace.signature():
            raise FormatError(path, "signature",
                              f"stored {stored} but the kernels hash to {trace.signature()}",
                              "the kernel list was edited by hand; regenerate the trace")
        return trace

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "KernelTrace":
        return cls.from_json(read_json(path), str(path))


def kernels_from_names(names: Sequence[str], **common) -> list[KernelRecord]:
    """Convenience for tests and synthetic traces."""
    return [KernelRecord(name=n, **common) for n in names]
