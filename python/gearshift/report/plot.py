"""The frontier plot (PNG, matplotlib Agg): frontier, chosen point, all-max baseline, default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..model import Frontier


@dataclass
class Marker:
    label: str
    time_s: float
    energy_j: float
    style: str = "o"      # matplotlib marker
    color: str = "C1"
    note: str = ""        # written next to the marker, e.g. "-5.0 % energy, +0.0 % time"
    note_offset: tuple[int, int] = (12, -6)   # points from the marker (text's top-left)


def frontier_plot(frontier: Frontier, path: str | Path, markers: list[Marker] | None = None,
                  title: str = "") -> Path:
    """Write the plot; times are shown in ms per iteration, energy in J per iteration."""
    import matplotlib  # noqa: PLC0415  (matplotlib only when a plot is asked for)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    pts = sorted(frontier.points, key=lambda p: p.time_s)
    t = [p.time_s * 1e3 for p in pts]
    e = [p.energy_j for p in pts]
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    ax.plot(t, e, "-", color="C0", lw=1.8, label=f"time-energy frontier ({len(pts)} points)",
            zorder=2)
    ax.plot(t, e, ".", color="C0", ms=3, zorder=2)
    for m in markers or []:
        ax.plot(m.time_s * 1e3, m.energy_j, m.style, color=m.color, ms=11, mec="black",
                mew=0.8, label=m.label, zorder=4, linestyle="none")
        if m.note:
            ax.annotate(m.note, (m.time_s * 1e3, m.energy_j), xytext=m.note_offset,
                        textcoords="offset points", fontsize=8.5, color=m.color,
                        fontweight="bold", va="top", zorder=5,
                        bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
    base = frontier.baseline
    if base is not None:
        ax.axvline(base.time_s * 1e3, color="grey", lw=0.8, ls=":", zorder=1)
        ax.axhline(base.energy_j, color="grey", lw=0.8, ls=":", zorder=1)
    ax.set_xlabel("iteration time (ms)")
    scope = {"gpu": "GPU"}.get(frontier.energy_scope, frontier.energy_scope)
    ax.set_ylabel(f"{scope} energy per iteration (J)")
    ax.set_title(title or "gearshift time-energy frontier", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8.5, loc="upper right", framealpha=0.9)
    ax.text(0.01, 0.01, f"all figures {frontier.source}, energy scope: {frontier.energy_scope}",
            transform=ax.transAxes, fontsize=8, color="dimgrey", va="bottom")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
