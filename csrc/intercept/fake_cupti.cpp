#include "intercept/fake_cupti.h"

#include <algorithm>

namespace gearshift::intercept {

using namespace cupti;

namespace {
struct FakeSubscriber {};
FakeSubscriber g_handle;
}  // namespace

CUptiResult FakeCupti::subscribe(CUpti_SubscriberHandle* h, CUpti_CallbackFunc cb, void* userdata) {
  if (busy_ || subscribed_) return CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED;
  subscribed_ = true;
  cb_ = cb;
  userdata_ = userdata;
  *h = reinterpret_cast<CUpti_SubscriberHandle>(&g_handle);
  return CUPTI_SUCCESS;
}

CUptiResult FakeCupti::enable_callback(uint32_t enable, CUpti_SubscriberHandle, CUpti_CallbackDomain d,
                                       CUpti_CallbackId id) {
  if (!subscribed_) return 1;
  auto key = std::make_pair(static_cast<int>(d), id);
  auto it = std::find(enabled_.begin(), enabled_.end(), key);
  if (enable && it == enabled_.end()) enabled_.push_back(key);
  if (!enable && it != enabled_.end()) enabled_.erase(it);
  return CUPTI_SUCCESS;
}

CUptiResult FakeCupti::unsubscribe(CUpti_SubscriberHandle) {
  subscribed_ = false;
  cb_ = nullptr;
  enabled_.clear();
  return CUPTI_SUCCESS;
}

std::string FakeCupti::error_string(CUptiResult r) {
  if (r == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED) return "CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED";
  return "fake CUPTI error " + std::to_string(r);
}

bool FakeCupti::enabled(CUpti_CallbackDomain d, CUpti_CallbackId id) const {
  return subscribed_ &&
         std::find(enabled_.begin(), enabled_.end(), std::make_pair(static_cast<int>(d), id)) != enabled_.end();
}

void FakeCupti::deliver(CUpti_CallbackDomain d, CUpti_CallbackId id, CUpti_ApiCallbackSite site,
                        const char* name, const void* params) {
  if (!enabled(d, id)) return;
  CUpti_CallbackData cb{};
  cb.callbackSite = site;
  cb.functionName = "fake";
  cb.functionParams = params;
  cb.symbolName = name;
  cb_(userdata_, d, id, &cb);
}

void FakeCupti::launch(LaunchApi api, const char* name, uint64_t stream, const uint32_t grid[3],
                       const uint32_t block[3], int64_t duration_ns) {
  auto hs = reinterpret_cast<CUstream>(stream);
  cuLaunchKernel_params drv{};
  drv.gridDimX = grid[0], drv.gridDimY = grid[1], drv.gridDimZ = grid[2];
  drv.blockDimX = block[0], drv.blockDimY = block[1], drv.blockDimZ = block[2];
  drv.hStream = hs;
  CUlaunchConfig cfg{grid[0], grid[1], grid[2], block[0], block[1], block[2], 0, hs, nullptr, 0};
  cuLaunchKernelEx_params drv_ex{&cfg, nullptr, nullptr, nullptr};

  auto driver_launch = [&](CUpti_CallbackId id, const void* params) {
    deliver(CUPTI_CB_DOMAIN_DRIVER_API, id, CUPTI_API_ENTER, name, params);
    gpu_->launch_kernel(stream, duration_ns);
    deliver(CUPTI_CB_DOMAIN_DRIVER_API, id, CUPTI_API_EXIT, name, params);
  };

  switch (api) {
    case LaunchApi::driver: driver_launch(CBID_cuLaunchKernel, &drv); return;
    case LaunchApi::driver_ptsz: driver_launch(CBID_cuLaunchKernel_ptsz, &drv); return;
    case LaunchApi::driver_ex: driver_launch(CBID_cuLaunchKernelEx, &drv_ex); return;
    default: break;
  }
  cudaLaunchKernel_v7000_params rt{};
  rt.gridDim = {grid[0], grid[1], grid[2]};
  rt.blockDim = {block[0], block[1], block[2]};
  rt.stream = hs;
  cudaLaunchConfig_t rcfg{{grid[0], grid[1], grid[2]}, {block[0], block[1], block[2]}, 0, hs, nullptr, 0};
  cudaLaunchKernelExC_v11060_params rt_ex{&rcfg, nullptr, nullptr};
  CUpti_CallbackId id = CBID_cudaLaunchKernel_v7000;
  const void* params = &rt;
  if (api == LaunchApi::runtime_ex) id = CBID_cudaLaunchKernelExC_v11060, params = &rt_ex;
  if (api == LaunchApi::runtime_internal) id = CBID___cudaLaunchKernel_v13000, params = nullptr;
  deliver(CUPTI_CB_DOMAIN_RUNTIME_API, id, CUPTI_API_ENTER, name, params);
  if (nested_driver_) {
    driver_launch(api == LaunchApi::runtime_ex ? CBID_cuLaunchKernelEx : CBID_cuLaunchKernel,
                  api == LaunchApi::runtime_ex ? static_cast<const void*>(&drv_ex) : &drv);
  } else {
    gpu_->launch_kernel(stream, duration_ns);
  }
  deliver(CUPTI_CB_DOMAIN_RUNTIME_API, id, CUPTI_API_EXIT, name, params);
}

}  // namespace gearshift::intercept
