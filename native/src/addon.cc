// Module entry: the classes index.js builds on. Nothing here makes a librados/librbd call.
#include <napi.h>

#include "addon.h"
#include "cluster.h"
#include "handles.h"
#include "image.h"
#include "ioctx.h"
#include "workers.h"

namespace cephrbd {

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
  return exports;
}

}  // namespace cephrbd

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return cephrbd::Init(env, exports);
}

NODE_API_MODULE(ceph_rbd, InitModule)
