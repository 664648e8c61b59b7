#pragma once
// Boundary table: launch ordinal -> partition -> target clock. Built once from a Schedule, then
// read on the hot path without locks (dense arrays indexed by ordinal).
#include <cstdint>
#include <string>
#include <vector>

namespace gearshift::schedule {

struct PartitionSpec {
  int start = 0;               // first launch ordinal of the partition
  int freq_mhz = 0;            // target SM clock
  uint64_t expected_hash = 0;  // partition_hash of its kernel names; 0 = do not check names
};

class BoundaryTable {
 public:
  BoundaryTable() = default;
  // Throws gearshift::Error(schedule) naming the bad entry when starts are not 0 < ... < n.
  BoundaryTable(std::vector<PartitionSpec> parts, int num_kernels);

  int num_kernels() const { return num_kernels_; }
  int num_partitions() const { return static_cast<int>(parts_.size()); }
  bool empty() const { return parts_.empty(); }
  const PartitionSpec& partition(int p) const { return parts_[static_cast<size_t>(p)]; }
  int partition_end(int p) const {
    return p + 1 < num_partitions() ? parts_[static_cast<size_t>(p) + 1].start : num_kernels_;
  }
  int partition_size(int p) const { return partition_end(p) - parts_[static_cast<size_t>(p)].start; }
  // Partition holding `ordinal` (0 <= ordinal < num_kernels).
  int partition_of(int ordinal) const { return part_of_[static_cast<size_t>(ordinal)]; }
  bool is_start(int ordinal) const { return parts_[static_cast<size_t>(partition_of(ordinal))].start == ordinal; }

 private:
  std::vector<PartitionSpec> parts_;
  std::vector<int32_t> part_of_;
  int num_kernels_ = 0;
};

// The name hash the hook folds per launch, and how partition signatures combine it:
// sum over i of mix64(name_hash64(name_i) ^ i * golden), i = index inside the partition. Summation
// makes it safe to accumulate with relaxed atomics; mixing in i keeps it order-sensitive.
uint64_t name_hash64(const char* s);
uint64_t name_term(uint64_t name_hash, uint32_t index_in_partition);
uint64_t partition_hash(const std::vector<std::string>& names);

}  // namespace gearshift::schedule
