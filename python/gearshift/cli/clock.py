"""`gearshift clock`: ask the clock daemon for its state, or hold a clock while this runs."""

from __future__ import annotations

import json
import signal
import threading

import click

from ..config import environment
from ._common import option


def _connect(socket_path: str):
    from ..daemon.client import DaemonClient  # noqa: PLC0415

    return DaemonClient(socket_path)


@click.group()
@click.option("--socket", "socket_path", default=None,
              help="The daemon's socket [default: GEARSHIFT_DAEMON_SOCKET or "
                   "/run/gearshift/gearshift.sock].")
@click.pass_context
def clock(ctx, socket_path):
    """Talk to `gearshift daemon` (no root needed)."""
    ctx.obj = socket_path or environment().daemon_socket


@clock.command()
@click.pass_obj
def status(socket_path):
    """Print one JSON object: every GPU's locked clock and holder."""
    with _connect(socket_path) as c:
        click.echo(json.dumps(c.status()))


@clock.command()
@click.argument("mhz", type=int)
@option("--gpu-index", "gpu", old=("--gpu",), type=click.IntRange(0), default=0,
        show_default=True, help="Index of the GPU whose clock to hold.")
@click.pass_obj
def hold(socket_path, mhz, gpu):
    """Lock the SM clock at MHZ and keep it until interrupted or killed."""
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    c = _connect(socket_path)
    try:
        c.lock(gpu, mhz)
        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        click.echo(f"holding GPU {gpu} at {mhz} MHz through {socket_path} (daemon pid "
                   f"{c.daemon_pid}, backend {c.backend}); Ctrl-C releases it", err=True)
        period_s = max(c.lease_s / 3.0, 0.01)
        try:
            while not stop.wait(period_s):
                c.heartbeat()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        c.reset(gpu)
        click.echo(f"released GPU {gpu}", err=True)
    finally:
        c.close()
