#include "schedule/boundary_table.h"

#include <cstring>

#include "common/errors.h"

namespace gearshift::schedule {

BoundaryTable::BoundaryTable(std::vector<PartitionSpec> parts, int num_kernels)
    : parts_(std::move(parts)), num_kernels_(num_kernels) {
  const std::string fix = "regenerate the schedule from its partitioning (gearshift plan)";
  if (num_kernels < 1) throw Error(ErrorKind::schedule, "boundary table: num_kernels must be >= 1", fix);
  if (parts_.empty()) throw Error(ErrorKind::schedule, "boundary table: no partitions", fix);
  int prev = -1;
  for (size_t i = 0; i < parts_.size(); ++i) {
    const auto& p = parts_[i];
    if (p.start <= prev || p.start >= num_kernels || (i == 0 && p.start != 0)) {
      throw Error(ErrorKind::schedule,
                  "boundary table: partition " + std::to_string(i) + " starts at launch " +
                      std::to_string(p.start) + ", expected increasing starts from 0 below " +
                      std::to_string(num_kernels),
                  fix);
    }
    if (p.freq_mhz <= 0) {
      throw Error(ErrorKind::schedule,
                  "boundary table: partition " + std::to_string(i) + " has clock " +
                      std::to_string(p.freq_mhz) + " MHz",
                  fix);
    }
    prev = p.start;
  }
  part_of_.resize(static_cast<size_t>(num_kernels));
  for (size_t i = 0; i < parts_.size(); ++i) {
    const int end = partition_end(static_cast<int>(i));
    for (int o = parts_[i].start; o < end; ++o) part_of_[static_cast<size_t>(o)] = static_cast<int32_t>(i);
  }
}

uint64_t name_hash64(const char* s) {
  // Word-at-a-time multiply-xorshift: a launch-path hash, ~4x cheaper than byte-wise FNV on
  // long C++ kernel names. Stable across runs and machines (little-endian loads).
  uint64_t h = 0x243F6A8885A308D3ull;
  if (s == nullptr) return h;
  const size_t n = std::strlen(s);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, s + i, 8);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s + i, n - i);
  h = (h ^ tail ^ (static_cast<uint64_t>(n) << 56)) * 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 32);
}

uint64_t name_term(uint64_t name_hash, uint32_t index_in_partition) {
  // splitmix64 finaliser
  uint64_t z = name_hash ^ (static_cast<uint64_t>(index_in_partition) * 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t partition_hash(const std::vector<std::string>& names) {
  uint64_t acc = 0;
  for (size_t i = 0; i < names.size(); ++i) acc += name_term(name_hash64(names[i].c_str()), static_cast<uint32_t>(i));
  return acc == 0 ? 1 : acc;  // 0 means "unchecked"
}

}  // namespace gearshift::schedule
