#pragma once
// SIGINT / SIGTERM restore clocks: the handler (async-signal-safe: atomic stores and nanosleep
// only) disables every registered controller, waits up to 2 s for their threads to reset the
// clock, then chains to the handler that was installed before (Python's, or the default action,
// which it re-raises).
#include "signal/controller.h"

namespace gearshift::safety {

void register_for_signals(signal::Controller* c);
void unregister_for_signals(signal::Controller* c);
int signals_handled();  // how many SIGINT/SIGTERM the handler has seen (tests)

}  // namespace gearshift::safety
