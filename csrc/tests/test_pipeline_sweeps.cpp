// The planner's DAG sweeps on small hand-checked pipelines (the bit-for-bit comparison with the
// Python reference loops is tests/unit/test_pipeline_sweeps.py).
#include <vector>

#include "check.h"
#include "pipeline/sweeps.h"

using namespace gearshift;
using namespace gearshift::pipeline;

namespace {

// A diamond: 0 -> {1, 2} -> 3 (1 waits on 0 in program order, 2 on 0 by data, 3 on 1 and 2);
// the edge 0 -> 2 crosses ranks.
Dag diamond() { return Dag({-1, 0, -1, 1}, {-1, -1, 0, 2}, {0, 0, 1, 0}); }

constexpr double kTime[3] = {1.0, 2.0, 4.0};

// One option table shared by every computation: 1 s (cost 5), 2 s (cost 3), 4 s (cost 2).
Sweeps sweeps(Dag dag) {
  const auto n = static_cast<size_t>(dag.num_ops());
  return Sweeps(std::move(dag), std::vector<int64_t>(n, 0), {0, 3}, {1.0, 2.0, 4.0},
                {5.0, 3.0, 2.0}, {0, 3}, {0, 1, 2});
}

}  // namespace

TEST(schedule_waits_for_both_predecessors_and_the_transfer) {
  Dag g = diamond();
  double dur[4] = {1.0, 3.0, 1.0, 1.0};
  double start[4], end[4];
  g.schedule(dur, 0.5, start, end);
  CHECK(start[1] == 1.0 && start[2] == 1.5);     // 2 pays the cross-rank transfer
  CHECK(start[3] == 4.0 && end[3] == 5.0);       // 3 waits for the longer branch
  double ef[4], ls[4];
  g.earliest_finish(dur, ef);                    // the planner's view: no transfer
  CHECK(ef[2] == 2.0 && ef[3] == 5.0);
  g.latest_start(dur, 5.0, ls);
  CHECK(ls[3] == 4.0 && ls[1] == 1.0 && ls[2] == 3.0 && ls[0] == 0.0);
}

TEST(dag_refuses_a_non_topological_order) {
  CHECK_THROWS_KIND(Dag({-1, 2, -1}, {-1, -1, -1}, {0, 0, 0}), ErrorKind::config);
  CHECK_THROWS_KIND(Dag({-1, 0}, {-1}, {0, 0}), ErrorKind::config);
}

TEST(fill_slack_slows_the_branch_with_float) {
  Sweeps sw = sweeps(diamond());
  // all at 1 s: the makespan is 3 s; with a 6 s deadline every path has 3 s of slack
  int64_t choice[4] = {0, 0, 0, 0};
  sw.fill_slack(choice, 6.0, 8);
  double dur[4], ef[4];
  for (int i = 0; i < 4; ++i) dur[i] = kTime[choice[i]];
  sw.dag().earliest_finish(dur, ef);
  CHECK(ef[3] <= 6.0);
  CHECK(choice[3] == 2);      // the sink takes the 4 s option first (backward pass)
  CHECK(choice[0] == 0);      // nothing left for the source
}

TEST(crash_speeds_up_the_cheapest_critical_computation) {
  Sweeps sw = sweeps(diamond());
  // all at 4 s: makespan 12; getting to 9 s takes moves on both branches
  int64_t choice[4] = {2, 2, 2, 2};
  CHECK(sw.crash(choice, 9.0, -1));
  double dur[4], ef[4];
  for (int i = 0; i < 4; ++i) dur[i] = kTime[choice[i]];
  sw.dag().earliest_finish(dur, ef);
  CHECK(ef[3] <= 9.0);
  CHECK(choice[1] == 1 && choice[2] == 1 && choice[3] == 1 && choice[0] == 2);
  int64_t fastest[4] = {0, 0, 0, 0};
  CHECK(!sw.crash(fastest, 2.5, -1));            // all-fastest takes 3 s
  int64_t once[4] = {2, 2, 2, 2};
  CHECK(!sw.crash(once, 3.0, 2));                // two steps cannot get there
}

TEST(round_diffuse_stays_within_the_deadline) {
  Sweeps sw = sweeps(diamond());
  const double relaxed[4] = {1.5, 2.5, 2.5, 1.5};   // a relaxed plan finishing at 5.5 s
  int64_t choice[4];
  sw.round_diffuse(relaxed, 5.5, choice);
  double dur[4], ef[4];
  for (int i = 0; i < 4; ++i) dur[i] = kTime[choice[i]];
  sw.dag().earliest_finish(dur, ef);
  CHECK(ef[3] <= 5.5);
  CHECK(choice[0] == 0);   // 1.5 s rounds down to 1 s, which lets a later one round up
}

TEST(sweeps_refuse_bad_tables) {
  CHECK_THROWS_KIND(Sweeps(diamond(), {0, 0, 0, 1}, {0, 3}, {1, 2, 4}, {5, 3, 2}, {0, 3}, {0, 1, 2}),
                    ErrorKind::config);
  CHECK_THROWS_KIND(Sweeps(diamond(), {0, 0, 0, 0}, {0, 3}, {1, 2, 4}, {5, 3, 2}, {0, 1}, {7}),
                    ErrorKind::config);
}

TEST_MAIN()
