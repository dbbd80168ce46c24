// rados_mgr_command (and rados_mon_command) off the JS thread, with a bound of the caller's.
//
// librados only bounds a mgr command by rados_mon_op_timeout (the connection's, set at connect), and with
// no mgr answering a command simply waits for one. So the blocking call runs on a thread of its own that
// holds its own reference on the connection, and the pool worker waits for it at most timeoutMs: past
// that the promise rejects with ETIMEDOUT and the thread finishes (librados' own bound) in the background,
// dropping its reference then — the libuv pool thread is never parked longer than the caller asked.
#include "mgr.h"

#include <errno.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cluster.h"
#include "errors.h"
#include "handles.h"

namespace cephrbd {

namespace {

// What the command thread hands back; shared because the thread may outlive the worker.
struct MgrReply {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  int ret = 0;
  std::string output;
  std::string status;
};

class MgrCommandWorker : public Napi::AsyncWorker {
 public:
  MgrCommandWorker(Napi::Env env, RadosHandle* h, bool mon, std::string cmd, std::string input,
                   uint32_t timeoutMs)
      : Napi::AsyncWorker(env, "ceph-rbd-mgr-command"),
        mon_(mon),
        deferred_(Napi::Promise::Deferred::New(env)),
        holds_(env, {h}),
        h_(h),
        cmd_(std::move(cmd)),
        input_(std::move(input)),
        timeoutMs_(timeoutMs) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    auto reply = std::make_shared<MgrReply>();
    RadosHandle* h = h_;
    h->Retain();  // the command thread's own reference, dropped when rados_mgr_command returns
    std::thread([h, reply, mon = mon_, cmd = cmd_, input = input_] {
      const char* argv[1] = {cmd.c_str()};
      char* outbuf = nullptr;
      size_t outlen = 0;
      char* outs = nullptr;
      size_t outslen = 0;
      int r = mon ? rados_mon_command(h->cluster, argv, 1, input.data(), input.size(), &outbuf,
                                      &outlen, &outs, &outslen)
                  : rados_mgr_command(h->cluster, argv, 1, input.data(), input.size(), &outbuf,
                                      &outlen, &outs, &outslen);
      {
        std::lock_guard<std::mutex> lock(reply->mutex);
        reply->ret = r;
        if (outbuf) reply->output.assign(outbuf, outlen);
        if (outs) reply->status.assign(outs, outslen);
        reply->done = true;
      }
      if (outbuf) rados_buffer_free(outbuf);
      if (outs) rados_buffer_free(outs);
      reply->cv.notify_all();
      Handle::ReleaseInline(h);
    }).detach();

    std::unique_lock<std::mutex> lock(reply->mutex);
    if (!reply->cv.wait_for(lock, std::chrono::milliseconds(timeoutMs_), [&] { return reply->done; })) {
      err_ = ETIMEDOUT;
      status_ = std::string("no answer from ") + (mon_ ? "the monitors" : "ceph-mgr") + " within " +
                std::to_string(timeoutMs_) + " ms";
      return;
    }
    if (reply->ret < 0) err_ = -reply->ret;
    output_ = std::move(reply->output);
    status_ = std::move(reply->status);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_ != 0) {
      Napi::Error error =
          CephError(env, err_, mon_ ? "rados_mon_command" : "rados_mgr_command", "cluster " + h_->fsid);
      error.Set("status", Napi::String::New(env, status_));
      deferred_.Reject(error.Value());
      return;
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("output", Napi::Buffer<char>::Copy(env, output_.data(), output_.size()));
    out.Set("status", Napi::String::New(env, status_));
    deferred_.Resolve(out);
  }

 private:
  bool mon_;
  Napi::Promise::Deferred deferred_;
  Holds holds_;
  RadosHandle* h_;
  std::string cmd_;
  std::string input_;
  uint32_t timeoutMs_;
  int err_ = 0;
  std::string output_;
  std::string status_;
};

Napi::Value Start(const Napi::CallbackInfo& info, bool mon) {
  Napi::Env env = info.Env();
  const char* call = mon ? "rados_mon_command" : "rados_mgr_command";
  if (info.Length() < 4 || !info[0].IsObject() || !info[1].IsString() || !info[3].IsNumber())
    throw Napi::TypeError::New(env, std::string(call) + ": (cluster, cmd, input, timeoutMs)");
  NativeCluster* cluster = NativeCluster::Unwrap(info[0].As<Napi::Object>());
  RadosHandle* h = cluster ? cluster->handle() : nullptr;
  if (!h) {
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(CephError(env, EBADF, call, "cluster").Value());
    return deferred.Promise();
  }
  std::string input;
  if (info[2].IsBuffer()) {
    auto buf = info[2].As<Napi::Buffer<char>>();
    input.assign(buf.Data(), buf.Length());
  }
  auto* w = new MgrCommandWorker(env, h, mon, info[1].As<Napi::String>().Utf8Value(), std::move(input),
                                 info[3].As<Napi::Number>().Uint32Value());
  Napi::Promise promise = w->Promise();
  w->Queue();
  return promise;
}

}  // namespace

Napi::Value MgrCommand(const Napi::CallbackInfo& info) { return Start(info, false); }

Napi::Value MonCommand(const Napi::CallbackInfo& info) { return Start(info, true); }

}  // namespace cephrbd
