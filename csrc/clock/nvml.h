#pragma once
// NVML backend: libnvidia-ml opened at run time. NVML return codes are mapped by one table onto
// typed errors (no_permission names the fixes: root, the gearshift daemon, or dry-run).
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "clock/backend.h"
#include "common/dynlib.h"

namespace gearshift::clock {

struct NvmlCode {
  int code;
  const char* name;
  ErrorKind kind;
};
// The mapping table (exposed for tests and docs).
const std::vector<NvmlCode>& nvml_code_table();
[[noreturn]] void throw_nvml(int code, const std::string& what, int gpu);

class NvmlBackend : public ClockBackend {
 public:
  // `lib` defaults to nvml_library() (GEARSHIFT_NVML_LIBRARY overrides its search); tests pass
  // a fake libnvidia-ml.
  explicit NvmlBackend(DynLib* lib = nullptr);
  // libnvidia-ml opened from `library_path` (the fake GPU's fake library); "" = as above.
  explicit NvmlBackend(const std::string& library_path);
  ~NvmlBackend() override;
  std::string name() const override { return "nvml"; }
  int device_count() override;
  std::vector<int> supported_sm_mhz(int gpu) override;
  void lock_sm_mhz(int gpu, int mhz) override;
  void reset(int gpu) override;

 private:
  using Handle = void*;
  void open(DynLib& lib);
  Handle handle(int gpu);
  std::unique_ptr<DynLib> own_lib_;
  std::mutex mu_;
  int (*init_)() = nullptr;
  int (*shutdown_)() = nullptr;
  int (*count_)(unsigned int*) = nullptr;
  int (*by_index_)(unsigned int, Handle*) = nullptr;
  int (*mem_clocks_)(Handle, unsigned int*, unsigned int*) = nullptr;
  int (*gfx_clocks_)(Handle, unsigned int, unsigned int*, unsigned int*) = nullptr;
  int (*lock_)(Handle, unsigned int, unsigned int) = nullptr;
  int (*reset_)(Handle) = nullptr;
  int count_cache_ = -1;
};

}  // namespace gearshift::clock
