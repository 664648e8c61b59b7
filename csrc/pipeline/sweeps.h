#pragma once
// Sweeps over a pipeline's dependency DAG for the clock planner (python/gearshift/search/
// pipeline_lp.py): earliest finishes, crash repair, slack filling, error-diffusion rounding.
// Each runs thousands of times per frontier over every computation, so they live here as plain
// loops over flat arrays. The arithmetic is the planner's exactly (same operations in the same
// order, no contraction into fused multiply-adds), so a plan comes out bit for bit the same as
// the Python reference loops in tests/unit/test_pipeline_sweeps.py.
#include <cstdint>
#include <vector>

namespace gearshift::pipeline {

// A pipeline's dependency DAG in topological order: each computation waits for its
// program-order predecessor `prev` and its data predecessor `cross` (-1: none); a cross edge
// between ranks (`p2p` != 0) also pays the point-to-point transfer time in `schedule`.
class Dag {
 public:
  Dag(std::vector<int64_t> prev, std::vector<int64_t> cross, std::vector<uint8_t> p2p);

  int64_t num_ops() const { return static_cast<int64_t>(prev_.size()); }
  int64_t prev(int64_t i) const { return prev_[i]; }
  int64_t cross(int64_t i) const { return cross_[i]; }
  bool has_successor(int64_t i) const { return succ_start_[i + 1] > succ_start_[i]; }
  // Start and end of every computation for these durations.
  void schedule(const double* dur, double p2p_s, double* start, double* end) const;
  // Earliest finish of every computation (no transfer time: the planner's view); with `from`
  // > 0, `ef` already holds them for every computation before `from` (which the durations of
  // `from` and later ones cannot change: topological order).
  void earliest_finish(const double* dur, double* ef, int64_t from = 0) const;
  // Latest start of every computation that still lets everything finish by `limit`.
  void latest_start(const double* dur, double limit, double* ls) const;
  // Latest start over the successors of i (min of `ls`), or `limit` without successors.
  double latest_finish(int64_t i, const double* ls, double limit) const {
    for (int64_t s = succ_start_[i]; s < succ_start_[i + 1]; ++s)
      if (ls[succ_[s]] < limit) limit = ls[succ_[s]];
    return limit;
  }
  // Latest end over the predecessors of i (max of `end`, at least 0).
  double earliest_start(int64_t i, const double* end) const {
    double t = 0.0;
    const int64_t a = prev_[i], b = cross_[i];
    if (a >= 0 && end[a] > t) t = end[a];
    if (b >= 0 && end[b] > t) t = end[b];
    return t;
  }

 private:
  std::vector<int64_t> prev_, cross_;
  std::vector<uint8_t> p2p_;
  std::vector<int64_t> succ_start_, succ_;        // successors (CSR), for backward passes
};

class Sweeps {
 public:
  // `op_table[i]`: the option table of computation i (its kind: stage x instruction);
  // table k's options are `option_*[option_start[k] .. option_start[k+1])`, sorted by time
  // (reduced cost falling); its lower hull's vertices are the option indices
  // `hull_option[hull_start[k] .. hull_start[k+1])`.
  Sweeps(Dag dag, std::vector<int64_t> op_table,
         std::vector<int64_t> option_start, std::vector<double> option_time_s,
         std::vector<double> option_cost_j, std::vector<int64_t> hull_start,
         std::vector<int64_t> hull_option);

  const Dag& dag() const { return dag_; }
  int64_t num_ops() const { return dag_.num_ops(); }
  int64_t options(int64_t i) const;   // number of options of computation i
  // The lower hull of computation i's options: vertex times (rising) and reduced costs.
  void hull(int64_t i, std::vector<double>& time_s, std::vector<double>& cost_j) const;

  // Speed critical computations up, cheapest cost per second saved first, one option step at a
  // time, until the plan finishes by the deadline. False when it cannot within `max_steps`
  // steps (< 0: 4 x computations). `choice` is updated in place either way.
  bool crash(int64_t* choice, double deadline_s, int64_t max_steps) const;
  // Lengthen computations into the slack below the deadline (alternating backward and forward
  // passes, at most `max_passes`, stopping after a pass that changes nothing); stays feasible.
  void fill_slack(int64_t* choice, double deadline_s, int max_passes) const;
  // Per computation, the cheapest option no slower than its duration (the fastest if none).
  void round_down(const double* durations, int64_t* choice) const;
  // Error-diffusion rounding of relaxed durations to hull vertices, feasible by construction.
  void round_diffuse(const double* durations, double deadline_s, int64_t* choice) const;

 private:
  void durations(const int64_t* choice, double* dur) const;
  const double* times(int64_t i) const { return &time_[start_[table_[i]]]; }

  Dag dag_;
  std::vector<int64_t> table_, start_;
  std::vector<double> time_, cost_;
  std::vector<int64_t> hull_start_, hull_option_;
  std::vector<double> hull_time_;                 // time of each hull vertex
  // per option: the cheapest cost per second saved by a move to a faster option, and that
  // option (the first on ties); +inf / 0 for the fastest
  std::vector<double> rate_;
  std::vector<int64_t> rate_to_;
};

}  // namespace gearshift::pipeline
