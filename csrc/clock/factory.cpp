#include "clock/factory.h"

#include "clock/dry_run.h"
#include "clock/nvml.h"
#include "clock/sim.h"

namespace gearshift::clock {

BackendPtr make_backend(const BackendSpec& spec) {
  if (spec.kind == "nvml") return std::make_shared<NvmlBackend>();
  if (spec.kind == "dry-run") return std::make_shared<DryRunBackend>(spec.device_count, spec.supported_mhz);
  if (spec.kind == "sim") {
    return std::make_shared<SimBackend>(spec.device_count, spec.supported_mhz, spec.default_mhz,
                                        nullptr, spec.switch_latency_ns);
  }
  throw Error(ErrorKind::config, "unknown clock backend '" + spec.kind + "'",
              "use one of nvml, dry-run, sim");
}

}  // namespace gearshift::clock
