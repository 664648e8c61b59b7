#include "daemon/server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace gearshift::daemon {

namespace {

constexpr uint64_t kListenTag = ~uint64_t(0);
constexpr uint64_t kWakeTag = ~uint64_t(0) - 1;
constexpr size_t kLogBufSize = 256 * 1024;
constexpr int64_t kLogFlushNs = 100 * 1000000;
constexpr int64_t kSpinNs = 50 * 1000;
// Out of file descriptors, accept() fails while the listening socket stays readable: without a
// pause the loop would spin a core. Connections wait in the backlog meanwhile.
constexpr int64_t kAcceptPauseNs = 200 * 1000000;

std::atomic<int> g_wake_fd{-1};

void on_signal(int signo) {
  const int fd = g_wake_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    const uint8_t b = static_cast<uint8_t>(signo);
    const int saved = errno;
    (void)!::write(fd, &b, 1);
    errno = saved;
  }
}

int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

double wall_s() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

std::string errno_text(int err) { return std::strerror(err); }

bool set_sockaddr(const std::string& path, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr->sun_path)) return false;
  std::memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return true;
}

std::vector<uint32_t> supplementary_groups(pid_t pid) {
  std::vector<uint32_t> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Groups:", 0) == 0) {
      std::istringstream ss(line.substr(7));
      uint32_t g;
      while (ss >> g) out.push_back(g);
      break;
    }
  }
  return out;
}

// "345-1980 MHz in 15 MHz steps": what to quote when a clock is refused.
void describe_clocks(const std::vector<uint32_t>& mhz, char* out, size_t n) {
  if (mhz.empty()) {
    std::snprintf(out, n, "this GPU lists no supported clocks");
    return;
  }
  uint32_t step = mhz.size() > 1 ? mhz[1] - mhz[0] : 0;
  for (size_t i = 2; i < mhz.size() && step; ++i)
    if (mhz[i] - mhz[i - 1] != step) step = 0;
  if (step)
    std::snprintf(out, n, "supported: %u-%u MHz in %u MHz steps", mhz.front(), mhz.back(), step);
  else
    std::snprintf(out, n, "supported: %zu clocks from %u to %u MHz", mhz.size(), mhz.front(),
                  mhz.back());
}

}  // namespace

struct Server::Conn {
  int fd = -1;
  int slot = -1;
  uint32_t uid = 0, gid = 0, pid = 0;
  bool allowed = false;
  bool dead = false;
  int64_t last_seen_ns = 0;
  size_t in_len = 0;
  uint64_t held_mask = 0;
  std::unique_ptr<uint8_t[]> in;
};

struct Server::Gpu {
  std::vector<uint32_t> supported;  // sorted ascending
  char clocks_text[96] = {0};
  int holder = -1;                  // connection slot, loop thread only
  bool touched = false;
  std::atomic<uint32_t> locked_mhz{0};
  std::atomic<bool> held{false};
  std::atomic<uint32_t> uid{0};
  std::atomic<uint32_t> pid{0};
  std::atomic<uint64_t> switches{0};
  std::atomic<uint64_t> resets{0};
};

Server::Server(ServerConfig config, clock::BackendPtr backend)
    : cfg_(std::move(config)), backend_(std::move(backend)) {
  if (!backend_) throw DaemonError("no clock backend given", "pass --backend dry-run|sim|nvml");
  // inf or a year would never reset a hung trainer's clocks; below the bound heartbeats
  // (every lease/3) could not keep up. NaN fails both comparisons.
  if (!(cfg_.lease_s >= kMinLeaseS && cfg_.lease_s <= kMaxLeaseS)) {
    char text[160];
    std::snprintf(text, sizeof text, "--lease-s %g is outside %g..%g seconds", cfg_.lease_s,
                  kMinLeaseS, kMaxLeaseS);
    throw DaemonError(text, "pass e.g. --lease-s 10");
  }
  if (cfg_.max_clients < 1) cfg_.max_clients = 1;
  log_buf_.resize(kLogBufSize);
}

Server::~Server() {
  if (listen_fd_ >= 0) {
    shutdown_all();
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  for (int& fd : wake_pipe_)
    if (fd >= 0) ::close(fd);
}

void Server::log(const char* fmt, ...) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    char* p = log_buf_.data() + log_len_;
    const size_t room = log_buf_.size() - log_len_;
    int head = std::snprintf(p, room, "t=%.6f ", wall_s());
    if (head > 0 && size_t(head) < room) {
      va_list ap;
      va_start(ap, fmt);
      int body = std::vsnprintf(p + head, room - head, fmt, ap);
      va_end(ap);
      if (body >= 0 && size_t(head + body + 1) < room) {
        p[head + body] = '\n';
        log_len_ += head + body + 1;
        return;
      }
    }
    flush_log();  // did not fit: write out what is there and try once more
  }
}

void Server::flush_log() {
  size_t off = 0;
  while (off < log_len_) {
    ssize_t n = ::write(cfg_.log_fd, log_buf_.data() + off, log_len_ - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the log is best effort: never let it stop the daemon
    off += size_t(n);
  }
  log_len_ = 0;
  last_flush_ns_ = mono_ns();
}

bool Server::allowed(uid_t uid, gid_t gid, pid_t pid) const {
  if (uid == 0 || uid == ::geteuid()) return true;
  auto in = [](const std::vector<uint32_t>& v, uint32_t x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  if (in(cfg_.allow_uids, uid) || in(cfg_.allow_gids, gid)) return true;
  if (cfg_.allow_gids.empty()) return false;
  for (uint32_t g : supplementary_groups(pid))
    if (in(cfg_.allow_gids, g)) return true;
  return false;
}

void Server::open() {
  if (opened_) return;
  const std::string& path = cfg_.socket_path;
  sockaddr_un addr;
  if (path.empty()) throw DaemonError("no socket path given", "pass --socket PATH");
  if (!set_sockaddr(path, &addr))
    throw DaemonError("socket path '" + path + "' is " + std::to_string(path.size()) +
                          " bytes long; a Unix socket path may have at most 107",
                      "choose a shorter --socket path");

  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw DaemonError("'" + path + "' exists and is not a socket",
                        "remove it yourself if it is not needed, or choose another --socket path");
    // Only a socket no one answers on is taken over; a live daemon keeps its socket.
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    int err = errno;
    ::close(probe);
    if (rc == 0)
      throw DaemonError("another gearshift daemon is already serving '" + path + "'",
                        "stop it first (e.g. `systemctl stop gearshift-daemon`) or choose "
                        "another --socket path");
    if (err != ECONNREFUSED)
      throw DaemonError("'" + path + "' exists and cannot be checked for a live daemon (" +
                            errno_text(err) + ")",
                        "run the daemon as root, or choose another --socket path");
    if (::unlink(path.c_str()) != 0)
      throw DaemonError("cannot remove the stale socket '" + path + "' (" + errno_text(errno) +
                            ")",
                        "run the daemon as root, or choose another --socket path");
    log("stale-socket-removed path=%s", path.c_str());
    took_over_ = true;
  } else {
    // Create the socket's own directory (e.g. /run/gearshift) when only it is missing.
    const auto slash = path.find_last_of('/');
    if (slash != std::string::npos && slash > 0) {
      const std::string dir = path.substr(0, slash);
      if (::stat(dir.c_str(), &st) != 0 && errno == ENOENT && ::mkdir(dir.c_str(), 0755) == 0)
        log("created-directory path=%s", dir.c_str());
    }
  }

  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw DaemonError("socket() failed: " + errno_text(errno), "");
  // Created owner-only, opened up to the group below: no window where others may connect.
  const mode_t old_mask = ::umask(0177);
  const int rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int bind_err = errno;
  ::umask(old_mask);
  if (rc != 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    throw DaemonError("cannot create the daemon socket at '" + path + "': " +
                          errno_text(bind_err),
                      "run `gearshift daemon` as root (or as a user who may write that "
                      "directory), or choose a --socket path in a writable directory");
  }
  if (::lstat(path.c_str(), &st) == 0) {
    sock_dev_ = st.st_dev;
    sock_ino_ = st.st_ino;
  }
  opened_ = true;

  long group = -1;
  if (!cfg_.allow_gids.empty()) {
    group = cfg_.allow_gids.front();
  } else if (!cfg_.allow_uids.empty()) {
    if (const passwd* pw = ::getpwuid(cfg_.allow_uids.front())) group = pw->pw_gid;
  }
  mode_t mode = 0600;
  if (group >= 0) {
    if (::chown(path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(group)) == 0) {
      mode = 0660;
    } else {
      log("warning cannot give the socket to group %ld (%s): only its owner may connect",
          group, std::strerror(errno));
    }
  }
  ::chmod(path.c_str(), mode);
  char desc[96];
  std::snprintf(desc, sizeof desc, "mode=%04o owner=%u group=%ld", unsigned(mode),
                unsigned(::geteuid()), group >= 0 && mode == 0660 ? group : long(::getegid()));
  socket_desc_ = desc;

  raise_fd_limit();
  if (::listen(listen_fd_, 64) != 0)
    throw DaemonError("listen() on '" + path + "' failed: " + errno_text(errno), "");

  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (::pipe2(wake_pipe_, O_NONBLOCK | O_CLOEXEC) != 0)
    throw DaemonError("pipe2() failed: " + errno_text(errno), "");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.u64 = kWakeTag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_pipe_[0], &ev);

  backend_name_ = cfg_.backend_label.empty() ? backend_->name() : cfg_.backend_label;
  const int n = backend_->device_count();
  gpu_count_ = static_cast<uint32_t>(std::clamp(n, 0, int(kMaxGpus)));
  gpus_.reset(new Gpu[gpu_count_ ? gpu_count_ : 1]);
  for (uint32_t i = 0; i < gpu_count_; ++i) {
    std::vector<uint32_t> mhz;
    for (int f : backend_->supported_sm_mhz(int(i)))
      if (f > 0) mhz.push_back(static_cast<uint32_t>(f));
    std::sort(mhz.begin(), mhz.end());
    mhz.erase(std::unique(mhz.begin(), mhz.end()), mhz.end());
    if (mhz.size() > kMaxClocks) mhz.resize(kMaxClocks);
    gpus_[i].supported = std::move(mhz);
    describe_clocks(gpus_[i].supported, gpus_[i].clocks_text, sizeof gpus_[i].clocks_text);
  }

  // A daemon that died without its SIGTERM path may have left clocks locked: clear them.
  if (took_over_)
    for (uint32_t i = 0; i < gpu_count_; ++i) reset_gpu(i, "previous-daemon-died", nullptr);

  // Every connection's buffer is allocated here, once: serving a request allocates nothing.
  conns_.resize(size_t(cfg_.max_clients));
  for (int i = cfg_.max_clients - 1; i >= 0; --i) {
    conns_[size_t(i)].slot = i;
    conns_[size_t(i)].in.reset(new uint8_t[kMaxFrame]);
    free_slots_.push_back(i);
  }
  lease_ns_ = static_cast<int64_t>(cfg_.lease_s * 1e9);
  log("listening socket=%s %s backend=%s gpus=%u lease_s=%g pid=%d", path.c_str(), desc,
      backend_name_.c_str(), gpu_count_, cfg_.lease_s, int(::getpid()));
  flush_log();
}

void Server::raise_fd_limit() {
  // Every client, and the metrics endpoint's connections in the same process, costs a
  // descriptor; the usual soft limit of 1024 is the first thing a burst of connections hits.
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  const rlim_t want = lim.rlim_max == RLIM_INFINITY ? rlim_t(1) << 20 : lim.rlim_max;
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < want) {
    const rlim_t before = lim.rlim_cur;
    lim.rlim_cur = want;
    if (::setrlimit(RLIMIT_NOFILE, &lim) == 0)
      log("fd-limit raised soft=%llu from=%llu", (unsigned long long)want,
          (unsigned long long)before);
    else
      log("warning fd-limit stays soft=%llu (%s)", (unsigned long long)before,
          std::strerror(errno));
  }
}

void Server::pause_accepting(int64_t now_ns) {
  if (accept_paused_until_ns_ == 0) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
    log("accept-paused reason=out-of-file-descriptors pause_ms=%d", int(kAcceptPauseNs / 1000000));
  }
  accept_paused_until_ns_ = now_ns + kAcceptPauseNs;
}

void Server::resume_accepting(int64_t now_ns) {
  if (accept_paused_until_ns_ == 0 || now_ns < accept_paused_until_ns_) return;
  accept_paused_until_ns_ = 0;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenTag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
}

void Server::stop() {
  if (wake_pipe_[1] >= 0) {
    const uint8_t b = 0;
    (void)!::write(wake_pipe_[1], &b, 1);
  }
}

std::vector<GpuSnapshot> Server::snapshot() const {
  std::vector<GpuSnapshot> out;
  for (uint32_t i = 0; i < gpu_count_; ++i) {
    const Gpu& g = gpus_[i];
    GpuSnapshot s;
    s.index = i;
    s.held = g.held.load(std::memory_order_acquire);
    s.locked_mhz = g.locked_mhz.load(std::memory_order_relaxed);
    s.holder_uid = g.uid.load(std::memory_order_relaxed);
    s.holder_pid = g.pid.load(std::memory_order_relaxed);
    s.switches = g.switches.load(std::memory_order_relaxed);
    s.resets = g.resets.load(std::memory_order_relaxed);
    out.push_back(s);
  }
  return out;
}

int Server::serve() {
  if (!opened_) open();
  struct sigaction sa{}, old_term{}, old_int{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  g_wake_fd.store(wake_pipe_[1]);
  ::sigaction(SIGTERM, &sa, &old_term);
  ::sigaction(SIGINT, &sa, &old_int);

  int stop_signal = -1;
  epoll_event events[64];
  while (stop_signal < 0) {
    // The log is written out in batches: a write per request would cost more than the request.
    const int64_t now = mono_ns();
    if (log_len_ > 0 && (now - last_flush_ns_ >= kLogFlushNs || log_len_ > log_buf_.size() / 2))
      flush_log();
    resume_accepting(now);
    int timeout = next_timeout_ms(now);
    if (accept_paused_until_ns_ > 0) {
      const int pause_ms = int((accept_paused_until_ns_ - now) / 1000000) + 1;
      timeout = timeout < 0 ? pause_ms : std::min(timeout, pause_ms);
    }
    if (log_len_ > 0) {
      const int flush_ms = int((last_flush_ns_ + kLogFlushNs - now) / 1000000) + 1;
      timeout = timeout < 0 ? flush_ms : std::min(timeout, flush_ms);
    }
    // Right after a request the next one often follows within microseconds (a trainer
    // switching at consecutive boundaries): poll briefly before sleeping, since a wake-up
    // from epoll_wait costs more than the whole request.
    int n = 0;
    const int64_t spin_until = now + (busy_ ? kSpinNs : 0);
    busy_ = false;
    while (mono_ns() < spin_until && (n = ::epoll_wait(epoll_fd_, events, 64, 0)) == 0) {
      sched_yield();  // lets the client run first when both share a core
    }
    if (n == 0) n = ::epoll_wait(epoll_fd_, events, 64, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      log("error epoll_wait: %s", std::strerror(errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kListenTag) {
        accept_clients();
      } else if (tag == kWakeTag) {
        uint8_t b = 0;
        while (::read(wake_pipe_[0], &b, 1) == 1) stop_signal = b;
      } else {
        on_readable(static_cast<int>(tag));
      }
    }
    expire_leases(mono_ns());
  }
  if (stop_signal > 0)
    log("stopping signal=%d (%s)", stop_signal, strsignal(stop_signal));
  else
    log("stopping reason=stop-requested");
  shutdown_all();
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  g_wake_fd.store(-1);
  return stop_signal < 0 ? 0 : stop_signal;
}

void Server::shutdown_all() {
  for (Conn& c : conns_)
    if (c.fd >= 0) close_conn(c.slot, "daemon-stopping");
  for (uint32_t i = 0; i < gpu_count_; ++i)
    if (gpus_[i].touched) reset_gpu(i, "daemon-stopping", nullptr);
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    struct stat st;
    // Remove the socket only if it is still ours (not one a newer daemon created since).
    if (::lstat(cfg_.socket_path.c_str(), &st) == 0 && st.st_dev == sock_dev_ &&
        st.st_ino == sock_ino_)
      ::unlink(cfg_.socket_path.c_str());
  }
  log("stopped");
  flush_log();
}

void Server::accept_clients() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno == EMFILE || errno == ENFILE) pause_accepting(mono_ns());
      return;  // EAGAIN, or a client that vanished before we got to it
    }
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      log("error SO_PEERCRED: %s", std::strerror(errno));
      ::close(fd);
      continue;
    }
    if (free_slots_.empty()) {
      const size_t n = write_error(out_, ErrorCode::kBackend,
                                   "daemon busy: too many clients connected; try again");
      (void)!::send(fd, out_, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      log("refused uid=%u pid=%d reason=too-many-clients", cred.uid, int(cred.pid));
      ::close(fd);
      continue;
    }
    const int slot = free_slots_.back();
    free_slots_.pop_back();
    Conn& c = conns_[size_t(slot)];
    c.fd = fd;
    c.uid = cred.uid;
    c.gid = cred.gid;
    c.pid = static_cast<uint32_t>(cred.pid);
    c.allowed = allowed(cred.uid, cred.gid, cred.pid);
    c.dead = false;
    c.in_len = 0;
    c.held_mask = 0;
    c.last_seen_ns = mono_ns();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<uint64_t>(slot);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    if (!c.allowed)
      log("refused uid=%u gid=%u pid=%d reason=not-in-allow-list", c.uid, c.gid, int(c.pid));
  }
}

void Server::send_frame(Conn& c, const uint8_t* data, size_t n) {
  if (c.dead) return;
  ssize_t w;
  do {
    w = ::send(c.fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (w < 0 && errno == EINTR);
  // A client that does not read its replies loses its connection (and with it its lease).
  if (w != static_cast<ssize_t>(n)) c.dead = true;
}

void Server::send_error(Conn& c, ErrorCode code, const char* text) {
  const size_t n = write_error(out_, code, text);
  send_frame(c, out_, n);
}

void Server::on_readable(int slot) {
  Conn& c = conns_[size_t(slot)];
  if (c.fd < 0) return;
  ssize_t n;
  do {
    n = ::read(c.fd, c.in.get() + c.in_len, kMaxFrame - c.in_len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    // ECONNRESET: the client closed with a reply of ours still unread (killed right after its
    // request): it went away like any other, and its lease ends for the same reason.
    close_conn(slot, errno == ECONNRESET ? "disconnect" : "read-error");
    return;
  }
  if (n == 0) {
    if (c.in_len > 0) {
      send_error(c, ErrorCode::kMalformed, "truncated frame: the connection ended mid-message");
      log("protocol-error uid=%u pid=%d code=malformed detail=truncated-frame", c.uid,
          int(c.pid));
    }
    close_conn(slot, "disconnect");
    return;
  }
  c.in_len += size_t(n);
  if (!c.allowed) {
    char text[160];
    std::snprintf(text, sizeof text,
                  "uid %u (gid %u, pid %u) is not allowed to use this clock daemon", c.uid, c.gid,
                  c.pid);
    send_error(c, ErrorCode::kNotAllowed, text);
    close_conn(slot, "not-allowed");
    return;
  }
  size_t off = 0;
  while (off < c.in_len && !c.dead) {
    const ParseResult r = parse_request(c.in.get() + off, c.in_len - off);
    if (r.status == ParseStatus::kNeedMore) break;
    if (r.status == ParseStatus::kError) {
      send_error(c, r.error, r.detail);
      log("protocol-error uid=%u pid=%d code=%s detail=\"%s\"", c.uid, int(c.pid),
          error_code_name(r.error), r.detail);
      close_conn(slot, "protocol-error");
      return;
    }
    c.last_seen_ns = mono_ns();
    busy_ = true;
    handle_frame(c, c.in.get() + off, r.header);
    off += r.consumed;
  }
  if (c.dead) {
    close_conn(slot, "send-failed");
    return;
  }
  if (off > 0) {
    std::memmove(c.in.get(), c.in.get() + off, c.in_len - off);
    c.in_len -= off;
  }
}

void Server::handle_frame(Conn& c, const uint8_t* frame, const FrameHeader& h) {
  const uint8_t* p = frame + kHeaderSize;
  char text[kMaxErrorText];
  switch (h.type) {
    case MsgType::kHello: {
      const size_t name_len = std::min(backend_name_.size(), size_t(64));
      write_header(out_, MsgType::kHelloReply, uint32_t(12 + name_len));
      put_u32(out_ + 8, gpu_count_);
      put_u32(out_ + 12, uint32_t(lease_ns_ / 1000000));
      put_u32(out_ + 16, uint32_t(::getpid()));
      std::memcpy(out_ + 20, backend_name_.data(), name_len);
      send_frame(c, out_, 20 + name_len);
      return;
    }
    case MsgType::kHeartbeat: {
      send_frame(c, out_, write_empty(out_, MsgType::kOk));
      return;
    }
    case MsgType::kStatus: {
      write_header(out_, MsgType::kStatusReply, 4 + 20 * gpu_count_);
      put_u32(out_ + 8, gpu_count_);
      uint8_t* q = out_ + 12;
      for (uint32_t i = 0; i < gpu_count_; ++i, q += 20) {
        const Gpu& g = gpus_[i];
        const bool held = g.holder >= 0;
        put_u32(q, i);
        put_u32(q + 4, g.locked_mhz.load(std::memory_order_relaxed));
        put_u32(q + 8, held ? g.uid.load() : 0);
        put_u32(q + 12, held ? g.pid.load() : 0);
        put_u32(q + 16, held ? 1u : 0u);
      }
      send_frame(c, out_, 12 + 20 * gpu_count_);
      return;
    }
    default:
      break;
  }
  // The rest name a GPU.
  const uint32_t gpu = get_u32(p);
  if (gpu >= gpu_count_) {
    std::snprintf(text, sizeof text, "GPU %u does not exist: this daemon serves %u GPU(s)%s", gpu,
                  gpu_count_, gpu_count_ ? ", numbered from 0" : "");
    send_error(c, ErrorCode::kBadGpu, text);
    return;
  }
  Gpu& g = gpus_[gpu];
  if (h.type == MsgType::kClocks) {
    const uint32_t n = static_cast<uint32_t>(
        std::min(g.supported.size(), (kMaxPayload - 8) / 4));
    write_header(out_, MsgType::kClocksReply, 8 + 4 * n);
    put_u32(out_ + 8, gpu);
    put_u32(out_ + 12, n);
    for (uint32_t i = 0; i < n; ++i) put_u32(out_ + 16 + 4 * i, g.supported[i]);
    send_frame(c, out_, 16 + 4 * n);
    return;
  }
  if (h.type == MsgType::kReset) {
    if (g.holder >= 0 && g.holder != c.slot) {
      send_held_error(c, gpu);
      return;
    }
    if (g.holder == c.slot) {
      reset_gpu(gpu, "released", &c);
      c.held_mask &= ~(uint64_t(1) << gpu);
    }
    send_frame(c, out_, write_empty(out_, MsgType::kOk));
    return;
  }
  // kLock: a clock the GPU cannot run is refused before asking who holds it.
  const uint32_t mhz = get_u32(p + 4);
  if (!std::binary_search(g.supported.begin(), g.supported.end(), mhz)) {
    std::snprintf(text, sizeof text, "%u MHz is not a supported SM clock of GPU %u (%s)", mhz,
                  gpu, g.clocks_text);
    send_error(c, ErrorCode::kUnsupportedClock, text);
    return;
  }
  if (g.holder >= 0 && g.holder != c.slot) {
    send_held_error(c, gpu);
    return;
  }
  g.touched = true;
  try {
    backend_->lock_sm_mhz(int(gpu), int(mhz));
  } catch (const std::exception& e) {
    std::snprintf(text, sizeof text, "the %s backend could not lock GPU %u at %u MHz: %s",
                  backend_name_.c_str(), gpu, mhz, e.what());
    log("backend-error gpu=%u mhz=%u uid=%u pid=%d error=\"%s\"", gpu, mhz, c.uid, int(c.pid),
        e.what());
    send_error(c, ErrorCode::kBackend, text);
    return;
  }
  if (g.holder != c.slot) {
    g.holder = c.slot;
    g.uid.store(c.uid, std::memory_order_relaxed);
    g.pid.store(c.pid, std::memory_order_relaxed);
    c.held_mask |= uint64_t(1) << gpu;
  }
  g.locked_mhz.store(mhz, std::memory_order_relaxed);
  g.held.store(true, std::memory_order_release);
  g.switches.fetch_add(1, std::memory_order_relaxed);
  send_frame(c, out_, write_empty(out_, MsgType::kOk));
  log("lock gpu=%u mhz=%u uid=%u pid=%d", gpu, mhz, c.uid, int(c.pid));
}

void Server::send_held_error(Conn& c, uint32_t gpu) {
  const Gpu& g = gpus_[gpu];
  char text[kMaxErrorText];
  std::snprintf(text, sizeof text,
                "GPU %u is held by another client: uid %u, pid %u (locked at %u MHz); wait "
                "until it releases the GPU or ends",
                gpu, g.uid.load(), g.pid.load(), g.locked_mhz.load());
  send_error(c, ErrorCode::kHeldByOther, text);
}

void Server::reset_gpu(uint32_t gpu, const char* reason, const Conn* c) {
  Gpu& g = gpus_[gpu];
  try {
    backend_->reset(int(gpu));
    if (c)
      log("reset gpu=%u reason=%s uid=%u pid=%d", gpu, reason, c->uid, int(c->pid));
    else
      log("reset gpu=%u reason=%s", gpu, reason);
  } catch (const std::exception& e) {
    log("backend-error reset gpu=%u reason=%s error=\"%s\"", gpu, reason, e.what());
  }
  g.holder = -1;
  g.held.store(false, std::memory_order_release);
  g.locked_mhz.store(0, std::memory_order_relaxed);
  g.uid.store(0, std::memory_order_relaxed);
  g.pid.store(0, std::memory_order_relaxed);
  g.resets.fetch_add(1, std::memory_order_relaxed);
}

void Server::release_all(Conn& c, const char* reason) {
  for (uint32_t i = 0; i < gpu_count_; ++i) {
    if (c.held_mask & (uint64_t(1) << i)) {
      if (gpus_[i].holder == c.slot) reset_gpu(i, reason, &c);
    }
  }
  c.held_mask = 0;
}

void Server::close_conn(int slot, const char* reason) {
  Conn& c = conns_[size_t(slot)];
  if (c.fd < 0) return;
  release_all(c, reason);
  // Closing a Unix socket with unread input makes the peer's next read fail with ECONNRESET
  // before it sees our error reply; read what the client already sent so the reply arrives.
  size_t drained = 0;
  ssize_t n;
  while (drained < (1u << 20) &&
         (n = ::recv(c.fd, c.in.get(), kMaxFrame, MSG_DONTWAIT)) > 0)
    drained += size_t(n);
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  ::close(c.fd);
  c.fd = -1;
  c.in_len = 0;
  c.dead = false;
  free_slots_.push_back(slot);
}

void Server::expire_leases(int64_t now_ns) {
  for (Conn& c : conns_) {
    if (c.fd < 0 || now_ns - c.last_seen_ns < lease_ns_) continue;
    log("lease-expired uid=%u pid=%d idle_s=%.3f", c.uid, int(c.pid),
        double(now_ns - c.last_seen_ns) * 1e-9);
    send_error(c, ErrorCode::kLeaseExpired,
               "lease expired: no request or heartbeat within --lease-s; the GPU was reset");
    close_conn(c.slot, "lease-expired");
  }
}

int Server::next_timeout_ms(int64_t now_ns) const {
  int64_t earliest = -1;
  for (const Conn& c : conns_) {
    if (c.fd < 0) continue;
    const int64_t due = c.last_seen_ns + lease_ns_;
    if (earliest < 0 || due < earliest) earliest = due;
  }
  if (earliest < 0) return -1;
  const int64_t wait_ns = earliest - now_ns;
  if (wait_ns <= 0) return 0;
  return static_cast<int>(std::min<int64_t>((wait_ns + 999999) / 1000000, 1 << 30));
}

}  // namespace gearshift::daemon
