#pragma once
// Lock-free append-only buffer of launch records for record mode. Writers claim a slot and a
// stretch of the name arena with one fetch_add each; a full buffer drops (and counts) records
// instead of blocking the launching thread.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gearshift::intercept {

struct LaunchRecord {
  int64_t ordinal = 0;     // launch ordinal inside its iteration
  int64_t iteration = 0;
  uint64_t stream = 0;
  uint32_t grid[3] = {0, 0, 0};
  uint32_t block[3] = {0, 0, 0};
  int64_t timestamp_ns = 0;  // steady_clock at the launch callback
  std::string name;
};

class RecordBuffer {
 public:
  RecordBuffer(size_t max_records, size_t name_arena_bytes);
  void append(int64_t ordinal, int64_t iteration, uint64_t stream, const uint32_t grid[3],
              const uint32_t block[3], int64_t t_ns, const char* name);
  // Completed records in claim order. Call when launches are quiescent for an exact picture.
  std::vector<LaunchRecord> snapshot() const;
  size_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  void clear();  // not concurrent with append

 private:
  struct Slot {
    std::atomic<uint32_t> ready{0};
    int64_t ordinal, iteration;
    uint64_t stream;
    uint32_t grid[3], block[3];
    int64_t t_ns;
    uint32_t name_off, name_len;
  };
  size_t max_records_, arena_bytes_;
  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<char[]> arena_;
  std::atomic<size_t> next_slot_{0};
  std::atomic<size_t> next_byte_{0};
  std::atomic<size_t> dropped_{0};
};

}  // namespace gearshift::intercept
