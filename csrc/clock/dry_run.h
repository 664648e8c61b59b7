#pragma once
// Dry-run backend: never touches a GPU. Every would-be switch (and reset) is logged with a
// steady_clock timestamp into a bounded buffer, so interception and trigger latency can be
// measured on a shared GPU whose clocks must not change.
#include <mutex>
#include <vector>

#include "clock/backend.h"

namespace gearshift::clock {

struct ClockEvent {
  int64_t t_ns = 0;   // steady_clock ns for dry-run; simulated device ns for sim
  int gpu = 0;
  int mhz = 0;        // the locked clock; 0 for a reset
  bool reset = false;
};

// Bounded, oldest-dropped log of clock events; `dropped` counts what fell off the front.
class EventLog {
 public:
  explicit EventLog(size_t capacity);
  void push(const ClockEvent& ev);
  std::vector<ClockEvent> snapshot() const;
  size_t dropped() const;
  void clear();

 private:
  mutable std::mutex mu_;
  size_t capacity_;
  std::vector<ClockEvent> ring_;
  size_t head_ = 0;  // index of the oldest event once the ring is full
  size_t dropped_ = 0;
};

class DryRunBackend : public ClockBackend {
 public:
  // `supported_mhz` (highest first) is what the real device lists, queried read-only by the
  // caller; empty means accept any clock.
  DryRunBackend(int device_count, std::vector<int> supported_mhz, size_t capacity = 65536);
  std::string name() const override { return "dry-run"; }
  int device_count() override { return device_count_; }
  std::vector<int> supported_sm_mhz(int gpu) override;
  void lock_sm_mhz(int gpu, int mhz) override;
  void reset(int gpu) override;

  std::vector<ClockEvent> events() const { return log_.snapshot(); }
  size_t dropped() const { return log_.dropped(); }
  void clear() { log_.clear(); }

 private:
  int device_count_;
  std::vector<int> supported_;
  EventLog log_;
};

}  // namespace gearshift::clock
