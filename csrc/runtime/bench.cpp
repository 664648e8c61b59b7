#include "runtime/bench.h"

#include <algorithm>

#include "clock/dry_run.h"
#include "runtime/runtime.h"

namespace gearshift::runtime {

using namespace cupti;

namespace {

// One launch exactly as CUPTI delivers it for cudaLaunchKernel with the nested driver call.
inline void deliver_launch(CUpti_CallbackFunc cb, void* ud, const CUpti_CallbackData* rt_enter,
                           const CUpti_CallbackData* rt_exit, const CUpti_CallbackData* drv_enter,
                           const CUpti_CallbackData* drv_exit) {
  cb(ud, CUPTI_CB_DOMAIN_RUNTIME_API, CBID_cudaLaunchKernel_v7000, rt_enter);
  cb(ud, CUPTI_CB_DOMAIN_DRIVER_API, CBID_cuLaunchKernel, drv_enter);
  cb(ud, CUPTI_CB_DOMAIN_DRIVER_API, CBID_cuLaunchKernel, drv_exit);
  cb(ud, CUPTI_CB_DOMAIN_RUNTIME_API, CBID_cudaLaunchKernel_v7000, rt_exit);
}

// The baseline: what delivering four callbacks costs with an empty subscriber.
__attribute__((noinline)) void noop_callback(void*, CUpti_CallbackDomain, CUpti_CallbackId, const void* p) {
  asm volatile("" : : "r"(p) : "memory");
}

double time_launches(CUpti_CallbackFunc cb_in, void* ud, int n) {
  CUpti_CallbackFunc volatile cb_v = cb_in;  // an indirect call, as CUPTI makes
  CUpti_CallbackFunc cb = cb_v;
  static const char* kName = "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>";
  cudaLaunchKernel_v7000_params rt{};
  rt.gridDim = {128, 1, 1};
  rt.blockDim = {256, 1, 1};
  rt.stream = reinterpret_cast<CUstream>(0x77);
  cuLaunchKernel_params drv{};
  drv.gridDimX = 128, drv.gridDimY = 1, drv.gridDimZ = 1;
  drv.blockDimX = 256, drv.blockDimY = 1, drv.blockDimZ = 1;
  drv.hStream = rt.stream;
  CUpti_CallbackData a{}, b{}, c{}, d{};
  a.callbackSite = CUPTI_API_ENTER, a.functionParams = &rt, a.symbolName = kName;
  b = a, b.callbackSite = CUPTI_API_EXIT;
  c.callbackSite = CUPTI_API_ENTER, c.functionParams = &drv, c.symbolName = kName;
  d = c, d.callbackSite = CUPTI_API_EXIT;
  const int64_t t0 = clock::steady_now_ns();
  for (int i = 0; i < n; ++i) deliver_launch(cb, ud, &a, &b, &c, &d);
  return double(clock::steady_now_ns() - t0) / n;
}

}  // namespace

HookCost bench_hook_cost(int launches, int partition_len, int repeats) {
  HookCost out;
  out.launches = launches;
  auto backend = std::make_shared<clock::DryRunBackend>(1, std::vector<int>{}, 1 << 20);
  RuntimeOptions opt;
  opt.signal_path = "fake-realtime";
  opt.handle_signals = false;
  opt.record_capacity = static_cast<size_t>(launches) + 16;
  Runtime rt(backend, opt);
  rt.start();
  const int n_parts = std::max(1, launches / std::max(1, partition_len));
  std::vector<schedule::PartitionSpec> parts, checked;
  static const char* kName = "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>";
  for (int p = 0; p < n_parts; ++p) {
    parts.push_back({p * partition_len, p % 2 ? 1000 : 1500, 0});
    std::vector<std::string> names(static_cast<size_t>(partition_len), kName);
    checked.push_back({p * partition_len, p % 2 ? 1000 : 1500, schedule::partition_hash(names)});
  }
  const int num_kernels = n_parts * partition_len;
  auto best = [&](auto&& body) {
    double b = 1e30;
    for (int r = 0; r < repeats; ++r) b = std::min(b, body());
    return b;
  };
  auto* hook = &rt.hook();
  out.baseline_ns_per_launch = best([&] { return time_launches(&noop_callback, nullptr, num_kernels); });
  auto run_mode = [&](intercept::Mode m) {
    return best([&] {
      hook->reset_counters();
      rt.set_mode(m);
      double t = time_launches(&intercept::LaunchHook::cupti_callback, hook, num_kernels);
      rt.set_mode(intercept::Mode::off);
      return t;
    });
  };
  out.off_ns = run_mode(intercept::Mode::off) - out.baseline_ns_per_launch;
  out.record_ns = run_mode(intercept::Mode::record) - out.baseline_ns_per_launch;
  rt.install(parts, num_kernels);
  out.apply_ns = run_mode(intercept::Mode::apply) - out.baseline_ns_per_launch;
  rt.install(checked, num_kernels);
  out.apply_checked_ns = run_mode(intercept::Mode::apply) - out.baseline_ns_per_launch;
  rt.install({{0, 1500, 0}}, num_kernels);
  out.apply_no_boundary_ns = run_mode(intercept::Mode::apply) - out.baseline_ns_per_launch;
  rt.fake_gpu()->wait_idle();
  rt.stop();
  return out;
}

LatencyRun bench_boundary_latency(clock::BackendPtr backend, const std::string& trigger,
                                                  int partitions, int kernels_per, int64_t kernel_ns,
                                                  int64_t spin_ns, int64_t sleep_poll_ns) {
  RuntimeOptions opt;
  opt.spin_ns = spin_ns;
  opt.sleep_poll_ns = sleep_poll_ns;
  opt.signal_path = "fake-realtime";
  opt.handle_signals = false;
  opt.trigger = trigger == "host_func" ? signal::Trigger::host_func : signal::Trigger::write;
  Runtime rt(backend, opt);
  auto clocks = backend->supported_sm_mhz(0);
  const int hi = clocks.empty() ? 1500 : clocks.front();
  const int lo = clocks.empty() ? 1000 : clocks[clocks.size() / 2];
  std::vector<schedule::PartitionSpec> parts;
  for (int p = 0; p < partitions; ++p) parts.push_back({p * kernels_per, p % 2 ? lo : hi, 0});
  rt.install(parts, partitions * kernels_per);
  rt.start();
  rt.subscribe();
  rt.set_mode(intercept::Mode::apply);
  std::vector<ReplayKernel> ks(static_cast<size_t>(partitions * kernels_per));
  for (size_t i = 0; i < ks.size(); ++i) {
    ks[i].name = "k";
    ks[i].duration_ns = kernel_ns;
  }
  rt.replay(ks, 1, false);
  LatencyRun out;
  for (const auto& e : rt.controller().events()) {
    out.superseded += e.action == signal::Action::superseded;
    if (e.action != signal::Action::switched || e.signal_ns == 0) continue;
    out.samples.push_back({double(e.call_ns - e.signal_ns), double(e.call_ns - e.detect_ns),
                           double(e.done_ns - e.call_ns)});
  }
  rt.stop();
  return out;
}

std::vector<double> bench_backend_calls(clock::BackendPtr backend, const std::vector<int>& mhz, int n) {
  std::vector<double> ns;
  ns.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const int64_t t0 = clock::steady_now_ns();
    backend->lock_sm_mhz(0, mhz[static_cast<size_t>(i) % mhz.size()]);
    ns.push_back(double(clock::steady_now_ns() - t0));
  }
  backend->reset(0);
  return ns;
}

}  // namespace gearshift::runtime
