#include "safety/watchdog.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "clock/backend.h"
#include "clock/nvml.h"
#include "common/errors.h"

extern char** environ;

namespace gearshift::safety {

std::unique_ptr<Watchdog> Watchdog::spawn(const WatchdogSpec& spec) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    throw Error(ErrorKind::config, std::string("watchdog: pipe failed: ") + std::strerror(errno));
  }
  std::vector<std::string> args = {spec.exe, "--backend", spec.backend};
  for (int g : spec.gpus) args.insert(args.end(), {"--gpu", std::to_string(g)});
  if (!spec.log_path.empty()) args.insert(args.end(), {"--log", spec.log_path});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[0], 0);  // dup2 clears CLOEXEC on fd 0
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own session: a Ctrl-C to the trainer's terminal must not take the watchdog with it.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, spec.exe.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(fds[0]);
  if (rc != 0) {
    close(fds[1]);
    throw Error(ErrorKind::config,
                "watchdog: could not start " + spec.exe + ": " + std::strerror(rc),
                "reinstall gearshift (the helper is installed next to gearshift/_C), or pass "
                "watchdog=False");
  }
  return std::unique_ptr<Watchdog>(new Watchdog(pid, fds[1]));
}

Watchdog::~Watchdog() { disarm(); }

void Watchdog::disarm() {
  if (fd_ < 0) return;
  const char d = 'D';
  ssize_t w = write(fd_, &d, 1);
  (void)w;
  close(fd_);
  fd_ = -1;
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

int watchdog_main(int fd, const WatchdogSpec& spec, pid_t parent) {
  FILE* log = spec.log_path.empty() ? stderr : std::fopen(spec.log_path.c_str(), "a");
  if (log == nullptr) log = stderr;
  auto line = [&](const std::string& event, int gpu, const std::string& result) {
    std::fprintf(log, "t_ns=%lld watchdog parent=%d event=%s backend=%s gpu=%d result=%s\n",
                 static_cast<long long>(clock::steady_now_ns()), static_cast<int>(parent),
                 event.c_str(), spec.backend.c_str(), gpu, result.c_str());
    std::fflush(log);
  };
  // On stderr (no log file) only what matters is said: a reset after the trainer died.
  const bool chatty = log != stderr;
  if (chatty) line("armed", -1, "ok");
  bool disarmed = false;
  char buf[64];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      if (std::memchr(buf, 'D', static_cast<size_t>(n))) disarmed = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // EOF: the trainer closed the pipe or died
  }
  if (disarmed) {
    if (chatty) line("disarmed", -1, "ok");
    return 0;
  }
  int rc = 0;
  if (spec.backend == "nvml") {
    try {
      clock::NvmlBackend b;
      for (int g : spec.gpus) {
        try {
          b.reset(g);
          line("reset", g, "ok");
        } catch (const std::exception& e) {
          line("reset", g, std::string("error: ") + e.what());
          rc = 1;
        }
      }
    } catch (const std::exception& e) {
      line("reset", -1, std::string("error: ") + e.what());
      rc = 1;
    }
  } else {
    for (int g : spec.gpus) line("reset", g, "logged (no GPU touched)");
  }
  if (log != stderr) std::fclose(log);
  return rc;
}

}  // namespace gearshift::safety
