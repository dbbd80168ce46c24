// Admin calls run in async workers on the libuv pool; these are the only places that make
// blocking librados/librbd calls.
#pragma once

#include <napi.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"
#include "handles.h"

namespace cephrbd {

using ExecFn = std::function<void(Outcome&)>;               // pool thread
using ResolveFn = std::function<Napi::Value(Napi::Env)>;    // JS thread, after success

// One blocking call sequence. The promise resolves with resolve(env) (undefined when absent)
// or rejects through CephError with the first failing call.
class CallWorker : public Napi::AsyncWorker {
 public:
  static Napi::Promise Start(Napi::Env env, std::string object, std::vector<Handle*> holds,
                             ExecFn exec, ResolveFn resolve = nullptr);

 private:
  CallWorker(Napi::Env env, std::string object, std::vector<Handle*> holds, ExecFn exec,
             ResolveFn resolve);
  void Execute() override;
  void OnOK() override;

  Napi::Promise::Deferred deferred_;
  std::string object_;
  Holds holds_;
  ExecFn exec_;
  ResolveFn resolve_;
  Outcome outcome_;
};

// Work with no promise: teardown steps. then(ret) runs on the JS thread afterwards.
class TaskWorker : public Napi::AsyncWorker {
 public:
  static void Start(Napi::Env env, std::function<int()> exec, std::function<void(int)> then);

 private:
  TaskWorker(Napi::Env env, std::function<int()> exec, std::function<void(int)> then);
  void Execute() override;
  void OnOK() override;

  std::function<int()> exec_;
  std::function<void(int)> then_;
  int ret_ = 0;
};

// What a progress call and JS share through its CancelToken: the cancel flag, and librbd's latest
// progress, stored by librbd's callback thread and read by JS on its own timer (see CancelToken.progress).
struct TokenState {
  std::atomic<bool> canceled{false};
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> total{0};
};

// Set from JS (AbortSignal -> CancelToken.cancel()), read by librbd's progress callback thread; the
// callback also leaves its latest sample here (`progress`), for JS to read without the callback ever
// waking the JS thread.
class CancelToken : public Napi::ObjectWrap<CancelToken> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit CancelToken(const Napi::CallbackInfo& info);
  std::shared_ptr<TokenState> state() const { return state_; }

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Canceled(const Napi::CallbackInfo& info);
  Napi::Value Progress(const Napi::CallbackInfo& info);
  std::shared_ptr<TokenState> state_ = std::make_shared<TokenState>();
};

class ProgressCallWorker;

// The cbdata handed to librbd's librbd_progress_fn_t: our own C++ object, nothing managed. It
// lives on the worker's stack for the duration of the blocking librbd call.
class ProgressSink {
 public:
  // librbd_progress_fn_t. Runs on a librbd thread. Returning non-zero aborts the operation.
  static int Callback(uint64_t offset, uint64_t total, void* arg);

 private:
  friend class ProgressCallWorker;
  explicit ProgressSink(ProgressCallWorker* worker) : worker_(worker) {}
  ProgressCallWorker* worker_;
};

using ProgressExecFn = std::function<void(Outcome&, ProgressSink&)>;  // pool thread

// A long admin call with librbd progress (flatten, remove, resize, snap remove, trash remove).
// The CancelToken receives every sample in its atomics (JS polls CancelToken.progress: what
// native/lib does); nothing wakes the JS thread until the call ends. A canceled token makes the
// progress callback return -ECANCELED.
class ProgressCallWorker : public Napi::AsyncWorker {
 public:
  // cancel: a CancelToken or undefined.
  static Napi::Promise Start(Napi::Env env, std::string object, std::vector<Handle*> holds,
                             Napi::Value cancel, ProgressExecFn exec);

 private:
  friend class ProgressSink;
  ProgressCallWorker(Napi::Env env, std::string object, std::vector<Handle*> holds,
                     Napi::Value cancel, ProgressExecFn exec);
  void Execute() override;
  void OnOK() override;

  Napi::Promise::Deferred deferred_;
  std::string object_;
  Holds holds_;
  std::shared_ptr<TokenState> cancel_;
  ProgressExecFn exec_;
  Outcome outcome_;
};

// An already rejected promise (a call on a closed handle: the C function is never reached).
Napi::Promise Rejected(Napi::Env env, int err, const char* call, const std::string& object);

// Reads a uint64 argument given as a BigInt or a non-negative integral Number.
uint64_t ToU64(const Napi::Value& v, const char* what);
// Optional string argument: undefined/null -> empty.
std::string OptString(const Napi::Value& v);

}  // namespace cephrbd
