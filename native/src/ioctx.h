// Ioctx: one rados_ioctx_t (pool + namespace) and the image-level admin calls made through it.
#pragma once

#include <napi.h>

#include "handles.h"

namespace cephrbd {

class NativeIoctx : public Napi::ObjectWrap<NativeIoctx> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Constructed only from C++ with an External<IoctxHandle> whose reference it adopts.
  explicit NativeIoctx(const Napi::CallbackInfo& info);
  ~NativeIoctx() override;
  // The handle calls in other files (rados.cc) use; null once closed.
  IoctxHandle* handle() const { return h_; }

 private:
  Napi::Value CreateImage(const Napi::CallbackInfo& info);
  Napi::Value RemoveImage(const Napi::CallbackInfo& info);
  Napi::Value RenameImage(const Napi::CallbackInfo& info);
  Napi::Value ListImages(const Napi::CallbackInfo& info);
  Napi::Value StatImage(const Napi::CallbackInfo& info);
  Napi::Value Clone(const Napi::CallbackInfo& info);
  Napi::Value TrashMove(const Napi::CallbackInfo& info);
  Napi::Value TrashList(const Napi::CallbackInfo& info);
  Napi::Value TrashRemove(const Napi::CallbackInfo& info);
  Napi::Value TrashRestore(const Napi::CallbackInfo& info);
  Napi::Value OpenImage(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::string Spec(const std::string& image = "", const std::string& snap = "") const;

  IoctxHandle* h_ = nullptr;
  std::string pool_;
  std::string ns_;
};

}  // namespace cephrbd
