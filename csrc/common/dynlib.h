#pragma once
// Run-time loading of the NVIDIA libraries. Nothing from CUDA is linked at build time, so the
// extension builds and imports on machines without a GPU or toolkit; each library is opened on
// first use and reports why it could not be found.
#include <string>
#include <vector>

namespace gearshift {

struct LibraryStatus {
  std::string name;            // logical name: "cuda", "nvml", "cupti"
  bool loaded = false;
  std::string path;            // the soname that opened, when loaded
  std::string error;           // the last dlerror() when not loaded
  std::vector<std::string> tried;
};

class DynLib {
 public:
  DynLib(std::string name, std::vector<std::string> candidates);
  ~DynLib();
  DynLib(const DynLib&) = delete;
  DynLib& operator=(const DynLib&) = delete;

  // Opens the library on first call; later calls return the cached outcome.
  bool load();
  void* symbol(const char* sym) const;  // nullptr when not loaded or missing
  LibraryStatus status();

 private:
  std::string name_;
  std::vector<std::string> candidates_;
  void* handle_ = nullptr;
  bool attempted_ = false;
  LibraryStatus status_;
};

// Process-wide handles. GEARSHIFT_{CUDA,NVML,CUPTI}_LIBRARY override the search with a path.
DynLib& cuda_library();
DynLib& nvml_library();
DynLib& cupti_library();

// True when the library is mapped into this process already (without opening it).
bool library_is_mapped(const std::string& soname_prefix);

}  // namespace gearshift
