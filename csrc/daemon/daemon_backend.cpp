#include "daemon/daemon_backend.h"

#include <algorithm>

namespace gearshift::daemon {

namespace {

// The daemon's refusals as the runtime's typed errors, so callers react by kind.
[[noreturn]] void rethrow(const DaemonError& e) {
  ErrorKind kind = ErrorKind::device;
  switch (static_cast<ErrorCode>(e.code())) {
    case ErrorCode::kUnsupportedClock: kind = ErrorKind::unsupported_clock; break;
    case ErrorCode::kNotAllowed: kind = ErrorKind::no_permission; break;
    default: break;
  }
  throw Error(kind, std::string("daemon: ") + e.what(), e.fix());
}

}  // namespace

DaemonClockBackend::DaemonClockBackend(const std::string& socket_path, double timeout_s) {
  try {
    client_ = std::make_unique<Client>(socket_path, timeout_s);
    for (uint32_t i = 0; i < client_->gpu_count(); ++i) {
      std::vector<int> mhz;
      for (uint32_t f : client_->clocks(i)) mhz.push_back(static_cast<int>(f));
      std::sort(mhz.rbegin(), mhz.rend());
      supported_.push_back(std::move(mhz));
    }
  } catch (const DaemonError& e) {
    const bool perm = std::string(e.what()).find("Permission denied") != std::string::npos;
    if (perm || e.code() == static_cast<int>(ErrorCode::kNotAllowed))
      throw Error(ErrorKind::no_permission, std::string("daemon: ") + e.what(), e.fix());
    rethrow(e);
  }
  client_->start_heartbeat();
}

int DaemonClockBackend::device_count() { return static_cast<int>(supported_.size()); }

std::vector<int> DaemonClockBackend::supported_sm_mhz(int gpu) {
  clock::check_gpu_index("daemon", gpu, device_count());
  return supported_[size_t(gpu)];
}

void DaemonClockBackend::lock_sm_mhz(int gpu, int mhz) {
  if (gpu < 0 || mhz <= 0) {
    clock::check_gpu_index("daemon", gpu, device_count());
    throw Error(ErrorKind::unsupported_clock, "daemon: " + std::to_string(mhz) +
                " MHz is not a valid SM clock", "pick a clock from the GPU's supported list");
  }
  try {
    client_->lock(static_cast<uint32_t>(gpu), static_cast<uint32_t>(mhz));
  } catch (const DaemonError& e) {
    rethrow(e);
  }
}

void DaemonClockBackend::reset(int gpu) {
  if (gpu < 0) return;
  try {
    client_->reset(static_cast<uint32_t>(gpu));
  } catch (const DaemonError&) {
    // Without a connection there is no lease left: the daemon has reset the GPU already.
  }
}

}  // namespace gearshift::daemon
