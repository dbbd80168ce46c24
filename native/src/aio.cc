#include "aio.h"

namespace cephrbd {

AioOp::AioOp(Napi::Env env, std::vector<Handle*> holds, Settle settle)
    : data_(Data(env)), gate_(data_->aio), holds_(env, std::move(holds)), settle_(std::move(settle)) {}

AioOp* AioOp::Create(Napi::Env env, std::vector<Handle*> holds, Settle settle) {
  auto* op = new AioOp(env, std::move(holds), std::move(settle));
  int r = rbd_aio_create_completion(op, &AioOp::OnComplete, &op->completion_);
  if (r < 0) {
    delete op;
    throw CephError(env, -r, "rbd_aio_create_completion", "");
  }
  if (op->data_->aioPending++ == 0) op->data_->aio->tsfn.Ref(env);
  return op;
}

AioOp* AioOp::CreateWithPromise(Napi::Env env, std::vector<Handle*> holds, const char* call,
                                std::string object,
                                std::function<Napi::Value(Napi::Env, ssize_t)> result,
                                Napi::Promise* promise) {
  auto deferred = std::make_shared<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
  *promise = deferred->Promise();
  return Create(env, std::move(holds),
                [deferred, call, object = std::move(object), result = std::move(result)](
                    Napi::Env env, ssize_t ret) {
                  if (ret < 0) {
                    deferred->Reject(CephError(env, static_cast<int>(-ret), call, object).Value());
                    return;
                  }
                  try {
                    deferred->Resolve(result ? result(env, ret) : env.Undefined());
                  } catch (const Napi::Error& e) {
                    deferred->Reject(e.Value());
                  }
                });
}

void AioOp::OnComplete(rbd_completion_t c, void* arg) {
  auto* op = static_cast<AioOp*>(arg);
  op->ret_ = rbd_aio_get_return_value(c);
  rbd_aio_release(c);
  op->completion_ = nullptr;
  // Once the environment is going away the op is abandoned: its JS references can only be
  // dropped on the JS thread.
  std::shared_ptr<AioGate> gate = op->gate_;
  std::lock_guard<std::mutex> lock(gate->mutex);
  if (gate->open) gate->tsfn.NonBlockingCall(op);
}

void AioOp::SubmitFailed(Napi::Env env, int r) {
  rbd_aio_release(completion_);
  completion_ = nullptr;
  ret_ = r;
  Finish(env);
}

void AioOp::Finish(Napi::Env env) {
  if (--data_->aioPending == 0) data_->aio->tsfn.Unref(env);
  Napi::HandleScope scope(env);
  try {
    settle_(env, ret_);
  } catch (const Napi::Error&) {
    // Settle callbacks reject their own promise; an exception must not escape into the
    // thread-safe function's dispatch loop.
  }
  delete this;
}

void DispatchAio(Napi::Env env, Napi::Function, AddonData*, AioOp* op) {
  if (op == nullptr || static_cast<napi_env>(env) == nullptr) return;
  op->Finish(env);
}

}  // namespace cephrbd
