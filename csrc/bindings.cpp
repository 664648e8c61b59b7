// The only translation unit that includes pybind11: argument checks and error translation live
// here; everything below is plain C++ tested on CPU with fake back ends.
//
// Sections (one per area; add yours as a new delimited section):
//   [loader]  library status
//   [errors]  gearshift::Error -> gearshift.errors classes
//   [clock]   clock backends
//   daemon    (the block at the end of PYBIND11_MODULE)
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>

#include "clock/backend.h"
#include "clock/dry_run.h"
#include "common/dynlib.h"
#include "common/errors.h"
#include "daemon/client.h"
#include "daemon/daemon_backend.h"
#include "daemon/server.h"

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
  // ---- daemon ----
  // The clock daemon (server loop, client, benchmark loops). Errors carry (problem, fix, code)
  // as the Python exception's args; gearshift.daemon turns them into GearshiftError classes.
  {
    namespace gd = gearshift::daemon;
    static py::handle daemon_error =
        py::exception<gd::DaemonError>(m, "DaemonError", PyExc_RuntimeError).release();
    py::register_exception_translator([](std::exception_ptr p) {
      try {
        if (p) std::rethrow_exception(p);
      } catch (const gd::DaemonError& e) {
        PyErr_SetObject(daemon_error.ptr(),
                        py::make_tuple(std::string(e.what()), e.fix(), e.code()).ptr());
      }
    });
    auto gpu_dicts = [](const std::vector<gd::GpuSnapshot>& snaps) {
      py::list out;
      for (const auto& s : snaps) {
        py::dict d;
        d["index"] = s.index;
        d["locked_mhz"] = s.held ? py::object(py::int_(s.locked_mhz)) : py::object(py::none());
        d["holder_uid"] = s.held ? py::object(py::int_(s.holder_uid)) : py::object(py::none());
        d["holder_pid"] = s.held ? py::object(py::int_(s.holder_pid)) : py::object(py::none());
        d["switches"] = s.switches;
        d["resets"] = s.resets;
        out.append(d);
      }
      return out;
    };

    py::class_<gd::Server, std::shared_ptr<gd::Server>>(m, "DaemonServer")
        .def(py::init([](const std::string& socket_path, gearshift::clock::BackendPtr backend,
                         std::vector<uint32_t> allow_uids, std::vector<uint32_t> allow_gids,
                         double lease_s, int log_fd, int max_clients, std::string label) {
               if (!backend) throw py::value_error("backend must be a ClockBackend");
               gd::ServerConfig cfg;
               cfg.socket_path = socket_path;
               cfg.allow_uids = std::move(allow_uids);
               cfg.allow_gids = std::move(allow_gids);
               cfg.lease_s = lease_s;
               cfg.log_fd = log_fd;
               cfg.max_clients = max_clients;
               cfg.backend_label = std::move(label);
               return std::make_shared<gd::Server>(std::move(cfg), std::move(backend));
             }),
             py::arg("socket_path"), py::arg("backend"), py::arg("allow_uids"),
             py::arg("allow_gids"), py::arg("lease_s"), py::arg("log_fd") = 2,
             py::arg("max_clients") = 128, py::arg("backend_label") = std::string())
        .def("open", &gd::Server::open, py::call_guard<py::gil_scoped_release>(),
             "Create the socket (taking over a stale one safely).")
        .def("serve", &gd::Server::serve, py::call_guard<py::gil_scoped_release>(),
             "Serve until stop() or SIGTERM/SIGINT; resets touched GPUs; returns the signal.")
        .def("stop", &gd::Server::stop)
        .def("snapshot", [gpu_dicts](const gd::Server& s) { return gpu_dicts(s.snapshot()); })
        .def_property_readonly("socket_description", &gd::Server::socket_mode_description);

    py::class_<gd::Client, std::shared_ptr<gd::Client>>(m, "DaemonClient")
        .def(py::init<const std::string&, double>(), py::arg("socket_path"),
             py::arg("timeout_s") = 5.0, py::call_guard<py::gil_scoped_release>())
        .def("lock", &gd::Client::lock, py::arg("gpu"), py::arg("mhz"),
             py::call_guard<py::gil_scoped_release>())
        .def("reset", &gd::Client::reset, py::arg("gpu"),
             py::call_guard<py::gil_scoped_release>())
        .def("heartbeat", &gd::Client::heartbeat, py::call_guard<py::gil_scoped_release>())
        .def("status", [](gd::Client& c) {
          std::vector<gd::GpuStatus> st;
          {
            py::gil_scoped_release nogil;
            st = c.status();
          }
          py::list out;
          for (const auto& s : st) {
            py::dict d;
            d["index"] = s.index;
            d["locked_mhz"] = s.held ? py::object(py::int_(s.locked_mhz)) : py::object(py::none());
            d["holder_uid"] = s.held ? py::object(py::int_(s.holder_uid)) : py::object(py::none());
            d["holder_pid"] = s.held ? py::object(py::int_(s.holder_pid)) : py::object(py::none());
            out.append(d);
          }
          return out;
        })
        .def("clocks", &gd::Client::clocks, py::arg("gpu"),
             py::call_guard<py::gil_scoped_release>())
        .def("start_heartbeat", &gd::Client::start_heartbeat)
        .def("close", &gd::Client::close, py::call_guard<py::gil_scoped_release>())
        .def_property_readonly("gpu_count", &gd::Client::gpu_count)
        .def_property_readonly("lease_s", [](const gd::Client& c) { return c.lease_ms() / 1e3; })
        .def_property_readonly("daemon_pid", &gd::Client::daemon_pid)
        .def_property_readonly("backend", &gd::Client::backend);

    // Timing loops in C++ so that neither path pays Python's per-call overhead.
    m.def("daemon_time_client_locks", [](gd::Client& c, uint32_t gpu,
                                         const std::vector<uint32_t>& mhz, int n) {
      std::vector<double> ns(static_cast<size_t>(n));
      py::gil_scoped_release nogil;
      for (int i = 0; i < n; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        c.lock(gpu, mhz[static_cast<size_t>(i) % mhz.size()]);
        ns[size_t(i)] = double((std::chrono::steady_clock::now() - t0).count());
      }
      return ns;
    }, py::arg("client"), py::arg("gpu"), py::arg("mhz"), py::arg("n"));
    m.def("daemon_time_backend_locks", [](gearshift::clock::ClockBackend& b, int gpu,
                                          const std::vector<int>& mhz, int n) {
      std::vector<double> ns(static_cast<size_t>(n));
      py::gil_scoped_release nogil;
      for (int i = 0; i < n; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        b.lock_sm_mhz(gpu, mhz[static_cast<size_t>(i) % mhz.size()]);
        ns[size_t(i)] = double((std::chrono::steady_clock::now() - t0).count());
      }
      b.reset(gpu);
      return ns;
    }, py::arg("backend"), py::arg("gpu"), py::arg("mhz"), py::arg("n"));

    // The trainer's `daemon` clock backend: a ClockBackend like the others, for the runtime.
    py::class_<gd::DaemonClockBackend, gearshift::clock::ClockBackend,
               std::shared_ptr<gd::DaemonClockBackend>>(m, "DaemonClockBackend")
        .def(py::init<const std::string&, double>(), py::arg("socket_path"),
             py::arg("timeout_s") = 5.0, py::call_guard<py::gil_scoped_release>());
  }
  // ---- end daemon ----
}
