// The only translation unit that includes pybind11: argument checks and error translation live
// here; everything below is plain C++ tested on CPU with fake back ends.
//
// Sections (one per area; add yours as a new delimited section):
//   [loader]  library status
//   [errors]  gearshift::Error -> gearshift.errors classes
//   [clock]   clock backends
//   [runtime] launch hook, boundary table, controller, replay, safety, micro-benchmarks
//   [pipeline] the pipeline planner's DAG sweeps (numpy arrays in and out)
//   daemon    (the block at the end of PYBIND11_MODULE)
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <chrono>

#include "clock/backend.h"
#include "clock/dry_run.h"
#include "clock/nvml.h"
#include "clock/sim.h"
#include "runtime/bench.h"
#include "runtime/runtime.h"
#include "safety/signals.h"
#include "schedule/boundary_table.h"
#include "pipeline/sweeps.h"
#include "pipeline/tradeoff.h"
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

// Results cross the boundary as read-only classes (typed in _C.pyi), never as dicts read back by
// string key. `_fields` lists each class's fields in order, for to_dict() and __repr__.
template <class T>
py::class_<T> result_class(py::module_& m, const char* name, std::vector<const char*> fields,
                           const char* doc) {
  py::class_<T> c(m, name, doc);
  py::tuple names(fields.size());
  for (size_t i = 0; i < fields.size(); ++i) names[i] = py::str(fields[i]);
  c.attr("_fields") = names;
  c.def("to_dict", [](py::object self) {
    py::dict d;
    for (auto f : self.attr("_fields")) d[f] = self.attr(f);
    return d;
  }, "The fields as a plain dict (for JSON output).");
  c.def("__repr__", [name](py::object self) {
    std::string out = std::string(name) + "(";
    bool first = true;
    for (auto f : self.attr("_fields")) {
      if (!first) out += ", ";
      first = false;
      out += f.cast<std::string>() + "=" + py::repr(self.attr(f)).cast<std::string>();
    }
    return out + ")";
  });
  return c;
}

// ===================================== [loader] =====================================
struct BuildInfo {
  std::string version = GEARSHIFT_VERSION;
  std::string compiler = __VERSION__;
  long cxx_standard = static_cast<long>(__cplusplus);
  bool links_cuda = false;
};

void bind_loader(py::module_& m) {
  result_class<BuildInfo>(m, "BuildInfo", {"version", "compiler", "cxx_standard", "links_cuda"},
                          "How this extension was built.")
      .def_readonly("version", &BuildInfo::version)
      .def_readonly("compiler", &BuildInfo::compiler)
      .def_readonly("cxx_standard", &BuildInfo::cxx_standard)
      .def_readonly("links_cuda", &BuildInfo::links_cuda);
  m.def("build_info", [] { return BuildInfo{}; });

  using gearshift::LibraryStatus;
  result_class<LibraryStatus>(m, "LibraryStatus", {"name", "loaded", "path", "error", "tried"},
                              "One NVIDIA library as the native loader found it.")
      .def_readonly("name", &LibraryStatus::name)
      .def_readonly("loaded", &LibraryStatus::loaded)
      .def_readonly("path", &LibraryStatus::path)
      .def_readonly("error", &LibraryStatus::error)
      .def_readonly("tried", &LibraryStatus::tried);
  m.def("library_status", [](const std::string& name) {
    if (name == "cuda") return gearshift::cuda_library().status();
    if (name == "nvml") return gearshift::nvml_library().status();
    if (name == "cupti") return gearshift::cupti_library().status();
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
void bind_clock(py::module_& m) {
  using namespace gearshift::clock;
  result_class<ClockEvent>(m, "ClockEvent", {"t_ns", "gpu", "freq_mhz", "reset"},
                           "One clock change a dry-run or simulated backend logged.")
      .def_readonly("t_ns", &ClockEvent::t_ns)
      .def_readonly("gpu", &ClockEvent::gpu)
      .def_readonly("freq_mhz", &ClockEvent::mhz)
      .def_readonly("reset", &ClockEvent::reset);
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
      .def("events", &DryRunBackend::events,
           "Would-be switches, oldest first: t_ns (steady_clock), gpu, freq_mhz, reset.")
      .def_property_readonly("dropped", &DryRunBackend::dropped)
      .def("clear", &DryRunBackend::clear);

  m.def("steady_now_ns", &steady_now_ns, "steady_clock now in ns (the native logs' time base).");

  py::class_<SimBackend, ClockBackend, std::shared_ptr<SimBackend>>(m, "SimBackend")
      .def(py::init([](int device_count, std::vector<int> supported_mhz, int default_mhz,
                       int64_t switch_latency_ns, size_t capacity) {
             if (capacity == 0) throw py::value_error("capacity must be >= 1");
             if (switch_latency_ns < 0) throw py::value_error("switch_latency_ns must be >= 0");
             return std::make_shared<SimBackend>(device_count, std::move(supported_mhz), default_mhz,
                                                 std::make_shared<SimTimeBase>(), switch_latency_ns,
                                                 capacity);
           }),
           py::arg("device_count") = 1, py::arg("supported_mhz") = std::vector<int>{},
           py::arg("default_mhz") = 1980, py::arg("switch_latency_ns") = 0,
           py::arg("capacity") = 65536)
      .def("events", &SimBackend::events,
           "Clock changes, oldest first: t_ns is simulated device time at the call.")
      .def("current_mhz", &SimBackend::current_mhz, py::arg("gpu") = 0)
      .def_property_readonly("time_ns", [](const SimBackend& b) { return b.time_base()->now_ns(); })
      .def("advance_ns", [](SimBackend& b, int64_t d) { b.time_base()->advance(d); }, py::arg("ns"))
      .def_property_readonly("switch_latency_ns", &SimBackend::switch_latency_ns)
      .def_property_readonly("default_mhz", &SimBackend::default_mhz)
      .def("clear", &SimBackend::clear);

  py::class_<NvmlBackend, ClockBackend, std::shared_ptr<NvmlBackend>>(m, "NvmlBackend")
      .def(py::init([](const std::string& library) { return std::make_shared<NvmlBackend>(library); }),
           py::arg("library") = "",
           "libnvidia-ml from the driver (GEARSHIFT_NVML_LIBRARY overrides the search), or from "
           "the path `library` (the fake GPU's fake libnvidia-ml).");

  m.def("nvml_code_table", [] {
    py::list out;
    for (const auto& c : nvml_code_table()) out.append(py::make_tuple(c.code, c.name, python_error_class(c.kind)));
    return out;
  }, "NVML return code -> (code, name, gearshift.errors class) as the NVML backend maps it.");
}


// ===================================== [runtime] ====================================
gearshift::intercept::LaunchApi parse_api(const std::string& s) {
  using gearshift::intercept::LaunchApi;
  if (s == "runtime") return LaunchApi::runtime;
  if (s == "runtime_ex") return LaunchApi::runtime_ex;
  if (s == "runtime_internal") return LaunchApi::runtime_internal;
  if (s == "driver") return LaunchApi::driver;
  if (s == "driver_ex") return LaunchApi::driver_ex;
  if (s == "driver_ptsz") return LaunchApi::driver_ptsz;
  throw py::value_error("unknown launch api '" + s +
                        "': expected runtime, runtime_ex, runtime_internal, driver, driver_ex, driver_ptsz");
}

gearshift::intercept::Mode parse_mode(const std::string& s) {
  using gearshift::intercept::Mode;
  if (s == "off") return Mode::off;
  if (s == "record") return Mode::record;
  if (s == "apply") return Mode::apply;
  throw py::value_error("unknown hook mode '" + s + "': expected off, record, apply");
}

std::array<uint32_t, 3> dims3(const py::handle& h, const char* what) {
  if (h.is_none()) return {1, 1, 1};
  auto v = h.cast<std::vector<int64_t>>();
  if (v.size() != 3 || v[0] < 1 || v[1] < 1 || v[2] < 1) {
    throw py::value_error(std::string(what) + " must be three positive integers");
  }
  return {uint32_t(v[0]), uint32_t(v[1]), uint32_t(v[2])};
}

// What Runtime.subscribe() and Runtime.stats() report, gathered from several parts.
struct Subscription {
  bool active = false, busy = false;
  std::string error, port;
};

struct RuntimeStats {
  uint64_t launches = 0, runtime_counted = 0, driver_counted = 0, nested_skipped = 0,
           late_counted = 0;
  size_t records_dropped = 0;
  int64_t iteration = 0;
  uint64_t boundaries_posted = 0;
  size_t dropped_posts = 0, dropped_events = 0, clock_refusals = 0;
  uint64_t seen = 0, posted = 0;
};

struct LatencyResult {
  int superseded = 0;
  std::vector<double> signal_to_call_ns, detect_to_call_ns, call_ns;
};

py::tuple dims_tuple(const uint32_t d[3]) { return py::make_tuple(d[0], d[1], d[2]); }

void bind_results(py::module_& m) {
  using namespace gearshift;
  using signal::SwitchEvent;
  result_class<SwitchEvent>(m, "SwitchEvent",
                            {"seq", "partition", "ordinal", "iteration", "freq_mhz", "action",
                             "enqueue_ns", "signal_ns", "detect_ns", "call_ns", "done_ns",
                             "device_ns"},
                            "One boundary the controller acted on; times are steady-clock ns.")
      .def_readonly("seq", &SwitchEvent::seq)
      .def_readonly("partition", &SwitchEvent::partition)
      .def_readonly("ordinal", &SwitchEvent::ordinal)
      .def_readonly("iteration", &SwitchEvent::iteration)
      .def_readonly("freq_mhz", &SwitchEvent::freq_mhz)
      .def_property_readonly("action", [](const SwitchEvent& e) {
        return std::string(signal::action_name(e.action));
      })
      .def_readonly("enqueue_ns", &SwitchEvent::enqueue_ns)
      .def_readonly("signal_ns", &SwitchEvent::signal_ns)
      .def_readonly("detect_ns", &SwitchEvent::detect_ns)
      .def_readonly("call_ns", &SwitchEvent::call_ns)
      .def_readonly("done_ns", &SwitchEvent::done_ns)
      .def_readonly("device_ns", &SwitchEvent::device_ns);

  using intercept::LaunchRecord;
  result_class<LaunchRecord>(m, "LaunchRecord",
                             {"ordinal", "iteration", "name", "stream", "grid", "block",
                              "timestamp_ns"},
                             "One kernel launch the hook recorded.")
      .def_readonly("ordinal", &LaunchRecord::ordinal)
      .def_readonly("iteration", &LaunchRecord::iteration)
      .def_readonly("name", &LaunchRecord::name)
      .def_readonly("stream", &LaunchRecord::stream)
      .def_property_readonly("grid", [](const LaunchRecord& r) { return dims_tuple(r.grid); })
      .def_property_readonly("block", [](const LaunchRecord& r) { return dims_tuple(r.block); })
      .def_readonly("timestamp_ns", &LaunchRecord::timestamp_ns);

  result_class<Subscription>(m, "Subscription", {"active", "busy", "error", "port"},
                             "Whether the launch hook is subscribed to (fake) CUPTI, and why not.")
      .def_readonly("active", &Subscription::active)
      .def_readonly("busy", &Subscription::busy)
      .def_readonly("error", &Subscription::error)
      .def_readonly("port", &Subscription::port);

  result_class<RuntimeStats>(m, "RuntimeStats",
                             {"launches", "runtime_counted", "driver_counted", "nested_skipped",
                              "late_counted", "records_dropped", "iteration", "boundaries_posted",
                              "dropped_posts", "dropped_events", "clock_refusals", "seen",
                              "posted"},
                             "Counters of the hook and the controller.")
      .def_readonly("launches", &RuntimeStats::launches)
      .def_readonly("runtime_counted", &RuntimeStats::runtime_counted)
      .def_readonly("driver_counted", &RuntimeStats::driver_counted)
      .def_readonly("nested_skipped", &RuntimeStats::nested_skipped)
      .def_readonly("late_counted", &RuntimeStats::late_counted)
      .def_readonly("records_dropped", &RuntimeStats::records_dropped)
      .def_readonly("iteration", &RuntimeStats::iteration)
      .def_readonly("boundaries_posted", &RuntimeStats::boundaries_posted)
      .def_readonly("dropped_posts", &RuntimeStats::dropped_posts)
      .def_readonly("dropped_events", &RuntimeStats::dropped_events)
      .def_readonly("clock_refusals", &RuntimeStats::clock_refusals,
                    "Clock requests the backend refused (another holder, no permission).")
      .def_readonly("seen", &RuntimeStats::seen)
      .def_readonly("posted", &RuntimeStats::posted);

  using runtime::HookCost;
  result_class<HookCost>(m, "HookCost",
                         {"baseline_ns", "off_ns", "record_ns", "apply_ns", "apply_checked_ns",
                          "apply_no_boundary_ns", "launches"},
                         "Launch hook cost per launch in ns, by mode.")
      .def_readonly("baseline_ns", &HookCost::baseline_ns_per_launch)
      .def_readonly("off_ns", &HookCost::off_ns)
      .def_readonly("record_ns", &HookCost::record_ns)
      .def_readonly("apply_ns", &HookCost::apply_ns)
      .def_readonly("apply_checked_ns", &HookCost::apply_checked_ns)
      .def_readonly("apply_no_boundary_ns", &HookCost::apply_no_boundary_ns)
      .def_readonly("launches", &HookCost::launches);

  result_class<LatencyResult>(m, "LatencyResult",
                              {"superseded", "signal_to_call_ns", "detect_to_call_ns", "call_ns"},
                              "Boundary-to-clock-call latencies of the switched boundaries, ns.")
      .def_readonly("superseded", &LatencyResult::superseded)
      .def_readonly("signal_to_call_ns", &LatencyResult::signal_to_call_ns)
      .def_readonly("detect_to_call_ns", &LatencyResult::detect_to_call_ns)
      .def_readonly("call_ns", &LatencyResult::call_ns);
}

void bind_runtime(py::module_& m) {
  using namespace gearshift;
  using runtime::Runtime;
  bind_results(m);

  m.def("partition_hash", &schedule::partition_hash, py::arg("names"),
        "The signature the launch hook computes over one partition's kernel names.");
  m.def("signals_handled", &safety::signals_handled);

  py::class_<Runtime, std::shared_ptr<Runtime>>(m, "Runtime")
      .def(py::init([](clock::BackendPtr backend, int gpu, const std::string& signal_path,
                       const std::string& trigger, bool auto_wrap, bool handle_signals,
                       size_t record_capacity, double spin_us, double sleep_poll_us) {
             if (spin_us < 0 || sleep_poll_us < 0) throw py::value_error("spin_us and sleep_poll_us must be >= 0");
             if (!backend) throw py::value_error("backend is required");
             if (trigger != "write" && trigger != "host_func") {
               throw py::value_error("trigger must be 'write' or 'host_func'");
             }
             if (record_capacity == 0) throw py::value_error("record_capacity must be >= 1");
             runtime::RuntimeOptions o;
             o.gpu = gpu;
             o.signal_path = signal_path;
             o.trigger = trigger == "write" ? signal::Trigger::write : signal::Trigger::host_func;
             o.auto_wrap = auto_wrap;
             o.handle_signals = handle_signals;
             o.record_capacity = record_capacity;
             o.spin_ns = static_cast<int64_t>(spin_us * 1e3);
             o.sleep_poll_ns = static_cast<int64_t>(sleep_poll_us * 1e3);
             return std::make_shared<Runtime>(std::move(backend), o);
           }),
           py::arg("backend"), py::arg("gpu") = 0, py::arg("signal_path") = "fake-lockstep",
           py::arg("trigger") = "write", py::arg("auto_wrap") = true,
           py::arg("handle_signals") = true, py::arg("record_capacity") = size_t(1) << 18,
           py::arg("spin_us") = 200.0, py::arg("sleep_poll_us") = 10.0)
      .def("start", &Runtime::start)
      .def("stop", &Runtime::stop, py::call_guard<py::gil_scoped_release>(),
           "Hook off, unsubscribe, reset the clock, disarm the watchdog (idempotent).")
      .def("install", [](Runtime& rt, const std::vector<int>& starts, const std::vector<int>& freqs_mhz,
                         const std::vector<uint64_t>& hashes, int num_kernels) {
             if (starts.size() != freqs_mhz.size() || (!hashes.empty() && hashes.size() != starts.size())) {
               throw py::value_error("starts, freqs_mhz (and hashes, when given) must have one entry per partition");
             }
             std::vector<schedule::PartitionSpec> parts;
             for (size_t i = 0; i < starts.size(); ++i) {
               parts.push_back({starts[i], freqs_mhz[i], hashes.empty() ? 0 : hashes[i]});
             }
             rt.install(std::move(parts), num_kernels);
           },
           py::arg("starts"), py::arg("freqs_mhz"), py::arg("hashes"), py::arg("num_kernels"))
      .def("set_mode", [](Runtime& rt, const std::string& mode) { rt.set_mode(parse_mode(mode)); },
           py::arg("mode"))
      .def_property_readonly("mode", [](Runtime& rt) {
        static const char* names[] = {"off", "record", "apply"};
        return std::string(names[static_cast<int>(rt.hook().mode())]);
      })
      .def("begin_iteration", &Runtime::begin_iteration)
      .def("mark", &Runtime::mark, py::arg("partition"), py::arg("stream") = 0)
      .def("subscribe", [](Runtime& rt) {
        auto& s = rt.subscribe();
        return Subscription{s.active, s.busy, s.error, s.port ? s.port->name() : std::string()};
      })
      .def("unsubscribe", &Runtime::unsubscribe)
      .def("set_fake_cupti_busy", [](Runtime& rt, bool busy) {
        if (!rt.fake_cupti()) throw py::value_error("only the fake signal paths have a fake CUPTI");
        rt.fake_cupti()->set_busy(busy);
      }, py::arg("busy"))
      .def("set_fake_nested_driver", [](Runtime& rt, bool nested) {
        if (!rt.fake_cupti()) throw py::value_error("only the fake signal paths have a fake CUPTI");
        rt.fake_cupti()->set_nested_driver(nested);
      }, py::arg("nested"))
      .def("fake_kernel", [](Runtime& rt, int64_t duration_ns) {
        if (!rt.fake_gpu()) throw py::value_error("only the fake signal paths have a fake device");
        rt.fake_gpu()->launch_kernel(0, duration_ns);
      }, py::arg("duration_ns"), "Queue a kernel on the fake device without any callback (marker tests).")
      .def("run_fake_device", [](Runtime& rt) {
        if (!rt.fake_gpu()) throw py::value_error("only the fake signal paths have a fake device");
        py::gil_scoped_release nogil;
        if (rt.options().signal_path == "fake-lockstep") rt.fake_gpu()->run_until_idle();
        else rt.fake_gpu()->wait_idle();
      })
      .def("replay", [](Runtime& rt, const py::list& kernels, int iterations, bool explicit_iterations) {
             if (iterations < 1) throw py::value_error("iterations must be >= 1");
             std::vector<runtime::ReplayKernel> ks;
             ks.reserve(kernels.size());
             for (const auto& item : kernels) {
               auto t = item.cast<py::tuple>();
               if (t.size() != 6) {
                 throw py::value_error("each kernel is (name, stream, grid, block, duration_ns, api)");
               }
               runtime::ReplayKernel k;
               k.name = t[0].cast<std::string>();
               k.stream = t[1].cast<uint64_t>();
               auto g = dims3(t[2], "grid");
               auto b = dims3(t[3], "block");
               std::copy(g.begin(), g.end(), k.grid);
               std::copy(b.begin(), b.end(), k.block);
               k.duration_ns = t[4].cast<int64_t>();
               if (k.duration_ns < 0) throw py::value_error("duration_ns must be >= 0");
               k.api = parse_api(t[5].cast<std::string>());
               ks.push_back(std::move(k));
             }
             py::gil_scoped_release nogil;
             rt.replay(ks, iterations, explicit_iterations);
           },
           py::arg("kernels"), py::arg("iterations") = 1, py::arg("explicit_iterations") = false)
      .def("records", [](Runtime& rt, int64_t iteration) {
        std::vector<intercept::LaunchRecord> out;
        for (auto& r : rt.hook().records().snapshot()) {
          if (iteration >= 0 && r.iteration != iteration) continue;
          out.push_back(std::move(r));
        }
        return out;
      }, py::arg("iteration") = -1,
         "Record-mode launches (ordinal, name, stream, grid, block, timestamp_ns); iteration=-1: all.")
      .def("stats", [](Runtime& rt) {
        auto h = rt.hook().stats();
        RuntimeStats d;
        d.launches = h.launches;
        d.runtime_counted = h.runtime_counted;
        d.driver_counted = h.driver_counted;
        d.nested_skipped = h.nested_skipped;
        d.late_counted = h.late_counted;
        d.records_dropped = rt.hook().records().dropped();
        d.iteration = rt.hook().iteration();
        d.boundaries_posted = rt.applier() ? rt.applier()->boundaries_posted() : 0;
        d.dropped_posts = rt.controller().dropped_posts();
        d.dropped_events = rt.controller().dropped_events();
        d.clock_refusals = rt.controller().refusals();
        d.seen = rt.controller().seen();
        d.posted = rt.controller().posted();
        return d;
      })
      .def("switch_events", [](Runtime& rt) { return rt.controller().events(); })
      .def("clear_events", [](Runtime& rt) { rt.controller().clear_events(); })
      .def_property_readonly("mismatch_reason", [](Runtime& rt) -> py::object {
        if (!rt.applier() || !rt.applier()->disabled()) return py::none();
        return py::str(rt.applier()->mismatch_reason());
      })
      .def_property_readonly("disabled", [](Runtime& rt) { return rt.controller().disabled(); })
      .def_property_readonly("current_mhz", [](Runtime& rt) { return rt.controller().current_mhz(); })
      .def_property_readonly("last_error", [](Runtime& rt) { return rt.controller().last_error(); })
      .def_property_readonly("signal_unavailable_reason", &Runtime::signal_unavailable_reason)
      .def_property_readonly("backend", &Runtime::backend)
      .def("reset_clock", [](Runtime& rt) { rt.controller().reset_now(); },
           py::call_guard<py::gil_scoped_release>())
      .def("arm_watchdog", [](Runtime& rt, const std::string& exe, const std::string& backend,
                              std::vector<int> gpus, const std::string& log_path) {
             safety::WatchdogSpec spec{exe, backend, std::move(gpus), log_path};
             rt.arm_watchdog(spec);
           },
           py::arg("exe"), py::arg("backend"), py::arg("gpus"), py::arg("log_path") = "")
      .def_property_readonly("watchdog_pid", &Runtime::watchdog_pid);

  m.def("bench_hook_cost", [](int launches, int partition_len, int repeats) {
    if (launches < 1 || partition_len < 1 || repeats < 1) throw py::value_error("arguments must be >= 1");
    py::gil_scoped_release nogil;
    return runtime::bench_hook_cost(launches, partition_len, repeats);
  }, py::arg("launches") = 200000, py::arg("partition_len") = 64, py::arg("repeats") = 5);

  m.def("bench_boundary_latency", [](clock::BackendPtr backend, const std::string& trigger,
                                     int partitions, int kernels_per, int64_t kernel_ns,
                                     int64_t spin_ns, int64_t sleep_poll_ns) {
    if (trigger != "write" && trigger != "host_func") throw py::value_error("trigger must be write or host_func");
    runtime::LatencyRun s;
    {
      py::gil_scoped_release nogil;
      s = runtime::bench_boundary_latency(std::move(backend), trigger, partitions, kernels_per, kernel_ns,
                                          spin_ns, sleep_poll_ns);
    }
    LatencyResult d;
    d.superseded = s.superseded;
    for (auto& x : s.samples) {
      d.signal_to_call_ns.push_back(x.signal_to_call_ns);
      d.detect_to_call_ns.push_back(x.detect_to_call_ns);
      d.call_ns.push_back(x.call_ns);
    }
    return d;
  }, py::arg("backend"), py::arg("trigger") = "write", py::arg("partitions") = 400,
     py::arg("kernels_per") = 4, py::arg("kernel_ns") = 20000, py::arg("spin_ns") = 200000,
     py::arg("sleep_poll_ns") = 10000);

  m.def("bench_backend_calls", [](clock::BackendPtr backend, std::vector<int> mhz, int n) {
    if (mhz.empty() || n < 1) throw py::value_error("need clocks and n >= 1");
    py::gil_scoped_release nogil;
    return runtime::bench_backend_calls(std::move(backend), mhz, n);
  }, py::arg("backend"), py::arg("mhz"), py::arg("n") = 10000);
}

// ===================================== [pipeline] =====================================
// Arrays cross as numpy arrays (converted to contiguous int64 / float64 when they are not);
// lengths are checked here, the DAG's shape in gearshift::pipeline.
using I64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using F64Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

template <class T, class A>
std::vector<T> to_vector(const A& a) {
  return std::vector<T>(a.data(), a.data() + a.size());
}

void check_len(const char* what, py::ssize_t got, int64_t want) {
  if (got != want)
    throw gearshift::Error(gearshift::ErrorKind::config,
                           std::string(what) + " has " + std::to_string(got) + " entries, not one per "
                           "computation (" + std::to_string(want) + ")",
                           "pass one value per computation, in the graph's topological order");
}

void bind_pipeline(py::module_& m) {
  namespace gp = gearshift::pipeline;
  py::class_<gp::Dag>(m, "PipelineDag",
                      "A pipeline's dependency DAG in topological order (prev, cross: -1 for none).")
      .def(py::init([](const I64Array& prev, const I64Array& cross,
                       const py::array_t<bool, py::array::c_style | py::array::forcecast>& p2p) {
             std::vector<uint8_t> flags(p2p.data(), p2p.data() + p2p.size());
             return gp::Dag(to_vector<int64_t>(prev), to_vector<int64_t>(cross), std::move(flags));
           }),
           py::arg("prev"), py::arg("cross"), py::arg("p2p"))
      .def_property_readonly("num_ops", &gp::Dag::num_ops)
      .def("schedule", [](const gp::Dag& g, const F64Array& dur, double p2p_s) {
             check_len("dur", dur.size(), g.num_ops());
             F64Array start(g.num_ops()), end(g.num_ops());
             g.schedule(dur.data(), p2p_s, start.mutable_data(), end.mutable_data());
             return py::make_tuple(start, end);
           },
           py::arg("dur"), py::arg("p2p_s") = 0.0,
           "(start, end) of every computation for these durations.")
      .def("earliest_finish", [](const gp::Dag& g, const F64Array& dur) {
             check_len("dur", dur.size(), g.num_ops());
             F64Array ef(g.num_ops());
             g.earliest_finish(dur.data(), ef.mutable_data());
             return ef;
           },
           py::arg("dur"))
      .def("latest_start", [](const gp::Dag& g, const F64Array& dur, double limit) {
             check_len("dur", dur.size(), g.num_ops());
             F64Array ls(g.num_ops());
             g.latest_start(dur.data(), limit, ls.mutable_data());
             return ls;
           },
           py::arg("dur"), py::arg("limit"));

  py::class_<gp::Sweeps>(m, "PipelineSweeps",
                         "The planner's sweeps over one problem's DAG and clock-option tables.")
      .def(py::init([](const gp::Dag& dag, const I64Array& op_table, const I64Array& option_start,
                       const F64Array& option_time_s, const F64Array& option_cost_j,
                       const I64Array& hull_start, const I64Array& hull_option) {
             return gp::Sweeps(dag, to_vector<int64_t>(op_table), to_vector<int64_t>(option_start),
                               to_vector<double>(option_time_s), to_vector<double>(option_cost_j),
                               to_vector<int64_t>(hull_start), to_vector<int64_t>(hull_option));
           }),
           py::arg("dag"), py::arg("op_table"), py::arg("option_start"), py::arg("option_time_s"),
           py::arg("option_cost_j"), py::arg("hull_start"), py::arg("hull_option"))
      .def_property_readonly("num_ops", &gp::Sweeps::num_ops)
      .def("crash", [](const gp::Sweeps& sw, const I64Array& choice, double deadline_s,
                       int64_t max_steps) -> py::object {
             check_len("choice", choice.size(), sw.num_ops());
             I64Array out(sw.num_ops());
             std::copy(choice.data(), choice.data() + choice.size(), out.mutable_data());
             bool ok;
             int64_t* p = out.mutable_data();
             {
               py::gil_scoped_release nogil;
               ok = sw.crash(p, deadline_s, max_steps);
             }
             return ok ? py::object(out) : py::object(py::none());
           },
           py::arg("choice"), py::arg("deadline_s"), py::arg("max_steps") = -1,
           "The crashed choice, or None when it cannot finish by the deadline.")
      .def("fill_slack", [](const gp::Sweeps& sw, const I64Array& choice, double deadline_s,
                            int max_passes) {
             check_len("choice", choice.size(), sw.num_ops());
             I64Array out(sw.num_ops());
             std::copy(choice.data(), choice.data() + choice.size(), out.mutable_data());
             int64_t* p = out.mutable_data();
             {
               py::gil_scoped_release nogil;
               sw.fill_slack(p, deadline_s, max_passes);
             }
             return out;
           },
           py::arg("choice"), py::arg("deadline_s"), py::arg("max_passes") = 8)
      .def("round_down", [](const gp::Sweeps& sw, const F64Array& durations) {
             check_len("durations", durations.size(), sw.num_ops());
             I64Array out(sw.num_ops());
             sw.round_down(durations.data(), out.mutable_data());
             return out;
           },
           py::arg("durations"))
      .def("round_diffuse", [](const gp::Sweeps& sw, const F64Array& durations, double deadline_s) {
             check_len("durations", durations.size(), sw.num_ops());
             I64Array out(sw.num_ops());
             sw.round_diffuse(durations.data(), deadline_s, out.mutable_data());
             return out;
           },
           py::arg("durations"), py::arg("deadline_s"));

  py::class_<gp::TradeoffLp>(m, "PipelineRelaxation",
                             "The planner's relaxation at an iteration time, by network simplex.")
      .def(py::init<const gp::Sweeps&, double>(), py::arg("sweeps"), py::arg("blocking_ps_w"))
      .def_property_readonly("num_ops", &gp::TradeoffLp::num_ops)
      .def_property_readonly("pivots", &gp::TradeoffLp::pivots)
      .def("solve", [](gp::TradeoffLp& lp, double deadline_s) -> py::object {
             F64Array dur(lp.num_ops());
             double* p = dur.mutable_data();
             double bound = 0.0;
             bool ok;
             {
               py::gil_scoped_release nogil;
               ok = lp.solve(deadline_s, p, &bound);
             }
             return ok ? py::object(py::make_tuple(dur, bound)) : py::object(py::none());
           },
           py::arg("deadline_s"),
           "(relaxed durations, relaxed optimum) at T, or None when no plan finishes by T.");
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "gearshift native runtime (private; import through gearshift._native)";
  bind_loader(m);
  bind_errors(m);
  bind_clock(m);
  bind_runtime(m);
  bind_pipeline(m);
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
    // locked_mhz, holder_uid and holder_pid are None while no client holds the GPU.
    auto held_only = [](bool held, uint32_t v) {
      return held ? py::object(py::int_(v)) : py::object(py::none());
    };
    result_class<gd::GpuSnapshot>(m, "GpuSnapshot",
                                  {"index", "locked_mhz", "holder_uid", "holder_pid", "switches",
                                   "resets"},
                                  "One GPU as the daemon holds it, with its counters.")
        .def_readonly("index", &gd::GpuSnapshot::index)
        .def_property_readonly("locked_mhz", [held_only](const gd::GpuSnapshot& g) {
          return held_only(g.held, g.locked_mhz);
        })
        .def_property_readonly("holder_uid", [held_only](const gd::GpuSnapshot& g) {
          return held_only(g.held, g.holder_uid);
        })
        .def_property_readonly("holder_pid", [held_only](const gd::GpuSnapshot& g) {
          return held_only(g.held, g.holder_pid);
        })
        .def_readonly("switches", &gd::GpuSnapshot::switches)
        .def_readonly("resets", &gd::GpuSnapshot::resets);
    result_class<gd::GpuStatus>(m, "GpuStatus", {"index", "locked_mhz", "holder_uid", "holder_pid"},
                                "One GPU as a client sees it in the daemon's status reply.")
        .def_readonly("index", &gd::GpuStatus::index)
        .def_property_readonly("locked_mhz", [held_only](const gd::GpuStatus& g) {
          return held_only(g.held, g.locked_mhz);
        })
        .def_property_readonly("holder_uid", [held_only](const gd::GpuStatus& g) {
          return held_only(g.held, g.holder_uid);
        })
        .def_property_readonly("holder_pid", [held_only](const gd::GpuStatus& g) {
          return held_only(g.held, g.holder_pid);
        });

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
        .def("snapshot", &gd::Server::snapshot)
        .def_property_readonly("socket_description", &gd::Server::socket_mode_description);

    py::class_<gd::Client, std::shared_ptr<gd::Client>>(m, "DaemonClient")
        .def(py::init<const std::string&, double>(), py::arg("socket_path"),
             py::arg("timeout_s") = 5.0, py::call_guard<py::gil_scoped_release>())
        .def("lock", &gd::Client::lock, py::arg("gpu"), py::arg("mhz"),
             py::call_guard<py::gil_scoped_release>())
        .def("reset", &gd::Client::reset, py::arg("gpu"),
             py::call_guard<py::gil_scoped_release>())
        .def("heartbeat", &gd::Client::heartbeat, py::call_guard<py::gil_scoped_release>())
        .def("status", &gd::Client::status, py::call_guard<py::gil_scoped_release>())
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
