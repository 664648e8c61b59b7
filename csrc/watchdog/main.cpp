// gearshift-watchdog: started by the runtime with the read end of a pipe on stdin; resets the
// clocks when the trainer dies without disarming it. See safety/watchdog.h.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "safety/watchdog.h"

int main(int argc, char** argv) {
  gearshift::safety::WatchdogSpec spec;
  spec.backend = "dry-run";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--backend") spec.backend = v;
    else if (k == "--gpu") spec.gpus.push_back(std::stoi(v));
    else if (k == "--log") spec.log_path = v;
    else {
      std::fprintf(stderr, "gearshift-watchdog: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (spec.gpus.empty()) spec.gpus.push_back(0);
  // The trainer's SIGINT is the trainer's business; only a dead trainer ends the watch.
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  return gearshift::safety::watchdog_main(0, spec, getppid());
}
