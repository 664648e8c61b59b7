#include "daemon/backend_port.h"

namespace gearshift::daemon {

namespace {

// PROVISIONAL stand-in until the runtime's backends land: presents one simulated H100 SXM.
class SimulatedClocks : public Backend {
 public:
  explicit SimulatedClocks(std::string name) : name_(std::move(name)) {}
  int device_count() override { return 1; }
  std::vector<uint32_t> supported_sm_mhz(int) override {
    std::vector<uint32_t> v;
    for (uint32_t f = 1980; f >= 345; f -= 15) v.push_back(f);
    return v;
  }
  void lock_sm_mhz(int, uint32_t mhz) override { current_ = mhz; }
  void reset(int) override { current_ = 0; }
  std::string name() const override { return name_; }

 private:
  std::string name_;
  uint32_t current_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_backend(const std::string& kind) {
  if (kind == "dry-run" || kind == "sim") return std::make_unique<SimulatedClocks>(kind);
  throw std::invalid_argument("unknown clock backend '" + kind + "'");
}

}  // namespace gearshift::daemon
