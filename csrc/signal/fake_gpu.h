#pragma once
// A fake device for CPU tests and benchmarks: one in-order queue of kernels, stream writes and
// host functions (all streams are serialised: enough for ordering and latency, not overlap).
//  * lockstep: run_until_idle() plays the queue on the caller's thread, advancing a simulated
//    time base by each kernel's duration; at a write it waits until the controller has acted,
//    so clock events land at deterministic device times.
//  * realtime: a worker thread plays the queue as it fills, busy-waiting kernel durations on
//    steady_clock and recording when each write lands (what latency benchmarks measure).
// Host functions behave like cudaLaunchHostFunc: a separate callback thread is woken to run
// them and the queue waits until they return.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "clock/sim.h"
#include "signal/sink.h"

namespace gearshift::signal {

class FakeGpu : public SignalSink {
 public:
  enum class Mode { lockstep, realtime };
  FakeGpu(Mode mode, std::shared_ptr<clock::SimTimeBase> time_base = nullptr);
  ~FakeGpu() override;

  std::string name() const override { return "fake-gpu"; }
  const volatile uint32_t* word() override { return &word_; }
  bool write(uint64_t stream, uint32_t value) override;
  bool host_func(uint64_t stream, uint32_t seq, HostFn fn, void* arg) override;
  int64_t signal_time_ns(uint32_t value) const override;

  void launch_kernel(uint64_t stream, int64_t duration_ns);
  // lockstep: `acked(v)` tells whether the controller has acted on write v.
  void set_ack(std::function<bool(uint32_t)> acked) { acked_ = std::move(acked); }
  void run_until_idle();                 // lockstep only
  void wait_idle();                      // realtime: until the worker drained the queue
  void set_fail_writes(bool f) { fail_writes_ = f; }  // a driver that refuses stream mem ops
  const std::shared_ptr<clock::SimTimeBase>& time_base() const { return time_base_; }
  int64_t kernels_run() const { return kernels_run_.load(); }

 private:
  struct Op {
    enum Kind { kernel, write, host } kind;
    int64_t duration_ns = 0;
    uint32_t value = 0;
    HostFn fn = nullptr;
    void* arg = nullptr;
  };
  void push(Op op);
  void execute(const Op& op);
  void worker();
  void callback_thread();

  Mode mode_;
  std::shared_ptr<clock::SimTimeBase> time_base_;
  volatile uint32_t word_ = 0;
  std::function<bool(uint32_t)> acked_;
  std::atomic<bool> fail_writes_{false};
  std::atomic<int64_t> kernels_run_{0};

  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Op> queue_;
  bool busy_ = false;
  bool stop_ = false;

  static constexpr uint32_t kTimes = 1 << 16;
  std::unique_ptr<std::atomic<int64_t>[]> signal_ns_;

  // cudaLaunchHostFunc emulation
  std::mutex cb_mu_;
  std::condition_variable cb_cv_, cb_done_cv_;
  HostFn cb_fn_ = nullptr;
  void* cb_arg_ = nullptr;
  bool cb_pending_ = false;

  std::thread worker_, cb_thread_;
};

}  // namespace gearshift::signal
