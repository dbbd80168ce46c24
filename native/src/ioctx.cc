#include "ioctx.h"

#include <errno.h>

#include <memory>
#include <optional>
#include <vector>

#include "addon.h"
#include "aio.h"
#include "errors.h"
#include "image.h"
#include "workers.h"

namespace cephrbd {

namespace {

// Image options given from JS, turned into an rbd_image_options_t on the worker thread.
struct ImageOpts {
  std::optional<uint64_t> features, order, stripeUnit, stripeCount, cloneFormat;
  std::string dataPool;

  static ImageOpts From(const Napi::Value& v) {
    ImageOpts o;
    if (!v.IsObject()) return o;
    Napi::Object obj = v.As<Napi::Object>();
    auto u64 = [&](const char* key, std::optional<uint64_t>& out) {
      Napi::Value x = obj.Get(key);
      if (!x.IsUndefined() && !x.IsNull()) out = ToU64(x, key);
    };
    u64("features", o.features);
    u64("order", o.order);
    u64("stripeUnit", o.stripeUnit);
    u64("stripeCount", o.stripeCount);
    u64("format", o.cloneFormat);
    o.dataPool = OptString(obj.Get("dataPool"));
    return o;
  }

  // Worker thread. Returns false (with o set) when librbd rejects an option.
  bool Fill(rbd_image_options_t opts, Outcome& o) const {
    const char* fn = "rbd_image_options_set_uint64";
    return (!features || o.Ok(rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_FEATURES, *features), fn)) &&
           (!order || o.Ok(rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_ORDER, *order), fn)) &&
           (!stripeUnit || o.Ok(rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_STRIPE_UNIT, *stripeUnit), fn)) &&
           (!stripeCount || o.Ok(rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_STRIPE_COUNT, *stripeCount), fn)) &&
           (!cloneFormat || o.Ok(rbd_image_options_set_uint64(opts, RBD_IMAGE_OPTION_CLONE_FORMAT, *cloneFormat), fn)) &&
           (dataPool.empty() ||
            o.Ok(rbd_image_options_set_string(opts, RBD_IMAGE_OPTION_DATA_POOL, dataPool.c_str()),
                 "rbd_image_options_set_string"));
  }
};

// Owns an rbd_image_options_t for the duration of one worker call.
struct ScopedImageOptions {
  rbd_image_options_t opts;
  ScopedImageOptions() { rbd_image_options_create(&opts); }
  ~ScopedImageOptions() { rbd_image_options_destroy(opts); }
};

const char* TrashSource(rbd_trash_image_source_t s) {
  switch (s) {
    case RBD_TRASH_IMAGE_SOURCE_USER: return "user";
    case RBD_TRASH_IMAGE_SOURCE_MIRRORING: return "mirroring";
    case RBD_TRASH_IMAGE_SOURCE_MIGRATION: return "migration";
    case RBD_TRASH_IMAGE_SOURCE_REMOVING: return "removing";
    case RBD_TRASH_IMAGE_SOURCE_USER_PARENT: return "user_parent";
  }
  return "unknown";
}

}  // namespace

Napi::Function NativeIoctx::Define(Napi::Env env) {
  return DefineClass(env, "NativeIoctx",
                     {InstanceMethod<&NativeIoctx::CreateImage>("createImage"),
                      InstanceMethod<&NativeIoctx::RemoveImage>("removeImage"),
                      InstanceMethod<&NativeIoctx::RenameImage>("renameImage"),
                      InstanceMethod<&NativeIoctx::ListImages>("listImages"),
                      InstanceMethod<&NativeIoctx::StatImage>("statImage"),
                      InstanceMethod<&NativeIoctx::Clone>("clone"),
                      InstanceMethod<&NativeIoctx::TrashMove>("trashMove"),
                      InstanceMethod<&NativeIoctx::TrashList>("trashList"),
                      InstanceMethod<&NativeIoctx::TrashRemove>("trashRemove"),
                      InstanceMethod<&NativeIoctx::TrashRestore>("trashRestore"),
                      InstanceMethod<&NativeIoctx::OpenImage>("openImage"),
                      InstanceMethod<&NativeIoctx::Close>("close")});
}

NativeIoctx::NativeIoctx(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeIoctx>(info) {
  if (info.Length() < 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "use NativeCluster.openIoctx()");
  h_ = info[0].As<Napi::External<IoctxHandle>>().Data();
  pool_ = h_->pool;
  ns_ = h_->ns;
}

NativeIoctx::~NativeIoctx() {
  if (h_) Handle::ReleaseDetached(h_);
}

std::string NativeIoctx::Spec(const std::string& image, const std::string& snap) const {
  return ImageSpec(pool_, ns_, image, snap);
}

// createImage(name, size, opts) — rbd_create4
Napi::Value NativeIoctx::CreateImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  uint64_t size = ToU64(info[1], "size");
  ImageOpts opts = ImageOpts::From(info[2]);
  if (!h_) return Rejected(env, EBADF, "rbd_create4", Spec(name));
  IoctxHandle* h = h_;
  return CallWorker::Start(env, Spec(name), {h}, [h, name, size, opts](Outcome& o) {
    ScopedImageOptions io;
    if (!opts.Fill(io.opts, o)) return;
    o.Ok(rbd_create4(h->io, name.c_str(), size, io.opts), "rbd_create4");
  });
}

// removeImage(name, cancelToken) — rbd_remove_with_progress
Napi::Value NativeIoctx::RemoveImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (!h_) return Rejected(env, EBADF, "rbd_remove_with_progress", Spec(name));
  IoctxHandle* h = h_;
  return ProgressCallWorker::Start(env, Spec(name), {h}, info[1],
                                   [h, name](Outcome& o, ProgressSink& sink) {
                                     o.Ok(rbd_remove_with_progress(h->io, name.c_str(),
                                                                   &ProgressSink::Callback, &sink),
                                          "rbd_remove_with_progress");
                                   });
}

// renameImage(src, dst) — rbd_rename
Napi::Value NativeIoctx::RenameImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string src = info[0].As<Napi::String>().Utf8Value();
  std::string dst = info[1].As<Napi::String>().Utf8Value();
  if (!h_) return Rejected(env, EBADF, "rbd_rename", Spec(src));
  IoctxHandle* h = h_;
  return CallWorker::Start(env, Spec(src), {h}, [h, src, dst](Outcome& o) {
    o.Ok(rbd_rename(h->io, src.c_str(), dst.c_str()), "rbd_rename");
  });
}

// listImages() — rbd_list2
Napi::Value NativeIoctx::ListImages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!h_) return Rejected(env, EBADF, "rbd_list2", Spec());
  IoctxHandle* h = h_;
  auto names = std::make_shared<std::vector<std::string>>();
  return CallWorker::Start(
      env, Spec(), {h},
      [h, names](Outcome& o) {
        size_t max = 64;
        std::vector<rbd_image_spec_t> specs;
        int r;
        do {
          specs.resize(max);
          r = rbd_list2(h->io, specs.data(), &max);
        } while (r == -ERANGE);
        if (!o.Ok(r, "rbd_list2")) return;
        for (size_t i = 0; i < max; ++i) names->emplace_back(specs[i].name);
        rbd_image_spec_list_cleanup(specs.data(), max);
      },
      [names](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, names->size());
        for (size_t i = 0; i < names->size(); ++i) out.Set(i, (*names)[i]);
        return out;
      });
}

// statImage(name) — rbd_open_read_only, rbd_stat, rbd_get_features, rbd_get_parent, rbd_close
Napi::Value NativeIoctx::StatImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (!h_) return Rejected(env, EBADF, "rbd_open_read_only", Spec(name));
  IoctxHandle* h = h_;
  auto st = std::make_shared<StatData>();
  return CallWorker::Start(
      env, Spec(name), {h},
      [h, name, st](Outcome& o) {
        rbd_image_t image = nullptr;
        if (!o.Ok(rbd_open_read_only(h->io, name.c_str(), &image, nullptr), "rbd_open_read_only"))
          return;
        ReadStat(image, o, *st);
        o.Ok(rbd_close(image), "rbd_close");
      },
      [st](Napi::Env env) { return StatToJs(env, *st); });
}

// clone(parentName, parentSnap, destIoctx, childName, opts) — rbd_clone3
Napi::Value NativeIoctx::Clone(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string parent = info[0].As<Napi::String>().Utf8Value();
  std::string snap = info[1].As<Napi::String>().Utf8Value();
  NativeIoctx* dest = NativeIoctx::Unwrap(info[2].As<Napi::Object>());
  std::string child = info[3].As<Napi::String>().Utf8Value();
  ImageOpts opts = ImageOpts::From(info[4]);
  std::string object = Spec(parent, snap);
  if (!h_) return Rejected(env, EBADF, "rbd_clone3", object);
  if (!dest->h_) return Rejected(env, EBADF, "rbd_clone3", dest->Spec(child));
  IoctxHandle* p = h_;
  IoctxHandle* c = dest->h_;
  return CallWorker::Start(env, object, {p, c}, [p, c, parent, snap, child, opts](Outcome& o) {
    ScopedImageOptions io;
    if (!opts.Fill(io.opts, o)) return;
    o.Ok(rbd_clone3(p->io, parent.c_str(), snap.c_str(), c->io, child.c_str(), io.opts),
         "rbd_clone3");
  });
}

// trashMove(name, delaySeconds) — rbd_trash_move
Napi::Value NativeIoctx::TrashMove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  uint64_t delay = ToU64(info[1], "delaySeconds");
  if (!h_) return Rejected(env, EBADF, "rbd_trash_move", Spec(name));
  IoctxHandle* h = h_;
  return CallWorker::Start(env, Spec(name), {h}, [h, name, delay](Outcome& o) {
    o.Ok(rbd_trash_move(h->io, name.c_str(), delay), "rbd_trash_move");
  });
}

// trashList() — rbd_trash_list
Napi::Value NativeIoctx::TrashList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!h_) return Rejected(env, EBADF, "rbd_trash_list", Spec());
  IoctxHandle* h = h_;
  struct Entry {
    std::string id, name, source;
    double deletion, deferment;
  };
  auto entries = std::make_shared<std::vector<Entry>>();
  return CallWorker::Start(
      env, Spec(), {h},
      [h, entries](Outcome& o) {
        size_t max = 64;
        std::vector<rbd_trash_image_info_t> list;
        int r;
        do {
          list.resize(max);
          r = rbd_trash_list(h->io, list.data(), &max);
        } while (r == -ERANGE);
        if (!o.Ok(r, "rbd_trash_list")) return;
        for (size_t i = 0; i < max; ++i) {
          const auto& e = list[i];
          entries->push_back({e.id, e.name, TrashSource(e.source),
                              static_cast<double>(e.deletion_time) * 1000.0,
                              static_cast<double>(e.deferment_end_time) * 1000.0});
        }
        rbd_trash_list_cleanup(list.data(), max);
      },
      [entries](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, entries->size());
        for (size_t i = 0; i < entries->size(); ++i) {
          const Entry& e = (*entries)[i];
          Napi::Object o = Napi::Object::New(env);
          o.Set("id", e.id);
          o.Set("name", e.name);
          o.Set("source", e.source);
          o.Set("deletionTime", Napi::Number::New(env, e.deletion));
          o.Set("defermentEndTime", Napi::Number::New(env, e.deferment));
          out.Set(i, o);
        }
        return out;
      });
}

// trashRemove(id, force, cancelToken) — rbd_trash_remove_with_progress
Napi::Value NativeIoctx::TrashRemove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string id = info[0].As<Napi::String>().Utf8Value();
  bool force = info[1].ToBoolean();
  std::string object = Spec("trash:" + id);
  if (!h_) return Rejected(env, EBADF, "rbd_trash_remove_with_progress", object);
  IoctxHandle* h = h_;
  return ProgressCallWorker::Start(env, object, {h}, info[2],
                                   [h, id, force](Outcome& o, ProgressSink& sink) {
                                     o.Ok(rbd_trash_remove_with_progress(h->io, id.c_str(), force,
                                                                         &ProgressSink::Callback,
                                                                         &sink),
                                          "rbd_trash_remove_with_progress");
                                   });
}

// trashRestore(id, name) — rbd_trash_restore
Napi::Value NativeIoctx::TrashRestore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string id = info[0].As<Napi::String>().Utf8Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  if (!h_) return Rejected(env, EBADF, "rbd_trash_restore", Spec(name));
  IoctxHandle* h = h_;
  return CallWorker::Start(env, Spec(name), {h}, [h, id, name](Outcome& o) {
    o.Ok(rbd_trash_restore(h->io, id.c_str(), name.c_str()), "rbd_trash_restore");
  });
}

// openImage(name, readOnly, snapshot | undefined, byId) -> Promise<NativeImage>
// rbd_aio_open / rbd_aio_open_read_only, or with byId rbd_aio_open_by_id / rbd_aio_open_by_id_read_only
// (the only way to open an image in the RBD trash): the open is a completion, no thread waits for it.
Napi::Value NativeIoctx::OpenImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  bool readOnly = info[1].ToBoolean();
  std::string snap = OptString(info[2]);
  bool byId = info.Length() > 3 && info[3].ToBoolean();
  const char* call = byId ? (readOnly ? "rbd_aio_open_by_id_read_only" : "rbd_aio_open_by_id")
                          : (readOnly ? "rbd_aio_open_read_only" : "rbd_aio_open");
  std::string object = Spec(name, snap);
  if (!h_) return Rejected(env, EBADF, call, object);
  IoctxHandle* h = h_;
  Napi::Promise promise;
  // The op outlives this frame; its result callback reads the image librbd stored in it.
  auto opSlot = std::make_shared<AioOp*>(nullptr);
  AioOp* op = AioOp::CreateWithPromise(
      env, {h}, call, object,
      [h, name, snap, readOnly, opSlot](Napi::Env env, ssize_t) -> Napi::Value {
        auto* ih = new ImageHandle(h, (*opSlot)->openedImage, name, snap, readOnly);
        return Data(env)->imageCtor.New({Napi::External<ImageHandle>::New(env, ih)});
      },
      &promise);
  *opSlot = op;
  const char* snapArg = snap.empty() ? nullptr : snap.c_str();
  int r;
  if (byId)
    r = readOnly ? rbd_aio_open_by_id_read_only(h->io, name.c_str(), &op->openedImage, snapArg, op->completion())
                 : rbd_aio_open_by_id(h->io, name.c_str(), &op->openedImage, snapArg, op->completion());
  else
    r = readOnly ? rbd_aio_open_read_only(h->io, name.c_str(), &op->openedImage, snapArg, op->completion())
                 : rbd_aio_open(h->io, name.c_str(), &op->openedImage, snapArg, op->completion());
  if (r < 0) op->SubmitFailed(env, r);
  return promise;
}

// Drops this object's reference; rados_ioctx_destroy runs (in a worker) once no image opened
// through it remains.
Napi::Value NativeIoctx::Close(const Napi::CallbackInfo& info) {
  return ReleaseToPromise(info.Env(), h_);
}

}  // namespace cephrbd
