#include "signal/fake_gpu.h"

#include <sched.h>
#include <sys/prctl.h>
#include <time.h>

namespace gearshift::signal {

FakeGpu::FakeGpu(Mode mode, std::shared_ptr<clock::SimTimeBase> time_base)
    : mode_(mode),
      time_base_(time_base ? std::move(time_base) : std::make_shared<clock::SimTimeBase>()),
      signal_ns_(new std::atomic<int64_t>[kTimes]) {
  for (uint32_t i = 0; i < kTimes; ++i) signal_ns_[i].store(0);
  cb_thread_ = std::thread([this] { callback_thread(); });
  if (mode_ == Mode::realtime) worker_ = std::thread([this] { worker(); });
}

FakeGpu::~FakeGpu() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  {
    std::lock_guard<std::mutex> lk(cb_mu_);
    cb_pending_ = false;
  }
  cb_cv_.notify_all();
  if (cb_thread_.joinable()) cb_thread_.join();
}

void FakeGpu::push(Op op) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.push_back(op);
  }
  if (mode_ == Mode::realtime) cv_.notify_one();
}

bool FakeGpu::write(uint64_t, uint32_t value) {
  if (fail_writes_) return false;
  Op op{Op::write};
  op.value = value;
  push(op);
  return true;
}

bool FakeGpu::host_func(uint64_t, uint32_t seq, HostFn fn, void* arg) {
  Op op{Op::host};
  op.value = seq;
  op.fn = fn;
  op.arg = arg;
  push(op);
  return true;
}

void FakeGpu::launch_kernel(uint64_t, int64_t duration_ns) {
  Op op{Op::kernel};
  op.duration_ns = duration_ns;
  push(op);
}

int64_t FakeGpu::signal_time_ns(uint32_t value) const {
  return signal_ns_[value % kTimes].load(std::memory_order_acquire);
}

void FakeGpu::execute(const Op& op) {
  switch (op.kind) {
    case Op::kernel:
      if (mode_ == Mode::realtime) {
        // A GPU does not use a host core while a kernel runs: sleep most of the duration, spin
        // the last stretch for precision, so the fake device does not compete with the
        // controller for the CPU it is measuring.
        const int64_t until = clock::steady_now_ns() + op.duration_ns;
        const int64_t sleep_ns = op.duration_ns - 30000;
        if (sleep_ns > 0) {
          struct timespec ts {static_cast<time_t>(sleep_ns / 1000000000), static_cast<long>(sleep_ns % 1000000000)};
          nanosleep(&ts, nullptr);
        }
        while (clock::steady_now_ns() < until) {
        }
      }
      time_base_->advance(op.duration_ns);
      kernels_run_.fetch_add(1);
      break;
    case Op::write: {
      signal_ns_[op.value % kTimes].store(clock::steady_now_ns(), std::memory_order_release);
      __atomic_store_n(const_cast<uint32_t*>(&word_), op.value, __ATOMIC_RELEASE);
      if (mode_ == Mode::lockstep && acked_) {
        while (!acked_(op.value)) sched_yield();
      }
      break;
    }
    case Op::host: {
      // Like the driver: hand the function to the callback thread, block the queue until done.
      signal_ns_[op.value % kTimes].store(clock::steady_now_ns(), std::memory_order_release);
      std::unique_lock<std::mutex> lk(cb_mu_);
      cb_fn_ = op.fn;
      cb_arg_ = op.arg;
      cb_pending_ = true;
      cb_cv_.notify_one();
      cb_done_cv_.wait(lk, [this] { return !cb_pending_; });
      break;
    }
  }
}

void FakeGpu::callback_thread() {
  std::unique_lock<std::mutex> lk(cb_mu_);
  while (true) {
    cb_cv_.wait(lk, [this] {
      if (cb_pending_) return true;
      std::lock_guard<std::mutex> qlk(mu_);
      return stop_;
    });
    if (!cb_pending_) return;
    HostFn fn = cb_fn_;
    void* arg = cb_arg_;
    lk.unlock();
    fn(arg);
    lk.lock();
    cb_pending_ = false;
    cb_done_cv_.notify_all();
  }
}

void FakeGpu::run_until_idle() {
  while (true) {
    Op op;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (queue_.empty()) return;
      op = queue_.front();
      queue_.pop_front();
    }
    execute(op);
  }
}

void FakeGpu::worker() {
#ifdef PR_SET_TIMERSLACK
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
#endif
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) return;
    Op op = queue_.front();
    queue_.pop_front();
    busy_ = true;
    lk.unlock();
    execute(op);
    lk.lock();
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
}

void FakeGpu::wait_idle() {
  std::unique_lock<std::mutex> lk(mu_);
  idle_cv_.wait(lk, [this] { return queue_.empty() && !busy_; });
}

}  // namespace gearshift::signal
