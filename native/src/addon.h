// Per-environment state of the addon.
#pragma once

#include <napi.h>

#include <cstddef>

namespace cephrbd {

class AioOp;
struct AddonData;

// Runs on the JS thread for every finished librbd aio completion.
void DispatchAio(Napi::Env env, Napi::Function unused, AddonData* data, AioOp* op);
using AioTsfn = Napi::TypedThreadSafeFunction<AddonData, AioOp, DispatchAio>;

struct AddonData {
  Napi::FunctionReference clusterCtor;
  Napi::FunctionReference ioctxCtor;
  Napi::FunctionReference imageCtor;
  Napi::FunctionReference cancelTokenCtor;
  // One thread-safe function carries every aio completion back to the JS thread. It holds the
  // event loop open only while completions are pending.
  AioTsfn aio;
  size_t aioPending = 0;
};

inline AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

}  // namespace cephrbd
