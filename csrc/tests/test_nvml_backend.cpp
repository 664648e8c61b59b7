// The NVML backend against a fake libnvidia-ml: clock listing, locking, and the return-code
// table (NO_PERMISSION must become a typed error that names the fixes).
#include <cstdlib>
#include <cstring>

#include "check.h"
#include "clock/nvml.h"

using namespace gearshift;
using namespace gearshift::clock;

static DynLib& fake_lib() {
  static DynLib lib("fake-nvml", {std::getenv("GEARSHIFT_FAKE_NVML") ? std::getenv("GEARSHIFT_FAKE_NVML") : "missing"});
  return lib;
}

TEST(nvml_lists_sorted_clocks_and_locks) {
  NvmlBackend b(&fake_lib());
  CHECK_EQ(b.device_count(), 1);
  auto clocks = b.supported_sm_mhz(0);
  CHECK_EQ(clocks.size(), size_t{3});
  CHECK_EQ(clocks[0], 1980);
  CHECK_EQ(clocks[2], 1000);
  b.lock_sm_mhz(0, 1500);
  auto locked = reinterpret_cast<unsigned (*)()>(fake_lib().symbol("fake_nvml_locked_mhz"));
  CHECK_EQ(locked(), 1500u);
  b.reset(0);
  CHECK_EQ(locked(), 0u);
  CHECK_THROWS_KIND(b.lock_sm_mhz(1, 1500), ErrorKind::device);
}

TEST(nvml_no_permission_is_typed_and_names_the_fix) {
  NvmlBackend b(&fake_lib());
  setenv("FAKE_NVML_LOCK_RC", "4", 1);
  try {
    b.lock_sm_mhz(0, 1500);
    CHECK(false);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::no_permission);
    CHECK(std::strstr(e.what(), "NVML_ERROR_NO_PERMISSION") != nullptr);
    CHECK(e.fix().find("gearshift daemon") != std::string::npos);
    CHECK(e.fix().find("dry-run") != std::string::npos);
  }
  setenv("FAKE_NVML_LOCK_RC", "2", 1);
  CHECK_THROWS_KIND(b.lock_sm_mhz(0, 1234), ErrorKind::unsupported_clock);
  setenv("FAKE_NVML_LOCK_RC", "15", 1);
  CHECK_THROWS_KIND(b.lock_sm_mhz(0, 1500), ErrorKind::device);
  unsetenv("FAKE_NVML_LOCK_RC");
}

TEST(nvml_missing_library_is_library_unavailable) {
  DynLib missing("nvml", {"/nonexistent/libnvidia-ml.so.1"});
  CHECK_THROWS_KIND(NvmlBackend b(&missing), ErrorKind::library_unavailable);
}

TEST(nvml_table_covers_permission_and_unknown) {
  bool perm = false, unknown = false;
  for (const auto& c : nvml_code_table()) {
    perm |= c.code == 4 && c.kind == ErrorKind::no_permission;
    unknown |= c.code == 999;
  }
  CHECK(perm && unknown);
  CHECK_THROWS_KIND(throw_nvml(12345, "x", 0), ErrorKind::device);
}

TEST_MAIN()
