#pragma once
// The trainer's `daemon` clock backend: the runtime's controller thread switches clocks by
// asking the root-owned daemon, so the training process itself never needs root.
#include <memory>
#include <string>
#include <vector>

#include "clock/backend.h"
#include "daemon/client.h"

namespace gearshift::daemon {

class DaemonClockBackend : public clock::ClockBackend {
 public:
  // Connects, learns the GPUs and their clocks, and keeps the lease alive while idle.
  explicit DaemonClockBackend(const std::string& socket_path, double timeout_s = 5.0);
  std::string name() const override { return "daemon"; }
  int device_count() override;
  std::vector<int> supported_sm_mhz(int gpu) override;
  void lock_sm_mhz(int gpu, int mhz) override;
  void reset(int gpu) override;

  Client& client() { return *client_; }

 private:
  std::unique_ptr<Client> client_;
  std::vector<std::vector<int>> supported_;  // highest first, as the interface promises
};

}  // namespace gearshift::daemon
