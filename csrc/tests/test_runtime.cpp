// The runtime end to end on the fakes: launches replayed through the fake CUPTI callbacks, the
// boundary table, the stream-ordered signal on the fake device, the controller, sim/dry-run.
#include <signal.h>

#include <cstring>

#include "check.h"
#include "clock/dry_run.h"
#include "clock/sim.h"
#include "runtime/runtime.h"
#include "safety/signals.h"

using namespace gearshift;
using namespace gearshift::runtime;
using intercept::LaunchApi;
using intercept::Mode;

namespace {

std::vector<ReplayKernel> make_kernels(int n, LaunchApi api = LaunchApi::runtime) {
  std::vector<ReplayKernel> ks;
  for (int i = 0; i < n; ++i) {
    ReplayKernel k;
    k.name = "kernel_" + std::to_string(i % 7);
    k.stream = 7;
    k.grid[0] = 100 + i;
    k.duration_ns = 1000 * (i + 1);
    k.api = api;
    ks.push_back(k);
  }
  return ks;
}

std::shared_ptr<clock::SimBackend> sim_backend() {
  return std::make_shared<clock::SimBackend>(1, std::vector<int>{1980, 1500, 1200, 1000}, 1980,
                                             std::make_shared<clock::SimTimeBase>());
}

RuntimeOptions opts() {
  RuntimeOptions o;
  o.handle_signals = false;
  return o;
}

}  // namespace

TEST(record_mode_counts_each_launch_once_on_every_api) {
  auto b = std::make_shared<clock::DryRunBackend>(1, std::vector<int>{});
  Runtime rt(b, opts());
  CHECK(rt.subscribe().active);
  rt.set_mode(Mode::record);
  const LaunchApi apis[] = {LaunchApi::runtime, LaunchApi::runtime_ex, LaunchApi::runtime_internal,
                            LaunchApi::driver, LaunchApi::driver_ex, LaunchApi::driver_ptsz};
  uint32_t g[3] = {4, 2, 1}, bl[3] = {128, 1, 1};
  for (auto api : apis) rt.fake_cupti()->launch(api, "k", 5, g, bl, 10);
  auto st = rt.hook().stats();
  CHECK_EQ(st.launches, uint64_t{6});
  // runtime + runtime_ex counted at ENTER; their nested driver callbacks skipped; the CUDA 13
  // internal launch is counted by its nested driver callback.
  CHECK_EQ(st.runtime_counted, uint64_t{2});
  CHECK_EQ(st.nested_skipped, uint64_t{2});
  CHECK_EQ(st.driver_counted, uint64_t{4});
  auto recs = rt.hook().records().snapshot();
  CHECK_EQ(recs.size(), size_t{6});
  for (size_t i = 0; i < recs.size(); ++i) {
    CHECK_EQ(recs[i].ordinal, static_cast<int64_t>(i));
    CHECK_EQ(recs[i].stream, uint64_t{5});
    CHECK_EQ(recs[i].grid[0], 4u);
    CHECK_EQ(recs[i].block[0], 128u);
    CHECK(recs[i].name == "k");
  }
}

TEST(ptsz_launch_on_stream_zero_means_the_per_thread_stream) {
  auto b = std::make_shared<clock::DryRunBackend>(1, std::vector<int>{});
  Runtime rt(b, opts());
  rt.subscribe();
  rt.set_mode(Mode::record);
  uint32_t g[3] = {1, 1, 1};
  rt.fake_cupti()->launch(LaunchApi::driver_ptsz, "a", 0, g, g, 10);
  rt.fake_cupti()->launch(LaunchApi::driver, "b", 0, g, g, 10);
  auto recs = rt.hook().records().snapshot();
  CHECK_EQ(recs.size(), size_t{2});
  CHECK_EQ(recs[0].stream, uint64_t{2});
  CHECK_EQ(recs[1].stream, uint64_t{0});
}

TEST(runtime_launch_without_nested_driver_is_counted_late) {
  auto b = std::make_shared<clock::DryRunBackend>(1, std::vector<int>{});
  Runtime rt(b, opts());
  rt.subscribe();
  rt.fake_cupti()->set_nested_driver(false);
  rt.set_mode(Mode::record);
  uint32_t g[3] = {1, 1, 1};
  rt.fake_cupti()->launch(LaunchApi::runtime_internal, "late", 0, g, g, 10);
  rt.fake_cupti()->launch(LaunchApi::runtime, "early", 0, g, g, 10);
  auto st = rt.hook().stats();
  CHECK_EQ(st.launches, uint64_t{2});
  CHECK_EQ(st.late_counted, uint64_t{1});
}

TEST(record_ordinals_restart_each_iteration) {
  auto b = std::make_shared<clock::DryRunBackend>(1, std::vector<int>{});
  Runtime rt(b, opts());
  rt.subscribe();
  rt.set_mode(Mode::record);
  auto ks = make_kernels(5);
  rt.start();
  rt.replay(ks, 2, true);
  auto recs = rt.hook().records().snapshot();
  CHECK_EQ(recs.size(), size_t{10});
  CHECK_EQ(recs[5].ordinal, int64_t{0});
  CHECK_EQ(recs[5].iteration, int64_t{1});
  CHECK(recs[9].timestamp_ns >= recs[0].timestamp_ns);
}

TEST(apply_mode_switches_at_partition_starts_on_the_sim_device) {
  auto b = sim_backend();
  Runtime rt(b, opts());
  rt.start();
  rt.subscribe();
  // partitions start at 0, 3, 6; kernel i lasts (i+1) us
  rt.install({{0, 1500, 0}, {3, 1000, 0}, {6, 1500, 0}}, 8);
  rt.set_mode(Mode::apply);
  rt.replay(make_kernels(8), 2, false);
  auto ev = b->events();
  // 2 iterations x 3 partitions; iteration 2 starts at 1500 with the clock already at 1500, so
  // the backend sees 5 switches, each at the device time its partition's first kernel starts.
  CHECK_EQ(ev.size(), size_t{5});
  const int64_t iter_ns = 36000;  // sum of 1..8 us
  const int64_t want_t[5] = {0, 6000, 21000, iter_ns + 6000, iter_ns + 21000};
  const int want_f[5] = {1500, 1000, 1500, 1000, 1500};
  for (size_t i = 0; i < ev.size() && i < 5; ++i) {
    CHECK_EQ(ev[i].t_ns, want_t[i]);
    CHECK_EQ(ev[i].mhz, want_f[i]);
  }
  // iteration 2's first partition is at 1500 while the clock is still 1500: skipped
  auto sw = rt.controller().events();
  int switched = 0, skipped = 0;
  for (auto& e : sw) {
    switched += e.action == signal::Action::switched;
    skipped += e.action == signal::Action::skipped_same;
  }
  CHECK_EQ(switched, 5);
  CHECK_EQ(skipped, 1);
  CHECK_EQ(sw[1].ordinal, int64_t{3});
  CHECK_EQ(sw[1].partition, 1);
  CHECK(sw[1].signal_ns > 0 && sw[1].call_ns >= sw[1].signal_ns);
  rt.stop();
  auto last = b->events().back();
  CHECK(last.reset);
  CHECK_EQ(b->current_mhz(0), 1980);
}

TEST(signature_mismatch_stops_switching_and_restores) {
  auto b = sim_backend();
  Runtime rt(b, opts());
  rt.start();
  rt.subscribe();
  auto ks = make_kernels(8);
  std::vector<std::string> p0, p1, p2;
  for (int i = 0; i < 8; ++i) (i < 3 ? p0 : i < 6 ? p1 : p2).push_back(ks[size_t(i)].name);
  rt.install({{0, 1500, schedule::partition_hash(p0)},
              {3, 1000, schedule::partition_hash(p1)},
              {6, 1200, schedule::partition_hash(p2)}}, 8);
  rt.set_mode(Mode::apply);
  rt.replay(ks, 1, false);
  CHECK(!rt.applier()->disabled());
  ks[4].name = "a_kernel_the_schedule_never_saw";
  rt.replay(ks, 1, false);
  CHECK(rt.applier()->disabled());
  const std::string why = rt.applier()->mismatch_reason();
  CHECK(why.find("partition 1") != std::string::npos);
  CHECK(why.find("kernel names differ") != std::string::npos);
  // the reset happens on the controller thread; wait for it
  for (int i = 0; i < 2000 && b->current_mhz(0) != 1980; ++i) sched_yield();
  CHECK_EQ(b->current_mhz(0), 1980);
  const size_t n = b->events().size();
  rt.replay(ks, 1, false);
  CHECK_EQ(b->events().size(), n);  // no more switching
}

TEST(kernel_count_mismatch_with_explicit_iterations) {
  auto b = sim_backend();
  RuntimeOptions o = opts();
  o.auto_wrap = false;
  Runtime rt(b, o);
  rt.start();
  rt.subscribe();
  rt.install({{0, 1500, 0}, {3, 1000, 0}}, 6);
  rt.set_mode(Mode::apply);
  rt.replay(make_kernels(6), 2, true);
  CHECK(!rt.applier()->disabled());
  rt.begin_iteration();
  rt.replay(make_kernels(5), 1, true);  // a dynamic shape: one kernel fewer
  rt.begin_iteration();
  CHECK(rt.applier()->disabled());
  CHECK(rt.applier()->mismatch_reason().find("launched 5 kernels, the schedule expects 6") != std::string::npos);
}

TEST(latest_target_wins_when_the_device_passes_several_boundaries) {
  auto b = std::make_shared<clock::DryRunBackend>(1, std::vector<int>{});
  signal::FakeGpu gpu(signal::FakeGpu::Mode::lockstep);
  signal::Controller c(b, &gpu, 0);
  c.post(0, 0, 0, 1500, 0);
  c.post(1, 10, 0, 1000, 0);
  c.post(2, 20, 0, 1200, 0);
  // the device got to boundary 3 before the controller looked
  c.deliver(3, clock::steady_now_ns());
  auto ev = c.events();
  CHECK_EQ(ev.size(), size_t{3});
  CHECK(ev[0].action == signal::Action::superseded);
  CHECK(ev[1].action == signal::Action::superseded);
  CHECK(ev[2].action == signal::Action::switched && ev[2].freq_mhz == 1200);
  c.deliver(2, clock::steady_now_ns());  // stale: ignored
  CHECK_EQ(c.events().size(), size_t{3});
  CHECK_EQ(b->events().size(), size_t{1});
}

TEST(host_func_trigger_reaches_the_backend) {
  auto b = sim_backend();
  RuntimeOptions o = opts();
  o.trigger = signal::Trigger::host_func;
  Runtime rt(b, o);
  rt.start();
  rt.subscribe();
  rt.install({{0, 1500, 0}, {2, 1000, 0}}, 4);
  rt.set_mode(Mode::apply);
  rt.replay(make_kernels(4), 1, false);
  auto ev = b->events();
  CHECK_EQ(ev.size(), size_t{2});
  CHECK_EQ(ev[1].t_ns, int64_t{3000});
}

TEST(busy_cupti_reports_why_and_markers_still_switch) {
  auto b = sim_backend();
  Runtime rt(b, opts());
  rt.start();
  rt.fake_cupti()->set_busy(true);
  auto& sub = rt.subscribe();
  CHECK(!sub.active && sub.busy);
  CHECK(sub.error.find("another profiler holds CUPTI") != std::string::npos);
  rt.install({{0, 1500, 0}, {3, 1000, 0}}, 6);
  rt.set_mode(Mode::apply);
  rt.mark(0, 0);
  rt.fake_gpu()->launch_kernel(0, 5000);
  rt.mark(1, 0);
  rt.fake_gpu()->run_until_idle();
  auto ev = b->events();
  CHECK_EQ(ev.size(), size_t{2});
  CHECK_EQ(ev[1].t_ns, int64_t{5000});
  rt.mark(0, 0);  // next iteration: fine
  rt.mark(0, 0);  // out of order within an iteration? partition 0 again = new iteration, fine
  rt.mark(1, 0);
  rt.mark(1, 0);  // repeated partition: out of order
  CHECK(rt.applier()->disabled());
}

TEST(failed_stream_write_drops_the_boundary_and_counts_it) {
  auto b = sim_backend();
  Runtime rt(b, opts());
  rt.start();
  rt.subscribe();
  rt.fake_gpu()->set_fail_writes(true);
  rt.install({{0, 1500, 0}, {2, 1000, 0}}, 4);
  rt.set_mode(Mode::apply);
  rt.replay(make_kernels(4), 1, false);
  CHECK_EQ(rt.controller().dropped_posts(), size_t{2});
  CHECK(b->events().empty());
}

TEST(bad_boundary_table_is_refused) {
  auto b = sim_backend();
  Runtime rt(b, opts());
  CHECK_THROWS_KIND(rt.install({{0, 1500, 0}, {0, 1000, 0}}, 4), ErrorKind::schedule);
  CHECK_THROWS_KIND(rt.install({{1, 1500, 0}}, 4), ErrorKind::schedule);
  CHECK_THROWS_KIND(rt.install({{0, 1500, 0}, {4, 1000, 0}}, 4), ErrorKind::schedule);
  CHECK_THROWS_KIND(rt.set_mode(Mode::apply), ErrorKind::config);
}

TEST(unsupported_target_is_recorded_as_failed_not_thrown) {
  auto b = sim_backend();
  Runtime rt(b, opts());
  rt.start();
  rt.subscribe();
  rt.install({{0, 1234, 0}}, 2);
  rt.set_mode(Mode::apply);
  rt.replay(make_kernels(2), 1, false);
  auto ev = rt.controller().events();
  CHECK(!ev.empty() && ev[0].action == signal::Action::failed);
  CHECK(rt.controller().last_error().find("1234 MHz") != std::string::npos);
}

namespace {
volatile sig_atomic_t g_prev_called = 0;
void prev_handler(int) { g_prev_called = 1; }
}  // namespace

TEST(sigint_resets_then_chains_to_the_previous_handler) {
  struct sigaction sa {}, old {};
  sa.sa_handler = prev_handler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old);
  auto b = sim_backend();
  RuntimeOptions o = opts();
  o.handle_signals = true;
  {
    Runtime rt(b, o);
    rt.start();
    rt.subscribe();
    rt.install({{0, 1500, 0}}, 2);
    rt.set_mode(Mode::apply);
    rt.replay(make_kernels(2), 1, false);
    CHECK_EQ(b->current_mhz(0), 1500);
    raise(SIGINT);
    CHECK_EQ(b->current_mhz(0), 1980);
    CHECK(g_prev_called == 1);
    CHECK(rt.controller().disabled());
  }
  struct sigaction cur {};
  sigaction(SIGINT, nullptr, &cur);
  CHECK(cur.sa_handler == prev_handler);  // ours is gone once no runtime is registered
  sigaction(SIGINT, &old, nullptr);
}

TEST_MAIN()
