#pragma once
// The clock backend interface: the only thing the controller thread knows about how a clock is
// set. Implementations: nvml (real GPU), dry_run (logs would-be switches, never touches a GPU),
// sim (a simulated device time base), and, elsewhere, a client of the root-owned daemon.
//
// Contract every backend keeps:
//  * lock_sm_mhz / reset may be called from any thread; a backend serialises itself.
//  * errors are gearshift::Error with kind unsupported_clock / no_permission / device /
//    library_unavailable, never a bare return code, so callers can react by type.
//  * reset(gpu) is idempotent and cheap enough to call on every exit path.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/errors.h"

namespace gearshift::clock {

class ClockBackend {
 public:
  virtual ~ClockBackend() = default;
  virtual std::string name() const = 0;
  virtual int device_count() = 0;
  // SM (graphics) clocks the device accepts, in MHz, highest first.
  virtual std::vector<int> supported_sm_mhz(int gpu) = 0;
  // Pin the SM clock of `gpu` to `mhz` (min = max = mhz).
  virtual void lock_sm_mhz(int gpu, int mhz) = 0;
  // Hand the SM clock back to the driver's default policy.
  virtual void reset(int gpu) = 0;
};

using BackendPtr = std::shared_ptr<ClockBackend>;

// Shared checks so every backend words its errors the same way.
void check_gpu_index(const std::string& backend, int gpu, int count);
void check_supported(const std::string& backend, int gpu, int mhz, const std::vector<int>& supported);

// Monotonic nanoseconds (steady_clock): the one time base of logs, latencies and signals.
int64_t steady_now_ns();

}  // namespace gearshift::clock
