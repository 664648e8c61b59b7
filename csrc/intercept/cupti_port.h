#pragma once
// The four CUPTI calls the runtime makes, behind an interface so the same subscription code runs
// against libcupti (dlopen'ed) and against the fake that replays traces on a CPU.
#include <memory>
#include <string>

#include "intercept/cupti_types.h"

namespace gearshift::intercept {

class CuptiPort {
 public:
  virtual ~CuptiPort() = default;
  virtual std::string name() const = 0;
  virtual cupti::CUptiResult subscribe(cupti::CUpti_SubscriberHandle* h, cupti::CUpti_CallbackFunc cb,
                                       void* userdata) = 0;
  virtual cupti::CUptiResult enable_callback(uint32_t enable, cupti::CUpti_SubscriberHandle h,
                                             cupti::CUpti_CallbackDomain d, cupti::CUpti_CallbackId id) = 0;
  virtual cupti::CUptiResult unsubscribe(cupti::CUpti_SubscriberHandle h) = 0;
  virtual std::string error_string(cupti::CUptiResult r) = 0;
};

// libcupti through cupti_library(); nullptr-safe: every call fails with a reason when missing.
std::shared_ptr<CuptiPort> real_cupti();

class LaunchHook;

// Subscribes a hook to all launch callback ids. On failure returns the reason ("" on success);
// CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED says another profiler holds CUPTI.
struct Subscription {
  std::shared_ptr<CuptiPort> port;
  cupti::CUpti_SubscriberHandle handle = nullptr;
  bool active = false;
  bool busy = false;  // another subscriber holds CUPTI
  std::string error;
};
Subscription subscribe_hook(std::shared_ptr<CuptiPort> port, LaunchHook* hook);
void unsubscribe_hook(Subscription& s);

}  // namespace gearshift::intercept
