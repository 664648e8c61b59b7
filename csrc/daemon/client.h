#pragma once
// Client side of the clock daemon protocol: one blocking connection, one request in flight.
// Used by `gearshift clock`, by the trainer's `daemon` clock backend, and by the benchmark.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon/protocol.h"
#include "daemon/server.h"  // DaemonError, GpuStatus

namespace gearshift::daemon {

class Client {
 public:
  // Connects and says hello; throws DaemonError with a fix when no daemon answers or the
  // daemon refuses this user.
  explicit Client(const std::string& socket_path, double timeout_s = 5.0);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Each throws DaemonError (code() = the daemon's ErrorCode) when refused.
  void lock(uint32_t gpu, uint32_t mhz);
  void reset(uint32_t gpu);
  void heartbeat();
  std::vector<GpuStatus> status();
  std::vector<uint32_t> clocks(uint32_t gpu);

  // Keeps the lease alive from a background thread while the caller is idle.
  void start_heartbeat();
  void close();

  uint32_t gpu_count() const { return gpu_count_; }
  uint32_t lease_ms() const { return lease_ms_; }
  uint32_t daemon_pid() const { return daemon_pid_; }
  const std::string& backend() const { return backend_; }
  const std::string& socket_path() const { return path_; }

 private:
  Reply roundtrip(size_t request_len, MsgType expect);  // mu_ held
  [[noreturn]] void fail_io(const char* what, int err);

  std::string path_;
  int fd_ = -1;
  std::mutex mu_;
  uint8_t req_[kMaxFrame];
  uint8_t rep_[kMaxFrame];
  uint32_t gpu_count_ = 0, lease_ms_ = 0, daemon_pid_ = 0;
  std::string backend_;
  std::atomic<int64_t> last_request_ns_{0};
  std::thread heartbeat_;
  std::condition_variable hb_cv_;
  std::mutex hb_mu_;
  bool hb_stop_ = false;
};

}  // namespace gearshift::daemon
