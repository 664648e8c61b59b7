#include "intercept/cupti_port.h"

#include "common/dynlib.h"
#include "intercept/hook.h"

namespace gearshift::intercept {

using namespace cupti;

namespace {

class RealCupti : public CuptiPort {
  using SubscribeFn = CUptiResult (*)(CUpti_SubscriberHandle*, CUpti_CallbackFunc, void*);
  using EnableFn = CUptiResult (*)(uint32_t, CUpti_SubscriberHandle, CUpti_CallbackDomain, CUpti_CallbackId);
  using UnsubscribeFn = CUptiResult (*)(CUpti_SubscriberHandle);
  using ErrStrFn = CUptiResult (*)(CUptiResult, const char**);

 public:
  RealCupti() {
    auto& lib = cupti_library();
    if (!lib.load()) {
      missing_ = "libcupti could not be opened (" + lib.status().error +
                 "); set GEARSHIFT_CUPTI_LIBRARY to its path";
      return;
    }
    subscribe_ = reinterpret_cast<SubscribeFn>(lib.symbol("cuptiSubscribe"));
    enable_ = reinterpret_cast<EnableFn>(lib.symbol("cuptiEnableCallback"));
    unsubscribe_ = reinterpret_cast<UnsubscribeFn>(lib.symbol("cuptiUnsubscribe"));
    errstr_ = reinterpret_cast<ErrStrFn>(lib.symbol("cuptiGetResultString"));
    if (!subscribe_ || !enable_ || !unsubscribe_) missing_ = "libcupti lacks cuptiSubscribe/EnableCallback";
  }
  std::string name() const override { return "cupti"; }
  CUptiResult subscribe(CUpti_SubscriberHandle* h, CUpti_CallbackFunc cb, void* ud) override {
    return subscribe_ ? subscribe_(h, cb, ud) : -1;
  }
  CUptiResult enable_callback(uint32_t e, CUpti_SubscriberHandle h, CUpti_CallbackDomain d,
                              CUpti_CallbackId id) override {
    return enable_ ? enable_(e, h, d, id) : -1;
  }
  CUptiResult unsubscribe(CUpti_SubscriberHandle h) override { return unsubscribe_ ? unsubscribe_(h) : -1; }
  std::string error_string(CUptiResult r) override {
    if (r == -1) return missing_;
    const char* s = nullptr;
    if (errstr_ && errstr_(r, &s) == CUPTI_SUCCESS && s) return s;
    return "CUPTI error " + std::to_string(r);
  }

 private:
  SubscribeFn subscribe_ = nullptr;
  EnableFn enable_ = nullptr;
  UnsubscribeFn unsubscribe_ = nullptr;
  ErrStrFn errstr_ = nullptr;
  std::string missing_;
};

}  // namespace

std::shared_ptr<CuptiPort> real_cupti() {
  static std::shared_ptr<CuptiPort> port = std::make_shared<RealCupti>();
  return port;
}

Subscription subscribe_hook(std::shared_ptr<CuptiPort> port, LaunchHook* hook) {
  Subscription s;
  s.port = std::move(port);
  CUptiResult r = s.port->subscribe(&s.handle, &LaunchHook::cupti_callback, hook);
  if (r != CUPTI_SUCCESS) {
    s.busy = r == CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED;
    s.error = s.busy ? "another profiler holds CUPTI (" + s.port->error_string(r) + ")"
                     : s.port->error_string(r);
    return s;
  }
  for (auto id : LaunchHook::kDriverCbids) {
    r = s.port->enable_callback(1, s.handle, CUPTI_CB_DOMAIN_DRIVER_API, id);
    if (r != CUPTI_SUCCESS) s.error = "enabling driver callback " + std::to_string(id) + ": " + s.port->error_string(r);
  }
  for (auto id : LaunchHook::kRuntimeCbids) {
    // Unknown ids on an older CUPTI fail harmlessly; the driver callbacks still count them.
    s.port->enable_callback(1, s.handle, CUPTI_CB_DOMAIN_RUNTIME_API, id);
  }
  if (!s.error.empty()) {
    s.port->unsubscribe(s.handle);
    s.handle = nullptr;
    return s;
  }
  s.active = true;
  return s;
}

void unsubscribe_hook(Subscription& s) {
  if (s.active && s.port) s.port->unsubscribe(s.handle);
  s.active = false;
  s.handle = nullptr;
}

}  // namespace gearshift::intercept
