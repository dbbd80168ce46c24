// librbd aio completions: the callback runs on a librbd thread and only hands the op to the JS
// thread through the addon's thread-safe function. No libuv pool thread waits on a completion.
#pragma once

#include <napi.h>
#include <rbd/librbd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "handles.h"

namespace cephrbd {

class AioOp {
 public:
  // JS thread, with the aio return value (bytes for reads, otherwise 0 or a negative errno).
  using Settle = std::function<void(Napi::Env env, ssize_t ret)>;

  // JS thread. Creates the completion; holds references on `holds` until settled.
  static AioOp* Create(Napi::Env env, std::vector<Handle*> holds, Settle settle);

  // JS thread: a promise that resolves with result(env, ret) or rejects through CephError.
  static AioOp* CreateWithPromise(Napi::Env env, std::vector<Handle*> holds, const char* call,
                                  std::string object, std::function<Napi::Value(Napi::Env, ssize_t)> result,
                                  Napi::Promise* promise);

  rbd_completion_t completion() const { return completion_; }
  // Keeps a JS value (the Buffer librbd reads into or writes from) alive until settled.
  void Keep(Napi::Value v) { kept_ = Napi::Persistent(v.As<Napi::Object>()); }

  // JS thread: the submit call returned an error synchronously, so librbd will not call back.
  void SubmitFailed(Napi::Env env, int r);

  // Storage librbd fills in on rbd_aio_open*.
  rbd_image_t openedImage = nullptr;

 private:
  friend void DispatchAio(Napi::Env, Napi::Function, AddonData*, AioOp*);
  AioOp(Napi::Env env, std::vector<Handle*> holds, Settle settle);
  static void OnComplete(rbd_completion_t c, void* arg);  // librbd thread
  void Finish(Napi::Env env);                             // JS thread; deletes this

  AddonData* data_;
  std::shared_ptr<AioGate> gate_;
  Holds holds_;
  Settle settle_;
  Napi::ObjectReference kept_;
  rbd_completion_t completion_ = nullptr;
  ssize_t ret_ = 0;
};

}  // namespace cephrbd
