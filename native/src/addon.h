// Per-environment state of the addon.
#pragma once

#include <napi.h>

#include <cstddef>
#include <memory>
#include <mutex>

namespace cephrbd {

class AioOp;
struct AddonData;

// Runs on the JS thread for every finished librbd aio completion.
void DispatchAio(Napi::Env env, Napi::Function unused, AddonData* data, AioOp* op);
using AioTsfn = Napi::TypedThreadSafeFunction<AddonData, AioOp, DispatchAio>;

// One thread-safe function carries every aio completion back to the JS thread. librbd threads
// may complete an op after the environment is gone (process exit with I/O in flight); the gate
// closes, under its mutex, in the environment cleanup hook, so no callback touches the
// thread-safe function afterwards. Ops hold the gate, so it outlives AddonData.
struct AioGate {
  std::mutex mutex;
  bool open = true;
  AioTsfn tsfn;
};

struct AddonData {
  Napi::FunctionReference clusterCtor;
  Napi::FunctionReference ioctxCtor;
  Napi::FunctionReference imageCtor;
  Napi::FunctionReference cancelTokenCtor;
  std::shared_ptr<AioGate> aio = std::make_shared<AioGate>();
  // Completions not yet settled; the thread-safe function holds the event loop open only
  // while there are some. JS thread only.
  size_t aioPending = 0;
};

inline AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

}  // namespace cephrbd
