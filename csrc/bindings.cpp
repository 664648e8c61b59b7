// The only translation unit that includes pybind11: argument checks and error translation live
// here; everything below is plain C++ tested on CPU with fake back ends.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "common/dynlib.h"

namespace py = pybind11;

#ifndef GEARSHIFT_VERSION
#define GEARSHIFT_VERSION "dev"
#endif

namespace {

py::dict library_status_dict(gearshift::DynLib& lib) {
  auto s = lib.status();
  py::dict d;
  d["name"] = s.name;
  d["loaded"] = s.loaded;
  d["path"] = s.path;
  d["error"] = s.error;
  d["tried"] = s.tried;
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "gearshift native runtime (private; import through gearshift._native)";

  m.def("build_info", [] {
    py::dict d;
    d["version"] = GEARSHIFT_VERSION;
    d["compiler"] = __VERSION__;
    d["cxx_standard"] = static_cast<long>(__cplusplus);
    d["links_cuda"] = false;
    return d;
  });

  m.def("library_status", [](const std::string& name) {
    if (name == "cuda") return library_status_dict(gearshift::cuda_library());
    if (name == "nvml") return library_status_dict(gearshift::nvml_library());
    if (name == "cupti") return library_status_dict(gearshift::cupti_library());
    throw py::value_error("unknown library '" + name + "': expected one of cuda, nvml, cupti");
  }, py::arg("name"), "Open (once) and report one NVIDIA library: loaded, path, error, tried.");

  m.def("library_is_mapped", &gearshift::library_is_mapped, py::arg("soname_prefix"),
        "True when a shared object whose file name starts with the prefix is mapped already.");
}
