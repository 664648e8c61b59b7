#include "clock/sim.h"

namespace gearshift::clock {

SimBackend::SimBackend(int device_count, std::vector<int> supported_mhz, int default_mhz,
                       std::shared_ptr<SimTimeBase> time_base, int64_t switch_latency_ns,
                       size_t capacity)
    : device_count_(device_count), supported_(std::move(supported_mhz)), default_mhz_(default_mhz),
      time_base_(time_base ? std::move(time_base) : std::make_shared<SimTimeBase>()),
      switch_latency_ns_(switch_latency_ns), log_(capacity) {
  if (device_count < 1) {
    throw Error(ErrorKind::config, "sim backend needs at least one GPU", "pass device_count >= 1");
  }
  if (default_mhz <= 0) {
    throw Error(ErrorKind::config, "sim backend: default clock must be > 0 MHz",
                "pass the preset's default SM clock");
  }
  current_.reset(new std::atomic<int>[static_cast<size_t>(device_count)]);
  for (int i = 0; i < device_count; ++i) current_[static_cast<size_t>(i)].store(default_mhz);
}

std::vector<int> SimBackend::supported_sm_mhz(int gpu) {
  check_gpu_index(name(), gpu, device_count_);
  return supported_;
}

void SimBackend::lock_sm_mhz(int gpu, int mhz) {
  check_gpu_index(name(), gpu, device_count_);
  check_supported(name(), gpu, mhz, supported_);
  log_.push({time_base_->now_ns(), gpu, mhz, false});
  current_[static_cast<size_t>(gpu)].store(mhz);
}

void SimBackend::reset(int gpu) {
  check_gpu_index(name(), gpu, device_count_);
  log_.push({time_base_->now_ns(), gpu, 0, true});
  current_[static_cast<size_t>(gpu)].store(default_mhz_);
}

int SimBackend::current_mhz(int gpu) const {
  check_gpu_index("sim", gpu, device_count_);
  return current_[static_cast<size_t>(gpu)].load();
}

}  // namespace gearshift::clock
