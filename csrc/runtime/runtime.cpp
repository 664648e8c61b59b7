#include "runtime/runtime.h"

#include <sched.h>
#include <time.h>

#include "clock/sim.h"
#include "safety/signals.h"
#include "signal/cuda_sink.h"

namespace gearshift::runtime {

Runtime::Runtime(clock::BackendPtr backend, RuntimeOptions opt)
    : backend_(std::move(backend)), opt_(std::move(opt)), hook_(opt_.record_capacity) {
  if (!backend_) throw Error(ErrorKind::config, "runtime: no clock backend", "pass one");
  clock::check_gpu_index(backend_->name(), opt_.gpu, backend_->device_count());
  auto* sim = dynamic_cast<clock::SimBackend*>(backend_.get());
  if (opt_.signal_path == "cuda") {
    sink_ = std::make_shared<signal::CudaSink>();
  } else if (opt_.signal_path == "fake-lockstep" || opt_.signal_path == "fake-realtime") {
    const auto mode = opt_.signal_path == "fake-lockstep" ? signal::FakeGpu::Mode::lockstep
                                                          : signal::FakeGpu::Mode::realtime;
    fake_gpu_ = std::make_shared<signal::FakeGpu>(mode, sim ? sim->time_base() : nullptr);
    fake_cupti_ = std::make_shared<intercept::FakeCupti>(fake_gpu_.get());
    sink_ = fake_gpu_;
  } else {
    throw Error(ErrorKind::config, "runtime: unknown signal path '" + opt_.signal_path + "'",
                "use cuda, fake-lockstep or fake-realtime");
  }
  signal::ControllerOptions copt;
  copt.trigger = opt_.trigger;
  copt.spin_ns = opt_.spin_ns;
  copt.sleep_poll_ns = opt_.sleep_poll_ns;
  controller_ = std::make_unique<signal::Controller>(backend_, sink_.get(), opt_.gpu, copt);
  // Fake paths stamp every boundary with the fake device's time (the sim backend shares it),
  // so partition times are measurable whatever clock backend runs (dry-run included).
  if (sim || fake_gpu_) {
    auto tb = sim ? sim->time_base() : fake_gpu_->time_base();
    controller_->set_device_clock([tb] { return tb->now_ns(); });
  }
  if (fake_gpu_) {
    signal::Controller* c = controller_.get();
    fake_gpu_->set_ack([c](uint32_t v) { return c->seen() >= v || !c->running(); });
  }
}

Runtime::~Runtime() {
  try {
    stop();
  } catch (...) {
  }
}

void Runtime::start() {
  controller_->start();
  if (opt_.handle_signals) safety::register_for_signals(controller_.get());
  stopped_ = false;
}

void Runtime::stop() {
  if (stopped_) return;
  stopped_ = true;
  hook_.set_mode(intercept::Mode::off);
  unsubscribe();
  if (opt_.handle_signals) safety::unregister_for_signals(controller_.get());
  controller_->stop();  // resets the clock
  if (watchdog_) watchdog_->disarm();
}

void Runtime::install(std::vector<schedule::PartitionSpec> parts, int num_kernels) {
  schedule::BoundaryTable table(std::move(parts), num_kernels);
  const auto prev = hook_.mode();
  hook_.set_mode(intercept::Mode::off);
  hook_.set_sink(nullptr);
  applier_ = std::make_unique<Applier>(std::move(table), controller_.get(), opt_.auto_wrap);
  hook_.set_sink(applier_.get());
  hook_.set_mode(prev);
}

void Runtime::set_mode(intercept::Mode m) {
  if (m == intercept::Mode::apply && !applier_) {
    throw Error(ErrorKind::config, "runtime: apply mode needs a schedule", "install a schedule first");
  }
  hook_.set_mode(m);
}

void Runtime::begin_iteration() {
  hook_.begin_iteration();
  if (applier_ && hook_.mode() == intercept::Mode::apply) applier_->begin_iteration(hook_.launches());
}

void Runtime::mark(int partition, uint64_t stream) {
  if (!applier_) throw Error(ErrorKind::config, "runtime: markers need a schedule", "install a schedule first");
  applier_->mark(partition, stream);
}

intercept::Subscription& Runtime::subscribe() {
  if (sub_.active) return sub_;
  std::shared_ptr<intercept::CuptiPort> port =
      fake_cupti_ ? std::static_pointer_cast<intercept::CuptiPort>(fake_cupti_) : intercept::real_cupti();
  sub_ = intercept::subscribe_hook(port, &hook_);
  return sub_;
}

void Runtime::unsubscribe() { intercept::unsubscribe_hook(sub_); }

void Runtime::replay(const std::vector<ReplayKernel>& kernels, int iterations, bool explicit_iterations) {
  if (!fake_cupti_) {
    throw Error(ErrorKind::config, "runtime: replay needs a fake signal path",
                "create the runtime with signal_path fake-lockstep or fake-realtime");
  }
  if (!sub_.active) {
    throw Error(ErrorKind::config, "runtime: replay needs the fake CUPTI subscription",
                "call subscribe() first (it fails while another tool holds CUPTI)");
  }
  for (int it = 0; it < iterations; ++it) {
    if (explicit_iterations && it > 0) begin_iteration();
    for (const auto& k : kernels) {
      fake_cupti_->launch(k.api, k.name.c_str(), k.stream, k.grid, k.block, k.duration_ns);
    }
    if (fake_gpu_ && opt_.signal_path == "fake-lockstep") fake_gpu_->run_until_idle();
  }
  if (opt_.signal_path == "fake-realtime") fake_gpu_->wait_idle();
  // Everything posted has been written; wait (bounded) until the controller acted on it.
  const int64_t deadline = clock::steady_now_ns() + 5'000'000'000LL;
  const bool realtime = opt_.signal_path == "fake-realtime";
  while (controller_->running() && controller_->seen() < controller_->posted() &&
         !controller_->disabled() && clock::steady_now_ns() < deadline) {
    // Realtime: sleep, so this thread does not compete with the device and controller threads.
    if (realtime) {
      struct timespec ts {0, 100000};
      nanosleep(&ts, nullptr);
    } else {
      sched_yield();
    }
  }
}

void Runtime::arm_watchdog(const safety::WatchdogSpec& spec) {
  if (watchdog_) watchdog_->disarm();
  watchdog_ = safety::Watchdog::spawn(spec);
}

std::string Runtime::signal_unavailable_reason() const { return sink_->unavailable_reason(); }

}  // namespace gearshift::runtime
