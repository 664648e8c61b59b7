#include "safety/signals.h"

#include <signal.h>
#include <time.h>

#include <atomic>
#include <mutex>

namespace gearshift::safety {

namespace {
constexpr int kMax = 16;
std::atomic<signal::Controller*> g_controllers[kMax];
std::atomic<int> g_handled{0};
struct sigaction g_prev_int, g_prev_term;
std::mutex g_install_mu;
bool g_installed = false;

void chain(int sig, siginfo_t* info, void* ctx) {
  const struct sigaction& prev = sig == SIGINT ? g_prev_int : g_prev_term;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction) prev.sa_sigaction(sig, info, ctx);
    return;
  }
  if (prev.sa_handler == SIG_IGN) return;
  if (prev.sa_handler == SIG_DFL) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, nullptr);
    raise(sig);  // delivered when this handler returns: the default action, now clocks are reset
    return;
  }
  prev.sa_handler(sig);
}

void handler(int sig, siginfo_t* info, void* ctx) {
  g_handled.fetch_add(1);
  for (auto& slot : g_controllers) {
    if (auto* c = slot.load()) c->disable();
  }
  // Wait (bounded) for the controller threads to reset the clocks.
  for (int waited_ms = 0; waited_ms < 2000; ++waited_ms) {
    bool pending = false;
    for (auto& slot : g_controllers) {
      auto* c = slot.load();
      if (c && c->running() && c->reset_pending()) pending = true;
    }
    if (!pending) break;
    struct timespec ts {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  chain(sig, info, ctx);
}

void install_locked() {
  if (g_installed) return;
  struct sigaction sa {};
  sa.sa_sigaction = &handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_prev_int);
  sigaction(SIGTERM, &sa, &g_prev_term);
  g_installed = true;
}

void uninstall_locked() {
  if (!g_installed) return;
  for (auto& slot : g_controllers) {
    if (slot.load()) return;
  }
  // Put the previous handlers back only if ours is still the one installed.
  struct sigaction cur {};
  sigaction(SIGINT, nullptr, &cur);
  if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == &handler) sigaction(SIGINT, &g_prev_int, nullptr);
  sigaction(SIGTERM, nullptr, &cur);
  if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == &handler) sigaction(SIGTERM, &g_prev_term, nullptr);
  g_installed = false;
}
}  // namespace

void register_for_signals(signal::Controller* c) {
  std::lock_guard<std::mutex> lk(g_install_mu);
  for (auto& slot : g_controllers) {
    signal::Controller* expected = nullptr;
    if (slot.compare_exchange_strong(expected, c)) break;
  }
  install_locked();
}

void unregister_for_signals(signal::Controller* c) {
  std::lock_guard<std::mutex> lk(g_install_mu);
  for (auto& slot : g_controllers) {
    signal::Controller* expected = c;
    slot.compare_exchange_strong(expected, nullptr);
  }
  uninstall_locked();
}

int signals_handled() { return g_handled.load(); }

}  // namespace gearshift::safety
