#pragma once
// The few CUPTI / driver / runtime types the launch hook needs, copied in layout from the CUDA 13
// headers (cupti_callbacks.h, generated_cuda_meta.h, generated_cuda_runtime_api_meta.h), so the
// hook compiles without a toolkit (the pytorch/kineto habit). Functions are resolved at run time.
// Layouts have been stable since CUDA 11.6; the callback ids are ABI constants.
#include <cstddef>
#include <cstdint>

namespace gearshift::cupti {

using CUcontext = struct CUctx_st*;
using CUstream = struct CUstream_st*;
using CUfunction = struct CUfunc_st*;
using CUresult = int;
using CUdeviceptr = unsigned long long;
using CUptiResult = int;
using CUpti_CallbackId = uint32_t;
using CUpti_SubscriberHandle = struct CUpti_Subscriber_st*;

constexpr CUptiResult CUPTI_SUCCESS = 0;
constexpr CUptiResult CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED = 39;

enum CUpti_ApiCallbackSite : int { CUPTI_API_ENTER = 0, CUPTI_API_EXIT = 1 };
enum CUpti_CallbackDomain : int {
  CUPTI_CB_DOMAIN_INVALID = 0,
  CUPTI_CB_DOMAIN_DRIVER_API = 1,
  CUPTI_CB_DOMAIN_RUNTIME_API = 2,
};

// cupti_driver_cbid.h
constexpr CUpti_CallbackId CBID_cuLaunchKernel = 307;
constexpr CUpti_CallbackId CBID_cuLaunchKernel_ptsz = 442;
constexpr CUpti_CallbackId CBID_cuLaunchKernelEx = 652;
constexpr CUpti_CallbackId CBID_cuLaunchKernelEx_ptsz = 653;
// cupti_runtime_cbid.h
constexpr CUpti_CallbackId CBID_cudaLaunchKernel_v7000 = 211;
constexpr CUpti_CallbackId CBID_cudaLaunchKernel_ptsz_v7000 = 214;
constexpr CUpti_CallbackId CBID_cudaLaunchKernelExC_v11060 = 430;
constexpr CUpti_CallbackId CBID_cudaLaunchKernelExC_ptsz_v11060 = 431;
// CUDA 13's internal launch behind <<<>>>; its parameter layout is not published, so the hook
// takes stream and dimensions from the driver callback nested inside it.
constexpr CUpti_CallbackId CBID___cudaLaunchKernel_v13000 = 505;
constexpr CUpti_CallbackId CBID___cudaLaunchKernel_ptsz_v13000 = 506;

struct CUpti_CallbackData {
  CUpti_ApiCallbackSite callbackSite;
  const char* functionName;
  const void* functionParams;
  void* functionReturnValue;
  const char* symbolName;
  CUcontext context;
  uint32_t contextUid;
  uint64_t* correlationData;
  uint32_t correlationId;
};

using CUpti_CallbackFunc = void (*)(void* userdata, CUpti_CallbackDomain domain,
                                    CUpti_CallbackId cbid, const void* cbdata);

struct dim3 {
  unsigned int x, y, z;
};

struct cuLaunchKernel_params {
  CUfunction f;
  unsigned int gridDimX, gridDimY, gridDimZ;
  unsigned int blockDimX, blockDimY, blockDimZ;
  unsigned int sharedMemBytes;
  CUstream hStream;
  void** kernelParams;
  void** extra;
};

struct CUlaunchConfig {
  unsigned int gridDimX, gridDimY, gridDimZ;
  unsigned int blockDimX, blockDimY, blockDimZ;
  unsigned int sharedMemBytes;
  CUstream hStream;
  void* attrs;
  unsigned int numAttrs;
};

struct cuLaunchKernelEx_params {
  const CUlaunchConfig* config;
  CUfunction f;
  void** kernelParams;
  void** extra;
};

struct cudaLaunchKernel_v7000_params {
  const void* func;
  dim3 gridDim;
  dim3 blockDim;
  void** args;
  size_t sharedMem;
  CUstream stream;
};

struct cudaLaunchConfig_t {
  dim3 gridDim;
  dim3 blockDim;
  size_t dynamicSmemBytes;
  CUstream stream;
  void* attrs;
  unsigned int numAttrs;
};

struct cudaLaunchKernelExC_v11060_params {
  const cudaLaunchConfig_t* config;
  const void* func;
  void** args;
};

// Driver constants used by the stream-ordered signal.
constexpr unsigned int CU_MEMHOSTALLOC_PORTABLE = 0x01;
constexpr unsigned int CU_MEMHOSTALLOC_DEVICEMAP = 0x02;
constexpr unsigned int CU_STREAM_WRITE_VALUE_DEFAULT = 0x0;
// The handle a _ptsz launch on "stream 0" really means (cuda.h: CU_STREAM_PER_THREAD).
constexpr uint64_t CU_STREAM_PER_THREAD = 0x2;

}  // namespace gearshift::cupti
