// Image: one open rbd_image_t. I/O goes through librbd aio completions, everything else through
// async workers.
#pragma once

#include <napi.h>
#include <rbd/librbd.h>

#include <string>

#include "errors.h"
#include "handles.h"

namespace cephrbd {

// What statImage / Image.stat report, gathered on a worker thread.
struct StatData {
  rbd_image_info_t info{};
  uint64_t features = 0;
  bool hasParent = false;
  std::string parentPool, parentNs, parentImage, parentImageId, parentSnap;
  uint64_t parentSnapId = 0;
  bool parentTrash = false;
};

// Worker thread: rbd_stat, rbd_get_features, rbd_get_parent.
void ReadStat(rbd_image_t image, Outcome& o, StatData& s);
Napi::Value StatToJs(Napi::Env env, const StatData& s);
// The `parent` part alone (null when the image has no parent).
Napi::Value ParentToJs(Napi::Env env, const StatData& s);

class NativeImage : public Napi::ObjectWrap<NativeImage> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Constructed only from C++ with an External<ImageHandle> whose reference it adopts.
  explicit NativeImage(const Napi::CallbackInfo& info);
  ~NativeImage() override;
  // The handle calls in other files (group.cc) use; null once closed.
  ImageHandle* handle() const { return h_; }

 private:
  Napi::Value Size(const Napi::CallbackInfo& info);
  Napi::Value Stat(const Napi::CallbackInfo& info);
  Napi::Value Features(const Napi::CallbackInfo& info);
  Napi::Value Flags(const Napi::CallbackInfo& info);
  Napi::Value ParentInfo(const Napi::CallbackInfo& info);
  Napi::Value DiffIterate(const Napi::CallbackInfo& info);
  Napi::Value DataObjects(const Napi::CallbackInfo& info);  // objects.cc
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Discard(const Napi::CallbackInfo& info);
  Napi::Value WriteZeroes(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Resize(const Napi::CallbackInfo& info);
  Napi::Value Flatten(const Napi::CallbackInfo& info);
  Napi::Value SnapCreate(const Napi::CallbackInfo& info);
  Napi::Value SnapRemove(const Napi::CallbackInfo& info);
  Napi::Value SnapRemoveById(const Napi::CallbackInfo& info);
  Napi::Value SnapList(const Napi::CallbackInfo& info);
  Napi::Value SnapProtect(const Napi::CallbackInfo& info);
  Napi::Value SnapUnprotect(const Napi::CallbackInfo& info);
  Napi::Value SnapIsProtected(const Napi::CallbackInfo& info);
  Napi::Value SnapExists(const Napi::CallbackInfo& info);
  Napi::Value ListChildren(const Napi::CallbackInfo& info);
  Napi::Value SnapSet(const Napi::CallbackInfo& info);
  Napi::Value MetadataGet(const Napi::CallbackInfo& info);
  Napi::Value MetadataSet(const Napi::CallbackInfo& info);
  Napi::Value MetadataRemove(const Napi::CallbackInfo& info);
  Napi::Value MetadataList(const Napi::CallbackInfo& info);
  Napi::Value LockExclusive(const Napi::CallbackInfo& info);
  Napi::Value Unlock(const Napi::CallbackInfo& info);
  Napi::Value ListLockers(const Napi::CallbackInfo& info);
  Napi::Value BreakLock(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  // A simple call on the image in a worker: exec(image, outcome), resolved with resolve(env).
  using ImageExec = std::function<void(rbd_image_t, Outcome&)>;
  Napi::Value Call(Napi::Env env, const char* call, ImageExec exec,
                   std::function<Napi::Value(Napi::Env)> resolve = nullptr,
                   const std::string& snap = "");
  // Submit one aio request on the JS thread; the promise settles from its completion.
  using AioSubmit = std::function<int(rbd_image_t, rbd_completion_t)>;
  Napi::Value Aio(Napi::Env env, const char* call, AioSubmit submit, Napi::Value keep,
                  std::function<Napi::Value(Napi::Env, ssize_t)> result = nullptr);

  ImageHandle* h_ = nullptr;
  std::string spec_;  // for errors after close
};

}  // namespace cephrbd
