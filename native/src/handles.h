// Reference-counted owners of the librados/librbd objects.
//
// A child holds a reference on its parent (image -> ioctx -> cluster), and every call in flight
// holds a reference on the handle it uses, so rados_shutdown only runs once the last ioctx and
// image are gone and no call is still using them. Teardown never runs on the JS thread and never
// inside a librbd callback: the JS thread schedules it (async worker or rbd_aio_close), worker
// threads run it inline.
#pragma once

#include <napi.h>
#include <rados/librados.h>
#include <rbd/librbd.h>

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "errors.h"

namespace cephrbd {

class Handle {
 public:
  virtual ~Handle() = default;
  void Retain() { refs_.fetch_add(1, std::memory_order_relaxed); }

  // JS thread. Drops one reference. When it was the last one the handle is torn down
  // asynchronously and `done` runs on the JS thread once teardown (including any parent it
  // released in turn) finished; otherwise `done` runs at once. done receives a negative errno
  // when the teardown call failed, 0 otherwise.
  static void Release(Napi::Env env, Handle* h, std::function<void(int)> done = nullptr);
  // A worker thread (never the JS thread, never a librbd callback): tears down inline if last.
  static void ReleaseInline(Handle* h);
  // JS thread, from a GC finalizer of a handle nobody closed: a last-reference teardown goes to
  // a detached thread. Skipped while the environment is exiting (the process is going away).
  static void ReleaseDetached(Handle* h);

  // Set by the environment cleanup hook.
  static std::atomic<bool> exiting;

 protected:
  // Default: TeardownInline in an async worker (a pool thread), `done` on the JS thread after.
  virtual void TeardownAsync(Napi::Env env, std::function<void(int)> done);
  virtual void TeardownInline() = 0;  // deletes this

 private:
  bool Unref() { return refs_.fetch_sub(1, std::memory_order_acq_rel) == 1; }
  std::atomic<int> refs_{1};
};

class RadosHandle final : public Handle {
 public:
  RadosHandle(rados_t cluster, std::string fsid, std::string user)
      : cluster(cluster), fsid(std::move(fsid)), user(std::move(user)) {}
  const rados_t cluster;
  const std::string fsid;
  const std::string user;

 protected:
  void TeardownInline() override;
};

class IoctxHandle final : public Handle {
 public:
  // Takes a reference on rados.
  IoctxHandle(RadosHandle* rados, rados_ioctx_t io, std::string pool, std::string ns);
  RadosHandle* const rados;
  const rados_ioctx_t io;
  const std::string pool;
  const std::string ns;

 protected:
  void TeardownInline() override;
};

class ImageHandle final : public Handle {
 public:
  // Takes a reference on ioctx.
  ImageHandle(IoctxHandle* ioctx, rbd_image_t image, std::string name, std::string snap,
              bool readOnly);
  IoctxHandle* const ioctx;
  const rbd_image_t image;
  const std::string name;
  const bool readOnly;
  // The snapshot the handle reads from; changed by rbd_snap_set (JS thread only).
  std::string snap;
  std::string Spec() const { return ImageSpec(ioctx->pool, ioctx->ns, name, snap); }

  // JS thread: run once rbd_aio_close completed, whenever that happens.
  void OnClosed(std::function<void(int)> waiter) { closeWaiters_.push_back(std::move(waiter)); }

 protected:
  void TeardownAsync(Napi::Env env, std::function<void(int)> done) override;
  void TeardownInline() override;

 private:
  std::vector<std::function<void(int)>> closeWaiters_;
};

// JS thread: the Close() of a JS object owning `h`: drops its reference (nulling `h`) and resolves
// once the teardown it may start has finished; resolves at once when already closed.
template <typename H>
Napi::Value ReleaseToPromise(Napi::Env env, H*& h) {
  auto deferred = std::make_shared<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
  Napi::Promise promise = deferred->Promise();
  if (!h) {
    deferred->Resolve(env.Undefined());
    return promise;
  }
  Handle* owned = h;
  h = nullptr;
  Handle::Release(env, owned, [deferred, env](int) { deferred->Resolve(env.Undefined()); });
  return promise;
}

// The references a call in flight holds; released on the JS thread when it is destroyed.
class Holds {
 public:
  Holds(Napi::Env env, std::vector<Handle*> handles) : env_(env), handles_(std::move(handles)) {
    for (Handle* h : handles_) h->Retain();
  }
  ~Holds() {
    for (Handle* h : handles_) Handle::Release(env_, h);
  }
  Holds(const Holds&) = delete;
  Holds& operator=(const Holds&) = delete;

 private:
  napi_env env_;
  std::vector<Handle*> handles_;
};

}  // namespace cephrbd
