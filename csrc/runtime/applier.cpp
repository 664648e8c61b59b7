#include "runtime/applier.h"

#include <cstdio>

namespace gearshift::runtime {

Applier::Applier(schedule::BoundaryTable table, signal::Controller* controller, bool auto_wrap)
    : table_(std::move(table)), controller_(controller), auto_wrap_(auto_wrap) {
  const size_t n = static_cast<size_t>(table_.num_partitions());
  acc_.reset(new std::atomic<uint64_t>[n]);
  cnt_.reset(new std::atomic<uint32_t>[n]);
  for (size_t i = 0; i < n; ++i) {
    acc_[i].store(0);
    cnt_[i].store(0);
    if (table_.partition(static_cast<int>(i)).expected_hash != 0) check_names_ = true;
  }
}

void Applier::disable(const std::string& reason) {
  if (disabled_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lk(reason_mu_);
    reason_ = reason;
  }
  controller_->disable();
}

std::string Applier::mismatch_reason() const {
  std::lock_guard<std::mutex> lk(reason_mu_);
  return reason_;
}

void Applier::check_partition(int p, int64_t iteration) {
  const auto& spec = table_.partition(p);
  const uint32_t seen = cnt_[static_cast<size_t>(p)].load(std::memory_order_relaxed);
  const uint32_t want = static_cast<uint32_t>(table_.partition_size(p));
  uint64_t h = acc_[static_cast<size_t>(p)].load(std::memory_order_relaxed);
  if (h == 0) h = 1;
  char buf[320];
  if (seen != want) {
    std::snprintf(buf, sizeof buf,
                  "iteration %lld, partition %d: the hook saw %u kernel launches where the schedule "
                  "has %u (launches %d..%d)",
                  static_cast<long long>(iteration), p, seen, want, spec.start,
                  table_.partition_end(p) - 1);
    disable(buf);
  } else if (spec.expected_hash != 0 && h != spec.expected_hash) {
    std::snprintf(buf, sizeof buf,
                  "iteration %lld, partition %d: kernel names differ from the schedule (signature "
                  "%016llx observed, %016llx expected, launches %d..%d)",
                  static_cast<long long>(iteration), p, static_cast<unsigned long long>(h),
                  static_cast<unsigned long long>(spec.expected_hash), spec.start,
                  table_.partition_end(p) - 1);
    disable(buf);
  }
}

void Applier::on_launch(uint64_t g, const intercept::LaunchInfo& info) {
  if (disabled_.load(std::memory_order_relaxed)) return;
  if (!started_.load(std::memory_order_relaxed)) {
    base_.store(g);  // the first launch seen in apply mode is ordinal 0
    started_.store(true);
  }
  const uint64_t n = static_cast<uint64_t>(table_.num_kernels());
  uint64_t rel = g - base_.load(std::memory_order_relaxed);
  int64_t iteration = iteration_.load(std::memory_order_relaxed);
  if (auto_wrap_) {
    iteration = static_cast<int64_t>(rel / n);
    rel %= n;
    iteration_.store(iteration, std::memory_order_relaxed);
  } else if (rel >= n) {
    disable("iteration " + std::to_string(iteration) + ": more than " + std::to_string(n) +
            " kernel launches, the schedule's iteration length");
    return;
  }
  const int ordinal = static_cast<int>(rel);
  const int p = table_.partition_of(ordinal);
  const auto& spec = table_.partition(p);
  const uint32_t idx = static_cast<uint32_t>(ordinal - spec.start);
  if (idx == 0) {
    if (p > 0) {
      check_partition(p - 1, iteration);
    } else if (auto_wrap_ && iteration > 0) {
      check_partition(table_.num_partitions() - 1, iteration - 1);
    }
    if (disabled_.load(std::memory_order_relaxed)) return;
    acc_[static_cast<size_t>(p)].store(0, std::memory_order_relaxed);
    cnt_[static_cast<size_t>(p)].store(0, std::memory_order_relaxed);
    if (controller_->post(p, ordinal, iteration, spec.freq_mhz, info.stream) != 0) {
      posted_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (check_names_) {
    acc_[static_cast<size_t>(p)].fetch_add(
        schedule::name_term(schedule::name_hash64(info.name), idx), std::memory_order_relaxed);
  }
  cnt_[static_cast<size_t>(p)].fetch_add(1, std::memory_order_relaxed);
}

void Applier::begin_iteration(uint64_t next_base) {
  if (disabled_.load()) return;
  if (started_.load() && !auto_wrap_) {
    const uint64_t launched = next_base - base_.load();
    const uint64_t n = static_cast<uint64_t>(table_.num_kernels());
    if (launched != n) {
      disable("iteration " + std::to_string(iteration_.load()) + " launched " +
              std::to_string(launched) + " kernels, the schedule expects " + std::to_string(n));
      return;
    }
    check_partition(table_.num_partitions() - 1, iteration_.load());
    iteration_.fetch_add(1);
  }
  base_.store(next_base);
  started_.store(true);
}

void Applier::mark(int partition, uint64_t stream) {
  if (disabled_.load()) return;
  if (partition < 0 || partition >= table_.num_partitions()) {
    disable("marker for partition " + std::to_string(partition) + " but the schedule has " +
            std::to_string(table_.num_partitions()) + " partitions");
    return;
  }
  const int last = last_marked_.exchange(partition);
  if (partition == 0 && last >= 0) iteration_.fetch_add(1);
  else if (partition <= last) {
    disable("markers out of order: partition " + std::to_string(partition) + " after " +
            std::to_string(last));
    return;
  }
  const auto& spec = table_.partition(partition);
  if (controller_->post(partition, spec.start, iteration_.load(), spec.freq_mhz, stream) != 0) {
    posted_.fetch_add(1);
  }
}

}  // namespace gearshift::runtime
