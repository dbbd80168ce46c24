#include "workers.h"

#include "addon.h"

#include <errno.h>

#include <cmath>

namespace cephrbd {

// ---- CallWorker ----

CallWorker::CallWorker(Napi::Env env, std::string object, std::vector<Handle*> holds, ExecFn exec,
                       ResolveFn resolve)
    : Napi::AsyncWorker(env, "ceph-rbd-call"),
      deferred_(Napi::Promise::Deferred::New(env)),
      object_(std::move(object)),
      holds_(env, std::move(holds)),
      exec_(std::move(exec)),
      resolve_(std::move(resolve)) {}

Napi::Promise CallWorker::Start(Napi::Env env, std::string object, std::vector<Handle*> holds,
                                ExecFn exec, ResolveFn resolve) {
  auto* w = new CallWorker(env, std::move(object), std::move(holds), std::move(exec),
                           std::move(resolve));
  Napi::Promise promise = w->deferred_.Promise();
  w->Queue();
  return promise;
}

void CallWorker::Execute() { exec_(outcome_); }

void CallWorker::OnOK() {
  Napi::Env env = Env();
  if (outcome_.Failed()) {
    deferred_.Reject(CephError(env, outcome_.err, outcome_.call, object_).Value());
    return;
  }
  try {
    deferred_.Resolve(resolve_ ? resolve_(env) : env.Undefined());
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  }
}

// ---- TaskWorker ----

TaskWorker::TaskWorker(Napi::Env env, std::function<int()> exec, std::function<void(int)> then)
    : Napi::AsyncWorker(env, "ceph-rbd-teardown"), exec_(std::move(exec)), then_(std::move(then)) {}

void TaskWorker::Start(Napi::Env env, std::function<int()> exec, std::function<void(int)> then) {
  (new TaskWorker(env, std::move(exec), std::move(then)))->Queue();
}

void TaskWorker::Execute() { ret_ = exec_(); }

void TaskWorker::OnOK() {
  if (then_) then_(ret_);
}

// ---- CancelToken ----

Napi::Function CancelToken::Define(Napi::Env env) {
  return DefineClass(env, "CancelToken",
                     {InstanceMethod<&CancelToken::Cancel>("cancel"),
                      InstanceAccessor<&CancelToken::Canceled>("canceled"),
                      InstanceAccessor<&CancelToken::Progress>("progress")});
}

CancelToken::CancelToken(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CancelToken>(info) {}

Napi::Value CancelToken::Cancel(const Napi::CallbackInfo& info) {
  state_->canceled.store(true);
  return info.Env().Undefined();
}

Napi::Value CancelToken::Canceled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), state_->canceled.load());
}

// progress -> [done, total]: librbd's latest sample ([0, 0] before the first).
Napi::Value CancelToken::Progress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(uint32_t{0}, Napi::Number::New(env, static_cast<double>(state_->done.load())));
  a.Set(uint32_t{1}, Napi::Number::New(env, static_cast<double>(state_->total.load())));
  return a;
}

// ---- progress ----

int ProgressSink::Callback(uint64_t offset, uint64_t total, void* arg) {
  auto* sink = static_cast<ProgressSink*>(arg);
  ProgressCallWorker* w = sink->worker_;
  if (w->cancel_) {
    if (w->cancel_->canceled.load()) return -ECANCELED;
    // Atomics only: JS reads these on its own timer. Handing each sample to the JS thread instead
    // (a thread-safe function, as this addon once did) wakes it while holding the queue's mutex, and
    // a librbd thread preempted right there kept the JS thread waiting on that mutex for 15-20 ms on
    // a busy machine.
    w->cancel_->done.store(offset);
    w->cancel_->total.store(total);
  }
  return 0;
}

ProgressCallWorker::ProgressCallWorker(Napi::Env env, std::string object,
                                       std::vector<Handle*> holds, Napi::Value cancel,
                                       ProgressExecFn exec)
    : Napi::AsyncWorker(env, "ceph-rbd-progress-call"),
      deferred_(Napi::Promise::Deferred::New(env)),
      object_(std::move(object)),
      holds_(env, std::move(holds)),
      exec_(std::move(exec)) {
  if (cancel.IsObject()) {
    Napi::Object obj = cancel.As<Napi::Object>();
    if (obj.InstanceOf(Data(env)->cancelTokenCtor.Value()))
      cancel_ = CancelToken::Unwrap(obj)->state();
  }
}

Napi::Promise ProgressCallWorker::Start(Napi::Env env, std::string object,
                                        std::vector<Handle*> holds, Napi::Value cancel,
                                        ProgressExecFn exec) {
  auto* w = new ProgressCallWorker(env, std::move(object), std::move(holds), cancel, std::move(exec));
  Napi::Promise promise = w->deferred_.Promise();
  w->Queue();
  return promise;
}

void ProgressCallWorker::Execute() {
  ProgressSink sink(this);
  exec_(outcome_, sink);
  // librbd may report the abort as its own error (e.g. -ERESTART); the cause is the cancel.
  if (outcome_.Failed() && cancel_ && cancel_->canceled.load()) outcome_.err = ECANCELED;
}

void ProgressCallWorker::OnOK() {
  Napi::Env env = Env();
  if (outcome_.Failed()) {
    deferred_.Reject(CephError(env, outcome_.err, outcome_.call, object_).Value());
    return;
  }
  deferred_.Resolve(env.Undefined());
}

// ---- argument helpers ----

Napi::Promise Rejected(Napi::Env env, int err, const char* call, const std::string& object) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(CephError(env, err, call, object).Value());
  return deferred.Promise();
}

uint64_t ToU64(const Napi::Value& v, const char* what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t n = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(v.Env(), std::string(what) + " out of range");
    return n;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d > 9007199254740991.0 || std::floor(d) != d)
      throw Napi::RangeError::New(v.Env(), std::string(what) + " must be a non-negative integer");
    return static_cast<uint64_t>(d);
  }
  throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a number or bigint");
}

std::string OptString(const Napi::Value& v) {
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  return std::string();
}

}  // namespace cephrbd
