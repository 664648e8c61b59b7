#pragma once
// Fake CUPTI + driver launch APIs: replays launches through the subscribed callback exactly as
// CUPTI delivers them (runtime ENTER, optionally the nested driver ENTER/EXIT, runtime EXIT),
// queuing each kernel on a FakeGpu between ENTER and EXIT, as the real launch would.
#include <mutex>
#include <string>
#include <vector>

#include "intercept/cupti_port.h"
#include "signal/fake_gpu.h"

namespace gearshift::intercept {

enum class LaunchApi {
  runtime,           // cudaLaunchKernel
  runtime_ex,        // cudaLaunchKernelExC
  runtime_internal,  // CUDA 13 __cudaLaunchKernel (<<<>>>): parameters unreadable
  driver,            // cuLaunchKernel
  driver_ex,         // cuLaunchKernelEx
  driver_ptsz,       // cuLaunchKernel_ptsz
};

class FakeCupti : public CuptiPort {
 public:
  explicit FakeCupti(signal::FakeGpu* gpu) : gpu_(gpu) {}
  std::string name() const override { return "fake-cupti"; }
  cupti::CUptiResult subscribe(cupti::CUpti_SubscriberHandle* h, cupti::CUpti_CallbackFunc cb,
                               void* userdata) override;
  cupti::CUptiResult enable_callback(uint32_t enable, cupti::CUpti_SubscriberHandle h,
                                     cupti::CUpti_CallbackDomain d, cupti::CUpti_CallbackId id) override;
  cupti::CUptiResult unsubscribe(cupti::CUpti_SubscriberHandle h) override;
  std::string error_string(cupti::CUptiResult r) override;

  // Another tool holds CUPTI: subscribe() then fails like the real one does.
  void set_busy(bool busy) { busy_ = busy; }
  // A runtime launch also delivers the driver callback inside it (what CUPTI does).
  void set_nested_driver(bool nested) { nested_driver_ = nested; }

  void launch(LaunchApi api, const char* name, uint64_t stream, const uint32_t grid[3],
              const uint32_t block[3], int64_t duration_ns);

 private:
  bool enabled(cupti::CUpti_CallbackDomain d, cupti::CUpti_CallbackId id) const;
  void deliver(cupti::CUpti_CallbackDomain d, cupti::CUpti_CallbackId id, cupti::CUpti_ApiCallbackSite site,
               const char* name, const void* params);

  signal::FakeGpu* gpu_;
  bool busy_ = false;
  bool nested_driver_ = true;
  bool subscribed_ = false;
  cupti::CUpti_CallbackFunc cb_ = nullptr;
  void* userdata_ = nullptr;
  std::vector<std::pair<int, uint32_t>> enabled_;
};

}  // namespace gearshift::intercept
