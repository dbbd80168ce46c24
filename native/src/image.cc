#include "image.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <memory>
#include <vector>

#include "addon.h"
#include "aio.h"
#include "workers.h"

namespace cephrbd {

namespace {

Napi::BigInt U64(Napi::Env env, uint64_t v) { return Napi::BigInt::New(env, v); }
Napi::Number Num(Napi::Env env, uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); }

// Splits a buffer of '\0'-terminated strings, `len` bytes long.
std::vector<std::string> SplitNul(const char* buf, size_t len) {
  std::vector<std::string> out;
  for (size_t i = 0; i < len;) {
    size_t n = strnlen(buf + i, len - i);
    if (n == 0) break;
    out.emplace_back(buf + i, n);
    i += n + 1;
  }
  return out;
}

const char* SnapNamespace(rbd_snap_namespace_type_t t) {
  switch (t) {
    case RBD_SNAP_NAMESPACE_TYPE_USER: return "user";
    case RBD_SNAP_NAMESPACE_TYPE_GROUP: return "group";
    case RBD_SNAP_NAMESPACE_TYPE_TRASH: return "trash";
    case RBD_SNAP_NAMESPACE_TYPE_MIRROR: return "mirror";
  }
  return "unknown";
}

}  // namespace

void ReadStat(rbd_image_t image, Outcome& o, StatData& s) {
  if (!o.Ok(rbd_stat(image, &s.info, sizeof(s.info)), "rbd_stat")) return;
  if (!o.Ok(rbd_get_features(image, &s.features), "rbd_get_features")) return;
  rbd_linked_image_spec_t parent{};
  rbd_snap_spec_t snap{};
  int r = rbd_get_parent(image, &parent, &snap);
  if (r == -ENOENT) return;
  if (!o.Ok(r, "rbd_get_parent")) return;
  s.hasParent = true;
  s.parentPool = parent.pool_name;
  s.parentNs = parent.pool_namespace;
  s.parentImage = parent.image_name;
  s.parentImageId = parent.image_id;
  s.parentTrash = parent.trash;
  s.parentSnap = snap.name;
  s.parentSnapId = snap.id;
  rbd_linked_image_spec_cleanup(&parent);
  rbd_snap_spec_cleanup(&snap);
}

Napi::Value ParentToJs(Napi::Env env, const StatData& s) {
  if (!s.hasParent) return env.Null();
  Napi::Object p = Napi::Object::New(env);
  p.Set("pool", s.parentPool);
  p.Set("namespace", s.parentNs);
  p.Set("image", s.parentImage);
  p.Set("imageId", s.parentImageId);
  p.Set("snapshot", s.parentSnap);
  p.Set("snapId", U64(env, s.parentSnapId));
  p.Set("trash", Napi::Boolean::New(env, s.parentTrash));
  return p;
}

Napi::Value StatToJs(Napi::Env env, const StatData& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("size", Num(env, s.info.size));
  o.Set("objectSize", Num(env, s.info.obj_size));
  o.Set("numObjects", Num(env, s.info.num_objs));
  o.Set("order", Napi::Number::New(env, s.info.order));
  o.Set("features", U64(env, s.features));
  o.Set("parent", ParentToJs(env, s));
  return o;
}

Napi::Function NativeImage::Define(Napi::Env env) {
  return DefineClass(
      env, "NativeImage",
      {InstanceMethod<&NativeImage::Size>("size"),
       InstanceMethod<&NativeImage::Stat>("stat"),
       InstanceMethod<&NativeImage::Features>("features"),
       InstanceMethod<&NativeImage::Flags>("flags"),
       InstanceMethod<&NativeImage::ParentInfo>("parentInfo"),
       InstanceMethod<&NativeImage::DiffIterate>("diffIterate"),
       InstanceMethod<&NativeImage::DataObjects>("dataObjects"),
       InstanceMethod<&NativeImage::Read>("read"),
       InstanceMethod<&NativeImage::Write>("write"),
       InstanceMethod<&NativeImage::Discard>("discard"),
       InstanceMethod<&NativeImage::WriteZeroes>("writeZeroes"),
       InstanceMethod<&NativeImage::Flush>("flush"),
       InstanceMethod<&NativeImage::Resize>("resize"),
       InstanceMethod<&NativeImage::Flatten>("flatten"),
       InstanceMethod<&NativeImage::SnapCreate>("snapCreate"),
       InstanceMethod<&NativeImage::SnapRemove>("snapRemove"),
       InstanceMethod<&NativeImage::SnapRemoveById>("snapRemoveById"),
       InstanceMethod<&NativeImage::SnapList>("snapList"),
       InstanceMethod<&NativeImage::SnapProtect>("snapProtect"),
       InstanceMethod<&NativeImage::SnapUnprotect>("snapUnprotect"),
       InstanceMethod<&NativeImage::SnapIsProtected>("snapIsProtected"),
       InstanceMethod<&NativeImage::SnapExists>("snapExists"),
       InstanceMethod<&NativeImage::ListChildren>("listChildren"),
       InstanceMethod<&NativeImage::SnapSet>("snapSet"),
       InstanceMethod<&NativeImage::MetadataGet>("metadataGet"),
       InstanceMethod<&NativeImage::MetadataSet>("metadataSet"),
       InstanceMethod<&NativeImage::MetadataRemove>("metadataRemove"),
       InstanceMethod<&NativeImage::MetadataList>("metadataList"),
       InstanceMethod<&NativeImage::LockExclusive>("lockExclusive"),
       InstanceMethod<&NativeImage::Unlock>("unlock"),
       InstanceMethod<&NativeImage::ListLockers>("listLockers"),
       InstanceMethod<&NativeImage::BreakLock>("breakLock"),
       InstanceMethod<&NativeImage::Close>("close")});
}

NativeImage::NativeImage(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeImage>(info) {
  if (info.Length() < 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "use NativeIoctx.openImage()");
  h_ = info[0].As<Napi::External<ImageHandle>>().Data();
  spec_ = h_->Spec();
}

NativeImage::~NativeImage() {
  if (h_) Handle::ReleaseDetached(h_);
}

Napi::Value NativeImage::Call(Napi::Env env, const char* call, ImageExec exec,
                              std::function<Napi::Value(Napi::Env)> resolve,
                              const std::string& snap) {
  if (!h_) return Rejected(env, EBADF, call, spec_);
  ImageHandle* h = h_;
  std::string object = snap.empty() ? h->Spec() : ImageSpec(h->ioctx->pool, h->ioctx->ns, h->name, snap);
  return CallWorker::Start(
      env, object, {h}, [h, exec = std::move(exec)](Outcome& o) { exec(h->image, o); },
      std::move(resolve));
}

Napi::Value NativeImage::Aio(Napi::Env env, const char* call, AioSubmit submit, Napi::Value keep,
                             std::function<Napi::Value(Napi::Env, ssize_t)> result) {
  if (!h_) return Rejected(env, EBADF, call, spec_);
  Napi::Promise promise;
  AioOp* op = AioOp::CreateWithPromise(env, {h_}, call, h_->Spec(), std::move(result), &promise);
  if (!keep.IsEmpty() && keep.IsObject()) op->Keep(keep);
  int r = submit(h_->image, op->completion());
  if (r < 0) op->SubmitFailed(env, r);
  return promise;
}

// rbd_get_size
Napi::Value NativeImage::Size(const Napi::CallbackInfo& info) {
  auto size = std::make_shared<uint64_t>(0);
  return Call(
      info.Env(), "rbd_get_size",
      [size](rbd_image_t img, Outcome& o) { o.Ok(rbd_get_size(img, size.get()), "rbd_get_size"); },
      [size](Napi::Env env) { return Num(env, *size); });
}

// rbd_stat + rbd_get_features + rbd_get_parent
Napi::Value NativeImage::Stat(const Napi::CallbackInfo& info) {
  auto st = std::make_shared<StatData>();
  return Call(
      info.Env(), "rbd_stat", [st](rbd_image_t img, Outcome& o) { ReadStat(img, o, *st); },
      [st](Napi::Env env) { return StatToJs(env, *st); });
}

// rbd_get_features
Napi::Value NativeImage::Features(const Napi::CallbackInfo& info) {
  auto v = std::make_shared<uint64_t>(0);
  return Call(
      info.Env(), "rbd_get_features",
      [v](rbd_image_t img, Outcome& o) { o.Ok(rbd_get_features(img, v.get()), "rbd_get_features"); },
      [v](Napi::Env env) { return U64(env, *v); });
}

// rbd_get_flags
Napi::Value NativeImage::Flags(const Napi::CallbackInfo& info) {
  auto v = std::make_shared<uint64_t>(0);
  return Call(
      info.Env(), "rbd_get_flags",
      [v](rbd_image_t img, Outcome& o) { o.Ok(rbd_get_flags(img, v.get()), "rbd_get_flags"); },
      [v](Napi::Env env) { return U64(env, *v); });
}

// rbd_get_parent
Napi::Value NativeImage::ParentInfo(const Napi::CallbackInfo& info) {
  auto st = std::make_shared<StatData>();
  return Call(
      info.Env(), "rbd_get_parent",
      [st](rbd_image_t img, Outcome& o) {
        rbd_linked_image_spec_t parent{};
        rbd_snap_spec_t snap{};
        int r = rbd_get_parent(img, &parent, &snap);
        if (r == -ENOENT || !o.Ok(r, "rbd_get_parent")) return;
        st->hasParent = true;
        st->parentPool = parent.pool_name;
        st->parentNs = parent.pool_namespace;
        st->parentImage = parent.image_name;
        st->parentImageId = parent.image_id;
        st->parentTrash = parent.trash;
        st->parentSnap = snap.name;
        st->parentSnapId = snap.id;
        rbd_linked_image_spec_cleanup(&parent);
        rbd_snap_spec_cleanup(&snap);
      },
      [st](Napi::Env env) { return ParentToJs(env, *st); });
}

// diffIterate(fromSnap | null, offset, length | undefined, wholeObject) — rbd_diff_iterate2
// (include_parent = 1, as `rbd diff` does). Without a length the rest of the image is covered.
Napi::Value NativeImage::DiffIterate(const Napi::CallbackInfo& info) {
  std::string from = OptString(info[0]);
  bool hasFrom = info[0].IsString();
  uint64_t offset = ToU64(info[1], "offset");
  bool hasLength = !info[2].IsUndefined() && !info[2].IsNull();
  uint64_t length = hasLength ? ToU64(info[2], "length") : 0;
  bool wholeObject = info[3].ToBoolean();
  struct Extent {
    uint64_t off;
    uint64_t len;
    bool exists;
  };
  auto extents = std::make_shared<std::vector<Extent>>();
  return Call(
      info.Env(), "rbd_diff_iterate2",
      [=](rbd_image_t img, Outcome& o) {
        uint64_t len = length;
        if (!hasLength) {
          uint64_t size = 0;
          if (!o.Ok(rbd_get_size(img, &size), "rbd_get_size")) return;
          len = size > offset ? size - offset : 0;
        }
        auto cb = [](uint64_t off, size_t n, int exists, void* arg) -> int {
          static_cast<std::vector<Extent>*>(arg)->push_back({off, n, exists != 0});
          return 0;
        };
        o.Ok(rbd_diff_iterate2(img, hasFrom ? from.c_str() : nullptr, offset, len, 1,
                               wholeObject ? 1 : 0, cb, extents.get()),
             "rbd_diff_iterate2");
      },
      [extents](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, extents->size());
        for (size_t i = 0; i < extents->size(); ++i) {
          const Extent& e = (*extents)[i];
          Napi::Object x = Napi::Object::New(env);
          x.Set("offset", Num(env, e.off));
          x.Set("length", Num(env, e.len));
          x.Set("exists", Napi::Boolean::New(env, e.exists));
          out.Set(i, x);
        }
        return out;
      },
      from);
}

// read(buffer, offset, length) -> bytes read — rbd_aio_read. The buffer stays referenced until
// the completion fires.
Napi::Value NativeImage::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<char> buf = info[0].As<Napi::Buffer<char>>();
  uint64_t offset = ToU64(info[1], "offset");
  uint64_t length = ToU64(info[2], "length");
  if (length > buf.Length()) throw Napi::RangeError::New(env, "buffer shorter than length");
  char* data = buf.Data();
  return Aio(
      env, "rbd_aio_read",
      [=](rbd_image_t img, rbd_completion_t c) { return rbd_aio_read(img, offset, length, data, c); },
      buf, [](Napi::Env env, ssize_t ret) { return Num(env, static_cast<uint64_t>(ret)); });
}

// write(buffer, offset) — rbd_aio_write. The buffer stays referenced until the completion fires.
Napi::Value NativeImage::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<char> buf = info[0].As<Napi::Buffer<char>>();
  uint64_t offset = ToU64(info[1], "offset");
  const char* data = buf.Data();
  size_t length = buf.Length();
  return Aio(
      env, "rbd_aio_write",
      [=](rbd_image_t img, rbd_completion_t c) { return rbd_aio_write(img, offset, length, data, c); },
      buf);
}

// discard(offset, length) — rbd_aio_discard
Napi::Value NativeImage::Discard(const Napi::CallbackInfo& info) {
  uint64_t offset = ToU64(info[0], "offset");
  uint64_t length = ToU64(info[1], "length");
  return Aio(
      info.Env(), "rbd_aio_discard",
      [=](rbd_image_t img, rbd_completion_t c) { return rbd_aio_discard(img, offset, length, c); },
      Napi::Value());
}

// writeZeroes(offset, length) — rbd_aio_write_zeroes
Napi::Value NativeImage::WriteZeroes(const Napi::CallbackInfo& info) {
  uint64_t offset = ToU64(info[0], "offset");
  uint64_t length = ToU64(info[1], "length");
  return Aio(
      info.Env(), "rbd_aio_write_zeroes",
      [=](rbd_image_t img, rbd_completion_t c) {
        return rbd_aio_write_zeroes(img, offset, length, c, 0, 0);
      },
      Napi::Value());
}

// flush() — rbd_aio_flush
Napi::Value NativeImage::Flush(const Napi::CallbackInfo& info) {
  return Aio(
      info.Env(), "rbd_aio_flush",
      [](rbd_image_t img, rbd_completion_t c) { return rbd_aio_flush(img, c); }, Napi::Value());
}

// resize(size, cancelToken) — rbd_resize_with_progress
Napi::Value NativeImage::Resize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t size = ToU64(info[0], "size");
  if (!h_) return Rejected(env, EBADF, "rbd_resize_with_progress", spec_);
  ImageHandle* h = h_;
  return ProgressCallWorker::Start(env, h->Spec(), {h}, info[1],
                                   [h, size](Outcome& o, ProgressSink& sink) {
                                     o.Ok(rbd_resize_with_progress(h->image, size,
                                                                   &ProgressSink::Callback, &sink),
                                          "rbd_resize_with_progress");
                                   });
}

// flatten(cancelToken) — rbd_flatten_with_progress
Napi::Value NativeImage::Flatten(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!h_) return Rejected(env, EBADF, "rbd_flatten_with_progress", spec_);
  ImageHandle* h = h_;
  return ProgressCallWorker::Start(env, h->Spec(), {h}, info[0],
                                   [h](Outcome& o, ProgressSink& sink) {
                                     o.Ok(rbd_flatten_with_progress(h->image, &ProgressSink::Callback,
                                                                    &sink),
                                          "rbd_flatten_with_progress");
                                   });
}

// snapCreate(name) — rbd_snap_create
Napi::Value NativeImage::SnapCreate(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  return Call(
      info.Env(), "rbd_snap_create",
      [name](rbd_image_t img, Outcome& o) { o.Ok(rbd_snap_create(img, name.c_str()), "rbd_snap_create"); },
      nullptr, name);
}

// snapRemove(name, force, cancelToken) — rbd_snap_remove2
// (force = RBD_SNAP_REMOVE_FORCE: unprotect and flatten children as needed)
Napi::Value NativeImage::SnapRemove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  uint32_t flags = info[1].ToBoolean() ? RBD_SNAP_REMOVE_FORCE : 0;
  if (!h_) return Rejected(env, EBADF, "rbd_snap_remove2", spec_);
  ImageHandle* h = h_;
  return ProgressCallWorker::Start(
      env, ImageSpec(h->ioctx->pool, h->ioctx->ns, h->name, name), {h}, info[2],
      [h, name, flags](Outcome& o, ProgressSink& sink) {
        o.Ok(rbd_snap_remove2(h->image, name.c_str(), flags, &ProgressSink::Callback, &sink),
             "rbd_snap_remove2");
      });
}

// snapRemoveById(id) — rbd_snap_remove_by_id
Napi::Value NativeImage::SnapRemoveById(const Napi::CallbackInfo& info) {
  uint64_t id = ToU64(info[0], "id");
  return Call(
      info.Env(), "rbd_snap_remove_by_id",
      [id](rbd_image_t img, Outcome& o) { o.Ok(rbd_snap_remove_by_id(img, id), "rbd_snap_remove_by_id"); },
      nullptr, "snap-id:" + std::to_string(id));
}

// snapList() — rbd_snap_list, then per snapshot rbd_snap_get_namespace_type,
// rbd_snap_get_trash_namespace (trash only) and rbd_snap_get_timestamp.
Napi::Value NativeImage::SnapList(const Napi::CallbackInfo& info) {
  struct Snap {
    uint64_t id, size;
    std::string name, ns, originalName;
    bool hasTimestamp = false;
    double timestampMs = 0;
  };
  auto snaps = std::make_shared<std::vector<Snap>>();
  return Call(
      info.Env(), "rbd_snap_list",
      [snaps](rbd_image_t img, Outcome& o) {
        int max = 16;
        std::vector<rbd_snap_info_t> list;
        int r;
        do {
          list.resize(max);
          r = rbd_snap_list(img, list.data(), &max);
        } while (r == -ERANGE);
        if (!o.Ok(r, "rbd_snap_list")) return;
        for (int i = 0; i < r; ++i) snaps->push_back({list[i].id, list[i].size, list[i].name, "", "", false, 0});
        rbd_snap_list_end(list.data());
        for (Snap& s : *snaps) {
          rbd_snap_namespace_type_t type;
          if (!o.Ok(rbd_snap_get_namespace_type(img, s.id, &type), "rbd_snap_get_namespace_type")) return;
          s.ns = SnapNamespace(type);
          if (type == RBD_SNAP_NAMESPACE_TYPE_TRASH) {
            char original[4096] = {0};
            if (!o.Ok(rbd_snap_get_trash_namespace(img, s.id, original, sizeof(original)),
                      "rbd_snap_get_trash_namespace"))
              return;
            s.originalName = original;
          }
          struct timespec ts{};
          // Snapshots made before timestamps existed have none; that is not an error.
          if (rbd_snap_get_timestamp(img, s.id, &ts) == 0 && ts.tv_sec > 0) {
            s.hasTimestamp = true;
            s.timestampMs = static_cast<double>(ts.tv_sec) * 1000.0 + ts.tv_nsec / 1e6;
          }
        }
      },
      [snaps](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, snaps->size());
        for (size_t i = 0; i < snaps->size(); ++i) {
          const Snap& s = (*snaps)[i];
          Napi::Object x = Napi::Object::New(env);
          x.Set("id", U64(env, s.id));
          x.Set("name", s.name);
          x.Set("size", Num(env, s.size));
          x.Set("namespace", s.ns);
          if (!s.originalName.empty()) x.Set("originalName", s.originalName);
          if (s.hasTimestamp) x.Set("timestamp", Napi::Number::New(env, s.timestampMs));
          out.Set(i, x);
        }
        return out;
      });
}

// snapProtect(name) — rbd_snap_protect
Napi::Value NativeImage::SnapProtect(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  return Call(
      info.Env(), "rbd_snap_protect",
      [name](rbd_image_t img, Outcome& o) { o.Ok(rbd_snap_protect(img, name.c_str()), "rbd_snap_protect"); },
      nullptr, name);
}

// snapUnprotect(name) — rbd_snap_unprotect
Napi::Value NativeImage::SnapUnprotect(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  return Call(
      info.Env(), "rbd_snap_unprotect",
      [name](rbd_image_t img, Outcome& o) {
        o.Ok(rbd_snap_unprotect(img, name.c_str()), "rbd_snap_unprotect");
      },
      nullptr, name);
}

// snapIsProtected(name) — rbd_snap_is_protected
Napi::Value NativeImage::SnapIsProtected(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  auto v = std::make_shared<int>(0);
  return Call(
      info.Env(), "rbd_snap_is_protected",
      [name, v](rbd_image_t img, Outcome& o) {
        o.Ok(rbd_snap_is_protected(img, name.c_str(), v.get()), "rbd_snap_is_protected");
      },
      [v](Napi::Env env) { return Napi::Boolean::New(env, *v != 0); }, name);
}

// snapExists(name) — rbd_snap_exists
Napi::Value NativeImage::SnapExists(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>().Utf8Value();
  auto v = std::make_shared<bool>(false);
  return Call(
      info.Env(), "rbd_snap_exists",
      [name, v](rbd_image_t img, Outcome& o) {
        o.Ok(rbd_snap_exists(img, name.c_str(), v.get()), "rbd_snap_exists");
      },
      [v](Napi::Env env) { return Napi::Boolean::New(env, *v); }, name);
}

// listChildren() — rbd_list_children3
Napi::Value NativeImage::ListChildren(const Napi::CallbackInfo& info) {
  struct Child {
    std::string pool, ns, image, id;
    bool trash;
  };
  auto children = std::make_shared<std::vector<Child>>();
  return Call(
      info.Env(), "rbd_list_children3",
      [children](rbd_image_t img, Outcome& o) {
        size_t max = 16;
        std::vector<rbd_linked_image_spec_t> list;
        int r;
        do {
          list.resize(max);
          r = rbd_list_children3(img, list.data(), &max);
        } while (r == -ERANGE);
        if (!o.Ok(r, "rbd_list_children3")) return;
        for (size_t i = 0; i < max; ++i)
          children->push_back({list[i].pool_name, list[i].pool_namespace, list[i].image_name,
                               list[i].image_id, list[i].trash});
        rbd_linked_image_spec_list_cleanup(list.data(), max);
      },
      [children](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, children->size());
        for (size_t i = 0; i < children->size(); ++i) {
          const Child& c = (*children)[i];
          Napi::Object x = Napi::Object::New(env);
          x.Set("pool", c.pool);
          x.Set("namespace", c.ns);
          x.Set("image", c.image);
          x.Set("imageId", c.id);
          x.Set("trash", Napi::Boolean::New(env, c.trash));
          out.Set(i, x);
        }
        return out;
      });
}

// snapSet(name | null) — rbd_snap_set (null returns to the image head)
Napi::Value NativeImage::SnapSet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool head = !info[0].IsString();
  std::string name = OptString(info[0]);
  if (!h_) return Rejected(env, EBADF, "rbd_snap_set", spec_);
  ImageHandle* h = h_;
  return Call(
      env, "rbd_snap_set",
      [name, head](rbd_image_t img, Outcome& o) {
        o.Ok(rbd_snap_set(img, head ? nullptr : name.c_str()), "rbd_snap_set");
      },
      [h, name](Napi::Env env) {
        h->snap = name;
        return env.Undefined();
      },
      name);
}

// metadataGet(key) -> string | null — rbd_metadata_get
Napi::Value NativeImage::MetadataGet(const Napi::CallbackInfo& info) {
  std::string key = info[0].As<Napi::String>().Utf8Value();
  struct Result {
    bool found = false;
    std::string value;
  };
  auto res = std::make_shared<Result>();
  return Call(
      info.Env(), "rbd_metadata_get",
      [key, res](rbd_image_t img, Outcome& o) {
        size_t len = 256;
        std::vector<char> buf;
        int r;
        do {
          buf.resize(len);
          r = rbd_metadata_get(img, key.c_str(), buf.data(), &len);
        } while (r == -ERANGE);
        if (r == -ENOENT || !o.Ok(r, "rbd_metadata_get")) return;
        res->found = true;
        res->value.assign(buf.data(), strnlen(buf.data(), len));
      },
      [res](Napi::Env env) -> Napi::Value {
        if (!res->found) return env.Null();
        return Napi::String::New(env, res->value);
      });
}

// metadataSet(key, value) — rbd_metadata_set
Napi::Value NativeImage::MetadataSet(const Napi::CallbackInfo& info) {
  std::string key = info[0].As<Napi::String>().Utf8Value();
  std::string value = info[1].As<Napi::String>().Utf8Value();
  return Call(info.Env(), "rbd_metadata_set", [key, value](rbd_image_t img, Outcome& o) {
    o.Ok(rbd_metadata_set(img, key.c_str(), value.c_str()), "rbd_metadata_set");
  });
}

// metadataRemove(key) — rbd_metadata_remove
Napi::Value NativeImage::MetadataRemove(const Napi::CallbackInfo& info) {
  std::string key = info[0].As<Napi::String>().Utf8Value();
  return Call(info.Env(), "rbd_metadata_remove", [key](rbd_image_t img, Outcome& o) {
    o.Ok(rbd_metadata_remove(img, key.c_str()), "rbd_metadata_remove");
  });
}

// metadataList() -> Record<string, string> — rbd_metadata_list
Napi::Value NativeImage::MetadataList(const Napi::CallbackInfo& info) {
  auto pairs = std::make_shared<std::pair<std::vector<std::string>, std::vector<std::string>>>();
  return Call(
      info.Env(), "rbd_metadata_list",
      [pairs](rbd_image_t img, Outcome& o) {
        size_t keyLen = 1024, valLen = 4096;
        std::vector<char> keys, vals;
        int r;
        do {
          keys.resize(keyLen);
          vals.resize(valLen);
          r = rbd_metadata_list(img, "", 0, keys.data(), &keyLen, vals.data(), &valLen);
        } while (r == -ERANGE);
        if (!o.Ok(r, "rbd_metadata_list")) return;
        pairs->first = SplitNul(keys.data(), keyLen);
        // Values may be empty strings, so they are split by count, not by SplitNul.
        size_t pos = 0;
        for (size_t i = 0; i < pairs->first.size() && pos <= valLen; ++i) {
          size_t n = strnlen(vals.data() + pos, valLen - pos);
          pairs->second.emplace_back(vals.data() + pos, n);
          pos += n + 1;
        }
      },
      [pairs](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        for (size_t i = 0; i < pairs->first.size() && i < pairs->second.size(); ++i)
          out.Set(pairs->first[i], pairs->second[i]);
        return out;
      });
}

// lockExclusive(cookie) — rbd_lock_exclusive (advisory lock)
Napi::Value NativeImage::LockExclusive(const Napi::CallbackInfo& info) {
  std::string cookie = info[0].As<Napi::String>().Utf8Value();
  return Call(info.Env(), "rbd_lock_exclusive", [cookie](rbd_image_t img, Outcome& o) {
    o.Ok(rbd_lock_exclusive(img, cookie.c_str()), "rbd_lock_exclusive");
  });
}

// unlock(cookie) — rbd_unlock
Napi::Value NativeImage::Unlock(const Napi::CallbackInfo& info) {
  std::string cookie = info[0].As<Napi::String>().Utf8Value();
  return Call(info.Env(), "rbd_unlock", [cookie](rbd_image_t img, Outcome& o) {
    o.Ok(rbd_unlock(img, cookie.c_str()), "rbd_unlock");
  });
}

// listLockers() — rbd_list_lockers
Napi::Value NativeImage::ListLockers(const Napi::CallbackInfo& info) {
  struct Lockers {
    bool exclusive = false;
    std::vector<std::string> clients, cookies, addrs;
  };
  auto res = std::make_shared<Lockers>();
  return Call(
      info.Env(), "rbd_list_lockers",
      [res](rbd_image_t img, Outcome& o) {
        size_t tagLen = 256, clientsLen = 1024, cookiesLen = 1024, addrsLen = 1024;
        std::vector<char> tag, clients, cookies, addrs;
        int exclusive = 0;
        ssize_t r;
        do {
          tag.resize(tagLen);
          clients.resize(clientsLen);
          cookies.resize(cookiesLen);
          addrs.resize(addrsLen);
          r = rbd_list_lockers(img, &exclusive, tag.data(), &tagLen, clients.data(), &clientsLen,
                               cookies.data(), &cookiesLen, addrs.data(), &addrsLen);
        } while (r == -ERANGE);
        if (!o.Ok(r, "rbd_list_lockers")) return;
        res->exclusive = exclusive != 0;
        if (r == 0) return;
        res->clients = SplitNul(clients.data(), clientsLen);
        res->cookies = SplitNul(cookies.data(), cookiesLen);
        res->addrs = SplitNul(addrs.data(), addrsLen);
      },
      [res](Napi::Env env) -> Napi::Value {
        size_t n = res->clients.size();
        Napi::Array out = Napi::Array::New(env, n);
        for (size_t i = 0; i < n; ++i) {
          Napi::Object x = Napi::Object::New(env);
          x.Set("client", res->clients[i]);
          x.Set("cookie", i < res->cookies.size() ? res->cookies[i] : "");
          x.Set("address", i < res->addrs.size() ? res->addrs[i] : "");
          x.Set("exclusive", Napi::Boolean::New(env, res->exclusive));
          out.Set(i, x);
        }
        return out;
      });
}

// breakLock(client, cookie) — rbd_break_lock
Napi::Value NativeImage::BreakLock(const Napi::CallbackInfo& info) {
  std::string client = info[0].As<Napi::String>().Utf8Value();
  std::string cookie = info[1].As<Napi::String>().Utf8Value();
  return Call(info.Env(), "rbd_break_lock", [client, cookie](rbd_image_t img, Outcome& o) {
    o.Ok(rbd_break_lock(img, client.c_str(), cookie.c_str()), "rbd_break_lock");
  });
}

// close() — drops this object's reference; once no call is in flight on the image,
// rbd_aio_close runs and the promise settles from its completion.
Napi::Value NativeImage::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto deferred = std::make_shared<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
  Napi::Promise promise = deferred->Promise();
  if (!h_) {
    deferred->Resolve(env.Undefined());
    return promise;
  }
  ImageHandle* h = h_;
  h_ = nullptr;
  std::string spec = h->Spec();
  h->OnClosed([deferred, env, spec](int r) {
    if (r < 0)
      deferred->Reject(CephError(env, -r, "rbd_aio_close", spec).Value());
    else
      deferred->Resolve(env.Undefined());
  });
  Handle::Release(env, h);
  return promise;
}

}  // namespace cephrbd
