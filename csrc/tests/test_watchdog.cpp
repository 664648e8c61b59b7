// The watchdog helper resets (here: logs the reset, dry-run) when the trainer dies without
// disarming it, and stays quiet when disarmed.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "check.h"
#include "safety/watchdog.h"

using namespace gearshift;

namespace {
std::string read_file(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
// Returns as soon as the needle is there; the deadline is generous because the watchdog is a
// process of its own, which on a loaded machine (a test run at nice 19) can wait seconds for a core.
std::string wait_for(const std::string& path, const std::string& needle) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    auto s = read_file(path);
    if (s.find(needle) != std::string::npos) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return read_file(path);
}
safety::WatchdogSpec spec(const std::string& log) {
  safety::WatchdogSpec s;
  const char* exe = std::getenv("GEARSHIFT_WATCHDOG_EXE");
  s.exe = exe ? exe : "gearshift-watchdog";
  s.backend = "dry-run";
  s.gpus = {0, 1};
  s.log_path = log;
  return s;
}
}  // namespace

TEST(watchdog_resets_when_the_trainer_dies) {
  const std::string log = "/tmp/gs_watchdog_kill_" + std::to_string(getpid()) + ".log";
  std::remove(log.c_str());
  pid_t child = fork();
  if (child == 0) {
    auto w = safety::Watchdog::spawn(spec(log));
    w.release();  // no destructor, no disarm: as if SIGKILLed
    _exit(0);
  }
  int st = 0;
  waitpid(child, &st, 0);
  auto s = wait_for(log, "event=reset backend=dry-run gpu=1");
  CHECK(s.find("event=armed") != std::string::npos);
  CHECK(s.find("event=reset backend=dry-run gpu=0") != std::string::npos);
  CHECK(s.find("event=reset backend=dry-run gpu=1") != std::string::npos);
  CHECK(s.find("disarmed") == std::string::npos);
  std::remove(log.c_str());
}

TEST(watchdog_disarmed_on_normal_exit) {
  const std::string log = "/tmp/gs_watchdog_ok_" + std::to_string(getpid()) + ".log";
  std::remove(log.c_str());
  {
    auto w = safety::Watchdog::spawn(spec(log));
    CHECK(w->pid() > 0);
  }  // destructor disarms and reaps
  auto s = read_file(log);
  CHECK(s.find("event=disarmed") != std::string::npos);
  CHECK(s.find("event=reset") == std::string::npos);
  std::remove(log.c_str());
}

TEST(watchdog_missing_helper_is_a_clear_error) {
  auto s = spec("");
  s.exe = "/nonexistent/gearshift-watchdog";
  CHECK_THROWS_KIND(safety::Watchdog::spawn(s), ErrorKind::config);
}

TEST_MAIN()
