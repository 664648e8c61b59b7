// The fake libnvidia-ml: the NVML entry points gearshift uses (the C++ NVML clock backend and
// pynvml through devices/nvml_query.py), answering for GPUs that a simulator plays.
//
// It is one plain shared library with no CUDA and no gearshift dependency. Loaded by path
// (GEARSHIFT_NVML_LIBRARY, NvmlBackend(library=...), nvml_query.library(path)), never by the
// name libnvidia-ml.so.1: its soname is its own, so a later dlopen("libnvidia-ml.so.1") in the
// same process (pynvml) still finds the real driver or nothing, never this fake.
//
// NVML side (what a real driver does, as far as gearshift can observe it):
//  * nvmlInit*/nvmlShutdown count references; calls before init return UNINITIALIZED.
//  * supported memory/graphics clocks from the configured table (highest first), with NVML's
//    two-call INSUFFICIENT_SIZE protocol; an unknown memory clock is NOT_FOUND.
//  * nvmlDeviceSetGpuLockedClocks / ResetGpuLockedClocks are logged at the device time of the
//    call and take effect `switch_latency_ns` later (GetClockInfo shows the old clock until
//    then); a clock outside the table is INVALID_ARGUMENT.
//  * nvmlDeviceGetTotalEnergyConsumption: mJ since "driver load", published only every
//    `update_period_ns` of device time (a read returns the last update), in whole mJ, each
//    update's increment carrying relative Gaussian noise `noise_rel` (the next update measures
//    from the true integral again, so noise never accumulates; the counter stays monotone).
//  * nvmlDeviceGetPowerUsage: mW, the average over the last published update window.
//  * any entry point can be made to return an NVML error code (fake_nvml_set_return), e.g.
//    NO_PERMISSION for SetGpuLockedClocks: what a process without root sees.
//
// Control side (fake_nvml_*; the simulator drives it, from Python through ctypes): devices are
// added with their clock table and counter model; fake_nvml_advance(dev, duration_ns, energy_j)
// says the device ran that long and spent that energy (at the clock the backend locked, which
// the simulator reads back with fake_nvml_requested_mhz / fake_nvml_lock_log).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#define FAKE_NVML_API extern "C" __attribute__((visibility("default")))

namespace {

enum : int {
  kSuccess = 0,
  kUninitialized = 1,
  kInvalidArgument = 2,
  kNotSupported = 3,
  kNoPermission = 4,
  kNotFound = 6,
  kInsufficientSize = 7,
  kUnknown = 999,
};

struct LockEntry {
  int64_t t_ns;
  unsigned mhz;  // 0: a reset to the default clock
};

struct Device {
  std::string name, uuid;
  std::vector<unsigned> sm_mhz;   // highest first
  std::vector<unsigned> mem_mhz;  // highest first
  unsigned default_mhz = 0;
  int64_t latency_ns = 0;
  int64_t period_ns = 20'000'000;
  double noise_rel = 0.0;
  double idle_w = 0.0;
  uint64_t rng = 0;
  // device time and energy
  int64_t now_ns = 0;
  double exact_j = 0.0;
  uint64_t published_mj = 0;
  int64_t published_ns = 0;
  double window_w = 0.0;  // average power of the last published window
  // clocks
  unsigned applied_mhz = 0;    // in force now
  unsigned requested_mhz = 0;  // target of the last lock/reset call that succeeded
  std::deque<LockEntry> landing;  // (lands at, clock) not yet in force
  std::vector<LockEntry> log;     // every successful lock/reset call, at its device time
  int refused = 0;                // lock/reset calls answered with an error
  std::map<std::string, int> returns;  // entry point -> forced return code, this GPU only
};

std::mutex g_mu;
std::vector<std::unique_ptr<Device>> g_devices;  // stable addresses: a handle is a Device*
int g_init = 0;
std::map<std::string, int> g_returns;  // entry point -> forced return code, every GPU

int forced(const char* fn, const Device* d = nullptr) {
  if (d != nullptr) {
    auto it = d->returns.find(fn);
    if (it != d->returns.end()) return it->second;
  }
  auto it = g_returns.find(fn);
  return it == g_returns.end() ? kSuccess : it->second;
}

Device* find(void* handle) {
  for (auto& d : g_devices) {
    if (d.get() == handle) return d.get();
  }
  return nullptr;
}

// The checks every device call starts with: forced code, init, a valid handle.
int enter(const char* fn, void* handle, Device** out) {
  Device* d = find(handle);
  if (int rc = forced(fn, d)) return rc;
  if (g_init <= 0) return kUninitialized;
  *out = d;
  return d ? kSuccess : kInvalidArgument;
}

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double gaussian(uint64_t& s) {  // Box-Muller
  const double u1 = (static_cast<double>(splitmix(s) >> 11) + 0.5) * 0x1.0p-53;
  const double u2 = static_cast<double>(splitmix(s) >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

void land(Device& d) {
  while (!d.landing.empty() && d.landing.front().t_ns <= d.now_ns) {
    d.applied_mhz = d.landing.front().mhz;
    d.landing.pop_front();
  }
}

int copy_list(const std::vector<unsigned>& src, unsigned int* count, unsigned int* out) {
  if (count == nullptr) return kInvalidArgument;
  const auto n = static_cast<unsigned int>(src.size());
  if (*count < n || out == nullptr) {
    *count = n;
    return kInsufficientSize;
  }
  std::memcpy(out, src.data(), n * sizeof(unsigned));
  *count = n;
  return kSuccess;
}

int copy_string(const std::string& s, char* out, unsigned int length) {
  if (out == nullptr) return kInvalidArgument;
  if (length < s.size() + 1) return kInsufficientSize;
  std::memcpy(out, s.c_str(), s.size() + 1);
  return kSuccess;
}

bool supported(const Device& d, unsigned mhz) {
  for (unsigned c : d.sm_mhz) {
    if (c == mhz) return true;
  }
  return false;
}

void request(Device& d, unsigned mhz, unsigned log_mhz) {
  d.log.push_back({d.now_ns, log_mhz});
  d.requested_mhz = mhz;
  d.landing.push_back({d.now_ns + d.latency_ns, mhz});
  land(d);
}

}  // namespace

// ------------------------------------------------------------------------------------ NVML
FAKE_NVML_API const char* nvmlErrorString(int rc) {
  switch (rc) {
    case kSuccess: return "Success";
    case kUninitialized: return "Uninitialized";
    case kInvalidArgument: return "Invalid Argument";
    case kNotSupported: return "Not Supported";
    case kNoPermission: return "Insufficient Permissions";
    case kNotFound: return "Not Found";
    case kInsufficientSize: return "Insufficient Size";
    default: return "Unknown Error";
  }
}

FAKE_NVML_API int nvmlInitWithFlags(unsigned int) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (int rc = forced("nvmlInit")) return rc;
  ++g_init;
  return kSuccess;
}
FAKE_NVML_API int nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
FAKE_NVML_API int nvmlInit(void) { return nvmlInitWithFlags(0); }

FAKE_NVML_API int nvmlShutdown(void) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (g_init <= 0) return kUninitialized;
  --g_init;
  return kSuccess;
}

FAKE_NVML_API int nvmlSystemGetDriverVersion(char* version, unsigned int length) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (g_init <= 0) return kUninitialized;
  return copy_string("gearshift-fake-nvml", version, length);
}

FAKE_NVML_API int nvmlDeviceGetCount_v2(unsigned int* count) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (int rc = forced("nvmlDeviceGetCount")) return rc;
  if (g_init <= 0) return kUninitialized;
  if (count == nullptr) return kInvalidArgument;
  *count = static_cast<unsigned int>(g_devices.size());
  return kSuccess;
}
FAKE_NVML_API int nvmlDeviceGetCount(unsigned int* count) { return nvmlDeviceGetCount_v2(count); }

FAKE_NVML_API int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (int rc = forced("nvmlDeviceGetHandleByIndex")) return rc;
  if (g_init <= 0) return kUninitialized;
  if (device == nullptr || index >= g_devices.size()) return kInvalidArgument;
  *device = g_devices[index].get();
  return kSuccess;
}
FAKE_NVML_API int nvmlDeviceGetHandleByIndex(unsigned int index, void** device) {
  return nvmlDeviceGetHandleByIndex_v2(index, device);
}

FAKE_NVML_API int nvmlDeviceGetName(void* h, char* name, unsigned int length) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = nullptr;
  if (int rc = enter("nvmlDeviceGetName", h, &d)) return rc;
  return copy_string(d->name, name, length);
}

FAKE_NVML_API int nvmlDeviceGetUUID(void* h, char* uuid, unsigned int length) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = nullptr;
  if (int rc = enter("nvmlDeviceGetUUID", h, &d)) return rc;
  return copy_string(d->uuid, uuid, length);
}

FAKE_NVML_API int nvmlDeviceGetSupportedMemoryClocks(void* h, unsigned int* count, unsigned int* clocks) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = nullptr;
  if (int rc = enter("nvmlDeviceGetSupportedMemoryClocks", h, &d)) return rc;
  return copy_list(d->mem_mhz, count, clocks);
}

FAKE_NVML_API int nvmlDeviceGetSupportedGraphicsClocks(void* h, unsigned int mem_mhz, unsigned int* count,
                                                       unsigned int* clocks) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = nullptr;
  if (int rc = enter("nvmlDeviceGetSupportedGraphicsClocks", h, &d)) return rc;
  bool known = false;
  for (unsigned m : d->mem_mhz) known |= m == mem_mhz;
  if (!known) return kNotFound;
  return copy_list(d->sm_mhz, count, clocks);
}

FAKE_NVML_API int nvmlDeviceGetClockInfo(void* h, int type, unsigned int* clock) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = nullptr;
  if (int rc = enter("nvmlDeviceGetClockInfo", h, &d)) return rc;
  if (clock == nullptr) return kInvalidArgument;
  land(*d);
  switch (type) {
    case 0:  // NVML_CLOCK_GRAPHICS
    case 1:  // NVML_CLOCK_SM
      *clock = d->applied_mhz;
      return kSuccess;
    case 2:  // NVML_CLOCK_MEM
      *clock = d->mem_mhz.empty() ? 0 : d->mem_mhz.front();
      return kSuccess;
    default:
      return kNotSupported;
  }
}

FAKE_NVML_API int nvmlDeviceSetGpuLockedClocks(void* h, unsigned int min_mhz, unsigned int max_mhz) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = nullptr;
  int rc = enter("nvmlDeviceSetGpuLockedClocks", h, &d);
  if (rc == kSuccess && (min_mhz != max_mhz || !supported(*d, min_mhz))) rc = kInvalidArgument;
  if (rc != kSuccess) {
    if (Device* x = find(h)) ++x->refused;
    return rc;
  }
  request(*d, min_mhz, min_mhz);
  return kSuccess;
}

FAKE_NVML_API int nvmlDeviceResetGpuLockedClocks(void* h) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = nullptr;
  if (int rc = enter("nvmlDeviceResetGpuLockedClocks", h, &d)) {
    if (Device* x = find(h)) ++x->refused;
    return rc;
  }
  request(*d, d->default_mhz, 0);
  return kSuccess;
}

FAKE_NVML_API int nvmlDeviceGetTotalEnergyConsumption(void* h, unsigned long long* energy_mj) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = nullptr;
  if (int rc = enter("nvmlDeviceGetTotalEnergyConsumption", h, &d)) return rc;
  if (energy_mj == nullptr) return kInvalidArgument;
  *energy_mj = d->published_mj;
  return kSuccess;
}

FAKE_NVML_API int nvmlDeviceGetPowerUsage(void* h, unsigned int* power_mw) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = nullptr;
  if (int rc = enter("nvmlDeviceGetPowerUsage", h, &d)) return rc;
  if (power_mw == nullptr) return kInvalidArgument;
  *power_mw = static_cast<unsigned int>(std::lround(d->window_w * 1000.0));
  return kSuccess;
}

// --------------------------------------------------------------------------------- control
// Forget every device and forced return code (tests).
FAKE_NVML_API void fake_nvml_clear(void) {
  std::lock_guard<std::mutex> lk(g_mu);
  g_devices.clear();
  g_returns.clear();
}

// Add a GPU; returns its NVML index. `sm_mhz`/`mem_mhz` in any order (kept highest first);
// `default_mhz` is the clock before any lock and after a reset.
FAKE_NVML_API int fake_nvml_add_device(const char* name, const char* uuid, const unsigned int* sm_mhz,
                                       unsigned int n_sm, const unsigned int* mem_mhz, unsigned int n_mem,
                                       unsigned int default_mhz, long long switch_latency_ns,
                                       long long update_period_ns, double noise_rel, double idle_power_w,
                                       unsigned long long seed) {
  if (name == nullptr || sm_mhz == nullptr || n_sm == 0 || mem_mhz == nullptr || n_mem == 0 ||
      update_period_ns <= 0 || switch_latency_ns < 0 || noise_rel < 0 || default_mhz == 0) {
    return -1;
  }
  auto d = std::make_unique<Device>();
  d->name = name;
  d->uuid = uuid ? uuid : "";
  d->sm_mhz.assign(sm_mhz, sm_mhz + n_sm);
  d->mem_mhz.assign(mem_mhz, mem_mhz + n_mem);
  auto desc = [](unsigned a, unsigned b) { return a > b; };
  std::sort(d->sm_mhz.begin(), d->sm_mhz.end(), desc);
  std::sort(d->mem_mhz.begin(), d->mem_mhz.end(), desc);
  if (!supported(*d, default_mhz)) return -1;
  d->default_mhz = d->applied_mhz = d->requested_mhz = default_mhz;
  d->latency_ns = switch_latency_ns;
  d->period_ns = update_period_ns;
  d->noise_rel = noise_rel;
  d->idle_w = d->window_w = idle_power_w;
  d->rng = seed;
  std::lock_guard<std::mutex> lk(g_mu);
  g_devices.push_back(std::move(d));
  return static_cast<int>(g_devices.size()) - 1;
}

// Make `function` (an NVML entry point name; "nvmlInit" for every init, the _v2 suffix
// dropped) return `rc` from now on, for GPU `dev` only, or for every call when dev < 0; rc 0
// restores it; function NULL restores all of that scope. Returns -1 for an unknown GPU.
FAKE_NVML_API int fake_nvml_set_return(int dev, const char* function, int rc) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (dev >= static_cast<int>(g_devices.size())) return -1;
  auto& table = dev < 0 ? g_returns : g_devices[static_cast<size_t>(dev)]->returns;
  if (function == nullptr) {
    table.clear();
  } else if (rc == 0) {
    table.erase(function);
  } else {
    table[function] = rc;
  }
  return 0;
}

namespace {
Device* control(unsigned int dev) { return dev < g_devices.size() ? g_devices[dev].get() : nullptr; }
}  // namespace

// The device ran `duration_ns` of device time and spent `energy_j` (exact, as the simulator
// computed it) evenly over it. Publishes the counter at every update tick inside.
FAKE_NVML_API int fake_nvml_advance(unsigned int dev, long long duration_ns, double energy_j) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = control(dev);
  if (d == nullptr || duration_ns < 0 || !(energy_j >= 0.0)) return kInvalidArgument;
  if (duration_ns == 0) return kSuccess;
  const double power_w = energy_j / (static_cast<double>(duration_ns) * 1e-9);
  const int64_t t0 = d->now_ns, t1 = d->now_ns + duration_ns;
  while (d->published_ns + d->period_ns <= t1) {
    const int64_t tick = d->published_ns + d->period_ns;
    const double exact_at_tick = d->exact_j + static_cast<double>(tick - t0) * 1e-9 * power_w;
    const double increment = exact_at_tick - static_cast<double>(d->published_mj) / 1000.0;
    const double noise = d->noise_rel * std::max(increment, 0.0) * gaussian(d->rng);
    const double value_j = static_cast<double>(d->published_mj) / 1000.0 + std::max(0.0, increment + noise);
    const auto value_mj = static_cast<uint64_t>(std::floor(value_j * 1000.0));
    const uint64_t before = d->published_mj;
    d->published_mj = std::max(d->published_mj, value_mj);
    d->window_w = static_cast<double>(d->published_mj - before) / 1000.0 /
                  (static_cast<double>(d->period_ns) * 1e-9);
    d->published_ns = tick;
  }
  d->exact_j += energy_j;
  d->now_ns = t1;
  land(*d);
  return kSuccess;
}

FAKE_NVML_API long long fake_nvml_now_ns(unsigned int dev) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = control(dev);
  return d ? d->now_ns : -1;
}

// The true energy integral (what a perfect counter would read now), in J.
FAKE_NVML_API double fake_nvml_exact_energy_j(unsigned int dev) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = control(dev);
  return d ? d->exact_j : -1.0;
}

// The clock the last successful lock/reset call asked for (the default after a reset).
FAKE_NVML_API unsigned int fake_nvml_requested_mhz(unsigned int dev) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = control(dev);
  return d ? d->requested_mhz : 0;
}

// The clock in force now (a lock lands switch_latency_ns after its call).
FAKE_NVML_API unsigned int fake_nvml_applied_mhz(unsigned int dev) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = control(dev);
  if (d == nullptr) return 0;
  land(*d);
  return d->applied_mhz;
}

// Lock/reset calls refused with an error code.
FAKE_NVML_API int fake_nvml_refused(unsigned int dev) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = control(dev);
  return d ? d->refused : -1;
}

// The lock log from entry `start`: up to `capacity` (device ns, MHz; 0 = reset) pairs.
// Returns how many were written; with capacity 0, how many entries there are from `start`.
FAKE_NVML_API int fake_nvml_lock_log(unsigned int dev, int start, long long* t_ns, unsigned int* mhz,
                                     int capacity) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device* d = control(dev);
  if (d == nullptr || start < 0) return -1;
  const int total = static_cast<int>(d->log.size());
  const int avail = std::max(0, total - start);
  if (capacity <= 0 || t_ns == nullptr || mhz == nullptr) return avail;
  const int n = std::min(avail, capacity);
  for (int i = 0; i < n; ++i) {
    t_ns[i] = d->log[static_cast<size_t>(start + i)].t_ns;
    mhz[i] = d->log[static_cast<size_t>(start + i)].mhz;
  }
  return n;
}
