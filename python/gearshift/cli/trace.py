"""`gearshift trace`: one training step of a zoo model -> a kernel trace file."""

from __future__ import annotations

import time
from collections import Counter

import click

from ..errors import ConfigError


def _si(x: float, unit: str) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {prefix}{unit}"
    return f"{x:.0f} {unit}"


def summary(trace) -> list[str]:
    """A few lines for people: kernels by phase and kind, FLOPs, bytes, collectives."""
    phases = Counter(k.phase for k in trace.kernels)
    comm = [k for k in trace.kernels if k.kind == "comm"]
    lines = [f"{trace.model or 'model'}: {len(trace)} kernels "
             f"({', '.join(f'{n} {p}' for p, n in phases.items())}), "
             f"signature {trace.signature()}",
             f"  FLOPs {_si(trace.total_flops(), 'FLOP')}, memory traffic "
             f"{_si(trace.total_bytes(), 'B')}"]
    if comm:
        ops = Counter(k.comm_op for k in comm)
        lines.append(f"  communication: {len(comm)} kernels "
                     f"({', '.join(f'{n} {o}' for o, n in ops.items())}), "
                     f"{_si(sum(k.comm_bytes or 0 for k in comm), 'B')}")
    return lines


@click.command()
@click.option("--model", "-m", "model", default="gpt-1.3b", show_default=True,
              help="Zoo preset to trace (--list shows them).")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the trace here (JSON).")
@click.option("--batch", type=int, default=None, help="Override the preset's batch size.")
@click.option("--seq", type=int, default=None, help="Override the sequence length (GPT).")
@click.option("--layers", type=int, default=None, help="Override the number of layers (GPT).")
@click.option("--hf-config", "hf_config", type=click.Path(dir_okay=False), default=None,
              help="Trace a Hugging Face config.json (model_type llama or qwen3) instead of a "
                   "preset; --seq/--batch default to 4096/4.")
@click.option("--tp", type=int, default=None,
              help="Tensor-parallel degree (with --hf-config; default 1).")
@click.option("--nanobatches", type=int, default=1, show_default=True,
              help="Split the microbatch into this many interleaved nanobatches (Kareus: 2).")
@click.option("--list", "list_", is_flag=True, help="List the model presets and exit.")
def trace(model: str, out: str | None, batch, seq, layers, hf_config, tp, nanobatches,
          list_: bool) -> None:
    """Trace one training step (forward, backward, AdamW step) on the meta device: no GPU and
    no memory needed, any model size."""
    from .. import trace as tr  # noqa: PLC0415

    if list_:
        for name in tr.presets():
            click.echo(name)
        return
    # beyond these the tracer would build tensors no GPU holds (and take minutes doing it)
    for name, v, top in (("--batch", batch, 1_000_000), ("--seq", seq, 10_000_000),
                         ("--layers", layers, 10_000), ("--tp", tp, 1024),
                         ("--nanobatches", nanobatches, 64)):
        if v is not None and v < 1:
            raise ConfigError(f"{name} {v} must be >= 1", f"pass a positive {name}")
        if v is not None and v > top:
            raise ConfigError(f"{name} {v} is more than {top}", f"pass a realistic {name}")
    if tp is not None and hf_config is None:
        raise ConfigError("--tp goes with --hf-config", "pick a -tpN preset, or pass --hf-config")
    t0 = time.perf_counter()
    if hf_config:
        result = _trace_hf(hf_config, batch, seq, layers, tp, nanobatches)
    else:
        result = tr.trace_preset(model, nanobatches=nanobatches, batch=batch, seq=seq,
                                 layers=layers)
    took = time.perf_counter() - t0
    for line in summary(result):
        click.echo(line)
    click.echo(f"  traced on meta in {took:.2f} s")
    if out:
        result.save(out)
        click.echo(f"wrote {out}")


def _trace_hf(path: str, batch, seq, layers, tp, nanobatches):
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from .. import trace as tr  # noqa: PLC0415
    from ..errors import TraceError  # noqa: PLC0415
    from ..trace.zoo import llama_config_from_hf  # noqa: PLC0415

    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise TraceError(f"cannot read {path} as JSON: {exc}",
                         "pass the model's config.json") from exc
    if not isinstance(raw, dict):
        raise TraceError(f"{path} is not a JSON object", "pass the model's config.json")
    cfg = llama_config_from_hf(raw, batch=batch or 4, seq=seq or 4096, layers=layers,
                               tp=tp or 1)
    name = str(raw.get("_name_or_path") or Path(path).parent.name or cfg.family)
    if cfg.tp > 1:
        name += f"-tp{cfg.tp}"
    return tr.trace_config(cfg, name, nanobatches)
