#pragma once
// The real boundary signal: cuStreamWriteValue32 (resolved through cuGetProcAddress) of the
// sequence number into one word of pinned, host-mapped memory (cuMemHostAlloc DEVICEMAP), and
// cuLaunchHostFunc for the comparison trigger. The word is allocated lazily on the first write,
// inside the launch callback, where the application's context is current.
#include <atomic>
#include <mutex>
#include <string>

#include "signal/sink.h"

namespace gearshift::signal {

class CudaSink : public SignalSink {
 public:
  CudaSink();
  ~CudaSink() override;
  std::string name() const override { return "cuda"; }
  const volatile uint32_t* word() override { return host_.load(std::memory_order_acquire); }
  bool write(uint64_t stream, uint32_t value) override;
  bool host_func(uint64_t stream, uint32_t seq, HostFn fn, void* arg) override;
  std::string unavailable_reason() const override;
  // Resolve driver entry points now (cheap; no context needed). False with a reason when absent.
  bool resolve();

 private:
  bool ensure_word();
  using CUresult = int;
  CUresult (*mem_host_alloc_)(void**, size_t, unsigned int) = nullptr;
  CUresult (*host_get_dptr_)(unsigned long long*, void*, unsigned int) = nullptr;
  CUresult (*write_value32_)(void*, unsigned long long, uint32_t, unsigned int) = nullptr;
  CUresult (*launch_host_func_)(void*, void (*)(void*), void*) = nullptr;
  CUresult (*mem_free_host_)(void*) = nullptr;
  std::atomic<uint32_t*> host_{nullptr};
  unsigned long long dptr_ = 0;
  mutable std::mutex mu_;
  std::string reason_;
  bool resolved_ = false, alloc_failed_ = false;
};

}  // namespace gearshift::signal
