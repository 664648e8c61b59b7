"""`gearshift bench switch`: the runtime's micro-benchmarks, one line per figure."""

from __future__ import annotations

import click


@click.group(name="bench", help="Micro-benchmarks (clock-switch latency, overheads).")
def bench():
    pass


@bench.command(name="switch")
@click.option("--quick", is_flag=True, help="A quarter of the samples (CI smoke run).")
def switch(quick: bool):
    """Hook cost per launch, backend cost per switch, boundary-to-clock-call latency.

    Without a GPU these run on the CPU fakes and measure the runtime's own code paths. The last
    line is the write-trigger latency: `median_us=<float> p99_us=<float>`.
    """
    from ..runtime import bench as rb  # noqa: PLC0415

    click.echo(f"# {rb.environment()}" + (" (a GPU is present: real-step figures follow)"
                                           if rb.gpu_available() else " (no GPU: CPU figures only)"))
    last = None
    for name, r in rb.run_all(quick=quick):
        if name == "hook_cost":
            click.echo(f"hook_cost_ns_per_launch off={r['off_ns']:.1f} record={r['record_ns']:.1f} "
                       f"apply={r['apply_ns']:.1f} apply_checked={r['apply_checked_ns']:.1f} "
                       f"apply_between_boundaries={r['apply_no_boundary_ns']:.1f} "
                       f"(launches={r['launches']}, over an empty subscriber "
                       f"{r['baseline_ns']:.1f} ns)")
        elif name.startswith("backend_cost"):
            click.echo(f"controller_cost_per_switch backend={r['backend']} "
                       f"median_us={r['median_us']:.3f} p99_us={r['p99_us']:.3f} n={r['n']}")
        else:
            click.echo(f"boundary_to_clock_call trigger={r['trigger']} backend={r['backend']} "
                       f"median_us={r['median_us']:.2f} p99_us={r['p99_us']:.2f} "
                       f"max_us={r['max_us']:.1f} n={r['n']} superseded={r['superseded']} "
                       f"poll={r['poll']}")
            if name == "latency/write":
                last = r
    if rb.gpu_available():
        g = rb.real_gpu_step(samples=50 if quick else 200)
        click.echo(f"real_gpu_step hook_added_ns_per_launch={g['apply_added_ns_per_launch']:.1f} "
                   f"launches_per_step={g['launches_per_step']} (dry-run, PyTorch MLP step)")
        for trig in ("host_func", "write"):
            click.echo(f"real_gpu_step boundary_to_clock_call trigger={trig} "
                       f"median_us={g[trig + '_median_us']:.2f} p99_us={g[trig + '_p99_us']:.2f} "
                       f"n={g[trig + '_n']} (upper bound: from enqueue on an idle stream)")
        last = {"median_us": g["write_median_us"], "p99_us": g["write_p99_us"]}
    from ..daemon import bench_daemon_added_us  # noqa: PLC0415  (daemon: issue #10)

    d = bench_daemon_added_us(n=1250 if quick else 5000)
    click.echo(f"daemon_added_us={d['daemon_added_us']:.2f} backend={d['backend']} "
               f"daemon_median_us={d['daemon_median_us']:.2f} daemon_p99_us={d['daemon_p99_us']:.2f} "
               f"inprocess_median_us={d['inprocess_median_us']:.3f} n={d['n']} "
               f"(a lock through `gearshift daemon` minus the same lock in-process)")
    if last is not None:
        click.echo(f"median_us={last['median_us']:.2f} p99_us={last['p99_us']:.2f}")
