#include "clock/nvml.h"

#include <algorithm>
#include <functional>

namespace gearshift::clock {

const std::vector<NvmlCode>& nvml_code_table() {
  static const std::vector<NvmlCode> table = {
      {1, "NVML_ERROR_UNINITIALIZED", ErrorKind::device},
      {2, "NVML_ERROR_INVALID_ARGUMENT", ErrorKind::unsupported_clock},
      {3, "NVML_ERROR_NOT_SUPPORTED", ErrorKind::device},
      {4, "NVML_ERROR_NO_PERMISSION", ErrorKind::no_permission},
      {6, "NVML_ERROR_NOT_FOUND", ErrorKind::device},
      {7, "NVML_ERROR_INSUFFICIENT_SIZE", ErrorKind::device},
      {9, "NVML_ERROR_DRIVER_NOT_LOADED", ErrorKind::library_unavailable},
      {10, "NVML_ERROR_TIMEOUT", ErrorKind::device},
      {12, "NVML_ERROR_LIBRARY_NOT_FOUND", ErrorKind::library_unavailable},
      {13, "NVML_ERROR_FUNCTION_NOT_FOUND", ErrorKind::library_unavailable},
      {15, "NVML_ERROR_GPU_IS_LOST", ErrorKind::device},
      {17, "NVML_ERROR_OPERATING_SYSTEM", ErrorKind::device},
      {18, "NVML_ERROR_LIB_RM_VERSION_MISMATCH", ErrorKind::library_unavailable},
      {19, "NVML_ERROR_IN_USE", ErrorKind::device},
      {999, "NVML_ERROR_UNKNOWN", ErrorKind::device},
  };
  return table;
}

void throw_nvml(int code, const std::string& what, int gpu) {
  const NvmlCode* hit = nullptr;
  for (const auto& c : nvml_code_table()) {
    if (c.code == code) hit = &c;
  }
  const std::string name = hit ? hit->name : "NVML error " + std::to_string(code);
  const ErrorKind kind = hit ? hit->kind : ErrorKind::device;
  std::string problem = "nvml: " + what + (gpu >= 0 ? " on GPU " + std::to_string(gpu) : "") +
                        " failed: " + name;
  std::string fix;
  switch (kind) {
    case ErrorKind::no_permission:
      problem = "nvml: no permission to " + what + (gpu >= 0 ? " on GPU " + std::to_string(gpu) : "") +
                " (" + name + ")";
      fix = "run as root, or start `gearshift daemon` (root-owned) and use device daemon:/path, or "
            "use --device dry-run to only log the switches";
      break;
    case ErrorKind::unsupported_clock:
      fix = "use a clock from the GPU's supported list (`gearshift info`)";
      break;
    case ErrorKind::library_unavailable:
      fix = "install the NVIDIA driver matching libnvidia-ml, or use --device sim";
      break;
    default:
      fix = "check `nvidia-smi`; use --device dry-run or sim meanwhile";
  }
  throw Error(kind, problem, fix);
}

NvmlBackend::NvmlBackend(DynLib* lib) { open(lib ? *lib : nvml_library()); }

NvmlBackend::NvmlBackend(const std::string& library_path) {
  if (library_path.empty()) {
    open(nvml_library());
  } else {
    own_lib_ = std::make_unique<DynLib>("nvml", std::vector<std::string>{library_path});
    open(*own_lib_);
  }
}

void NvmlBackend::open(DynLib& l) {
  if (!l.load()) {
    throw Error(ErrorKind::library_unavailable,
                "nvml: libnvidia-ml could not be opened (" + l.status().error + ")",
                "install the NVIDIA driver, set GEARSHIFT_NVML_LIBRARY, or use --device sim");
  }
  auto sym = [&](const char* a, const char* b) {
    void* p = l.symbol(a);
    return p ? p : (b ? l.symbol(b) : nullptr);
  };
  init_ = reinterpret_cast<int (*)()>(sym("nvmlInit_v2", "nvmlInit"));
  shutdown_ = reinterpret_cast<int (*)()>(sym("nvmlShutdown", nullptr));
  count_ = reinterpret_cast<int (*)(unsigned int*)>(sym("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"));
  by_index_ = reinterpret_cast<int (*)(unsigned int, Handle*)>(
      sym("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"));
  mem_clocks_ = reinterpret_cast<int (*)(Handle, unsigned int*, unsigned int*)>(
      sym("nvmlDeviceGetSupportedMemoryClocks", nullptr));
  gfx_clocks_ = reinterpret_cast<int (*)(Handle, unsigned int, unsigned int*, unsigned int*)>(
      sym("nvmlDeviceGetSupportedGraphicsClocks", nullptr));
  lock_ = reinterpret_cast<int (*)(Handle, unsigned int, unsigned int)>(
      sym("nvmlDeviceSetGpuLockedClocks", nullptr));
  reset_ = reinterpret_cast<int (*)(Handle)>(sym("nvmlDeviceResetGpuLockedClocks", nullptr));
  if (!init_ || !count_ || !by_index_ || !gfx_clocks_ || !mem_clocks_ || !lock_ || !reset_) {
    throw Error(ErrorKind::library_unavailable,
                "nvml: libnvidia-ml lacks the clock-locking functions (driver older than R450?)",
                "update the NVIDIA driver, or use --device dry-run");
  }
  if (int r = init_(); r != 0) throw_nvml(r, "initialise NVML", -1);
}

NvmlBackend::~NvmlBackend() {
  if (shutdown_) shutdown_();
}

int NvmlBackend::device_count() {
  std::lock_guard<std::mutex> lk(mu_);
  if (count_cache_ < 0) {
    unsigned int n = 0;
    if (int r = count_(&n); r != 0) throw_nvml(r, "count GPUs", -1);
    count_cache_ = static_cast<int>(n);
  }
  return count_cache_;
}

NvmlBackend::Handle NvmlBackend::handle(int gpu) {
  check_gpu_index(name(), gpu, device_count());
  Handle h = nullptr;
  if (int r = by_index_(static_cast<unsigned int>(gpu), &h); r != 0) throw_nvml(r, "open the device", gpu);
  return h;
}

std::vector<int> NvmlBackend::supported_sm_mhz(int gpu) {
  Handle h = handle(gpu);
  std::lock_guard<std::mutex> lk(mu_);
  unsigned int nmem = 16, mem[16];
  if (int r = mem_clocks_(h, &nmem, mem); r != 0) throw_nvml(r, "list memory clocks", gpu);
  if (nmem == 0) return {};
  const unsigned int top_mem = *std::max_element(mem, mem + nmem);
  unsigned int n = 512;
  std::vector<unsigned int> clocks(n);
  if (int r = gfx_clocks_(h, top_mem, &n, clocks.data()); r != 0) throw_nvml(r, "list SM clocks", gpu);
  std::vector<int> out(clocks.begin(), clocks.begin() + n);
  std::sort(out.begin(), out.end(), std::greater<int>());
  return out;
}

void NvmlBackend::lock_sm_mhz(int gpu, int mhz) {
  Handle h = handle(gpu);
  if (mhz <= 0) throw Error(ErrorKind::unsupported_clock, "nvml: clock must be > 0 MHz", "pass a supported clock");
  if (int r = lock_(h, static_cast<unsigned int>(mhz), static_cast<unsigned int>(mhz)); r != 0) {
    throw_nvml(r, "lock the SM clock at " + std::to_string(mhz) + " MHz", gpu);
  }
}

void NvmlBackend::reset(int gpu) {
  Handle h = handle(gpu);
  if (int r = reset_(h); r != 0) throw_nvml(r, "reset the SM clock", gpu);
}

}  // namespace gearshift::clock
