"""The runtime: enforce a Schedule while the model trains, and always restore the clocks.

    with gearshift.runtime.Session(schedule, backend=open_device("nvml"), trace=trace) as s:
        for batch in loader:
            s.step()            # one training iteration begins (optional with auto_wrap)
            train_step(batch)

The native launch hook counts kernel launches (CUPTI); at each partition's first launch a
stream-ordered write tells the controller thread that the GPU got there, and it sets the clock
through a backend: ``nvml`` (real), ``dry-run`` (logs would-be switches), ``sim`` (a simulated
device time base). Without a GPU, ``Session.replay(trace)`` plays a trace's launches through the
same callback code on a fake device, which is how the simulated path enforces a schedule.
"""

from .backends import make_backend
from .markers import install_module_markers
from .session import Session, SwitchEvent

__all__ = ["Session", "SwitchEvent", "make_backend", "install_module_markers"]
