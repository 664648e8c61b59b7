"""`gearshift daemon`: the privileged process that owns the GPUs' clocks (see docs/daemon.md)."""

from __future__ import annotations

import click

from ..config import environment


@click.command()
@click.option("--socket", "socket_path", default=None,
              help="Unix socket to listen on [default: GEARSHIFT_DAEMON_SOCKET or "
                   "/run/gearshift/gearshift.sock].")
@click.option("--backend", type=click.Choice(["dry-run", "sim", "nvml"]), required=True,
              help="How clocks are applied: nvml (real), dry-run (logged only), sim.")
@click.option("--allow-uid", "allow_uids", multiple=True,
              help="User (name or uid) allowed to ask for clocks; repeatable.")
@click.option("--allow-gid", "allow_gids", multiple=True,
              help="Group (name or gid) whose members may ask; repeatable. The socket is "
                   "given to the first one (mode 0660).")
@click.option("--lease-s", type=float, default=10.0, show_default=True,
              help="A client that sends nothing for this long loses its clocks.")
@click.option("--metrics-port", type=int, default=None,
              help="Serve Prometheus metrics on this port (loopback).")
@click.option("--metrics-addr", default="127.0.0.1", show_default=True,
              help="Address for the metrics endpoint.")
@click.option("--log", "log_path", default=None,
              help="Append the event log here instead of stderr.")
def daemon(socket_path, backend, allow_uids, allow_gids, lease_s, metrics_port, metrics_addr,
           log_path):
    """Own the GPUs' SM clocks on behalf of unprivileged training processes.

    Each lock is leased to one connected client and reset when it disconnects, dies or misses
    its heartbeat; SIGTERM/SIGINT reset every GPU the daemon touched before it exits.
    """
    from ..daemon.server import run_daemon  # noqa: PLC0415

    def announce(server, metrics):
        where = f"; metrics at {metrics.url}" if metrics else ""
        click.echo(f"gearshift daemon: serving {socket_path} ({server.socket_description}, "
                   f"backend {backend}){where}", err=True)

    socket_path = socket_path or environment().daemon_socket
    raise SystemExit(run_daemon(socket_path, backend, allow_uids, allow_gids, lease_s,
                                metrics_port, metrics_addr, log_path, announce=announce))
