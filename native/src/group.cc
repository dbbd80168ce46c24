// RBD groups: glue only. Every call runs in a CallWorker on the libuv pool (group calls are admin calls:
// a few omap ops each, no data), and every failure reaches JS as a raw errno through CephError; the typed
// face is lib/group.ts. Groups live in a pool (the group ioctx); their images may live in other pools.
#include "group.h"

#include <errno.h>

#include <memory>
#include <string>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "image.h"
#include "ioctx.h"
#include "workers.h"

namespace cephrbd {

namespace {

IoctxHandle* IoctxArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  if (!info[i].IsObject() || !info[i].As<Napi::Object>().InstanceOf(Data(env)->ioctxCtor.Value()))
    throw Napi::TypeError::New(env, "expected a NativeIoctx");
  return NativeIoctx::Unwrap(info[i].As<Napi::Object>())->handle();
}

ImageHandle* ImageArg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(Data(env)->imageCtor.Value()))
    throw Napi::TypeError::New(env, "expected a NativeImage");
  return NativeImage::Unwrap(info[0].As<Napi::Object>())->handle();
}

std::string Str(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::String>().Utf8Value(); }

std::string GroupSpec(const IoctxHandle* h, const std::string& group, const std::string& snap = "") {
  return ImageSpec(h->pool, h->ns, "group:" + group, snap);
}

// A call on one group: fn(ioctx) in a worker, resolved with resolve(env) (undefined when null).
Napi::Value GroupCall(const Napi::CallbackInfo& info, const char* call, const std::string& group,
                      const std::string& snap, std::function<void(IoctxHandle*, Outcome&)> fn,
                      ResolveFn resolve = nullptr) {
  IoctxHandle* h = IoctxArg(info, 0);
  if (!h) return Rejected(info.Env(), EBADF, call, "group:" + group);
  return CallWorker::Start(
      info.Env(), GroupSpec(h, group, snap), {h}, [h, fn = std::move(fn)](Outcome& o) { fn(h, o); },
      std::move(resolve));
}

Napi::Array Strings(Napi::Env env, const std::vector<std::string>& v) {
  Napi::Array out = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) out.Set(i, v[i]);
  return out;
}

// groupCreate(ioctx, name) — rbd_group_create
Napi::Value GroupCreate(const Napi::CallbackInfo& info) {
  std::string name = Str(info, 1);
  return GroupCall(info, "rbd_group_create", name, "", [name](IoctxHandle* h, Outcome& o) {
    o.Ok(rbd_group_create(h->io, name.c_str()), "rbd_group_create");
  });
}

// groupRemove(ioctx, name) — rbd_group_remove (its snapshots go too; its images stay, ungrouped)
Napi::Value GroupRemove(const Napi::CallbackInfo& info) {
  std::string name = Str(info, 1);
  return GroupCall(info, "rbd_group_remove", name, "", [name](IoctxHandle* h, Outcome& o) {
    o.Ok(rbd_group_remove(h->io, name.c_str()), "rbd_group_remove");
  });
}

// groupList(ioctx) -> string[] — rbd_group_list
Napi::Value GroupList(const Napi::CallbackInfo& info) {
  auto names = std::make_shared<std::vector<std::string>>();
  return GroupCall(
      info, "rbd_group_list", "", "",
      [names](IoctxHandle* h, Outcome& o) {
        size_t size = 1024;
        std::vector<char> buf;
        int r;
        do {
          buf.resize(size);
          r = rbd_group_list(h->io, buf.data(), &size);
        } while (r == -ERANGE);
        if (!o.Ok(r, "rbd_group_list")) return;
        for (size_t i = 0; i < static_cast<size_t>(r);) {
          std::string name(buf.data() + i);
          i += name.size() + 1;
          if (!name.empty()) names->push_back(std::move(name));
        }
      },
      [names](Napi::Env env) -> Napi::Value { return Strings(env, *names); });
}

// groupImageAdd(groupIoctx, group, imageIoctx, image) — rbd_group_image_add
// groupImageRemove(groupIoctx, group, imageIoctx, image) — rbd_group_image_remove
Napi::Value GroupImageChange(const Napi::CallbackInfo& info, bool add) {
  const char* call = add ? "rbd_group_image_add" : "rbd_group_image_remove";
  std::string group = Str(info, 1);
  IoctxHandle* ih = IoctxArg(info, 2);
  std::string image = Str(info, 3);
  if (!ih) return Rejected(info.Env(), EBADF, call, image);
  IoctxHandle* gh = IoctxArg(info, 0);
  if (!gh) return Rejected(info.Env(), EBADF, call, "group:" + group);
  return CallWorker::Start(info.Env(), GroupSpec(gh, group) + " " + ImageSpec(ih->pool, ih->ns, image, ""), {gh, ih},
                           [gh, ih, group, image, add, call](Outcome& o) {
                             int r = add ? rbd_group_image_add(gh->io, group.c_str(), ih->io, image.c_str())
                                         : rbd_group_image_remove(gh->io, group.c_str(), ih->io, image.c_str());
                             o.Ok(r, call);
                           });
}

Napi::Value GroupImageAdd(const Napi::CallbackInfo& info) { return GroupImageChange(info, true); }
Napi::Value GroupImageRemove(const Napi::CallbackInfo& info) { return GroupImageChange(info, false); }

// groupImageList(ioctx, group) -> { name, poolId, state }[] — rbd_group_image_list
Napi::Value GroupImageList(const Napi::CallbackInfo& info) {
  struct Entry {
    std::string name;
    int64_t pool;
    bool attached;
  };
  std::string group = Str(info, 1);
  auto entries = std::make_shared<std::vector<Entry>>();
  return GroupCall(
      info, "rbd_group_image_list", group, "",
      [group, entries](IoctxHandle* h, Outcome& o) {
        size_t n = 16;
        std::vector<rbd_group_image_info_t> list;
        int r;
        do {
          list.resize(n);
          r = rbd_group_image_list(h->io, group.c_str(), list.data(), sizeof(rbd_group_image_info_t), &n);
        } while (r == -ERANGE);
        if (!o.Ok(r, "rbd_group_image_list")) return;
        for (size_t i = 0; i < n; ++i)
          entries->push_back({list[i].name, list[i].pool, list[i].state == RBD_GROUP_IMAGE_STATE_ATTACHED});
        rbd_group_image_list_cleanup(list.data(), sizeof(rbd_group_image_info_t), n);
      },
      [entries](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, entries->size());
        for (size_t i = 0; i < entries->size(); ++i) {
          Napi::Object x = Napi::Object::New(env);
          x.Set("name", (*entries)[i].name);
          x.Set("poolId", Napi::Number::New(env, static_cast<double>((*entries)[i].pool)));
          x.Set("state", (*entries)[i].attached ? "attached" : "incomplete");
          out.Set(i, x);
        }
        return out;
      });
}

// groupSnapCreate(ioctx, group, snap) — rbd_group_snap_create (every image of the group quiesced,
// then snapshotted together: one point in time for all of them)
Napi::Value GroupSnapCreate(const Napi::CallbackInfo& info) {
  std::string group = Str(info, 1);
  std::string snap = Str(info, 2);
  return GroupCall(info, "rbd_group_snap_create", group, snap, [group, snap](IoctxHandle* h, Outcome& o) {
    o.Ok(rbd_group_snap_create(h->io, group.c_str(), snap.c_str()), "rbd_group_snap_create");
  });
}

// groupSnapRemove(ioctx, group, snap) — rbd_group_snap_remove
Napi::Value GroupSnapRemove(const Napi::CallbackInfo& info) {
  std::string group = Str(info, 1);
  std::string snap = Str(info, 2);
  return GroupCall(info, "rbd_group_snap_remove", group, snap, [group, snap](IoctxHandle* h, Outcome& o) {
    o.Ok(rbd_group_snap_remove(h->io, group.c_str(), snap.c_str()), "rbd_group_snap_remove");
  });
}

// groupSnapList(ioctx, group) -> { name, state }[] — rbd_group_snap_list
Napi::Value GroupSnapList(const Napi::CallbackInfo& info) {
  struct Entry {
    std::string name;
    bool complete;
  };
  std::string group = Str(info, 1);
  auto entries = std::make_shared<std::vector<Entry>>();
  return GroupCall(
      info, "rbd_group_snap_list", group, "",
      [group, entries](IoctxHandle* h, Outcome& o) {
        size_t n = 16;
        std::vector<rbd_group_snap_info_t> list;
        int r;
        do {
          list.resize(n);
          r = rbd_group_snap_list(h->io, group.c_str(), list.data(), sizeof(rbd_group_snap_info_t), &n);
        } while (r == -ERANGE);
        if (!o.Ok(r, "rbd_group_snap_list")) return;
        for (size_t i = 0; i < n; ++i) entries->push_back({list[i].name, list[i].state == RBD_GROUP_SNAP_STATE_COMPLETE});
        rbd_group_snap_list_cleanup(list.data(), sizeof(rbd_group_snap_info_t), n);
      },
      [entries](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, entries->size());
        for (size_t i = 0; i < entries->size(); ++i) {
          Napi::Object x = Napi::Object::New(env);
          x.Set("name", (*entries)[i].name);
          x.Set("state", (*entries)[i].complete ? "complete" : "incomplete");
          out.Set(i, x);
        }
        return out;
      });
}

// An image call in a worker: fn(image, outcome), resolved with resolve(env).
Napi::Value ImageCall(const Napi::CallbackInfo& info, const char* call, std::function<void(rbd_image_t, Outcome&)> fn,
                      ResolveFn resolve = nullptr) {
  ImageHandle* h = ImageArg(info);
  if (!h) return Rejected(info.Env(), EBADF, call, "image");
  return CallWorker::Start(
      info.Env(), h->Spec(), {h}, [h, fn = std::move(fn)](Outcome& o) { fn(h->image, o); }, std::move(resolve));
}

// imageGetGroup(image) -> { name, poolId } | null — rbd_get_group
Napi::Value ImageGetGroup(const Napi::CallbackInfo& info) {
  struct Result {
    std::string name;
    int64_t pool = -1;
  };
  auto res = std::make_shared<Result>();
  return ImageCall(
      info, "rbd_get_group",
      [res](rbd_image_t img, Outcome& o) {
        rbd_group_info_t g{};
        if (!o.Ok(rbd_get_group(img, &g, sizeof(g)), "rbd_get_group")) return;
        res->name = g.name ? g.name : "";
        res->pool = g.pool;
        rbd_group_info_cleanup(&g, sizeof(g));
      },
      [res](Napi::Env env) -> Napi::Value {
        // librbd answers pool -1 and an empty name for an image in no group.
        if (res->pool < 0 || res->name.empty()) return env.Null();
        Napi::Object x = Napi::Object::New(env);
        x.Set("name", res->name);
        x.Set("poolId", Napi::Number::New(env, static_cast<double>(res->pool)));
        return x;
      });
}

// imageSnapGroupNamespace(image, snapId) -> { poolId, group, groupSnap } — rbd_snap_get_group_namespace
Napi::Value ImageSnapGroupNamespace(const Napi::CallbackInfo& info) {
  uint64_t id = ToU64(info[1], "snapId");
  struct Result {
    int64_t pool = -1;
    std::string group, snap;
  };
  auto res = std::make_shared<Result>();
  return ImageCall(
      info, "rbd_snap_get_group_namespace",
      [id, res](rbd_image_t img, Outcome& o) {
        rbd_snap_group_namespace_t ns{};
        if (!o.Ok(rbd_snap_get_group_namespace(img, id, &ns, sizeof(ns)), "rbd_snap_get_group_namespace")) return;
        res->pool = ns.group_pool;
        res->group = ns.group_name ? ns.group_name : "";
        res->snap = ns.group_snap_name ? ns.group_snap_name : "";
        rbd_snap_group_namespace_cleanup(&ns, sizeof(ns));
      },
      [res](Napi::Env env) -> Napi::Value {
        Napi::Object x = Napi::Object::New(env);
        x.Set("poolId", Napi::Number::New(env, static_cast<double>(res->pool)));
        x.Set("group", res->group);
        x.Set("groupSnap", res->snap);
        return x;
      });
}

// imageSnapSetById(image, snapId) — rbd_snap_set_by_id: the handle then reads (and diff-iterates) that
// snapshot, whatever its namespace; a group snapshot has no name a user-namespace open would find.
Napi::Value ImageSnapSetById(const Napi::CallbackInfo& info) {
  uint64_t id = ToU64(info[1], "snapId");
  ImageHandle* h = ImageArg(info);
  return ImageCall(
      info, "rbd_snap_set_by_id",
      [id](rbd_image_t img, Outcome& o) { o.Ok(rbd_snap_set_by_id(img, id), "rbd_snap_set_by_id"); },
      [h, id](Napi::Env env) -> Napi::Value {
        if (h) h->snap = "#" + std::to_string(id);
        return env.Undefined();
      });
}

}  // namespace

void RegisterGroup(Napi::Env env, Napi::Object exports) {
  exports.Set("groupCreate", Napi::Function::New(env, GroupCreate, "groupCreate"));
  exports.Set("groupRemove", Napi::Function::New(env, GroupRemove, "groupRemove"));
  exports.Set("groupList", Napi::Function::New(env, GroupList, "groupList"));
  exports.Set("groupImageAdd", Napi::Function::New(env, GroupImageAdd, "groupImageAdd"));
  exports.Set("groupImageRemove", Napi::Function::New(env, GroupImageRemove, "groupImageRemove"));
  exports.Set("groupImageList", Napi::Function::New(env, GroupImageList, "groupImageList"));
  exports.Set("groupSnapCreate", Napi::Function::New(env, GroupSnapCreate, "groupSnapCreate"));
  exports.Set("groupSnapRemove", Napi::Function::New(env, GroupSnapRemove, "groupSnapRemove"));
  exports.Set("groupSnapList", Napi::Function::New(env, GroupSnapList, "groupSnapList"));
  exports.Set("imageGetGroup", Napi::Function::New(env, ImageGetGroup, "imageGetGroup"));
  exports.Set("imageSnapGroupNamespace", Napi::Function::New(env, ImageSnapGroupNamespace, "imageSnapGroupNamespace"));
  exports.Set("imageSnapSetById", Napi::Function::New(env, ImageSnapSetById, "imageSnapSetById"));
}

}  // namespace cephrbd
