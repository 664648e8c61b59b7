"""The schedule and status of a wrapped model, written beside a training checkpoint."""

from __future__ import annotations

import json
import os

SCHEDULE_FILE = "gearshift_schedule.json"
STATUS_FILE = "gearshift_status.json"


def save_beside(runner, folder: str) -> list[str]:
    """Write the runner's schedule (when it has one) and status into ``folder``."""
    os.makedirs(folder, exist_ok=True)
    written = []
    if runner.schedule is not None:
        path = os.path.join(folder, SCHEDULE_FILE)
        runner.schedule.save(path)
        written.append(path)
    path = os.path.join(folder, STATUS_FILE)
    with open(path, "w") as f:
        json.dump(runner.status(), f, indent=1, default=str)
    written.append(path)
    return written
