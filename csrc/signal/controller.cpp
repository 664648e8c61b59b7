#include "signal/controller.h"

#include <sched.h>
#include <sys/prctl.h>
#include <time.h>

#include <chrono>

namespace gearshift::signal {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
}  // namespace

const char* action_name(Action a) {
  switch (a) {
    case Action::switched: return "switched";
    case Action::skipped_same: return "skipped_same";
    case Action::superseded: return "superseded";
    case Action::reset: return "reset";
    case Action::failed: return "failed";
    case Action::ignored: return "ignored";
  }
  return "?";
}

Controller::Controller(clock::BackendPtr backend, SignalSink* sink, int gpu, ControllerOptions opt)
    : backend_(std::move(backend)), sink_(sink), gpu_(gpu), opt_(opt), slots_(kSlots) {
  for (auto& s : slots_) s.owner = this;
  events_.reserve(std::min<size_t>(opt_.event_capacity, 4096));
}

Controller::~Controller() {
  try {
    stop();
  } catch (...) {
    // A destructor must not throw; stop() already recorded the error.
  }
}

void Controller::start() {
  if (running_.exchange(true)) return;
  stop_.store(false);
  thread_ = std::thread([this] { run(); });
}

void Controller::stop() {
  if (running_.load()) {
    stop_.store(true);
    {
      std::lock_guard<std::mutex> lk(idle_mu_);
      idle_cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
    running_.store(false);
  }
  reset_now();
}

uint32_t Controller::post(int partition, int64_t ordinal, int64_t iteration, int freq_mhz,
                          uint64_t stream) {
  const uint32_t seq = next_seq_.fetch_add(1, std::memory_order_relaxed) + 1;
  Slot& s = slots_[seq % kSlots];
  s.partition = partition;
  s.ordinal = ordinal;
  s.iteration = iteration;
  s.freq_mhz = freq_mhz;
  s.enqueue_ns = clock::steady_now_ns();
  s.seq.store(seq, std::memory_order_release);
  const bool ok = opt_.trigger == Trigger::write ? sink_->write(stream, seq)
                                                 : sink_->host_func(stream, seq, &host_func_trampoline, &s);
  if (!ok) {
    dropped_posts_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  // posted_ only rises; concurrent posters may finish out of order, so keep the max.
  uint32_t prev = posted_.load(std::memory_order_relaxed);
  while (prev < seq && !posted_.compare_exchange_weak(prev, seq, std::memory_order_acq_rel)) {
  }
  if (idle_.load(std::memory_order_seq_cst)) {
    std::lock_guard<std::mutex> lk(idle_mu_);
    idle_cv_.notify_one();
  }
  return seq;
}

void Controller::host_func_trampoline(void* p) {
  auto* s = static_cast<Slot*>(p);
  s->owner->deliver(s->seq.load(std::memory_order_acquire), clock::steady_now_ns());
}

void Controller::request_reset() noexcept {
  reset_requested_.store(true, std::memory_order_release);
  // No lock here: this runs in signal handlers. The idle wait times out within milliseconds.
}

void Controller::disable() noexcept {
  disabled_.store(true, std::memory_order_release);
  request_reset();
}

void Controller::record(const SwitchEvent& e) {
  std::lock_guard<std::mutex> lk(events_mu_);
  if (events_.size() < opt_.event_capacity) {
    events_.push_back(e);
  } else {
    ++dropped_events_;
  }
}

void Controller::deliver(uint32_t w, int64_t detect_ns) {
  std::lock_guard<std::mutex> lk(apply_mu_);
  const uint32_t seen = seen_.load(std::memory_order_relaxed);
  if (w <= seen) return;  // an older boundary: a later target already won
  for (uint32_t s = seen + 1; s < w && s + kSlots > w; ++s) {
    const Slot& old = slots_[s % kSlots];
    SwitchEvent e;
    e.seq = s;
    e.partition = old.partition;
    e.ordinal = old.ordinal;
    e.iteration = old.iteration;
    e.freq_mhz = old.freq_mhz;
    e.action = Action::superseded;
    e.enqueue_ns = old.enqueue_ns;
    e.signal_ns = sink_->signal_time_ns(s);
    e.detect_ns = detect_ns;
    record(e);
  }
  const Slot& s = slots_[w % kSlots];
  SwitchEvent e;
  e.seq = w;
  e.partition = s.partition;
  e.ordinal = s.ordinal;
  e.iteration = s.iteration;
  e.freq_mhz = s.freq_mhz;
  e.enqueue_ns = s.enqueue_ns;
  e.signal_ns = sink_->signal_time_ns(w);
  e.detect_ns = detect_ns;
  if (disabled_.load(std::memory_order_acquire)) {
    e.action = Action::ignored;
  } else if (s.seq.load(std::memory_order_acquire) != w) {
    e.action = Action::failed;  // the mailbox wrapped: more than kSlots boundaries in flight
  } else if (s.freq_mhz == current_mhz_.load(std::memory_order_relaxed)) {
    e.action = Action::skipped_same;
  } else {
    e.call_ns = clock::steady_now_ns();
    if (device_clock_) e.device_ns = device_clock_();
    try {
      backend_->lock_sm_mhz(gpu_, s.freq_mhz);
      current_mhz_.store(s.freq_mhz);
      e.action = Action::switched;
    } catch (const std::exception& ex) {
      e.action = Action::failed;
      refusals_.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard<std::mutex> elk(events_mu_);
      last_error_ = ex.what();
    }
    e.done_ns = clock::steady_now_ns();
  }
  record(e);
  seen_.store(w, std::memory_order_release);
}

void Controller::do_reset(const char* /*why*/) {
  std::lock_guard<std::mutex> lk(apply_mu_);
  SwitchEvent e;
  e.action = Action::reset;
  e.call_ns = clock::steady_now_ns();
  e.detect_ns = e.call_ns;
  if (device_clock_) e.device_ns = device_clock_();
  try {
    backend_->reset(gpu_);
    current_mhz_.store(0);
  } catch (const std::exception& ex) {
    e.action = Action::failed;
    std::lock_guard<std::mutex> elk(events_mu_);
    last_error_ = ex.what();
  }
  e.done_ns = clock::steady_now_ns();
  record(e);
}

void Controller::reset_now() {
  reset_requested_.store(false, std::memory_order_release);
  do_reset("reset_now");
}

void Controller::run() {
#ifdef PR_SET_TIMERSLACK
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);  // sleep-polls wake within ~us, not the 50 us default
#endif
  int spins = 0;
  int64_t pending_since = 0;
  while (true) {
    if (reset_requested_.exchange(false, std::memory_order_acq_rel)) do_reset("requested");
    const volatile uint32_t* word = sink_->word();
    if (opt_.trigger == Trigger::write && word != nullptr) {
      const uint32_t w = __atomic_load_n(const_cast<const uint32_t*>(word), __ATOMIC_ACQUIRE);
      if (w > seen_.load(std::memory_order_relaxed)) {
        deliver(w, clock::steady_now_ns());
        spins = 0;
        pending_since = 0;
        continue;
      }
    }
    if (stop_.load(std::memory_order_acquire)) break;
    const bool pending = opt_.trigger == Trigger::write &&
                         posted_.load(std::memory_order_acquire) > seen_.load(std::memory_order_relaxed);
    if (pending) {
      // The device is on its way to a boundary: poll. Spin briefly, then yield so a shared
      // core is not starved while the device is far behind the host.
      if (pending_since == 0) pending_since = clock::steady_now_ns();
      if (opt_.sleep_poll_ns > 0 && (spins & 63) == 0 &&
          clock::steady_now_ns() - pending_since > opt_.spin_ns) {
        struct timespec ts {0, static_cast<long>(opt_.sleep_poll_ns)};
        nanosleep(&ts, nullptr);
      } else if ((++spins & 4095) == 0) {
        sched_yield();
      } else {
        cpu_relax();
      }
      continue;
    }
    spins = 0;
    pending_since = 0;
    std::unique_lock<std::mutex> lk(idle_mu_);
    idle_.store(true, std::memory_order_seq_cst);
    idle_cv_.wait_for(lk, std::chrono::milliseconds(2), [this] {
      return stop_.load() || reset_requested_.load() ||
             (opt_.trigger == Trigger::write && posted_.load() > seen_.load());
    });
    idle_.store(false, std::memory_order_seq_cst);
  }
}

size_t Controller::dropped_events() const {
  std::lock_guard<std::mutex> lk(events_mu_);
  return dropped_events_;
}

std::string Controller::last_error() const {
  std::lock_guard<std::mutex> lk(events_mu_);
  return last_error_;
}

std::vector<SwitchEvent> Controller::events() const {
  std::lock_guard<std::mutex> lk(events_mu_);
  return events_;
}

void Controller::clear_events() {
  std::lock_guard<std::mutex> lk(events_mu_);
  events_.clear();
  dropped_events_ = 0;
}

}  // namespace gearshift::signal
