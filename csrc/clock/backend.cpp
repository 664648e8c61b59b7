#include "clock/backend.h"

#include <algorithm>
#include <chrono>

namespace gearshift::clock {

void check_gpu_index(const std::string& backend, int gpu, int count) {
  if (gpu < 0 || gpu >= count) {
    throw Error(ErrorKind::device,
                backend + ": GPU index " + std::to_string(gpu) + " is out of range (the backend has " +
                    std::to_string(count) + " GPU" + (count == 1 ? "" : "s") + ")",
                "use a GPU index from 0 to " + std::to_string(count - 1));
  }
}

void check_supported(const std::string& backend, int gpu, int mhz, const std::vector<int>& supported) {
  if (supported.empty()) return;  // the backend was given no list: accept any clock
  if (std::find(supported.begin(), supported.end(), mhz) != supported.end()) return;
  std::string list;
  for (size_t i = 0; i < supported.size() && i < 8; ++i) list += (i ? ", " : "") + std::to_string(supported[i]);
  if (supported.size() > 8) list += ", ...";
  throw Error(ErrorKind::unsupported_clock,
              backend + ": " + std::to_string(mhz) + " MHz is not a supported SM clock of GPU " +
                  std::to_string(gpu) + " (supported: " + list + ")",
              "plan with the device's supported clocks (see `gearshift info`)");
}

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace gearshift::clock
