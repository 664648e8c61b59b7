#pragma once
// Typed errors of the native runtime. Each carries the problem and the fix; bindings.cpp maps
// the kind onto the matching gearshift.errors class, so Python sees one hierarchy.
#include <stdexcept>
#include <string>

namespace gearshift {

enum class ErrorKind {
  unsupported_clock,    // -> UnsupportedClockError
  no_permission,        // -> ClockPermissionError
  device,               // -> DeviceError (bad GPU index, driver failure, not supported)
  library_unavailable,  // -> NativeUnavailableError (libnvidia-ml / libcuda / libcupti missing)
  schedule,             // -> FormatError-like: a boundary table that makes no sense
  config,               // -> ConfigError
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& problem, std::string fix = {})
      : std::runtime_error(problem), kind_(kind), fix_(std::move(fix)) {}
  ErrorKind kind() const noexcept { return kind_; }
  const std::string& fix() const noexcept { return fix_; }

 private:
  ErrorKind kind_;
  std::string fix_;
};

}  // namespace gearshift
