"""Progress for long profiling and search work: a rich bar on a terminal, silent otherwise."""

from __future__ import annotations

import sys


class Progress:
    def __init__(self, enabled: bool = True, console=None):
        self.enabled = enabled
        self._console = console
        self._bar = None
        self._task = None

    def start(self, total: int, description: str) -> None:
        if not self.enabled:
            return
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn,  # noqa: PLC0415
                                   TimeElapsedColumn)
        from rich.progress import Progress as RichProgress  # noqa: PLC0415

        console = self._console or Console(stderr=True)
        self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                 transient=False, disable=not console.is_terminal)
        if not console.is_terminal:
            # logs and pipes get one line per stage instead of a redrawn bar
            print(f"{description} ...", file=sys.stderr, flush=True)
        self._bar.start()
        self._task = self._bar.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class Stage:
    """A one-line status (spinner on a terminal) for work without a count: tracing, search."""

    def __init__(self, description: str, enabled: bool = True):
        self.description = description
        self.enabled = enabled
        self._status = None
        self._t0 = 0.0

    def __enter__(self):
        import time  # noqa: PLC0415

        self._t0 = time.perf_counter()
        if self.enabled:
            from rich.console import Console  # noqa: PLC0415

            console = Console(stderr=True)
            if console.is_terminal:
                self._status = console.status(self.description + " ...")
                self._status.start()
            else:
                print(f"{self.description} ...", file=sys.stderr, flush=True)
        return self

    def __exit__(self, *exc):
        import time  # noqa: PLC0415

        if self._status is not None:
            self._status.stop()
        if self.enabled and exc[0] is None:
            print(f"{self.description}: done in {time.perf_counter() - self._t0:.1f} s",
                  file=sys.stderr, flush=True)
