#pragma once
// The watchdog: a tiny helper process (gearshift-watchdog) that outlives a trainer killed
// outright (SIGKILL, OOM killer) and resets the clocks. It blocks reading a pipe whose write end
// only the trainer holds; EOF without the disarm byte means the trainer died.
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace gearshift::safety {

struct WatchdogSpec {
  std::string exe;        // path of gearshift-watchdog
  std::string backend;    // nvml | dry-run | sim (dry-run and sim only log the reset)
  std::vector<int> gpus;
  std::string log_path;   // appended to; "" = stderr
};

class Watchdog {
 public:
  // Throws gearshift::Error(config) when the helper cannot be started.
  static std::unique_ptr<Watchdog> spawn(const WatchdogSpec& spec);
  ~Watchdog();
  // Normal end: tell the helper not to reset (the session already did), and reap it.
  void disarm();
  pid_t pid() const { return pid_; }

 private:
  Watchdog(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  pid_t pid_;
  int fd_;
};

// The helper's side, shared with csrc/watchdog/main.cpp: wait on fd, then reset or not.
// Returns the process exit code.
int watchdog_main(int fd, const WatchdogSpec& spec, pid_t parent);

}  // namespace gearshift::safety
