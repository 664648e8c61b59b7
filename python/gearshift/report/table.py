"""A short savings table: baseline against gearshift, time and energy, with scope and source."""

from __future__ import annotations


def _pct(x: float, digits: int = 2) -> str:
    v = round(x * 100, digits)
    return f"{(v if v != 0 else 0.0):+.{digits}f} %"   # never "-0.00 %"


def savings_rows(base_time_s: float, base_energy_j: float, time_s: float, energy_j: float,
                 label: str = "gearshift") -> list[tuple[str, str, str, str]]:
    dt = time_s / base_time_s - 1.0
    de = energy_j / base_energy_j - 1.0
    return [
        ("", "time / iteration", "energy / iteration", "avg power"),
        ("all-max baseline", f"{base_time_s * 1e3:.2f} ms", f"{base_energy_j:.2f} J",
         f"{base_energy_j / base_time_s:.0f} W"),
        (label, f"{time_s * 1e3:.2f} ms", f"{energy_j:.2f} J", f"{energy_j / time_s:.0f} W"),
        ("change", _pct(dt), _pct(de),
         _pct((energy_j / time_s) / (base_energy_j / base_time_s) - 1, 1)),
    ]


def format_table(rows, title: str = "") -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [title] if title else []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
