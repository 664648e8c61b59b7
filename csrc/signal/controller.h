#pragma once
// The controller: one thread that watches the boundary word and sets the clock through a
// backend the moment the device gets there. Latest target wins (boundaries the device passed
// while a switch was in flight are recorded as superseded); a switch to the current clock is
// skipped. Resets (end of session, mismatch, signals) go through the same thread, or through
// reset_now() when the caller must know the clock is back before it continues.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "clock/backend.h"
#include "signal/sink.h"

namespace gearshift::signal {

enum class Trigger { write, host_func };

enum class Action : int { switched = 0, skipped_same = 1, superseded = 2, reset = 3, failed = 4, ignored = 5 };
const char* action_name(Action a);

struct SwitchEvent {
  uint32_t seq = 0;
  int partition = -1;
  int64_t ordinal = -1;
  int64_t iteration = -1;
  int freq_mhz = 0;        // target (0 for a reset)
  Action action = Action::switched;
  int64_t enqueue_ns = 0;  // hook posted the boundary (steady)
  int64_t signal_ns = 0;   // device reached it (steady; 0 when the sink cannot know)
  int64_t detect_ns = 0;   // controller saw it (steady)
  int64_t call_ns = 0;     // just before the backend call (steady)
  int64_t done_ns = 0;     // backend call returned (steady)
  int64_t device_ns = 0;   // the device's own clock at the call (sim time base), when known
};

struct ControllerOptions {
  Trigger trigger = Trigger::write;
  // While the device is on its way to a boundary the controller polls the word: it spins for
  // spin_ns (yielding every few thousand polls), then polls every sleep_poll_ns with nanosleep
  // (timer slack set to 1 us) so a device far behind the host does not burn a core.
  // sleep_poll_ns = 0: spin (and yield) until the boundary arrives: lowest latency on an idle core.
  int64_t spin_ns = 200000;
  int64_t sleep_poll_ns = 10000;
  size_t event_capacity = 1 << 16;  // later events are counted, not stored
};

class Controller {
 public:
  Controller(clock::BackendPtr backend, SignalSink* sink, int gpu, ControllerOptions opt = {});
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  void start();
  // Stops the thread and resets the clock (idempotent).
  void stop();

  // Hook side: post a boundary (target clock for the partition starting at `ordinal`) and
  // enqueue its device-side trigger on `stream`. Returns the sequence number, 0 when the sink
  // could not enqueue it (the boundary is then dropped, and counted).
  uint32_t post(int partition, int64_t ordinal, int64_t iteration, int freq_mhz, uint64_t stream);

  // Asynchronous reset by the controller thread (mismatch, signal handler: async-signal-safe).
  void request_reset() noexcept;
  bool reset_pending() const noexcept { return reset_requested_.load(std::memory_order_acquire); }
  // Synchronous reset on the calling thread.
  void reset_now();
  // Stop acting on boundaries (already-enqueued ones are recorded as ignored) and reset.
  void disable() noexcept;
  bool disabled() const noexcept { return disabled_.load(std::memory_order_acquire); }

  uint32_t seen() const { return seen_.load(std::memory_order_acquire); }
  uint32_t posted() const { return posted_.load(std::memory_order_acquire); }
  int current_mhz() const { return current_mhz_.load(); }  // 0 = default (reset)
  size_t dropped_posts() const { return dropped_posts_.load(); }
  size_t dropped_events() const;
  // Clock requests the backend refused (another holder, no permission, unsupported clock).
  size_t refusals() const { return refusals_.load(std::memory_order_relaxed); }
  std::string last_error() const;
  std::vector<SwitchEvent> events() const;
  void clear_events();
  void set_device_clock(std::function<int64_t()> fn) { device_clock_ = std::move(fn); }
  const clock::BackendPtr& backend() const { return backend_; }
  bool running() const { return running_.load(); }

  // Deliver sequence `w` (the device reached it). Called by the controller thread after a poll,
  // or by the host-function trampoline on the driver's callback thread.
  void deliver(uint32_t w, int64_t detect_ns);

 private:
  struct Slot {
    std::atomic<uint32_t> seq{0};
    int partition;
    int64_t ordinal, iteration;
    int freq_mhz;
    int64_t enqueue_ns;
    Controller* owner;
  };
  static constexpr uint32_t kSlots = 4096;
  static void host_func_trampoline(void* slot);
  void run();
  void do_reset(const char* why);
  void record(const SwitchEvent& e);

  clock::BackendPtr backend_;
  SignalSink* sink_;
  int gpu_;
  ControllerOptions opt_;
  std::vector<Slot> slots_;
  std::function<int64_t()> device_clock_;

  std::atomic<uint32_t> next_seq_{0};
  std::atomic<uint32_t> posted_{0};
  std::atomic<uint32_t> seen_{0};
  std::atomic<int> current_mhz_{0};
  std::atomic<bool> reset_requested_{false};
  std::atomic<bool> disabled_{false};
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::atomic<bool> idle_{false};
  std::atomic<size_t> dropped_posts_{0};
  std::atomic<size_t> refusals_{0};

  std::mutex apply_mu_;  // serialises deliver / reset across the controller and callback threads
  std::mutex idle_mu_;
  std::condition_variable idle_cv_;
  mutable std::mutex events_mu_;
  std::vector<SwitchEvent> events_;
  size_t dropped_events_ = 0;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace gearshift::signal
