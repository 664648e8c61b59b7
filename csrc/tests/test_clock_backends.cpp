#include "check.h"
#include "clock/dry_run.h"

using namespace gearshift;
using namespace gearshift::clock;

TEST(dry_run_logs_switches_in_order_with_rising_timestamps) {
  DryRunBackend b(2, {1980, 1500, 1000});
  b.lock_sm_mhz(0, 1500);
  b.lock_sm_mhz(1, 1000);
  b.reset(0);
  auto ev = b.events();
  CHECK_EQ(ev.size(), size_t{3});
  CHECK_EQ(ev[0].mhz, 1500);
  CHECK_EQ(ev[1].gpu, 1);
  CHECK(ev[2].reset && ev[2].mhz == 0);
  CHECK(ev[0].t_ns <= ev[1].t_ns && ev[1].t_ns <= ev[2].t_ns);
  CHECK(ev[0].t_ns > 0);
}

TEST(dry_run_refuses_unsupported_clock_and_bad_gpu) {
  DryRunBackend b(1, {1980, 1500});
  CHECK_THROWS_KIND(b.lock_sm_mhz(0, 1234), ErrorKind::unsupported_clock);
  CHECK_THROWS_KIND(b.lock_sm_mhz(3, 1500), ErrorKind::device);
  CHECK_THROWS_KIND(b.reset(-1), ErrorKind::device);
  CHECK(b.events().empty());
}

TEST(dry_run_empty_list_accepts_any_clock) {
  DryRunBackend b(1, {});
  b.lock_sm_mhz(0, 1234);
  CHECK_EQ(b.events().size(), size_t{1});
}

TEST(dry_run_buffer_is_bounded_and_keeps_newest) {
  DryRunBackend b(1, {}, 4);
  for (int i = 1; i <= 10; ++i) b.lock_sm_mhz(0, 100 * i);
  auto ev = b.events();
  CHECK_EQ(ev.size(), size_t{4});
  CHECK_EQ(ev.front().mhz, 700);
  CHECK_EQ(ev.back().mhz, 1000);
  CHECK_EQ(b.dropped(), size_t{6});
  b.clear();
  CHECK(b.events().empty());
}

TEST_MAIN()
