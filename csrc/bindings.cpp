// The only translation unit that includes pybind11: argument checks and error translation live
// here; everything below is plain C++ tested on CPU with fake back ends.
//
// Sections (one per area; add yours as a new delimited section):
//   [loader]  library status
//   [errors]  gearshift::Error -> gearshift.errors classes
//   [clock]   clock backends
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "clock/backend.h"
#include "clock/dry_run.h"
#include "common/dynlib.h"
#include "common/errors.h"

namespace py = pybind11;

#ifndef GEARSHIFT_VERSION
#define GEARSHIFT_VERSION "dev"
#endif

namespace {

// ===================================== [loader] =====================================
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

void bind_loader(py::module_& m) {
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

// ===================================== [errors] =====================================
const char* python_error_class(gearshift::ErrorKind k) {
  using gearshift::ErrorKind;
  switch (k) {
    case ErrorKind::unsupported_clock: return "UnsupportedClockError";
    case ErrorKind::no_permission: return "ClockPermissionError";
    case ErrorKind::device: return "DeviceError";
    case ErrorKind::library_unavailable: return "NativeUnavailableError";
    case ErrorKind::schedule: return "ScheduleMismatchError";
    case ErrorKind::config: return "ConfigError";
  }
  return "GearshiftError";
}

void bind_errors(py::module_&) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const gearshift::Error& e) {
      py::object cls = py::module_::import("gearshift.errors").attr(python_error_class(e.kind()));
      py::object fix = e.fix().empty() ? py::object(py::none()) : py::object(py::str(e.fix()));
      py::object exc = cls(py::str(e.what()), fix);
      PyErr_SetObject(cls.ptr(), exc.ptr());
    }
  });
}

// ===================================== [clock] ======================================
py::list clock_events(const std::vector<gearshift::clock::ClockEvent>& evs) {
  py::list out;
  for (const auto& e : evs) {
    py::dict d;
    d["t_ns"] = e.t_ns;
    d["gpu"] = e.gpu;
    d["freq_mhz"] = e.mhz;
    d["reset"] = e.reset;
    out.append(d);
  }
  return out;
}

void bind_clock(py::module_& m) {
  using namespace gearshift::clock;
  // GIL released around backend calls: an NVML or daemon call can take milliseconds.
  py::class_<ClockBackend, std::shared_ptr<ClockBackend>>(m, "ClockBackend")
      .def_property_readonly("name", &ClockBackend::name)
      .def("device_count", &ClockBackend::device_count, py::call_guard<py::gil_scoped_release>())
      .def("supported_sm_mhz", &ClockBackend::supported_sm_mhz, py::arg("gpu"),
           py::call_guard<py::gil_scoped_release>())
      .def("lock_sm_mhz", &ClockBackend::lock_sm_mhz, py::arg("gpu"), py::arg("freq_mhz"),
           py::call_guard<py::gil_scoped_release>())
      .def("reset", &ClockBackend::reset, py::arg("gpu"), py::call_guard<py::gil_scoped_release>());

  py::class_<DryRunBackend, ClockBackend, std::shared_ptr<DryRunBackend>>(m, "DryRunBackend")
      .def(py::init([](int device_count, std::vector<int> supported_mhz, size_t capacity) {
             if (capacity == 0) throw py::value_error("capacity must be >= 1");
             return std::make_shared<DryRunBackend>(device_count, std::move(supported_mhz), capacity);
           }),
           py::arg("device_count") = 1, py::arg("supported_mhz") = std::vector<int>{},
           py::arg("capacity") = 65536)
      .def("events", [](const DryRunBackend& b) { return clock_events(b.events()); },
           "Would-be switches, oldest first: dicts t_ns (steady_clock), gpu, freq_mhz, reset.")
      .def_property_readonly("dropped", &DryRunBackend::dropped)
      .def("clear", &DryRunBackend::clear);

  m.def("steady_now_ns", &steady_now_ns, "steady_clock now in ns (the native logs' time base).");
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "gearshift native runtime (private; import through gearshift._native)";
  bind_loader(m);
  bind_errors(m);
  bind_clock(m);
}
