#include "clock/dry_run.h"

namespace gearshift::clock {

EventLog::EventLog(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {
  ring_.reserve(capacity_);
}

void EventLog::push(const ClockEvent& ev) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ring_.size() < capacity_) {
    ring_.push_back(ev);
    return;
  }
  ring_[head_] = ev;
  head_ = (head_ + 1) % capacity_;
  ++dropped_;
}

std::vector<ClockEvent> EventLog::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ClockEvent> out;
  out.reserve(ring_.size());
  for (size_t i = 0; i < ring_.size(); ++i) out.push_back(ring_[(head_ + i) % ring_.size()]);
  return out;
}

size_t EventLog::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

void EventLog::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  ring_.clear();
  head_ = 0;
  dropped_ = 0;
}

DryRunBackend::DryRunBackend(int device_count, std::vector<int> supported_mhz, size_t capacity)
    : device_count_(device_count), supported_(std::move(supported_mhz)), log_(capacity) {
  if (device_count < 1) {
    throw Error(ErrorKind::config, "dry-run backend needs at least one GPU, got " +
                                       std::to_string(device_count),
                "pass device_count >= 1");
  }
}

std::vector<int> DryRunBackend::supported_sm_mhz(int gpu) {
  check_gpu_index(name(), gpu, device_count_);
  return supported_;
}

void DryRunBackend::lock_sm_mhz(int gpu, int mhz) {
  const int64_t t = steady_now_ns();  // first: the log time is when the call arrived
  check_gpu_index(name(), gpu, device_count_);
  check_supported(name(), gpu, mhz, supported_);
  log_.push({t, gpu, mhz, false});
}

void DryRunBackend::reset(int gpu) {
  const int64_t t = steady_now_ns();
  check_gpu_index(name(), gpu, device_count_);
  log_.push({t, gpu, 0, true});
}

}  // namespace gearshift::clock
