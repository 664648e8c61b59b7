#include "daemon/client.h"

#include <errno.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace gearshift::daemon {

namespace {

constexpr int64_t kSpinNs = 50 * 1000;

int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string fix_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::kNotAllowed:
      return "ask the daemon's administrator to add your uid (--allow-uid) or one of your "
             "groups (--allow-gid) to `gearshift daemon`";
    case ErrorCode::kUnsupportedClock:
      return "pick a clock from the GPU's supported list (`gearshift info`)";
    case ErrorCode::kHeldByOther:
      return "one client holds a GPU at a time: wait for the holder to finish, or use "
             "another GPU (--gpu)";
    case ErrorCode::kBadGpu:
      return "pick a GPU index shown by `gearshift clock --socket PATH status`";
    case ErrorCode::kLeaseExpired:
      return "send requests or heartbeats more often than --lease-s, then reconnect";
    case ErrorCode::kBackend:
      return "check the daemon's log for the backend error";
    default:
      return "this client and the daemon disagree on the protocol: use the same gearshift "
             "version for both";
  }
}

}  // namespace

Client::Client(const std::string& socket_path, double timeout_s) : path_(socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path))
    throw DaemonError("socket path '" + socket_path + "' is too long", "use a shorter path");
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw DaemonError(std::string("socket() failed: ") + std::strerror(errno), "");
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    std::string fix;
    if (err == EACCES || err == EPERM)
      fix = "the socket's permissions keep this user out: ask the daemon's administrator to "
            "start `gearshift daemon` with --allow-gid <one of your groups> (or --allow-uid)";
    else if (err == ENOENT || err == ECONNREFUSED)
      fix = "start the daemon as root: `sudo gearshift daemon --socket " + socket_path +
            " --backend nvml` (or `systemctl start gearshift-daemon`)";
    throw DaemonError("cannot connect to the gearshift daemon at '" + socket_path +
                          "': " + std::strerror(err),
                      fix);
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout_s);
  tv.tv_usec = static_cast<suseconds_t>((timeout_s - double(tv.tv_sec)) * 1e6);
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::lock_guard<std::mutex> lk(mu_);
  const Reply r = roundtrip(write_empty(req_, MsgType::kHello), MsgType::kHelloReply);
  gpu_count_ = get_u32(r.payload);
  lease_ms_ = get_u32(r.payload + 4);
  daemon_pid_ = get_u32(r.payload + 8);
  backend_.assign(reinterpret_cast<const char*>(r.payload + 12), r.length - 12);
}

Client::~Client() {
  try {
    close();
  } catch (...) {
  }
}

void Client::close() {
  {
    std::lock_guard<std::mutex> lk(hb_mu_);
    hb_stop_ = true;
  }
  hb_cv_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  std::lock_guard<std::mutex> lk(mu_);
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void Client::fail_io(const char* what, int err) {
  // The connection is unusable after a failed exchange (the daemon has reset our GPUs).
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  throw DaemonError(std::string("lost the connection to the gearshift daemon at '") + path_ +
                        "' (" + what + (err ? std::string(": ") + std::strerror(err) : "") +
                        "); a running daemon resets any clock this process held",
                    "check that the daemon is running (`gearshift clock --socket " + path_ +
                        " status`) and reconnect");
}

Reply Client::roundtrip(size_t request_len, MsgType expect) {
  if (fd_ < 0)
    throw DaemonError("the connection to the gearshift daemon is closed",
                      "create a new client to reconnect");
  size_t off = 0;
  while (off < request_len) {
    const ssize_t w = ::send(fd_, req_ + off, request_len - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      // The daemon may have answered and closed (e.g. a refusal): read that answer if it is there.
      if (off == 0) break;
      fail_io("send failed", errno);
    }
    off += size_t(w);
  }
  last_request_ns_.store(mono_ns(), std::memory_order_relaxed);
  size_t have = 0;
  Reply r;
  // The daemon answers in a few microseconds: poll for that long before sleeping in recv.
  const int64_t spin_until = mono_ns() + kSpinNs;
  for (;;) {
    const ParseStatus s = parse_reply(rep_, have, &r);
    if (s == ParseStatus::kFrame) break;
    if (s == ParseStatus::kError) fail_io("malformed reply", 0);
    const bool spin = mono_ns() < spin_until;
    const ssize_t n = ::recv(fd_, rep_ + have, kMaxFrame - have, spin ? MSG_DONTWAIT : 0);
    if (spin && n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      sched_yield();  // lets the daemon run first when both share a core
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) fail_io("no reply in time", 0);
    if (n < 0) fail_io("receive failed", errno);
    if (n == 0) fail_io("the daemon closed the connection", 0);
    have += size_t(n);
  }
  if (r.type == MsgType::kError) {
    const auto code = static_cast<ErrorCode>(get_u16(r.payload));
    std::string text(reinterpret_cast<const char*>(r.payload + 4), r.length - 4);
    if (closes_connection(code) || code == ErrorCode::kLeaseExpired) {
      ::close(fd_);
      fd_ = -1;
    }
    throw DaemonError(text, fix_for(code), static_cast<int>(code));
  }
  if (r.type != expect) fail_io("unexpected reply type", 0);
  return r;
}

void Client::lock(uint32_t gpu, uint32_t mhz) {
  std::lock_guard<std::mutex> lk(mu_);
  roundtrip(write_lock(req_, gpu, mhz), MsgType::kOk);
}

void Client::reset(uint32_t gpu) {
  std::lock_guard<std::mutex> lk(mu_);
  roundtrip(write_gpu_request(req_, MsgType::kReset, gpu), MsgType::kOk);
}

void Client::heartbeat() {
  std::lock_guard<std::mutex> lk(mu_);
  roundtrip(write_empty(req_, MsgType::kHeartbeat), MsgType::kOk);
}

std::vector<GpuStatus> Client::status() {
  std::lock_guard<std::mutex> lk(mu_);
  const Reply r = roundtrip(write_empty(req_, MsgType::kStatus), MsgType::kStatusReply);
  const uint32_t n = get_u32(r.payload);
  if (r.length != 4 + 20ull * n) fail_io("malformed status reply", 0);
  std::vector<GpuStatus> out(n);
  for (uint32_t i = 0; i < n; ++i) {
    const uint8_t* q = r.payload + 4 + 20 * i;
    out[i].index = get_u32(q);
    out[i].locked_mhz = get_u32(q + 4);
    out[i].holder_uid = get_u32(q + 8);
    out[i].holder_pid = get_u32(q + 12);
    out[i].held = get_u32(q + 16) & 1;
  }
  return out;
}

std::vector<uint32_t> Client::clocks(uint32_t gpu) {
  std::lock_guard<std::mutex> lk(mu_);
  const Reply r =
      roundtrip(write_gpu_request(req_, MsgType::kClocks, gpu), MsgType::kClocksReply);
  if (r.length < 8) fail_io("malformed clocks reply", 0);
  const uint32_t n = get_u32(r.payload + 4);
  if (r.length != 8 + 4ull * n) fail_io("malformed clocks reply", 0);
  std::vector<uint32_t> out(n);
  for (uint32_t i = 0; i < n; ++i) out[i] = get_u32(r.payload + 8 + 4 * i);
  return out;
}

void Client::start_heartbeat() {
  if (heartbeat_.joinable()) return;
  const int64_t period_ns = std::max<int64_t>(int64_t(lease_ms_) * 1000000 / 3, 10000000);
  heartbeat_ = std::thread([this, period_ns] {
    std::unique_lock<std::mutex> lk(hb_mu_);
    while (!hb_stop_) {
      // Due one period after the last request (requests count as heartbeats), so the daemon
      // hears from an idle client every lease/3. Waking on a fixed beat and skipping when the
      // last request was less than a beat ago let almost two periods (2/3 of the lease) pass,
      // which a loaded machine's scheduling delays could stretch past the lease.
      const int64_t wait_ns =
          last_request_ns_.load(std::memory_order_relaxed) + period_ns - mono_ns();
      if (wait_ns > 0) {
        hb_cv_.wait_for(lk, std::chrono::nanoseconds(wait_ns), [this] { return hb_stop_; });
        continue;  // stopped, or due now, or a request came in meanwhile: look again
      }
      try {
        heartbeat();
      } catch (const DaemonError&) {
        return;  // the next real request reports the lost connection
      }
    }
  });
}

}  // namespace gearshift::daemon
