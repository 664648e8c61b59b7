#pragma once
// Where the hook's boundary signals go: a stream-ordered write of a rising sequence number into
// a host-mapped word (real: cuStreamWriteValue32 on pinned memory; fake: a replayed device
// queue), or, for comparison, a host function enqueued on the stream (cudaLaunchHostFunc).
#include <cstdint>
#include <string>

namespace gearshift::signal {

using HostFn = void (*)(void*);

class SignalSink {
 public:
  virtual ~SignalSink() = default;
  virtual std::string name() const = 0;
  // The word the controller polls; nullptr until the sink is ready (e.g. no CUDA context yet).
  virtual const volatile uint32_t* word() = 0;
  // Enqueue the write of `value` behind the work already on `stream`. False when it failed.
  virtual bool write(uint64_t stream, uint32_t value) = 0;
  virtual bool host_func(uint64_t stream, uint32_t seq, HostFn fn, void* arg) = 0;
  // steady_clock ns at which the device performed write (or reached host function) `value`, when the sink can know (fakes);
  // 0 otherwise.
  virtual int64_t signal_time_ns(uint32_t /*value*/) const { return 0; }
  // Why the sink cannot signal, or "" when it can.
  virtual std::string unavailable_reason() const { return {}; }
};

}  // namespace gearshift::signal
