#pragma once
// The daemon applies clocks through the runtime's clock backend interface. Until that lands
// this file holds the minimal shape the daemon needs (PROVISIONAL: replaced by an alias).
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace gearshift::daemon {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual int device_count() = 0;
  virtual std::vector<uint32_t> supported_sm_mhz(int gpu) = 0;
  virtual void lock_sm_mhz(int gpu, uint32_t mhz) = 0;
  virtual void reset(int gpu) = 0;
  virtual std::string name() const = 0;
};

std::unique_ptr<Backend> make_backend(const std::string& kind);

}  // namespace gearshift::daemon
