#include "handles.h"

#include <thread>

#include "aio.h"
#include "workers.h"

namespace cephrbd {

std::atomic<bool> Handle::exiting{false};

void Handle::Release(Napi::Env env, Handle* h, std::function<void(int)> done) {
  if (!h->Unref()) {
    if (done) done(0);
    return;
  }
  h->TeardownAsync(env, std::move(done));
}

void Handle::ReleaseInline(Handle* h) {
  if (h->Unref()) h->TeardownInline();
}

void Handle::ReleaseDetached(Handle* h) {
  if (exiting.load()) return;
  if (h->Unref()) std::thread([h] { h->TeardownInline(); }).detach();
}

void Handle::TeardownAsync(Napi::Env env, std::function<void(int)> done) {
  TaskWorker::Start(
      env,
      [this] {
        TeardownInline();
        return 0;
      },
      std::move(done));
}

// ---- RadosHandle ----

void RadosHandle::TeardownInline() {
  rados_shutdown(cluster);
  delete this;
}

// ---- IoctxHandle ----

IoctxHandle::IoctxHandle(RadosHandle* rados, rados_ioctx_t io, std::string pool, std::string ns)
    : rados(rados), io(io), pool(std::move(pool)), ns(std::move(ns)) {
  rados->Retain();
}

void IoctxHandle::TeardownInline() {
  RadosHandle* parent = rados;
  rados_ioctx_destroy(io);
  delete this;
  ReleaseInline(parent);
}

// ---- ImageHandle ----

ImageHandle::ImageHandle(IoctxHandle* ioctx, rbd_image_t image, std::string name, std::string snap,
                         bool readOnly)
    : ioctx(ioctx), image(image), name(std::move(name)), readOnly(readOnly), snap(std::move(snap)) {
  ioctx->Retain();
}

void ImageHandle::TeardownAsync(Napi::Env env, std::function<void(int)> done) {
  // rbd_aio_close: the close itself is a completion, so no pool thread waits for it.
  AioOp* op = AioOp::Create(env, {}, [this, done = std::move(done)](Napi::Env env, ssize_t ret) {
    IoctxHandle* parent = ioctx;
    std::vector<std::function<void(int)>> waiters = std::move(closeWaiters_);
    if (done) waiters.push_back(done);
    delete this;
    int closeRet = static_cast<int>(ret);
    Handle::Release(env, parent, [waiters = std::move(waiters), closeRet](int parentRet) {
      for (const auto& w : waiters) w(closeRet < 0 ? closeRet : parentRet);
    });
  });
  int r = rbd_aio_close(image, op->completion());
  if (r < 0) op->SubmitFailed(env, r);
}

void ImageHandle::TeardownInline() {
  IoctxHandle* parent = ioctx;
  rbd_close(image);
  delete this;
  ReleaseInline(parent);
}

}  // namespace cephrbd
