// The NVML backend against the fake libnvidia-ml (csrc/fake/fake_nvml.cpp), and the fake's own
// NVML behaviour: clock listing, locking with a switch latency, the return-code table
// (NO_PERMISSION must become a typed error that names the fixes), and the energy counter's
// update period, mJ resolution and noise.
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "check.h"
#include "clock/nvml.h"

using namespace gearshift;
using namespace gearshift::clock;

namespace {

DynLib& fake_lib() {
  static DynLib lib("fake-nvml", {std::getenv("GEARSHIFT_FAKE_NVML") ? std::getenv("GEARSHIFT_FAKE_NVML") : "missing"});
  return lib;
}

template <typename F>
F fn(const char* name) {
  void* p = fake_lib().symbol(name);
  if (p == nullptr) {
    std::fprintf(stderr, "fake NVML lacks %s (GEARSHIFT_FAKE_NVML=%s)\n", name,
                 std::getenv("GEARSHIFT_FAKE_NVML") ? std::getenv("GEARSHIFT_FAKE_NVML") : "");
    std::exit(2);
  }
  return reinterpret_cast<F>(p);
}

// One GPU: SM clocks 1980/1500/1000 at memory clock 2619, 2 ms switch latency, counter
// updated every 20 ms with `noise` relative noise.
int one_gpu(double noise = 0.0, long long latency_ns = 2'000'000) {
  fake_lib().load();
  fn<void (*)()>("fake_nvml_clear")();
  const unsigned sm[] = {1000, 1980, 1500}, mem[] = {1593, 2619};
  return fn<int (*)(const char*, const char*, const unsigned*, unsigned, const unsigned*, unsigned, unsigned,
                    long long, long long, double, double, unsigned long long)>("fake_nvml_add_device")(
      "NVIDIA H100 80GB HBM3 (fake)", "GPU-fake-0", sm, 3, mem, 2, 1980, latency_ns, 20'000'000, noise, 70.0, 7);
}

void advance(long long ns, double j) { fn<int (*)(unsigned, long long, double)>("fake_nvml_advance")(0, ns, j); }
unsigned applied() { return fn<unsigned (*)(unsigned)>("fake_nvml_applied_mhz")(0); }
void set_return(const char* f, int rc, int dev = 0) {
  fn<int (*)(int, const char*, int)>("fake_nvml_set_return")(dev, f, rc);
}

unsigned long long energy_mj() {
  void* h = nullptr;
  fn<int (*)(unsigned, void**)>("nvmlDeviceGetHandleByIndex_v2")(0, &h);
  unsigned long long mj = 0;
  CHECK_EQ(fn<int (*)(void*, unsigned long long*)>("nvmlDeviceGetTotalEnergyConsumption")(h, &mj), 0);
  return mj;
}

}  // namespace

TEST(nvml_lists_sorted_clocks_and_locks_after_the_switch_latency) {
  CHECK_EQ(one_gpu(), 0);
  NvmlBackend b(&fake_lib());
  CHECK_EQ(b.device_count(), 1);
  auto clocks = b.supported_sm_mhz(0);
  CHECK_EQ(clocks.size(), size_t{3});
  CHECK_EQ(clocks[0], 1980);
  CHECK_EQ(clocks[2], 1000);
  advance(1'000'000, 0.1);
  b.lock_sm_mhz(0, 1500);
  CHECK_EQ(fn<unsigned (*)(unsigned)>("fake_nvml_requested_mhz")(0), 1500u);
  CHECK_EQ(applied(), 1980u);  // not yet: the switch takes 2 ms of device time
  advance(1'999'000, 0.2);
  CHECK_EQ(applied(), 1980u);
  advance(1'000, 0.0);
  CHECK_EQ(applied(), 1500u);
  b.reset(0);
  advance(2'000'000, 0.2);
  CHECK_EQ(applied(), 1980u);
  long long t[4];
  unsigned mhz[4];
  CHECK_EQ(fn<int (*)(unsigned, int, long long*, unsigned*, int)>("fake_nvml_lock_log")(0, 0, t, mhz, 4), 2);
  CHECK_EQ(t[0], 1'000'000LL);  // logged at the device time of the call
  CHECK_EQ(mhz[0], 1500u);
  CHECK_EQ(mhz[1], 0u);  // a reset
  CHECK_THROWS_KIND(b.lock_sm_mhz(1, 1500), ErrorKind::device);
  CHECK_THROWS_KIND(b.lock_sm_mhz(0, 1234), ErrorKind::unsupported_clock);  // not in the table
}

TEST(nvml_no_permission_is_typed_and_names_the_fix) {
  one_gpu();
  NvmlBackend b(&fake_lib());
  set_return("nvmlDeviceSetGpuLockedClocks", 4);
  try {
    b.lock_sm_mhz(0, 1500);
    CHECK(false);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::no_permission);
    CHECK(std::strstr(e.what(), "NVML_ERROR_NO_PERMISSION") != nullptr);
    CHECK(e.fix().find("gearshift daemon") != std::string::npos);
    CHECK(e.fix().find("dry-run") != std::string::npos);
  }
  CHECK_EQ(applied(), 1980u);  // a refused lock changes nothing
  CHECK_EQ(fn<int (*)(unsigned)>("fake_nvml_refused")(0), 1);
  set_return("nvmlDeviceSetGpuLockedClocks", 15);
  CHECK_THROWS_KIND(b.lock_sm_mhz(0, 1500), ErrorKind::device);
  set_return("nvmlDeviceSetGpuLockedClocks", 0);
  b.lock_sm_mhz(0, 1500);
  set_return("nvmlDeviceResetGpuLockedClocks", 4);
  CHECK_THROWS_KIND(b.reset(0), ErrorKind::no_permission);
  set_return(nullptr, 0);
}

TEST(nvml_init_failure_and_missing_library_are_typed) {
  one_gpu();
  set_return("nvmlInit", 9, -1);
  CHECK_THROWS_KIND(NvmlBackend b(&fake_lib()), ErrorKind::library_unavailable);
  set_return(nullptr, 0, -1);
  DynLib missing("nvml", {"/nonexistent/libnvidia-ml.so.1"});
  CHECK_THROWS_KIND(NvmlBackend b(&missing), ErrorKind::library_unavailable);
  const char* path = std::getenv("GEARSHIFT_FAKE_NVML");
  NvmlBackend by_path(std::string(path ? path : "missing"));  // the path overload: same library
  CHECK_EQ(by_path.device_count(), 1);
}

TEST(nvml_table_covers_permission_and_unknown) {
  bool perm = false, unknown = false;
  for (const auto& c : nvml_code_table()) {
    perm |= c.code == 4 && c.kind == ErrorKind::no_permission;
    unknown |= c.code == 999;
  }
  CHECK(perm && unknown);
  CHECK_THROWS_KIND(throw_nvml(12345, "x", 0), ErrorKind::device);
}

TEST(fake_energy_counter_is_stale_quantised_and_unbiased) {
  one_gpu(0.0);
  NvmlBackend b(&fake_lib());  // initialises NVML
  advance(15'000'000, 4.5);    // 15 ms at 300 W: no update published yet
  CHECK_EQ(energy_mj(), 0ULL);
  advance(10'000'000, 3.0);    // crosses the 20 ms update: 6 J exactly, in whole mJ
  CHECK_EQ(energy_mj(), 6000ULL);
  advance(1'000'000, 0.3);
  CHECK_EQ(energy_mj(), 6000ULL);  // stale until the next update
  // with noise: every update stays monotone, and the long-run integral stays within 0.1 %
  one_gpu(0.02);
  unsigned long long last = 0;
  for (int i = 0; i < 2000; ++i) {
    advance(1'000'000, 0.25);  // 250 W for 2 s
    const unsigned long long now = energy_mj();
    CHECK(now >= last);
    last = now;
  }
  CHECK(std::fabs(static_cast<double>(last) - 500000.0) < 500.0);
  CHECK(last != 500000ULL);  // but noise moved it
  void* h = nullptr;
  fn<int (*)(unsigned, void**)>("nvmlDeviceGetHandleByIndex_v2")(0, &h);
  unsigned mw = 0;
  CHECK_EQ(fn<int (*)(void*, unsigned*)>("nvmlDeviceGetPowerUsage")(h, &mw), 0);
  CHECK(mw > 200000 && mw < 300000);
}

TEST(fake_uses_nvml_two_call_size_protocol) {
  one_gpu();
  NvmlBackend b(&fake_lib());
  void* h = nullptr;
  fn<int (*)(unsigned, void**)>("nvmlDeviceGetHandleByIndex_v2")(0, &h);
  unsigned n = 0;
  auto gfx = fn<int (*)(void*, unsigned, unsigned*, unsigned*)>("nvmlDeviceGetSupportedGraphicsClocks");
  CHECK_EQ(gfx(h, 2619, &n, nullptr), 7);  // NVML_ERROR_INSUFFICIENT_SIZE, count set
  CHECK_EQ(n, 3u);
  CHECK_EQ(gfx(h, 1234, &n, nullptr), 6);  // an unknown memory clock: NOT_FOUND
  char name[8];
  CHECK_EQ(fn<int (*)(void*, char*, unsigned)>("nvmlDeviceGetName")(h, name, sizeof name), 7);
}

TEST_MAIN()
