#include "pipeline/tradeoff.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <string>

#include "common/errors.h"

namespace gearshift::pipeline {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// node numbering: the source, the sink, then start and finish of every computation
constexpr int32_t kSource = 0, kSink = 1;
inline int32_t start_node(int64_t i) { return static_cast<int32_t>(2 + 2 * i); }
inline int32_t finish_node(int64_t i) { return static_cast<int32_t>(3 + 2 * i); }

}  // namespace

void TradeoffLp::add_arc(int32_t tail, int32_t head, double cost, double cap) {
  tail_.push_back(tail);
  head_.push_back(head);
  cost_.push_back(cost);
  cap_.push_back(cap);
}

TradeoffLp::TradeoffLp(const Sweeps& sw, double blocking_ps_w) : n_(sw.num_ops()) {
  if (!(blocking_ps_w >= 0) || !std::isfinite(blocking_ps_w))
    throw Error(ErrorKind::config, "pipeline relaxation: the blocking power is not finite >= 0",
                "build the relaxation from a PipelineProblem (gearshift.search.pipeline_lp)");
  const Dag& dag = sw.dag();
  const int32_t nodes = static_cast<int32_t>(2 + 2 * n_);
  parent_.assign(nodes, -1);
  pred_.assign(nodes, -1);
  depth_.assign(nodes, 0);
  up_.assign(nodes, 0);
  pi_.assign(nodes, 0.0);
  tree_adj_.assign(nodes, {});
  fast_s_.resize(n_);
  slow_s_.resize(n_);
  op_arcs_.resize(n_);
  std::vector<double> t, c;
  double scale = 1.0;
  // the initial basis: every start node hangs from its first predecessor's finish (or the
  // source), every finish node from its start by the fastest-vertex arc, the sink from the first
  // sink; all carry no flow and point away from the source (a strongly feasible tree)
  auto tree_arc = [&](int32_t child) {
    const int32_t e = static_cast<int32_t>(tail_.size()) - 1;
    parent_[child] = tail_[e];
    pred_[child] = e;
    up_[child] = 0;
    tree_adj_[tail_[e]].push_back(e);
    tree_adj_[child].push_back(e);
  };
  bool sink_attached = false;
  for (int64_t i = 0; i < n_; ++i) {
    const int32_t s = start_node(i), f = finish_node(i);
    const int64_t preds[2] = {dag.prev(i), dag.cross(i)};
    bool first = true;
    for (int64_t p : preds) {
      if (p < 0) continue;
      add_arc(finish_node(p), s, 0.0, kInf);
      if (first) tree_arc(s);
      first = false;
    }
    if (first) {
      add_arc(kSource, s, 0.0, kInf);
      tree_arc(s);
    }
    sw.hull(i, t, c);
    const size_t k = t.size();
    fast_s_[i] = t.front();
    slow_s_[i] = t.back();
    base_cost_ += c.back();
    scale += t.back();
    // vertex j's arc: length t[j], capacity = slope of the segment below it (slower side)
    // minus the slope above it; the slowest starts at zero slope, the fastest is unbounded
    std::vector<double> slope(k, 0.0);               // slope[j]: segment (j, j+1), J/s saved
    for (size_t j = 0; j + 1 < k; ++j) slope[j] = (c[j] - c[j + 1]) / (t[j + 1] - t[j]);
    op_arcs_[i] = static_cast<int32_t>(tail_.size());
    add_arc(s, f, -t[0], kInf);
    tree_arc(f);
    for (size_t j = 1; j < k; ++j) {
      const double cap = slope[j - 1] - (j + 1 < k ? slope[j] : 0.0);
      if (cap > 0) add_arc(s, f, -t[j], cap);
    }
    op_arcs_end_.push_back(static_cast<int32_t>(tail_.size()));
    if (!dag.has_successor(i)) {
      add_arc(f, kSink, 0.0, kInf);
      if (!sink_attached) tree_arc(kSink);
      sink_attached = true;
    }
  }
  add_arc(kSink, kSource, 0.0, blocking_ps_w);       // the makespan's own price P*S
  priced_return_ = static_cast<int32_t>(tail_.size());
  add_arc(kSink, kSource, 0.0, kInf);                // beyond it: T per unit (set by solve)
  const int64_t m = static_cast<int64_t>(tail_.size());
  flow_.assign(m, 0.0);
  state_.assign(m, 1);
  for (int32_t v = 0; v < nodes; ++v)
    if (pred_[v] >= 0) state_[pred_[v]] = 0;
  eps_ = 1e-13 * scale;
  // incidence lists of the arcs between computations (a computation's own parallel arcs are
  // priced as its group, see price_moved)
  std::vector<int32_t> count(nodes + 1, 0);
  std::vector<uint8_t> own(m, 0);
  for (int64_t i = 0; i < n_; ++i)
    for (int32_t e = op_arcs_[i]; e < op_arcs_end_[i]; ++e) own[e] = 1;
  for (int64_t e = 0; e < m; ++e)
    if (!own[e]) {
      ++count[tail_[e] + 1];
      ++count[head_[e] + 1];
    }
  for (int32_t v = 0; v < nodes; ++v) count[v + 1] += count[v];
  inc_start_ = count;
  inc_.assign(count[nodes], 0);
  for (int64_t e = 0; e < m; ++e)
    if (!own[e]) {
      inc_[count[tail_[e]]++] = static_cast<int32_t>(e);
      inc_[count[head_[e]]++] = static_cast<int32_t>(e);
    }
  in_cand_.assign(m, 0);
  stamp_.assign(nodes, 0);
  stack_.reserve(nodes);
  // keep bases up to ~128 MB
  const size_t bytes = static_cast<size_t>(m) * 9 + static_cast<size_t>(nodes) * 9 + 1;
  max_saved_ = std::max<size_t>(16, (size_t{128} << 20) / bytes);
}

void TradeoffLp::restore(const Basis& b) {
  flow_ = b.flow;
  state_ = b.state;
  parent_ = b.parent;
  pred_ = b.pred;
  up_ = b.up;
  for (auto& adj : tree_adj_) adj.clear();
  for (size_t v = 0; v < pred_.size(); ++v) {
    const int32_t e = pred_[v];
    if (e < 0) continue;
    tree_adj_[tail_[e]].push_back(e);
    tree_adj_[head_[e]].push_back(e);
  }
}

void TradeoffLp::relabel(int32_t root) {
  // parent_, pred_ and up_ of `root` are set; redo its subtree's links, depths and potentials
  // (tree arcs have zero reduced cost: cost + pi[tail] - pi[head] = 0)
  if (parent_[root] < 0) {
    depth_[root] = 0;
    pi_[root] = 0.0;
  } else {
    const int32_t p = parent_[root], e = pred_[root];
    depth_[root] = depth_[p] + 1;
    pi_[root] = up_[root] ? pi_[p] - cost_[e] : pi_[p] + cost_[e];
  }
  ++cur_stamp_;
  moved_.clear();
  stack_.clear();
  stack_.push_back(root);
  while (!stack_.empty()) {
    const int32_t x = stack_.back();
    stack_.pop_back();
    stamp_[x] = cur_stamp_;
    moved_.push_back(x);
    for (int32_t e : tree_adj_[x]) {
      if (e == pred_[x]) continue;
      const bool y_is_tail = head_[e] == x;
      const int32_t y = y_is_tail ? tail_[e] : head_[e];
      parent_[y] = x;
      pred_[y] = e;
      up_[y] = y_is_tail;
      depth_[y] = depth_[x] + 1;
      pi_[y] = y_is_tail ? pi_[x] - cost_[e] : pi_[x] + cost_[e];
      stack_.push_back(y);
    }
  }
}

void TradeoffLp::consider(int32_t e) {
  if (!in_cand_[e] && violation(e) < -eps_) {
    in_cand_[e] = 1;
    cand_.push_back(e);
  }
}

void TradeoffLp::price_all() {
  for (int32_t e : cand_) in_cand_[e] = 0;
  cand_.clear();
  for (int32_t e = 0; e < static_cast<int32_t>(tail_.size()); ++e) consider(e);
}

void TradeoffLp::price_moved() {
  // the subtree just relabeled moved by one constant, so only arcs with one end outside it
  // changed their reduced cost: those are the only new candidates
  for (const int32_t x : moved_) {
    for (int32_t k = inc_start_[x]; k < inc_start_[x + 1]; ++k) {
      const int32_t e = inc_[k];
      if (stamp_[tail_[e]] != cur_stamp_ || stamp_[head_[e]] != cur_stamp_) consider(e);
    }
    if (x < 2) continue;
    const int64_t i = (x - 2) / 2;
    const int32_t other = x % 2 == 0 ? x + 1 : x - 1;
    if (stamp_[other] != cur_stamp_)
      for (int32_t e = op_arcs_[i]; e < op_arcs_end_[i]; ++e) consider(e);
  }
}

int32_t TradeoffLp::find_entering() {
  // the most violating of the next kWindow candidates (dropping those that no longer
  // violate); a window keeps a pivot's pricing short while the set is large (a cold start)
  constexpr size_t kWindow = 256;
  double best = -eps_;
  int32_t in = -1;
  size_t seen = 0;
  if (cand_pos_ >= cand_.size()) cand_pos_ = 0;
  while (!cand_.empty() && seen < kWindow && seen < cand_.size()) {
    if (cand_pos_ >= cand_.size()) cand_pos_ = 0;
    const int32_t e = cand_[cand_pos_];
    const double r = violation(e);
    if (r < -eps_) {
      if (r < best) {
        best = r;
        in = e;
      }
      ++cand_pos_;
      ++seen;
    } else {
      in_cand_[e] = 0;
      cand_[cand_pos_] = cand_.back();
      cand_.pop_back();
    }
  }
  return in;
}

bool TradeoffLp::pivot(int32_t in) {
  // flow goes first -> second over the entering arc, then back up the tree to the join
  int32_t first, second;
  double delta;
  if (state_[in] == 1) {
    first = tail_[in];
    second = head_[in];
    delta = cap_[in] - flow_[in];
  } else {
    first = head_[in];
    second = tail_[in];
    delta = flow_[in];
  }
  int32_t u = first, v = second;
  while (u != v) {
    if (depth_[u] > depth_[v]) {
      u = parent_[u];
    } else if (depth_[v] > depth_[u]) {
      v = parent_[v];
    } else {
      u = parent_[u];
      v = parent_[v];
    }
  }
  const int32_t join = u;
  // the leaving arc: the last blocking one along the cycle from the join (keeps the tree
  // strongly feasible, so degenerate pivots cannot cycle)
  int result = 0;
  int32_t u_out = -1;
  for (u = first; u != join; u = parent_[u]) {
    const int32_t e = pred_[u];
    const double d = std::max(up_[u] ? flow_[e] : cap_[e] - flow_[e], 0.0);
    if (d < delta) {
      delta = d;
      u_out = u;
      result = 1;
    }
  }
  for (u = second; u != join; u = parent_[u]) {
    const int32_t e = pred_[u];
    const double d = std::max(up_[u] ? cap_[e] - flow_[e] : flow_[e], 0.0);
    if (d <= delta) {
      delta = d;
      u_out = u;
      result = 2;
    }
  }
  if (delta == kInf) return false;
  if (delta > 0) {
    flow_[in] += state_[in] * delta;
    for (u = first; u != join; u = parent_[u]) flow_[pred_[u]] += up_[u] ? -delta : delta;
    for (u = second; u != join; u = parent_[u]) flow_[pred_[u]] += up_[u] ? delta : -delta;
  }
  ++pivots_;
  if (result == 0) {                                 // the entering arc itself saturates
    state_[in] = static_cast<int8_t>(-state_[in]);
    flow_[in] = state_[in] == 1 ? 0.0 : cap_[in];
    return true;
  }
  const int32_t out = pred_[u_out];
  const bool at_upper = result == 1 ? !up_[u_out] : up_[u_out];
  flow_[out] = at_upper ? cap_[out] : 0.0;
  state_[out] = at_upper ? -1 : 1;
  state_[in] = 0;
  for (int32_t x : {tail_[out], head_[out]}) {
    auto& adj = tree_adj_[x];
    auto it = std::find(adj.begin(), adj.end(), out);
    *it = adj.back();
    adj.pop_back();
  }
  tree_adj_[tail_[in]].push_back(in);
  tree_adj_[head_[in]].push_back(in);
  // the subtree cut off below the leaving arc hangs from the entering arc now
  const int32_t root = result == 1 ? first : second;
  const int32_t hang = result == 1 ? second : first;
  parent_[root] = hang;
  pred_[root] = in;
  up_[root] = tail_[in] == root;
  relabel(root);
  price_moved();
  return true;
}

bool TradeoffLp::solve(double deadline_s, double* durations, double* bound) {
  if (!saved_.empty()) {
    // resume from the basis of the nearest solved T when it is nearer than the live one
    auto hi = saved_.lower_bound(deadline_s);
    auto best = hi;
    if (hi == saved_.end() ||
        (hi != saved_.begin() && deadline_s - std::prev(hi)->first < hi->first - deadline_s))
      best = std::prev(hi);
    if (!solved_ || std::abs(best->first - deadline_s) < std::abs(current_ - deadline_s))
      restore(best->second);
  }
  cost_[priced_return_] = deadline_s;
  relabel(kSource);
  price_all();
  const int64_t limit = pivots_ + 200 * static_cast<int64_t>(tail_.size()) + 1000;
  for (;;) {
    const int32_t in = find_entering();
    if (in < 0) break;
    if (!pivot(in)) return false;
    if (pivots_ > limit)
      throw Error(ErrorKind::config, "pipeline relaxation: the network simplex does not converge",
                  "report this pipeline to gearshift; pipeline_lp.LP_SOLVER = 'highs' solves it");
  }
  current_ = deadline_s;
  solved_ = true;
  if (saved_.size() < max_saved_ && !saved_.count(deadline_s))
    saved_.emplace(deadline_s, Basis{flow_, state_, parent_, pred_, up_});
  double cost = 0.0;
  for (size_t e = 0; e < tail_.size(); ++e)
    if (flow_[e] != 0.0) cost += cost_[e] * flow_[e];
  *bound = base_cost_ - cost;
  // finish times are -pi (the source at 0); a duration is its arcs' tension, within the hull
  for (int64_t i = 0; i < n_; ++i) {
    const double d = pi_[start_node(i)] - pi_[finish_node(i)];
    durations[i] = std::min(std::max(d, fast_s_[i]), slow_s_[i]);
  }
  return true;
}

}  // namespace gearshift::pipeline
