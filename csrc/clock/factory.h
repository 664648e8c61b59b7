#pragma once
// One place that turns a backend name into a backend (used by the runtime, the watchdog helper
// and the daemon): "nvml", "dry-run", "sim".
#include <string>
#include <vector>

#include "clock/backend.h"

namespace gearshift::clock {

struct BackendSpec {
  std::string kind = "dry-run";      // nvml | dry-run | sim
  int device_count = 1;              // dry-run / sim
  std::vector<int> supported_mhz;    // dry-run / sim; empty = accept any (dry-run)
  int default_mhz = 1980;            // sim
  int64_t switch_latency_ns = 0;     // sim
};

BackendPtr make_backend(const BackendSpec& spec);

}  // namespace gearshift::clock
