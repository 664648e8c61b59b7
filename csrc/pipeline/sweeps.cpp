#include "pipeline/sweeps.h"

#include <algorithm>
#include <limits>
#include <string>

#include "common/errors.h"

namespace gearshift::pipeline {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

[[noreturn]] void bad(const std::string& what) {
  throw Error(ErrorKind::config, "pipeline sweeps: " + what,
              "build the sweeps from a PipelineProblem (gearshift.search.pipeline_lp)");
}

// Python's bisect_right(a[0:n], x) - 1: the last index whose value is <= x (-1 if none).
inline int64_t last_at_most(const double* a, int64_t n, double x) {
  return static_cast<int64_t>(std::upper_bound(a, a + n, x) - a) - 1;
}

}  // namespace

Dag::Dag(std::vector<int64_t> prev, std::vector<int64_t> cross, std::vector<uint8_t> p2p)
    : prev_(std::move(prev)), cross_(std::move(cross)), p2p_(std::move(p2p)) {
  const int64_t n = num_ops();
  if (static_cast<int64_t>(cross_.size()) != n || static_cast<int64_t>(p2p_.size()) != n)
    bad("prev, cross and p2p differ in length");
  std::vector<int64_t> count(n + 1, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p : {prev_[i], cross_[i]}) {
      if (p >= i || p < -1) bad("the computations are not in topological order");
      if (p >= 0) ++count[p + 1];
    }
  for (int64_t i = 0; i < n; ++i) count[i + 1] += count[i];
  succ_start_ = count;
  succ_.assign(count[n], 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p : {prev_[i], cross_[i]})
      if (p >= 0) succ_[count[p]++] = i;
}

void Dag::schedule(const double* dur, double p2p_s, double* start, double* end) const {
  const int64_t n = num_ops();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = prev_[i], b = cross_[i];
    double t = a >= 0 ? end[a] : 0.0;
    if (b >= 0) {
      const double tb = p2p_[i] ? end[b] + p2p_s : end[b];
      if (tb > t) t = tb;
    }
    start[i] = t;
    end[i] = t + dur[i];
  }
}

void Dag::earliest_finish(const double* dur, double* ef, int64_t from) const {
  const int64_t n = num_ops();
  for (int64_t i = from; i < n; ++i) ef[i] = earliest_start(i, ef) + dur[i];
}

void Dag::latest_start(const double* dur, double limit, double* ls) const {
  for (int64_t i = num_ops() - 1; i >= 0; --i) ls[i] = latest_finish(i, ls, limit) - dur[i];
}

Sweeps::Sweeps(Dag dag, std::vector<int64_t> op_table,
               std::vector<int64_t> option_start, std::vector<double> option_time_s,
               std::vector<double> option_cost_j, std::vector<int64_t> hull_start,
               std::vector<int64_t> hull_option)
    : dag_(std::move(dag)), table_(std::move(op_table)),
      start_(std::move(option_start)), time_(std::move(option_time_s)),
      cost_(std::move(option_cost_j)), hull_start_(std::move(hull_start)),
      hull_option_(std::move(hull_option)) {
  const int64_t n = num_ops();
  if (static_cast<int64_t>(table_.size()) != n) bad("op_table is not one entry per computation");
  if (start_.empty() || start_.front() != 0 ||
      start_.back() != static_cast<int64_t>(time_.size()) || time_.size() != cost_.size())
    bad("option_start does not index option_time_s / option_cost_j");
  const int64_t tables = static_cast<int64_t>(start_.size()) - 1;
  if (static_cast<int64_t>(hull_start_.size()) != tables + 1 || hull_start_.front() != 0 ||
      hull_start_.back() != static_cast<int64_t>(hull_option_.size()))
    bad("hull_start does not index hull_option");
  for (int64_t k = 0; k < tables; ++k) {
    if (start_[k + 1] <= start_[k]) bad("an option table is empty");
    if (hull_start_[k + 1] <= hull_start_[k]) bad("a hull is empty");
    for (int64_t h = hull_start_[k]; h < hull_start_[k + 1]; ++h)
      if (hull_option_[h] < 0 || hull_option_[h] >= start_[k + 1] - start_[k])
        bad("a hull vertex is not an option of its table");
  }
  for (int64_t i = 0; i < n; ++i)
    if (table_[i] < 0 || table_[i] >= tables) bad("op_table names a missing table");
  hull_time_.resize(hull_option_.size());
  for (int64_t k = 0; k < tables; ++k)
    for (int64_t h = hull_start_[k]; h < hull_start_[k + 1]; ++h)
      hull_time_[h] = time_[start_[k] + hull_option_[h]];
  // cost per second saved by each faster move; the first (fastest) target wins ties
  rate_.assign(time_.size(), kInf);
  rate_to_.assign(time_.size(), 0);
  for (int64_t k = 0; k < tables; ++k) {
    const double* t = &time_[start_[k]];
    const double* c = &cost_[start_[k]];
    for (int64_t cur = 1; cur < start_[k + 1] - start_[k]; ++cur) {
      double best = kInf;
      int64_t best_j = 0;
      for (int64_t j = 0; j < cur; ++j) {
        const double r = (c[j] - c[cur]) / (t[cur] - t[j]);
        if (r < best) {
          best = r;
          best_j = j;
        }
      }
      rate_[start_[k] + cur] = best;
      rate_to_[start_[k] + cur] = best_j;
    }
  }
}

int64_t Sweeps::options(int64_t i) const { return start_[table_[i] + 1] - start_[table_[i]]; }

void Sweeps::hull(int64_t i, std::vector<double>& time_s, std::vector<double>& cost_j) const {
  const int64_t k = table_[i];
  time_s.clear();
  cost_j.clear();
  for (int64_t h = hull_start_[k]; h < hull_start_[k + 1]; ++h) {
    time_s.push_back(time_[start_[k] + hull_option_[h]]);
    cost_j.push_back(cost_[start_[k] + hull_option_[h]]);
  }
}

void Sweeps::durations(const int64_t* choice, double* dur) const {
  const int64_t n = num_ops();
  for (int64_t i = 0; i < n; ++i) {
    if (choice[i] < 0 || choice[i] >= options(i)) bad("a choice is not an option of its computation");
    dur[i] = times(i)[choice[i]];
  }
}

bool Sweeps::crash(int64_t* choice, double deadline_s, int64_t max_steps) const {
  const int64_t n = num_ops();
  std::vector<double> dur(n), ef(n), ls(n);
  durations(choice, dur.data());
  const double limit = deadline_s * (1 + 1e-12);
  const int64_t steps = max_steps >= 0 ? max_steps : 4 * n;
  int64_t changed = 0;            // the first computation whose finish may have moved
  for (int64_t step = 0; step < steps; ++step) {
    dag_.earliest_finish(dur.data(), ef.data(), changed);
    double mk = -kInf;
    for (int64_t i = 0; i < n; ++i)
      if (ef[i] > mk) mk = ef[i];
    if (mk <= limit) return true;
    // backward from the makespan: a computation with no float is critical; among those that
    // can speed up, the cheapest per second (the last in topological order on ties)
    int64_t best = -1, best_to = 0;
    double best_rate = kInf;
    const double tol = 1e-9 * mk;
    for (int64_t i = n - 1; i >= 0; --i) {
      const double lf = dag_.latest_finish(i, ls.data(), mk);
      ls[i] = lf - dur[i];
      const int64_t c = choice[i];
      if (c > 0 && lf - ef[i] <= tol) {
        const int64_t o = start_[table_[i]] + c;
        if (rate_[o] < best_rate) {
          best = i;
          best_rate = rate_[o];
          best_to = rate_to_[o];
        }
      }
    }
    if (best < 0) return false;
    choice[best] = best_to;
    dur[best] = times(best)[best_to];
    changed = best;
  }
  return false;
}

void Sweeps::fill_slack(int64_t* choice, double deadline_s, int max_passes) const {
  const int64_t n = num_ops();
  std::vector<double> dur(n), a(n), b(n);
  durations(choice, dur.data());
  const double limit = deadline_s * (1 + 1e-12);
  for (int p = 0; p < max_passes; ++p) {
    bool changed = false;
    // the slowest option of op i that fits its window [es, lf], if slower than its current one
    auto widen = [&](int64_t i, double es, double lf) {
      const double* t = times(i);
      const int64_t j = last_at_most(t, options(i), lf - es);
      if (j > choice[i]) {
        choice[i] = j;
        dur[i] = t[j];
        changed = true;
      }
    };
    if (p % 2 == 0) {
      // earliest finishes with the current durations, then latest starts from the sink back
      double* ef = a.data();
      double* start = b.data();
      dag_.earliest_finish(dur.data(), ef);
      for (int64_t i = n - 1; i >= 0; --i) {
        const double lf = dag_.latest_finish(i, start, limit);
        widen(i, ef[i] - dur[i], lf);
        start[i] = lf - dur[i];
      }
    } else {
      // latest starts with the current durations, then earliest finishes from the source on
      double* ls = a.data();
      double* end = b.data();
      dag_.latest_start(dur.data(), limit, ls);
      for (int64_t i = 0; i < n; ++i) {
        const double es = dag_.earliest_start(i, end);
        widen(i, es, ls[i] + dur[i]);
        end[i] = es + dur[i];
      }
    }
    if (!changed && p >= 1) break;
  }
}

void Sweeps::round_down(const double* d, int64_t* choice) const {
  const int64_t n = num_ops();
  for (int64_t i = 0; i < n; ++i)
    choice[i] = std::max<int64_t>(last_at_most(times(i), options(i), d[i] * (1 + 1e-12)), 0);
}

void Sweeps::round_diffuse(const double* d, double deadline_s, int64_t* choice) const {
  const int64_t n = num_ops();
  const double limit = deadline_s * (1 + 1e-12);
  // each computation may finish as late as the relaxed durations allow (their latest starts)
  std::vector<double> ls(n), end(n);
  dag_.latest_start(d, limit, ls.data());
  for (int64_t i = 0; i < n; ++i) {
    const double s = dag_.earliest_start(i, end.data());
    const double lf = dag_.latest_finish(i, ls.data(), limit);
    const int64_t k = table_[i];
    const double* vt = &hull_time_[hull_start_[k]];
    const int64_t j = std::max<int64_t>(last_at_most(vt, hull_start_[k + 1] - hull_start_[k],
                                                     lf - s), 0);
    choice[i] = hull_option_[hull_start_[k] + j];
    end[i] = s + vt[j];
  }
}

}  // namespace gearshift::pipeline
