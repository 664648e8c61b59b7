#pragma once
// A tiny test harness: no dependency, one executable per file, non-zero exit on failure.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "common/errors.h"

namespace gstest {

inline int& failures() { static int n = 0; return n; }
inline std::vector<std::pair<const char*, std::function<void()>>>& registry() {
  static std::vector<std::pair<const char*, std::function<void()>>> r;
  return r;
}
struct Register {
  Register(const char* name, std::function<void()> fn) { registry().emplace_back(name, std::move(fn)); }
};
inline int run_all() {
  for (auto& [name, fn] : registry()) {
    int before = failures();
    try {
      fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "  %s: unexpected exception: %s\n", name, e.what());
      ++failures();
    }
    std::printf("%s %s\n", failures() == before ? "ok  " : "FAIL", name);
  }
  std::printf("%d failure(s)\n", failures());
  return failures() == 0 ? 0 : 1;
}

}  // namespace gstest

#define TEST(name) \
  static void name(); \
  static gstest::Register reg_##name(#name, name); \
  static void name()

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++gstest::failures();                                                          \
    }                                                                                \
  } while (0)

#define CHECK_EQ(a, b)                                                                      \
  do {                                                                                      \
    auto va = (a);                                                                          \
    auto vb = (b);                                                                          \
    if (!(va == vb)) {                                                                      \
      std::fprintf(stderr, "  %s:%d: CHECK_EQ(%s, %s) failed: %s vs %s\n", __FILE__, __LINE__, \
                   #a, #b, std::to_string(va).c_str(), std::to_string(vb).c_str());           \
      ++gstest::failures();                                                                 \
    }                                                                                       \
  } while (0)

#define CHECK_THROWS_KIND(expr, k)                                                         \
  do {                                                                                     \
    bool thrown = false;                                                                   \
    try {                                                                                  \
      expr;                                                                                \
    } catch (const gearshift::Error& e) {                                                  \
      thrown = e.kind() == (k);                                                            \
      if (!thrown) std::fprintf(stderr, "  wrong kind: %s\n", e.what());                 \
    }                                                                                      \
    if (!thrown) {                                                                         \
      std::fprintf(stderr, "  %s:%d: %s did not throw %s\n", __FILE__, __LINE__, #expr, #k); \
      ++gstest::failures();                                                                \
    }                                                                                      \
  } while (0)

#define TEST_MAIN() \
  int main() { return gstest::run_all(); }
