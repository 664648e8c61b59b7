"""CPU package and DRAM energy from Linux RAPL (``/sys/class/powercap/intel-rapl*``).

The counters are microjoule registers that wrap at ``max_energy_range_uj``; a reader keeps the
last raw value per zone and accumulates deltas, so wraps are handled as long as it is read at
least once per wrap period (the monitor polls while a window is open). Since 2020 kernels make
``energy_uj`` root-only (CVE-2020-8694); an unreadable zone is reported with the reason, never
counted as zero.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

POWERCAP_ROOT = "/sys/class/powercap"


@dataclass
class RaplZone:
    path: Path
    name: str          # "package-0", "dram", "core", "uncore", "psys"
    scope: str         # "cpu" | "dram"
    label: str         # unique: "package-0", "package-0/dram"
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


@dataclass
class RaplReader:
    """Accumulating reader over the readable package and DRAM zones."""

    zones: list[RaplZone] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)   # label -> why
    _last_uj: dict[str, int] = field(default_factory=dict)
    _total_j: dict[str, float] = field(default_factory=dict)

    @classmethod
    def discover(cls, root: str | os.PathLike = POWERCAP_ROOT) -> "RaplReader":
        reader = cls()
        base = Path(root)
        if not base.is_dir():
            reader.unreadable["rapl"] = f"{base} does not exist (no RAPL on this machine/kernel)"
            return reader
        for top in sorted(base.glob("intel-rapl:*")):
            if top.name.count(":") != 1:
                continue       # sub-zones are visited under their package
            pkg = _zone(top, None)
            if pkg is None:
                continue
            reader._add(pkg)
            for sub in sorted(top.glob(f"{top.name}:*")):
                z = _zone(sub, pkg.label)
                if z is not None and z.scope == "dram":
                    # core/uncore are parts of the package figure; counting them would double it
                    reader._add(z)
        if not reader.zones and not reader.unreadable:
            reader.unreadable["rapl"] = f"no intel-rapl zones under {base}"
        return reader

    def _add(self, z: RaplZone) -> None:
        try:
            self._last_uj[z.label] = z.read_uj()
        except (OSError, ValueError) as exc:
            why = ("permission denied: energy_uj is root-only on this kernel; run as root or "
                   "`sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj`"
                   if isinstance(exc, PermissionError) else str(exc))
            self.unreadable[z.label] = why
            return
        self._total_j[z.label] = 0.0
        self.zones.append(z)

    def poll(self) -> dict[str, float]:
        """Accumulate every zone's delta since the last read; returns totals in J per label."""
        for z in self.zones:
            try:
                now = z.read_uj()
            except (OSError, ValueError):
                continue
            last = self._last_uj[z.label]
            delta = now - last if now >= last else now + z.max_range_uj - last
            self._total_j[z.label] += delta / 1e6
            self._last_uj[z.label] = now
        return dict(self._total_j)

    def scopes(self) -> dict[str, str]:
        return {z.label: z.scope for z in self.zones}


def _zone(path: Path, parent_label: str | None) -> RaplZone | None:
    try:
        name = (path / "name").read_text().strip()
        max_range = int((path / "max_energy_range_uj").read_text().strip())
    except (OSError, ValueError):
        return None
    if parent_label is None:
        scope = "dram" if name == "dram" else "cpu"
        label = name
    else:
        scope = "dram" if name == "dram" else "cpu"
        label = f"{parent_label}/{name}"
    if name == "psys":
        return None    # the whole SoC on laptops: overlaps package and dram
    return RaplZone(path, name, scope, label, max_range)
