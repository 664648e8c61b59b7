#include "intercept/record_buffer.h"

#include <cstring>

namespace gearshift::intercept {

RecordBuffer::RecordBuffer(size_t max_records, size_t name_arena_bytes)
    : max_records_(max_records), arena_bytes_(name_arena_bytes),
      slots_(new Slot[max_records]), arena_(new char[name_arena_bytes]) {}

void RecordBuffer::append(int64_t ordinal, int64_t iteration, uint64_t stream,
                          const uint32_t grid[3], const uint32_t block[3], int64_t t_ns,
                          const char* name) {
  const size_t i = next_slot_.fetch_add(1, std::memory_order_relaxed);
  if (i >= max_records_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const size_t len = name ? std::strlen(name) : 0;
  size_t off = next_byte_.fetch_add(len, std::memory_order_relaxed);
  size_t kept = len;
  if (off + len > arena_bytes_) kept = 0;  // arena full: keep the record, lose the name
  if (kept) std::memcpy(arena_.get() + off, name, kept);
  Slot& s = slots_[i];
  s.ordinal = ordinal;
  s.iteration = iteration;
  s.stream = stream;
  std::memcpy(s.grid, grid, sizeof s.grid);
  std::memcpy(s.block, block, sizeof s.block);
  s.t_ns = t_ns;
  s.name_off = static_cast<uint32_t>(kept ? off : 0);
  s.name_len = static_cast<uint32_t>(kept);
  s.ready.store(1, std::memory_order_release);
}

std::vector<LaunchRecord> RecordBuffer::snapshot() const {
  std::vector<LaunchRecord> out;
  const size_t n = std::min(next_slot_.load(std::memory_order_acquire), max_records_);
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const Slot& s = slots_[i];
    if (!s.ready.load(std::memory_order_acquire)) continue;
    LaunchRecord r;
    r.ordinal = s.ordinal;
    r.iteration = s.iteration;
    r.stream = s.stream;
    std::memcpy(r.grid, s.grid, sizeof r.grid);
    std::memcpy(r.block, s.block, sizeof r.block);
    r.timestamp_ns = s.t_ns;
    r.name.assign(arena_.get() + s.name_off, s.name_len);
    out.push_back(std::move(r));
  }
  return out;
}

void RecordBuffer::clear() {
  const size_t n = std::min(next_slot_.load(), max_records_);
  for (size_t i = 0; i < n; ++i) slots_[i].ready.store(0, std::memory_order_relaxed);
  next_slot_.store(0);
  next_byte_.store(0);
  dropped_.store(0);
}

}  // namespace gearshift::intercept
