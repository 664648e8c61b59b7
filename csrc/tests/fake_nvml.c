/* A stand-in libnvidia-ml for tests: one GPU, a few clocks, return codes chosen by environment
 * (FAKE_NVML_LOCK_RC, FAKE_NVML_RESET_RC, FAKE_NVML_INIT_RC). Records the last lock/reset. */
#include <stdlib.h>

static int env_rc(const char* name) {
  const char* v = getenv(name);
  return v ? atoi(v) : 0;
}
static unsigned int g_locked_min = 0, g_locked_max = 0;
static int g_resets = 0;

int nvmlInit_v2(void) { return env_rc("FAKE_NVML_INIT_RC"); }
int nvmlShutdown(void) { return 0; }
int nvmlDeviceGetCount_v2(unsigned int* n) { *n = 1; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void** h) {
  if (i != 0) return 2;
  *h = (void*)0x1;
  return 0;
}
int nvmlDeviceGetSupportedMemoryClocks(void* h, unsigned int* n, unsigned int* c) {
  (void)h;
  if (*n < 2) return 7;
  c[0] = 1593; c[1] = 2619; *n = 2;
  return 0;
}
int nvmlDeviceGetSupportedGraphicsClocks(void* h, unsigned int mem, unsigned int* n, unsigned int* c) {
  (void)h;
  if (mem != 2619) return 2;
  if (*n < 3) return 7;
  c[0] = 1000; c[1] = 1980; c[2] = 1500; *n = 3;
  return 0;
}
int nvmlDeviceSetGpuLockedClocks(void* h, unsigned int lo, unsigned int hi) {
  (void)h;
  int rc = env_rc("FAKE_NVML_LOCK_RC");
  if (rc) return rc;
  g_locked_min = lo; g_locked_max = hi;
  return 0;
}
int nvmlDeviceResetGpuLockedClocks(void* h) {
  (void)h;
  int rc = env_rc("FAKE_NVML_RESET_RC");
  if (rc) return rc;
  g_locked_min = g_locked_max = 0;
  ++g_resets;
  return 0;
}
unsigned int fake_nvml_locked_mhz(void) { return g_locked_min == g_locked_max ? g_locked_min : 0; }
int fake_nvml_resets(void) { return g_resets; }
