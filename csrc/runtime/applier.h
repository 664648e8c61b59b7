#pragma once
// Apply mode: launch ordinal -> partition -> boundary signal. At a partition's first launch the
// previous partition is checked against the schedule (kernel count, and the name hash when the
// schedule carries one); on a mismatch switching stops for good, the clock is reset, and the
// reason is kept for Python to warn with.
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "intercept/hook.h"
#include "schedule/boundary_table.h"
#include "signal/controller.h"

namespace gearshift::runtime {

class Applier : public intercept::LaunchSink {
 public:
  // auto_wrap: an iteration ends after num_kernels launches; otherwise begin_iteration() marks it.
  Applier(schedule::BoundaryTable table, signal::Controller* controller, bool auto_wrap);

  void on_launch(uint64_t index_in_session, const intercept::LaunchInfo& info) override;
  // Explicit iteration boundary: checks the iteration that ended, then starts the next one at
  // session launch index `next_base`.
  void begin_iteration(uint64_t next_base);
  // Fallback when CUPTI is unavailable: Python marks partition starts at module boundaries.
  void mark(int partition, uint64_t stream);

  bool disabled() const { return disabled_.load(std::memory_order_acquire); }
  std::string mismatch_reason() const;
  int64_t iteration() const { return iteration_.load(); }
  const schedule::BoundaryTable& table() const { return table_; }
  uint64_t boundaries_posted() const { return posted_.load(); }
  void disable(const std::string& reason);

 private:
  void check_partition(int p, int64_t iteration);

  schedule::BoundaryTable table_;
  signal::Controller* controller_;
  bool auto_wrap_;
  bool check_names_ = false;
  std::unique_ptr<std::atomic<uint64_t>[]> acc_;
  std::unique_ptr<std::atomic<uint32_t>[]> cnt_;
  std::atomic<uint64_t> base_{0};
  std::atomic<int64_t> iteration_{0};
  std::atomic<bool> started_{false};
  std::atomic<bool> disabled_{false};
  std::atomic<uint64_t> posted_{0};
  std::atomic<int> last_marked_{-1};
  mutable std::mutex reason_mu_;
  std::string reason_;
};

}  // namespace gearshift::runtime
