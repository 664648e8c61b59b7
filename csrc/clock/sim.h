#pragma once
// Simulated backend: a self-contained fake device time base and a clock that records every
// (device time, clock) change, so the whole runtime runs in tests and the Python simulator can
// read the clock timeline. It models no power or performance; that is the simulator's job.
#include <atomic>
#include <memory>
#include <vector>

#include "clock/backend.h"
#include "clock/dry_run.h"

namespace gearshift::clock {

// Device time in ns, advanced by whoever plays the device (the fake GPU's replay).
class SimTimeBase {
 public:
  int64_t now_ns() const { return ns_.load(std::memory_order_acquire); }
  void advance(int64_t d_ns) { ns_.fetch_add(d_ns, std::memory_order_acq_rel); }
  void set(int64_t t_ns) { ns_.store(t_ns, std::memory_order_release); }

 private:
  std::atomic<int64_t> ns_{0};
};

class SimBackend : public ClockBackend {
 public:
  // `default_mhz` is the clock after reset; `switch_latency_ns` is how long after the call the
  // new clock takes effect on the simulated device (published: ~ms on A100/H100).
  SimBackend(int device_count, std::vector<int> supported_mhz, int default_mhz,
             std::shared_ptr<SimTimeBase> time_base, int64_t switch_latency_ns = 0,
             size_t capacity = 65536);
  std::string name() const override { return "sim"; }
  int device_count() override { return device_count_; }
  std::vector<int> supported_sm_mhz(int gpu) override;
  void lock_sm_mhz(int gpu, int mhz) override;
  void reset(int gpu) override;

  // Events carry t_ns = device time at the call; the clock applies at t_ns + switch_latency_ns.
  std::vector<ClockEvent> events() const { return log_.snapshot(); }
  int current_mhz(int gpu) const;  // the effective clock now (default after reset)
  int64_t switch_latency_ns() const { return switch_latency_ns_; }
  int default_mhz() const { return default_mhz_; }
  const std::shared_ptr<SimTimeBase>& time_base() const { return time_base_; }
  void clear() { log_.clear(); }

 private:
  int device_count_;
  std::vector<int> supported_;
  int default_mhz_;
  std::shared_ptr<SimTimeBase> time_base_;
  int64_t switch_latency_ns_;
  std::unique_ptr<std::atomic<int>[]> current_;
  EventLog log_;
};

}  // namespace gearshift::clock
