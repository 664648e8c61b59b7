#pragma once
// Micro-benchmark loops, in C++ so no interpreter overhead is timed. CPU figures run against
// the fakes (fake CUPTI callbacks, fake device); they measure the runtime's own code paths.
#include <string>
#include <vector>

#include "clock/backend.h"

namespace gearshift::runtime {

struct HookCost {
  double baseline_ns_per_launch = 0;  // delivering the callbacks to a hook that is not subscribed
  double off_ns = 0, record_ns = 0, apply_ns = 0, apply_checked_ns = 0;  // added per launch
  double apply_no_boundary_ns = 0;  // apply mode inside one long partition: the per-launch part
  int launches = 0;
};
// Drives the CUPTI callback entry (runtime ENTER, nested driver ENTER/EXIT, runtime EXIT) for
// `launches` launches per mode; apply mode with a boundary every `partition_len` launches.
HookCost bench_hook_cost(int launches, int partition_len, int repeats);

struct LatencySample {
  double signal_to_call_ns;   // device reached the boundary -> backend call begins
  double detect_to_call_ns;   // controller noticed -> backend call begins
  double call_ns;             // the backend call itself
};
struct LatencyRun {
  std::vector<LatencySample> samples;  // switched boundaries
  int superseded = 0;                  // boundaries the device passed before the controller acted
};
// Boundaries replayed on the realtime fake device: `partitions` partitions of `kernels_per`
// kernels of `kernel_ns` each, alternating clocks so every boundary switches.
LatencyRun bench_boundary_latency(clock::BackendPtr backend, const std::string& trigger,
                                                  int partitions, int kernels_per, int64_t kernel_ns,
                                                  int64_t spin_ns, int64_t sleep_poll_ns);

// Cost of `n` lock_sm_mhz calls alternating between the given clocks (ns each); resets after.
std::vector<double> bench_backend_calls(clock::BackendPtr backend, const std::vector<int>& mhz, int n);

}  // namespace gearshift::runtime
