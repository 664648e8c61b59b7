#include "intercept/hook.h"

#include "clock/backend.h"

namespace gearshift::intercept {

using namespace cupti;

const CUpti_CallbackId LaunchHook::kDriverCbids[4] = {
    CBID_cuLaunchKernel, CBID_cuLaunchKernel_ptsz, CBID_cuLaunchKernelEx, CBID_cuLaunchKernelEx_ptsz};
const CUpti_CallbackId LaunchHook::kRuntimeCbids[6] = {
    CBID_cudaLaunchKernel_v7000,         CBID_cudaLaunchKernel_ptsz_v7000,
    CBID_cudaLaunchKernelExC_v11060,     CBID_cudaLaunchKernelExC_ptsz_v11060,
    CBID___cudaLaunchKernel_v13000,      CBID___cudaLaunchKernel_ptsz_v13000};

namespace {

// Per-thread nesting: a runtime launch is counted at ENTER when its parameters are readable,
// otherwise by the driver launch nested inside it, otherwise at EXIT. Nested driver callbacks
// of a counted runtime launch are skipped: that is the double count CUPTI would otherwise give.
// initial-exec: a direct TLS access instead of a __tls_get_addr call on every callback (the
// extension is dlopen'ed; glibc keeps surplus static TLS for exactly this kind of small use).
#define GS_TLS thread_local __attribute__((tls_model("initial-exec")))
GS_TLS int tl_runtime_depth = 0;
GS_TLS bool tl_counted = false;
GS_TLS const char* tl_runtime_name = nullptr;

// A per-thread-default-stream launch (_ptsz) on stream 0 runs on the calling thread's stream,
// not the legacy one: the boundary write must go there too.
inline uint64_t resolve_stream(uint64_t s, bool ptsz) { return s == 0 && ptsz ? CU_STREAM_PER_THREAD : s; }

bool runtime_info(CUpti_CallbackId cbid, const void* params, LaunchInfo& out) {
  if (params == nullptr) return false;
  switch (cbid) {
    case CBID_cudaLaunchKernel_v7000:
    case CBID_cudaLaunchKernel_ptsz_v7000: {
      auto* p = static_cast<const cudaLaunchKernel_v7000_params*>(params);
      out.stream = resolve_stream(reinterpret_cast<uint64_t>(p->stream), cbid == CBID_cudaLaunchKernel_ptsz_v7000);
      out.grid[0] = p->gridDim.x, out.grid[1] = p->gridDim.y, out.grid[2] = p->gridDim.z;
      out.block[0] = p->blockDim.x, out.block[1] = p->blockDim.y, out.block[2] = p->blockDim.z;
      return true;
    }
    case CBID_cudaLaunchKernelExC_v11060:
    case CBID_cudaLaunchKernelExC_ptsz_v11060: {
      auto* p = static_cast<const cudaLaunchKernelExC_v11060_params*>(params);
      if (p->config == nullptr) return false;
      out.stream = resolve_stream(reinterpret_cast<uint64_t>(p->config->stream),
                                  cbid == CBID_cudaLaunchKernelExC_ptsz_v11060);
      out.grid[0] = p->config->gridDim.x, out.grid[1] = p->config->gridDim.y, out.grid[2] = p->config->gridDim.z;
      out.block[0] = p->config->blockDim.x, out.block[1] = p->config->blockDim.y, out.block[2] = p->config->blockDim.z;
      return true;
    }
    default:
      return false;  // __cudaLaunchKernel: layout unpublished
  }
}

bool driver_info(CUpti_CallbackId cbid, const void* params, LaunchInfo& out) {
  if (params == nullptr) return false;
  switch (cbid) {
    case CBID_cuLaunchKernel:
    case CBID_cuLaunchKernel_ptsz: {
      auto* p = static_cast<const cuLaunchKernel_params*>(params);
      out.stream = resolve_stream(reinterpret_cast<uint64_t>(p->hStream), cbid == CBID_cuLaunchKernel_ptsz);
      out.grid[0] = p->gridDimX, out.grid[1] = p->gridDimY, out.grid[2] = p->gridDimZ;
      out.block[0] = p->blockDimX, out.block[1] = p->blockDimY, out.block[2] = p->blockDimZ;
      return true;
    }
    case CBID_cuLaunchKernelEx:
    case CBID_cuLaunchKernelEx_ptsz: {
      auto* p = static_cast<const cuLaunchKernelEx_params*>(params);
      if (p->config == nullptr) return false;
      out.stream = resolve_stream(reinterpret_cast<uint64_t>(p->config->hStream),
                                  cbid == CBID_cuLaunchKernelEx_ptsz);
      out.grid[0] = p->config->gridDimX, out.grid[1] = p->config->gridDimY, out.grid[2] = p->config->gridDimZ;
      out.block[0] = p->config->blockDimX, out.block[1] = p->config->blockDimY, out.block[2] = p->config->blockDimZ;
      return true;
    }
    default:
      return false;
  }
}

}  // namespace

LaunchHook::LaunchHook(size_t record_capacity, size_t name_arena_bytes)
    : records_(record_capacity, name_arena_bytes) {}

void LaunchHook::cupti_callback(void* userdata, CUpti_CallbackDomain domain, CUpti_CallbackId cbid,
                                const void* cbdata) {
  static_cast<LaunchHook*>(userdata)->on_api(domain, cbid, static_cast<const CUpti_CallbackData*>(cbdata));
}

void LaunchHook::on_api(CUpti_CallbackDomain domain, CUpti_CallbackId cbid, const CUpti_CallbackData* cb) {
  if (cb == nullptr) return;
  if (domain == CUPTI_CB_DOMAIN_RUNTIME_API) {
    if (cb->callbackSite == CUPTI_API_ENTER) {
      ++tl_runtime_depth;
      tl_counted = false;
      tl_runtime_name = cb->symbolName;
      LaunchInfo info;
      if (runtime_info(cbid, cb->functionParams, info)) {
        info.name = cb->symbolName;
        tl_counted = true;
        runtime_counted_.fetch_add(1, std::memory_order_relaxed);
        on_launch(info);
      }
    } else if (tl_runtime_depth > 0) {
      if (!tl_counted) {
        // No readable parameters and no driver launch seen: count it late so ordinals stay right.
        LaunchInfo info;
        info.name = cb->symbolName ? cb->symbolName : tl_runtime_name;
        late_counted_.fetch_add(1, std::memory_order_relaxed);
        on_launch(info);
      }
      --tl_runtime_depth;
      tl_counted = false;
    }
    return;
  }
  if (domain != CUPTI_CB_DOMAIN_DRIVER_API || cb->callbackSite != CUPTI_API_ENTER) return;
  if (tl_runtime_depth > 0 && tl_counted) {
    nested_skipped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  LaunchInfo info;
  driver_info(cbid, cb->functionParams, info);
  info.name = cb->symbolName ? cb->symbolName : tl_runtime_name;
  if (tl_runtime_depth > 0) tl_counted = true;
  driver_counted_.fetch_add(1, std::memory_order_relaxed);
  on_launch(info);
}

void LaunchHook::on_launch(const LaunchInfo& info) {
  const int mode = mode_.load(std::memory_order_relaxed);
  const uint64_t g = count_.fetch_add(1, std::memory_order_relaxed);
  if (mode == static_cast<int>(Mode::record)) {
    records_.append(static_cast<int64_t>(g - iter_base_.load(std::memory_order_relaxed)),
                    iteration_.load(std::memory_order_relaxed), info.stream, info.grid, info.block,
                    clock::steady_now_ns(), info.name);
  } else if (mode == static_cast<int>(Mode::apply)) {
    if (LaunchSink* s = sink_.load(std::memory_order_acquire)) s->on_launch(g, info);
  }
}

void LaunchHook::begin_iteration() {
  iter_base_.store(count_.load(std::memory_order_acquire), std::memory_order_release);
  iteration_.fetch_add(1, std::memory_order_acq_rel);
}

HookStats LaunchHook::stats() const {
  HookStats s;
  s.launches = count_.load();
  s.runtime_counted = runtime_counted_.load();
  s.driver_counted = driver_counted_.load();
  s.nested_skipped = nested_skipped_.load();
  s.late_counted = late_counted_.load();
  return s;
}

void LaunchHook::reset_counters() {
  count_.store(0);
  iter_base_.store(0);
  iteration_.store(0);
  runtime_counted_.store(0);
  driver_counted_.store(0);
  nested_skipped_.store(0);
  late_counted_.store(0);
  records_.clear();
}

}  // namespace gearshift::intercept
