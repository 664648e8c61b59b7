#pragma once
// The runtime session object: hook + applier + controller + backend + signal sink + CUPTI
// subscription + safety, wired once. Python's gearshift.runtime.Session drives one of these.
//
// Signal paths: "cuda" (cuStreamWriteValue32 / cuLaunchHostFunc on a real GPU), "fake-lockstep"
// (a FakeGpu replayed on the caller's thread with a simulated time base: deterministic, for
// tests and the simulated device), "fake-realtime" (a FakeGpu worker thread: for latency
// benchmarks on CPU).
#include <memory>
#include <string>
#include <vector>

#include "clock/backend.h"
#include "intercept/cupti_port.h"
#include "intercept/fake_cupti.h"
#include "intercept/hook.h"
#include "runtime/applier.h"
#include "safety/watchdog.h"
#include "signal/controller.h"
#include "signal/fake_gpu.h"

namespace gearshift::runtime {

struct RuntimeOptions {
  int gpu = 0;
  std::string signal_path = "fake-lockstep";  // cuda | fake-lockstep | fake-realtime
  signal::Trigger trigger = signal::Trigger::write;
  bool auto_wrap = true;
  bool handle_signals = true;
  size_t record_capacity = 1 << 18;
  int64_t spin_ns = 200000;      // see ControllerOptions
  int64_t sleep_poll_ns = 10000;
};

struct ReplayKernel {
  std::string name;
  uint64_t stream = 0;
  uint32_t grid[3] = {1, 1, 1};
  uint32_t block[3] = {1, 1, 1};
  int64_t duration_ns = 10000;
  intercept::LaunchApi api = intercept::LaunchApi::runtime;
};

class Runtime {
 public:
  Runtime(clock::BackendPtr backend, RuntimeOptions opt);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  void start();  // controller thread + signal handlers
  void stop();   // mode off, unsubscribe, reset the clock, disarm the watchdog (idempotent)

  // Boundary table for apply mode (replaces any previous one; call with launches quiescent).
  void install(std::vector<schedule::PartitionSpec> parts, int num_kernels);
  void set_mode(intercept::Mode m);
  void begin_iteration();
  void mark(int partition, uint64_t stream);

  // CUPTI: the real library for signal_path "cuda", the fake otherwise.
  intercept::Subscription& subscribe();
  void unsubscribe();

  // Fake paths only: launch the kernels `iterations` times through the fake CUPTI callbacks and
  // play the fake device until every posted boundary was acted on.
  void replay(const std::vector<ReplayKernel>& kernels, int iterations, bool explicit_iterations);

  void arm_watchdog(const safety::WatchdogSpec& spec);

  intercept::LaunchHook& hook() { return hook_; }
  signal::Controller& controller() { return *controller_; }
  Applier* applier() { return applier_.get(); }
  intercept::FakeCupti* fake_cupti() { return fake_cupti_.get(); }
  signal::FakeGpu* fake_gpu() { return fake_gpu_.get(); }
  const clock::BackendPtr& backend() const { return backend_; }
  std::string signal_unavailable_reason() const;
  int watchdog_pid() const { return watchdog_ ? static_cast<int>(watchdog_->pid()) : -1; }
  const RuntimeOptions& options() const { return opt_; }

 private:
  clock::BackendPtr backend_;
  RuntimeOptions opt_;
  std::shared_ptr<signal::SignalSink> sink_;
  std::shared_ptr<signal::FakeGpu> fake_gpu_;
  std::shared_ptr<intercept::FakeCupti> fake_cupti_;
  std::unique_ptr<signal::Controller> controller_;
  intercept::LaunchHook hook_;
  std::unique_ptr<Applier> applier_;
  intercept::Subscription sub_;
  std::unique_ptr<safety::Watchdog> watchdog_;
  bool stopped_ = false;
};

}  // namespace gearshift::runtime
