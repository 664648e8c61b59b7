#pragma once
// The clock daemon's server: one thread, epoll, a Unix stream socket. It owns the GPUs' clocks
// on behalf of connected clients: every lock is leased to one live connection, and the GPU is
// reset the moment that connection ends, stops heartbeating, or the daemon is told to stop.
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "clock/backend.h"
#include "daemon/protocol.h"

namespace gearshift::daemon {

// A failure the user can act on: what went wrong and what to do about it.
class DaemonError : public std::runtime_error {
 public:
  DaemonError(const std::string& problem, std::string fix, int code = 0)
      : std::runtime_error(problem), fix_(std::move(fix)), code_(code) {}
  const std::string& fix() const { return fix_; }
  int code() const { return code_; }  // an ErrorCode for refusals from the daemon, else 0

 private:
  std::string fix_;
  int code_;
};

// A lease shorter than this cannot be kept alive by heartbeats (sent every lease/3); a longer
// one would leave a hung trainer's clocks locked for hours.
constexpr double kMinLeaseS = 0.1;
constexpr double kMaxLeaseS = 3600.0;

struct ServerConfig {
  std::string socket_path;
  std::vector<uint32_t> allow_uids;
  std::vector<uint32_t> allow_gids;
  double lease_s = 10.0;
  int max_clients = 128;
  int log_fd = 2;  // event log: one timestamped line per lock, reset, refusal, error
  std::string backend_label;  // reported to clients; empty: the backend's own name()
};

struct GpuSnapshot {
  uint32_t index = 0;
  uint32_t locked_mhz = 0;  // 0: not locked
  bool held = false;
  uint32_t holder_uid = 0;
  uint32_t holder_pid = 0;
  uint64_t switches = 0;    // successful lock requests applied
  uint64_t resets = 0;
};

class Server {
 public:
  Server(ServerConfig config, clock::BackendPtr backend);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Creates the socket (taking over a stale one left by a dead daemon). Throws DaemonError.
  void open();
  // Serves until stop() or SIGTERM/SIGINT, then resets every GPU it touched and removes the
  // socket. Returns the signal that stopped it, or 0 for stop().
  int serve();
  // Thread-safe and async-signal-safe.
  void stop();
  // Thread-safe view for metrics and status.
  std::vector<GpuSnapshot> snapshot() const;
  const ServerConfig& config() const { return cfg_; }
  std::string socket_mode_description() const { return socket_desc_; }

 private:
  struct Conn;
  struct Gpu;

  void accept_clients();
  void on_readable(int slot);
  void handle_frame(Conn& c, const uint8_t* frame, const FrameHeader& h);
  void send_frame(Conn& c, const uint8_t* data, size_t n);
  void send_error(Conn& c, ErrorCode code, const char* text);
  void send_held_error(Conn& c, uint32_t gpu);
  void close_conn(int slot, const char* reason);
  void release_all(Conn& c, const char* reason);
  void reset_gpu(uint32_t gpu, const char* reason, const Conn* c);
  void expire_leases(int64_t now_ns);
  int next_timeout_ms(int64_t now_ns) const;
  bool allowed(uid_t uid, gid_t gid, pid_t pid) const;
  void log(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  void flush_log();
  void shutdown_all();
  void raise_fd_limit();
  void pause_accepting(int64_t now_ns);
  void resume_accepting(int64_t now_ns);

  ServerConfig cfg_;
  clock::BackendPtr backend_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  bool opened_ = false;
  dev_t sock_dev_ = 0;
  ino_t sock_ino_ = 0;
  std::string socket_desc_;
  int64_t lease_ns_ = 0;
  std::string backend_name_;
  std::vector<Conn> conns_;
  std::vector<int> free_slots_;
  std::unique_ptr<Gpu[]> gpus_;
  uint32_t gpu_count_ = 0;
  std::vector<char> log_buf_;
  size_t log_len_ = 0;
  int64_t last_flush_ns_ = 0;
  bool busy_ = false;
  bool took_over_ = false;
  int64_t accept_paused_until_ns_ = 0;  // 0: accepting
  uint8_t out_[kMaxFrame];
};

}  // namespace gearshift::daemon
