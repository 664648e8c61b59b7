#pragma once
// The launch hook: one CUPTI callback entry for driver and runtime launch APIs, real or fake.
// It counts each kernel launch once (a runtime launch that also reaches the driver is counted
// at the outermost API on that thread), then, by mode: off (count only), record (append to a
// lock-free buffer), apply (hand the launch to the schedule applier).
#include <atomic>
#include <cstdint>
#include <memory>

#include "intercept/cupti_types.h"
#include "intercept/record_buffer.h"

namespace gearshift::intercept {

struct LaunchInfo {
  const char* name = nullptr;
  uint64_t stream = 0;
  uint32_t grid[3] = {1, 1, 1};
  uint32_t block[3] = {1, 1, 1};
};

enum class Mode : int { off = 0, record = 1, apply = 2 };

// Receives counted launches in apply mode (runtime/applier.h).
class LaunchSink {
 public:
  virtual ~LaunchSink() = default;
  virtual void on_launch(uint64_t index_in_session, const LaunchInfo& info) = 0;
};

struct HookStats {
  uint64_t launches = 0;         // counted launches (each kernel once)
  uint64_t runtime_counted = 0;  // counted at a runtime API callback
  uint64_t driver_counted = 0;   // counted at a driver API callback
  uint64_t nested_skipped = 0;   // driver callbacks inside a counted runtime launch
  uint64_t late_counted = 0;     // runtime launches counted at EXIT (no layout, no driver call)
};

class LaunchHook {
 public:
  explicit LaunchHook(size_t record_capacity = 1 << 18, size_t name_arena_bytes = 32u << 20);

  // The function handed to cuptiSubscribe (userdata = this LaunchHook).
  static void cupti_callback(void* userdata, cupti::CUpti_CallbackDomain domain,
                             cupti::CUpti_CallbackId cbid, const void* cbdata);
  void on_api(cupti::CUpti_CallbackDomain domain, cupti::CUpti_CallbackId cbid,
              const cupti::CUpti_CallbackData* cb);
  void on_launch(const LaunchInfo& info);

  void set_mode(Mode m) { mode_.store(static_cast<int>(m), std::memory_order_release); }
  Mode mode() const { return static_cast<Mode>(mode_.load(std::memory_order_acquire)); }
  void set_sink(LaunchSink* s) { sink_.store(s, std::memory_order_release); }

  // Record mode numbers launches inside an iteration; begin_iteration() starts the next one.
  void begin_iteration();
  int64_t iteration() const { return iteration_.load(); }
  uint64_t launches() const { return count_.load(std::memory_order_acquire); }
  uint64_t launches_this_iteration() const { return count_.load() - iter_base_.load(); }
  HookStats stats() const;
  RecordBuffer& records() { return records_; }
  void reset_counters();  // counts and records back to zero (not concurrent with launches)

  // Which callback ids the hook subscribes to, by domain.
  static const cupti::CUpti_CallbackId kDriverCbids[4];
  static const cupti::CUpti_CallbackId kRuntimeCbids[6];

 private:
  std::atomic<int> mode_{static_cast<int>(Mode::off)};
  std::atomic<LaunchSink*> sink_{nullptr};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> iter_base_{0};
  std::atomic<int64_t> iteration_{0};
  std::atomic<uint64_t> runtime_counted_{0}, driver_counted_{0}, nested_skipped_{0}, late_counted_{0};
  RecordBuffer records_;
};

}  // namespace gearshift::intercept
