#pragma once
// The planner's relaxation at an iteration time T (python/gearshift/search/pipeline_lp.py) solved
// through its dual, a min-cost circulation, by the primal network simplex.
//
// Relaxation: each computation takes any duration on the lower convex hull of its (time, reduced
// cost) clocks; the DAG must finish by T; minimise the summed reduced cost plus P*S*makespan.
// Its dual is a flow problem on the DAG with every computation split into a start and a finish
// node: between them one parallel arc per hull vertex (length = the vertex's time, capacity = the
// step in hull slope there; the fastest vertex's arc is uncapacitated), zero-length precedence
// arcs, and two return arcs sink -> source: one free up to P*S, one priced T per unit. The
// circulation of least cost (lengths count negative) is the dual optimum; its node potentials are
// the relaxed finish times, so the relaxed durations and the bound come out together.
//
// A new T changes only the priced return arc's cost, so any earlier spanning-tree basis stays
// feasible and the simplex resumes from the one saved at the nearest solved T: a sweep costs a
// few cheap pivots per breakpoint of the parametric optimum it crosses, in whatever order the
// search asks for its times.
#include <cstdint>
#include <cstddef>
#include <map>
#include <vector>

#include "pipeline/sweeps.h"

namespace gearshift::pipeline {

class TradeoffLp {
 public:
  TradeoffLp(const Sweeps& sweeps, double blocking_ps_w);

  // Relaxed durations at T (one per computation) and the relaxed optimum of the energy (the
  // lower bound; the dual objective of a feasible flow, so valid whatever the tolerances).
  // False when T is below the all-fastest makespan (no plan finishes by T).
  bool solve(double deadline_s, double* durations, double* bound);

  int64_t num_ops() const { return n_; }
  int64_t pivots() const { return pivots_; }        // all solves so far

 private:
  struct Basis {
    std::vector<double> flow;
    std::vector<int8_t> state;
    std::vector<int32_t> parent, pred;
    std::vector<uint8_t> up;
  };
  void restore(const Basis& b);
  void add_arc(int32_t tail, int32_t head, double cost, double cap);
  void relabel(int32_t root);                        // depth and potentials below `root`
  double violation(int32_t e) const {   // < 0: the arc's flow should change
    return state_[e] * (cost_[e] + pi_[tail_[e]] - pi_[head_[e]]);
  }
  void consider(int32_t e);
  void price_all();
  void price_moved();
  int32_t find_entering();
  bool pivot(int32_t in);                            // false: unbounded cycle

  int64_t n_;
  double base_cost_ = 0.0;                           // summed reduced cost at the slowest vertices
  double eps_ = 0.0;                                 // reduced-cost tolerance (seconds)
  std::vector<int32_t> tail_, head_;
  std::vector<double> cost_, cap_, flow_;
  std::vector<int8_t> state_;                        // 0 in the tree, 1 at lower, -1 at upper
  std::vector<int32_t> parent_, pred_, depth_;       // pred_: the tree arc to the parent
  std::vector<uint8_t> up_;                          // pred_ points node -> parent
  std::vector<double> pi_;
  std::vector<std::vector<int32_t>> tree_adj_;
  std::vector<int32_t> stack_;
  std::vector<double> fast_s_, slow_s_;              // per computation: hull time range
  int32_t priced_return_ = -1;
  std::vector<int32_t> op_arcs_, op_arcs_end_;       // each computation's parallel arcs
  std::vector<int32_t> inc_start_, inc_;             // incidence of the other arcs (CSR)
  std::vector<int32_t> cand_;                        // arcs that violated when last priced
  std::vector<uint8_t> in_cand_;
  size_t cand_pos_ = 0;
  std::vector<int32_t> moved_, stamp_;               // nodes of the last relabeled subtree
  int32_t cur_stamp_ = 0;
  int64_t pivots_ = 0;
  std::map<double, Basis> saved_;                    // optimal basis of every solved T
  size_t max_saved_ = 0;
  double current_ = 0.0;                             // the T the live basis is optimal for
  bool solved_ = false;
};

}  // namespace gearshift::pipeline
