// Cluster: one rados_t connection.
#pragma once

#include <napi.h>

#include "handles.h"

namespace cephrbd {

class NativeCluster : public Napi::ObjectWrap<NativeCluster> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Constructed only from C++ with an External<RadosHandle> whose reference it adopts.
  explicit NativeCluster(const Napi::CallbackInfo& info);
  ~NativeCluster() override;
  // The connection, or null once closed (for calls defined outside this class: mgr.cc, rados.cc).
  RadosHandle* handle() const { return h_; }

 private:
  static Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Fsid(const Napi::CallbackInfo& info);
  Napi::Value ConfGet(const Napi::CallbackInfo& info);
  Napi::Value ListPools(const Napi::CallbackInfo& info);
  Napi::Value OpenIoctx(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  RadosHandle* h_ = nullptr;
  std::string fsid_;
};

}  // namespace cephrbd
