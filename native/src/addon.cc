// Module entry: the classes index.js builds on, and trimMemory. Nothing here makes a librados/librbd call.
#include <napi.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <memory>

#include "addon.h"
#include "cluster.h"
#include "group.h"
#include "handles.h"
#include "image.h"
#include "ioctx.h"
#include "mgr.h"
#include "rados.h"
#include "workers.h"

namespace cephrbd {

// trimMemory() -> Promise<boolean> — malloc_trim(0) in a pool thread: glibc hands the free memory of every
// malloc arena back to the kernel. librados' threads each allocate from their own arena, and what a flatten
// or a copy frees stays there otherwise, so a long-running process's RSS ratchets up run after run.
// Resolves false where there is no glibc (nothing to do).
static Napi::Value TrimMemory(const Napi::CallbackInfo& info) {
  auto released = std::make_shared<bool>(false);
  return CallWorker::Start(
      info.Env(), "process", {},
      [released](Outcome&) {
#ifdef __GLIBC__
        *released = malloc_trim(0) == 1;
#endif
      },
      [released](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, *released); });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);

  Napi::Function cluster = NativeCluster::Define(env);
  Napi::Function ioctx = NativeIoctx::Define(env);
  Napi::Function image = NativeImage::Define(env);
  Napi::Function cancel = CancelToken::Define(env);
  data->clusterCtor = Napi::Persistent(cluster);
  data->ioctxCtor = Napi::Persistent(ioctx);
  data->imageCtor = Napi::Persistent(image);
  data->cancelTokenCtor = Napi::Persistent(cancel);

  data->aio->tsfn = AioTsfn::New(env, "ceph-rbd-aio", 0, 1, data);
  data->aio->tsfn.Unref(env);

  // Runs before Node-API tears the environment down. Handles nobody closed are left to the
  // process exit instead of being torn down while the environment goes away.
  napi_add_env_cleanup_hook(
      env,
      [](void* arg) {
        auto* gate = static_cast<AioGate*>(arg);
        std::lock_guard<std::mutex> lock(gate->mutex);
        gate->open = false;
        Handle::exiting.store(true);
      },
      data->aio.get());

  exports.Set("NativeCluster", cluster);
  exports.Set("NativeIoctx", ioctx);
  exports.Set("NativeImage", image);
  exports.Set("CancelToken", cancel);
  exports.Set("trimMemory", Napi::Function::New(env, TrimMemory, "trimMemory"));
  RegisterRados(env, exports);
  RegisterGroup(env, exports);
  exports.Set("mgrCommand", Napi::Function::New(env, MgrCommand, "mgrCommand"));
  exports.Set("monCommand", Napi::Function::New(env, MonCommand, "monCommand"));
  return exports;
}

}  // namespace cephrbd

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return cephrbd::Init(env, exports);
}

NODE_API_MODULE(ceph_rbd, InitModule)
