"""`gearshift tune`: job-level knobs (power limit, batch size) and online adaptation figures."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import option


def _trace_dir(_ctx, _param, value):
    from ..datasets import data_root

    return data_root("zeus_nsdi23_traces", value)


def _data_option(f):
    return option("--data", "trace_dir", old=("--trace",), type=click.Path(path_type=Path),
                  default=None, callback=_trace_dir,
                  help="Folder holding zeus_nsdi23_traces (default: ../shared/data when "
                       "present, else the copy shipped with gearshift).")(f)


def _console():
    import sys

    from rich.console import Console

    # Piped output (CI logs, bench files) would otherwise wrap at 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=150)


def _table(title: str, columns: list[str], rows: list[list]):
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(*[str(x) for x in r])
    return t


@click.group()
def tune():
    """Job-level tuning: power limit (Zeus cost), batch size (bandit), online adaptation."""


def print_power_limit(trace_dir, etas, gpus, all_batch_sizes, time_tolerance, early_stop):
    from ..tuning.replay import validation

    kw = dict(time_tolerance=time_tolerance, early_stop=early_stop)
    console = _console()
    rows = validation.power_limit_table(trace_dir, etas, gpus, all_batch_sizes, **kw)
    logs = validation.profile_log_table(trace_dir, etas, **kw)
    if not all_batch_sizes:
        console.print(_table(
            "Power limit chosen online vs the trace optimum (Zeus cost, default batch size)",
            ["gpu", "workload", "bs", "eta", "chosen W", "optimum W", "match", "explored"],
            [[r.source, r.workload, r.batch_size, r.eta, r.chosen_w, r.optimum_w,
              "yes" if r.match else f"NO (+{r.cost_excess:.1%})", f"{r.explored}/{r.available}"]
             for r in rows]))
    console.print(_table(
        "Zeus profiling logs (windows summed over GPUs)",
        ["log", "eta", "chosen W", "optimum W", "match", "explored"],
        [[r.source, r.eta, r.chosen_w, r.optimum_w,
          "yes" if r.match else f"NO (+{r.cost_excess:.1%})", f"{r.explored}/{r.available}"]
         for r in logs]))
    for name, rs in (("trace", rows), ("profiling logs", logs)):
        matched = sum(r.match for r in rs)
        worst = max(r.cost_excess for r in rs)
        explored = sum(r.explored for r in rs) / sum(r.available for r in rs)
        console.print(f"{name}: {matched}/{len(rs)} choices equal the optimum; worst cost "
                      f"excess {worst:.2%}; {explored:.0%} of limits measured")
    return rows, logs


@tune.command("power-limit")
@_data_option
@click.option("--eta", "etas", type=float, multiple=True, help="Zeus eta (repeatable).")
@option("--zeus-gpu", "gpus", old=("--gpu",), multiple=True,
        help="GPU of the Zeus traces: a40, v100, p100, rtx6000 (repeatable).")
@click.option("--all-batch-sizes", is_flag=True, help="Every batch size, summary only.")
@click.option("--time-tolerance", type=float, default=0.10, show_default=True,
              help="Timing noise allowed when stopping exploration early.")
@click.option("--no-early-stop", is_flag=True, help="Measure every limit (Zeus's behaviour).")
@click.option("--log", "log_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Choose from your own windows instead (Zeus profiling-log CSV format).")
def power_limit(trace_dir, etas, gpus, all_batch_sizes, time_tolerance, no_early_stop,
                log_path):
    """Replay the Zeus traces through the online power-limit optimizer."""
    from ..tuning.replay import validation, zeus_trace

    if log_path is not None:
        from ..tuning.power_limit import optimum_limit, run_optimizer

        ms, n_gpus = zeus_trace.load_profile_windows(log_path)
        for eta in etas or (0.5,):
            opt = run_optimizer(ms, eta, world_size=n_gpus, time_tolerance=time_tolerance,
                                early_stop=not no_early_stop)
            click.echo(f"eta={eta}: power limit {opt.chosen_limit_w} W (exhaustive optimum "
                       f"{optimum_limit(ms, eta, n_gpus)} W; {len(opt.measurements)} of "
                       f"{len(ms)} windows used, {n_gpus} GPU(s))")
        return
    print_power_limit(trace_dir, etas or validation.DEFAULT_ETAS, gpus or zeus_trace.GPUS,
                      all_batch_sizes, time_tolerance, not no_early_stop)


def print_batch_size(trace_dir, workloads, gpu, eta, recurrences, seeds, state):
    import numpy as np
    from ..tuning.replay import recurrence

    rows, curves = [], []
    for w in workloads:
        rs = [recurrence.simulate(trace_dir, w, gpu, eta, recurrences, seed=s,
                                  state_path=None if state is None else
                                  Path(state) / f"{w.replace('/', '_')}_{gpu}_{s}.sqlite")
              for s in seeds]
        best = rs[0].best_fixed_cost
        cum = np.mean([r.cumulative_regret[-1] for r in rs])
        tail = max(1, recurrences // 5)
        last = np.mean([np.mean(r.regret[-tail:]) for r in rs])
        on_best = np.mean([np.mean(np.array(r.batch_sizes[-tail:]) == r.best_fixed_batch_size)
                           for r in rs])
        rows.append([w, rs[0].best_fixed_batch_size, f"{best:.4g}", f"{cum:.4g}",
                     f"{cum / best:.2f}", f"{last / best:+.2%}", f"{on_best:.0%}"])
        per_rec = np.mean([r.regret for r in rs], axis=0) / best
        cum_rec = np.mean([r.cumulative_regret for r in rs], axis=0) / best
        edges = list(range(0, recurrences, max(1, recurrences // 5))) + [recurrences]
        curves.append([w] + [f"{per_rec[a:b].mean():+.1%} / {cum_rec[b - 1]:.2f}"
                             for a, b in zip(edges, edges[1:]) if b > a])
    _console().print(_table(
        f"Batch-size bandit on {gpu}, eta={eta}, {recurrences} recurrences, "
        f"mean of {len(seeds)} seeds (regret vs best fixed batch size)",
        ["workload", "best bs", "best cost J", "cum regret J", "cum regret / best",
         f"regret/rec last {tail}", f"on best (last {tail})"], rows))
    _console().print(_table(
        "Regret over recurrences: mean per-recurrence regret (% of the best fixed cost) / "
        "cumulative regret (in best-fixed recurrences) at the window's end",
        ["workload"] + [f"rec {a + 1}-{b}" for a, b in zip(edges, edges[1:]) if b > a],
        curves))
    return rows


@tune.command("batch-size")
@_data_option
@click.option("--workload", "workloads", multiple=True, help="e.g. imagenet/resnet50.")
@option("--zeus-gpu", "gpu", old=("--gpu",), default="v100", show_default=True,
        help="GPU of the Zeus traces: a40, v100, p100, rtx6000.")
@click.option("--eta", type=float, default=0.5, show_default=True,
              help="Zeus eta: weight of energy against time in the cost (0..1).")
@click.option("--recurrences", type=click.IntRange(1), default=50, show_default=True,
              help="Recurring runs of each job to replay.")
@click.option("--seeds", type=click.IntRange(1), default=3, show_default=True,
              help="Replays with different random seeds.")
@click.option("--state", type=click.Path(file_okay=False), default=None,
              help="Folder for the SQLite state files (default: in memory for the replay).")
def batch_size(trace_dir, workloads, gpu, eta, recurrences, seeds, state):
    """Replay recurring jobs through the Thompson-sampling batch-size optimizer."""
    from ..tuning.replay import zeus_trace

    print_batch_size(trace_dir, workloads or list(zeus_trace.JOBS), gpu, eta, recurrences,
                     range(seeds), state)


@tune.command("report")
@_data_option
def report(trace_dir):
    """Every tuning figure: power limit vs optimum, bandit regret, online drift recovery."""
    from ..tuning.replay import validation, zeus_trace

    print_power_limit(trace_dir, validation.DEFAULT_ETAS, zeus_trace.GPUS, False, 0.10, True)
    print_batch_size(trace_dir, list(zeus_trace.JOBS), "v100", 0.5, 50, range(3), None)
    print_online(1200, 300, "h100-sxm", 1.0, 0)


@tune.command("iterations")
@click.option("--kernels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Kernel names as launched, one per line.")
@click.option("--power", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with time_s and power_w columns.")
@click.option("--min-period-s", type=float, default=None,
              help="Shortest iteration period to consider in the power trace (s).")
@click.option("--max-period-s", type=float, default=None,
              help="Longest iteration period to consider in the power trace (s).")
def iterations(kernels, power, min_period_s, max_period_s):
    """Find the iteration from a kernel-name sequence or a power trace."""
    from ..errors import ConfigError
    from ..tuning import boundaries

    if not kernels and not power:
        raise ConfigError("nothing to analyse", "pass --kernels FILE or --power FILE")
    from ..model._io import read_csv_frame, read_text

    if kernels:
        names = [ln.strip() for ln in read_text(kernels, "kernel-name list").splitlines()
                 if ln.strip()]
        kp = boundaries.kernel_period(names)
        click.echo(f"kernels: {len(names)}; iteration = {kp.period} kernels, first full one "
                   f"at index {kp.offset}, {kp.repeats} repeats, {kp.match:.1%} equal, "
                   f"signature {kp.signature}")
    if power:
        import numpy as np

        df = read_csv_frame(power, "power trace", ["time_s", "power_w"],
                            "write one row per sample: time_s,power_w",
                            numeric=["time_s", "power_w"])
        steps = np.diff(df.time_s.to_numpy())
        if len(steps) < 2 or not (steps > 0).all():
            raise ConfigError(f"{power}: time_s must increase over at least three samples",
                              "write one row per sample, in time order: time_s,power_w")
        dt = float(np.median(steps))
        pp = boundaries.power_period(df.power_w.to_numpy(), dt, min_period_s, max_period_s)
        click.echo(f"power: {len(df)} samples every {dt * 1e3:.2f} ms; iteration period "
                   f"{pp.period_s * 1e3:.2f} ms (autocorrelation {pp.confidence:.2f})")


def print_online(iterations, drift_at, preset, eta, seed):
    from ..tuning.replay.drift import run_drift_experiment

    r = run_drift_experiment(iterations=iterations, drift_at=drift_at, preset=preset, eta=eta,
                             seed=seed)
    e, t = r.energy_j, r.time_s
    rows = [[m, f"{e[m]:.0f}", f"{e[m] / e['online'] - 1:+.1%}", f"{t[m]:.2f}"]
            for m in ("online", "stale", "default", "oracle")]
    con = _console()
    con.print(_table(
        f"Online tuning on the simulated {preset}: a co-located job takes 90% of HBM bandwidth "
        f"at iteration {drift_at} of {iterations} (GPU energy, simulated, eta={eta})",
        ["method", "energy J", "vs online", "time s"], rows))
    con.print(f"drift detected at iteration {r.detected_at} "
              f"({None if r.detected_at is None else r.detected_at - drift_at} after it); "
              f"cost within 2% of the oracle plan from iteration {r.recovered_at} "
              f"(recovery: {r.recovery_iterations} iterations); {r.profile_iterations} "
              f"profiling iterations in all, {r.replans} plans made")
    return r


@tune.command("online")
@click.option("--iterations", type=click.IntRange(10, 100_000), default=1200, show_default=True,
              help="Simulated training iterations (each costs a few ms to simulate).")
@click.option("--drift-at", type=click.IntRange(1), default=300, show_default=True,
              help="Iteration at which the co-located job arrives.")
@click.option("--preset", default="h100-sxm", show_default=True,
              help="Simulated GPU: h100-sxm, a100-sxm or a40.")
@click.option("--eta", type=float, default=1.0, show_default=True,
              help="Zeus eta: weight of energy against time in the cost (0..1).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Random seed (numpy's range).")
def online(iterations, drift_at, preset, eta, seed):
    """Online profiling + re-planning vs a stale schedule and default clocks (simulated)."""
    print_online(iterations, drift_at, preset, eta, seed)


def _bso(job, batch_sizes, default, state, seed):
    from ..errors import ConfigError
    from ..tuning.batch_size import BatchSizeOptimizer

    try:
        sizes = [int(x) for x in batch_sizes.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--batch-sizes '{batch_sizes}' is not a comma-separated list of "
                          "integers", "write e.g. --batch-sizes 32,64,128") from None
    return BatchSizeOptimizer(job, sizes, default, state, seed=seed)


def _bso_options(f):
    for opt in reversed([
        click.option("--job", required=True, help="Job id; the state file belongs to it."),
        click.option("--batch-sizes", required=True, help="Arms, e.g. 32,64,128,256."),
        click.option("--default", "default", type=int, required=True,
                     help="Batch size exploration starts from."),
        click.option("--state", type=click.Path(dir_okay=False),
                     default=".gearshift/batch_size.sqlite", show_default=True,
                     help="SQLite file holding the bandit's state for this job."),
        click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
                     help="Random seed of the Thompson sampling (numpy's range)."),
    ]):
        f = opt(f)
    return f


@tune.command("next-batch-size")
@_bso_options
def next_batch_size(job, batch_sizes, default, state, seed):
    """Print the batch size the bandit picks for this recurrence of a job."""
    bso = _bso(job, batch_sizes, default, state, seed)
    try:
        click.echo(bso.predict())
    finally:
        bso.close()


@tune.command("observe-batch-size")
@_bso_options
@click.option("--batch-size", type=int, required=True, help="The batch size the run used.")
@click.option("--cost", type=float, required=True, help="Zeus cost of the run (J).")
@click.option("--reached/--not-reached", default=True, help="Did it reach the target?")
def observe_batch_size(job, batch_sizes, default, state, seed, batch_size, cost, reached):
    """Record a finished run's cost in the job's state file."""
    bso = _bso(job, batch_sizes, default, state, seed)
    try:
        n = sum(o.reached for o in bso.store.observations())
        bso.observe(batch_size, cost, reached, recurrence=n)
        what = "reached" if reached else "not reached"
        click.echo(f"recorded {batch_size} -> {cost:.6g} J ({what}); "
                   f"best so far {bso.best_known()}")
    finally:
        bso.close()
