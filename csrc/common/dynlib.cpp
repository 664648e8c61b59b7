#include "common/dynlib.h"

#include <dlfcn.h>

#include <cstdlib>
#include <fstream>
#include <mutex>

namespace gearshift {

namespace {
std::mutex g_load_mutex;

std::vector<std::string> with_override(const char* env, std::vector<std::string> names) {
  if (const char* p = std::getenv(env); p != nullptr && *p != '\0') {
    names.insert(names.begin(), p);
  }
  return names;
}
}  // namespace

DynLib::DynLib(std::string name, std::vector<std::string> candidates)
    : name_(std::move(name)), candidates_(std::move(candidates)) {
  status_.name = name_;
}

DynLib::~DynLib() {
  // Deliberately not dlclose'd: driver libraries register atexit handlers and thread-local
  // state that must outlive any static destructor order we could choose.
}

bool DynLib::load() {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  if (attempted_) return handle_ != nullptr;
  attempted_ = true;
  for (const auto& cand : candidates_) {
    status_.tried.push_back(cand);
    dlerror();
    void* h = dlopen(cand.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h != nullptr) {
      handle_ = h;
      status_.loaded = true;
      status_.path = cand;
      status_.error.clear();
      return true;
    }
    const char* err = dlerror();
    status_.error = err ? err : "unknown dlopen error";
  }
  return false;
}

void* DynLib::symbol(const char* sym) const {
  if (handle_ == nullptr) return nullptr;
  return dlsym(handle_, sym);
}

LibraryStatus DynLib::status() {
  load();
  std::lock_guard<std::mutex> lock(g_load_mutex);
  return status_;
}

DynLib& cuda_library() {
  static DynLib lib("cuda", with_override("GEARSHIFT_CUDA_LIBRARY", {"libcuda.so.1", "libcuda.so"}));
  return lib;
}

DynLib& nvml_library() {
  static DynLib lib("nvml", with_override("GEARSHIFT_NVML_LIBRARY",
                                          {"libnvidia-ml.so.1", "libnvidia-ml.so"}));
  return lib;
}

DynLib& cupti_library() {
  // CUDA 13's CUPTI first, then 12's; the unversioned name last (a toolkit's dev symlink).
  static DynLib lib("cupti", with_override("GEARSHIFT_CUPTI_LIBRARY",
                                           {"libcupti.so.13", "libcupti.so.12", "libcupti.so"}));
  return lib;
}

bool library_is_mapped(const std::string& soname_prefix) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    auto slash = line.rfind('/');
    if (slash == std::string::npos) continue;
    if (line.compare(slash + 1, soname_prefix.size(), soname_prefix) == 0) return true;
  }
  return false;
}

}  // namespace gearshift
