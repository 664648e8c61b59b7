#include "signal/cuda_sink.h"

#include "common/dynlib.h"
#include "intercept/cupti_types.h"

namespace gearshift::signal {

namespace {
using GetProcV2 = int (*)(const char*, void**, int, unsigned long long, int*);
using GetProcV1 = int (*)(const char*, void**, int, unsigned long long);

void* driver_proc(const char* sym) {
  auto& lib = cuda_library();
  if (!lib.load()) return nullptr;
  void* fn = nullptr;
  // cuGetProcAddress returns the version-correct entry point (e.g. cuStreamWriteValue32_v2),
  // which dlsym of the plain name would not.
  if (auto v2 = reinterpret_cast<GetProcV2>(lib.symbol("cuGetProcAddress_v2"))) {
    int status = 0;
    if (v2(sym, &fn, 12000, 0, &status) == 0 && fn) return fn;
  }
  if (auto v1 = reinterpret_cast<GetProcV1>(lib.symbol("cuGetProcAddress"))) {
    if (v1(sym, &fn, 12000, 0) == 0 && fn) return fn;
  }
  return lib.symbol(sym);
}
}  // namespace

CudaSink::CudaSink() = default;

CudaSink::~CudaSink() {
  // The pinned word is leaked on purpose: freeing it at static-destruction time can race the
  // driver's own teardown, and it is one page.
}

bool CudaSink::resolve() {
  std::lock_guard<std::mutex> lk(mu_);
  if (resolved_) return reason_.empty();
  resolved_ = true;
  if (!cuda_library().load()) {
    reason_ = "libcuda could not be opened (" + cuda_library().status().error + ")";
    return false;
  }
  mem_host_alloc_ = reinterpret_cast<decltype(mem_host_alloc_)>(driver_proc("cuMemHostAlloc"));
  host_get_dptr_ = reinterpret_cast<decltype(host_get_dptr_)>(driver_proc("cuMemHostGetDevicePointer"));
  write_value32_ = reinterpret_cast<decltype(write_value32_)>(driver_proc("cuStreamWriteValue32"));
  launch_host_func_ = reinterpret_cast<decltype(launch_host_func_)>(driver_proc("cuLaunchHostFunc"));
  mem_free_host_ = reinterpret_cast<decltype(mem_free_host_)>(driver_proc("cuMemFreeHost"));
  if (!mem_host_alloc_ || !host_get_dptr_ || !write_value32_) {
    reason_ = "the CUDA driver lacks cuStreamWriteValue32 / cuMemHostAlloc (driver too old?)";
    return false;
  }
  return true;
}

bool CudaSink::ensure_word() {
  if (host_.load(std::memory_order_acquire)) return true;
  if (!resolve()) return false;
  std::lock_guard<std::mutex> lk(mu_);
  if (host_.load()) return true;
  if (alloc_failed_) return false;
  void* p = nullptr;
  int r = mem_host_alloc_(&p, 64, cupti::CU_MEMHOSTALLOC_PORTABLE | cupti::CU_MEMHOSTALLOC_DEVICEMAP);
  if (r != 0 || p == nullptr) {
    alloc_failed_ = true;
    reason_ = "cuMemHostAlloc of the boundary word failed (CUresult " + std::to_string(r) +
              "; is a CUDA context current?)";
    return false;
  }
  *static_cast<volatile uint32_t*>(p) = 0;
  r = host_get_dptr_(&dptr_, p, 0);
  if (r != 0) {
    alloc_failed_ = true;
    reason_ = "cuMemHostGetDevicePointer failed (CUresult " + std::to_string(r) + ")";
    return false;
  }
  host_.store(static_cast<uint32_t*>(p), std::memory_order_release);
  return true;
}

bool CudaSink::write(uint64_t stream, uint32_t value) {
  if (!ensure_word()) return false;
  return write_value32_(reinterpret_cast<void*>(stream), dptr_, value,
                        cupti::CU_STREAM_WRITE_VALUE_DEFAULT) == 0;
}

bool CudaSink::host_func(uint64_t stream, uint32_t, HostFn fn, void* arg) {
  if (!resolve() || launch_host_func_ == nullptr) return false;
  return launch_host_func_(reinterpret_cast<void*>(stream), fn, arg) == 0;
}

std::string CudaSink::unavailable_reason() const {
  std::lock_guard<std::mutex> lk(mu_);
  return reason_;
}

}  // namespace gearshift::signal
