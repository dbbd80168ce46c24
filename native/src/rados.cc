// Plain RADOS object calls: compound write ops on one object (create, assert, omap set/remove/compare,
// remove), omap reads, and the cluster-level calls a lease keeper needs (blocklist, this client's
// address and instance id). Glue only: every blocking call runs in a CallWorker on the libuv pool and
// every failure reaches JS as a raw errno through CephError; lib/rados.ts is the typed face.
#include "rados.h"

#include <errno.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "addon.h"
#include "cluster.h"
#include "errors.h"
#include "ioctx.h"
#include "workers.h"

namespace cephrbd {

namespace {

// One step of a compound write op, as lib/rados.ts encodes it: [kind, ...args].
struct WriteStep {
  std::string kind;
  std::vector<std::string> keys;
  std::vector<std::string> values;
  bool exclusive = false;
};

std::string BytesOf(const Napi::Value& v) {
  if (v.IsBuffer()) {
    auto b = v.As<Napi::Buffer<char>>();
    return std::string(b.Data(), b.Length());
  }
  return v.As<Napi::String>().Utf8Value();
}

std::vector<std::string> StringsOf(const Napi::Value& v) {
  std::vector<std::string> out;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(BytesOf(a.Get(i)));
  return out;
}

std::vector<WriteStep> StepsOf(const Napi::Value& v) {
  std::vector<WriteStep> steps;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Array s = a.Get(i).As<Napi::Array>();
    WriteStep step;
    step.kind = s.Get(uint32_t(0)).As<Napi::String>().Utf8Value();
    if (step.kind == "create") step.exclusive = s.Get(uint32_t(1)).ToBoolean();
    if (step.kind == "omapSet" || step.kind == "omapRm" || step.kind == "omapCmp")
      step.keys = StringsOf(s.Get(uint32_t(1)));
    if (step.kind == "omapSet" || step.kind == "omapCmp") step.values = StringsOf(s.Get(uint32_t(2)));
    if (step.keys.size() < step.values.size() || (step.kind == "omapSet" && step.keys.size() != step.values.size()))
      throw Napi::TypeError::New(v.Env(), "omap keys and values must pair up");
    steps.push_back(std::move(step));
  }
  return steps;
}

// Pointer/length arrays over strings that outlive the op.
struct CArrays {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  explicit CArrays(const std::vector<std::string>& s) {
    for (const auto& x : s) {
      ptrs.push_back(x.data());
      lens.push_back(x.size());
    }
  }
};

struct Entries {
  std::vector<std::pair<std::string, std::string>> items;
  bool more = false;
};

// Drains an omap iterator filled by rados_read_op_operate.
void Drain(rados_omap_iter_t iter, Entries& out) {
  for (;;) {
    char* key = nullptr;
    char* val = nullptr;
    size_t klen = 0, vlen = 0;
    if (rados_omap_get_next2(iter, &key, &val, &klen, &vlen) < 0 || key == nullptr) break;
    out.items.emplace_back(std::string(key, klen), std::string(val ? val : "", vlen));
  }
  rados_omap_get_end(iter);
}

Napi::Value EntriesToJs(Napi::Env env, const Entries& e) {
  Napi::Array items = Napi::Array::New(env, e.items.size());
  for (size_t i = 0; i < e.items.size(); ++i) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(uint32_t(0), Napi::String::New(env, e.items[i].first));
    pair.Set(uint32_t(1), Napi::Buffer<char>::Copy(env, e.items[i].second.data(), e.items[i].second.size()));
    items.Set(i, pair);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("entries", items);
  out.Set("more", Napi::Boolean::New(env, e.more));
  return out;
}

IoctxHandle* IoctxOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(Data(env)->ioctxCtor.Value()))
    throw Napi::TypeError::New(env, "expected a NativeIoctx");
  return NativeIoctx::Unwrap(info[0].As<Napi::Object>())->handle();
}

RadosHandle* ClusterOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(Data(env)->clusterCtor.Value()))
    throw Napi::TypeError::New(env, "expected a NativeCluster");
  return NativeCluster::Unwrap(info[0].As<Napi::Object>())->handle();
}

std::string ObjectSpec(IoctxHandle* h, const std::string& oid) { return ImageSpec(h->pool, h->ns, oid); }

// Adds the steps to the op. Runs on the worker thread; `prvals` and `steps` outlive the op.
void AddSteps(rados_write_op_t op, const std::vector<WriteStep>& steps, std::vector<CArrays>& arrays,
              std::vector<int>& prvals) {
  for (const WriteStep& s : steps) {
    if (s.kind == "create") {
      rados_write_op_create(op, s.exclusive ? LIBRADOS_CREATE_EXCLUSIVE : LIBRADOS_CREATE_IDEMPOTENT, nullptr);
    } else if (s.kind == "assertExists") {
      rados_write_op_assert_exists(op);
    } else if (s.kind == "remove") {
      rados_write_op_remove(op);
    } else if (s.kind == "omapSet") {
      arrays.emplace_back(s.keys);
      arrays.emplace_back(s.values);
      CArrays& k = arrays[arrays.size() - 2];
      CArrays& v = arrays.back();
      rados_write_op_omap_set2(op, k.ptrs.data(), v.ptrs.data(), k.lens.data(), v.lens.data(), s.keys.size());
    } else if (s.kind == "omapRm") {
      arrays.emplace_back(s.keys);
      CArrays& k = arrays.back();
      rados_write_op_omap_rm_keys2(op, k.ptrs.data(), k.lens.data(), s.keys.size());
    } else if (s.kind == "omapCmp") {
      // A missing key compares as the empty value (the OSD's omap cmp): cmp(key, "") asserts absence.
      for (size_t i = 0; i < s.keys.size(); ++i) {
        prvals.push_back(0);
        rados_write_op_omap_cmp2(op, s.keys[i].data(), LIBRADOS_CMPXATTR_OP_EQ, s.values[i].data(),
                                 s.keys[i].size(), s.values[i].size(), &prvals.back());
      }
    }
  }
}

// writeOp(ioctx, oid, steps) — rados_create_write_op, the rados_write_op_* steps, rados_write_op_operate2.
// All steps apply atomically or none does; a failed compare fails the whole op with ECANCELED.
Napi::Value WriteOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  IoctxHandle* h = IoctxOf(info);
  std::string oid = info[1].As<Napi::String>().Utf8Value();
  auto steps = std::make_shared<std::vector<WriteStep>>(StepsOf(info[2]));
  if (!h) return Rejected(env, EBADF, "rados_write_op_operate2", oid);
  return CallWorker::Start(env, ObjectSpec(h, oid), {h}, [h, oid, steps](Outcome& o) {
    rados_write_op_t op = rados_create_write_op();
    std::vector<CArrays> arrays;
    arrays.reserve(steps->size() * 2);
    std::vector<int> prvals;
    size_t cmps = 0;
    for (const auto& s : *steps) cmps += s.kind == "omapCmp" ? s.keys.size() : 0;
    prvals.reserve(cmps);
    AddSteps(op, *steps, arrays, prvals);
    o.Ok(rados_write_op_operate2(op, h->io, oid.c_str(), nullptr, 0), "rados_write_op_operate2");
    rados_release_write_op(op);
  });
}

// omapGet(ioctx, oid, keys) — rados_read_op_omap_get_vals_by_keys2: the present keys with their values.
Napi::Value OmapGet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  IoctxHandle* h = IoctxOf(info);
  std::string oid = info[1].As<Napi::String>().Utf8Value();
  auto keys = std::make_shared<std::vector<std::string>>(StringsOf(info[2]));
  if (!h) return Rejected(env, EBADF, "rados_read_op_operate", oid);
  auto out = std::make_shared<Entries>();
  return CallWorker::Start(
      env, ObjectSpec(h, oid), {h},
      [h, oid, keys, out](Outcome& o) {
        CArrays k(*keys);
        rados_read_op_t op = rados_create_read_op();
        rados_omap_iter_t iter = nullptr;
        int prval = 0;
        rados_read_op_omap_get_vals_by_keys2(op, k.ptrs.data(), keys->size(), k.lens.data(), &iter, &prval);
        bool ok = o.Ok(rados_read_op_operate(op, h->io, oid.c_str(), 0), "rados_read_op_operate") &&
                  o.Ok(prval, "rados_read_op_omap_get_vals_by_keys2");
        if (ok && iter) Drain(iter, *out);
        else if (iter) rados_omap_get_end(iter);
        rados_release_read_op(op);
      },
      [out](Napi::Env env) { return EntriesToJs(env, *out); });
}

// omapList(ioctx, oid, startAfter, prefix, max) — rados_read_op_omap_get_vals2: up to max entries
// after startAfter, in key order, and whether more follow.
Napi::Value OmapList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  IoctxHandle* h = IoctxOf(info);
  std::string oid = info[1].As<Napi::String>().Utf8Value();
  std::string after = OptString(info[2]);
  std::string prefix = OptString(info[3]);
  uint64_t max = ToU64(info[4], "max");
  if (!h) return Rejected(env, EBADF, "rados_read_op_operate", oid);
  auto out = std::make_shared<Entries>();
  return CallWorker::Start(
      env, ObjectSpec(h, oid), {h},
      [h, oid, after, prefix, max, out](Outcome& o) {
        rados_read_op_t op = rados_create_read_op();
        rados_omap_iter_t iter = nullptr;
        unsigned char more = 0;
        int prval = 0;
        rados_read_op_omap_get_vals2(op, after.c_str(), prefix.empty() ? nullptr : prefix.c_str(), max,
                                     &iter, &more, &prval);
        bool ok = o.Ok(rados_read_op_operate(op, h->io, oid.c_str(), 0), "rados_read_op_operate") &&
                  o.Ok(prval, "rados_read_op_omap_get_vals2");
        if (ok && iter) Drain(iter, *out);
        else if (iter) rados_omap_get_end(iter);
        out->more = more != 0;
        rados_release_read_op(op);
      },
      [out](Napi::Env env) { return EntriesToJs(env, *out); });
}

// blocklistAdd(cluster, address, expireSeconds) — rados_blocklist_add (0: the cluster's default expiry).
Napi::Value BlocklistAdd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RadosHandle* h = ClusterOf(info);
  std::string addr = info[1].As<Napi::String>().Utf8Value();
  uint32_t expire = info[2].As<Napi::Number>().Uint32Value();
  if (!h) return Rejected(env, EBADF, "rados_blocklist_add", addr);
  return CallWorker::Start(env, addr, {h}, [h, addr, expire](Outcome& o) {
    std::vector<char> buf(addr.begin(), addr.end());
    buf.push_back('\0');
    o.Ok(rados_blocklist_add(h->cluster, buf.data(), expire), "rados_blocklist_add");
  });
}

// clientAddress(cluster) — rados_getaddrs: this connection's address as the OSDs see it (what a
// blocklist entry names), e.g. "[v2:10.0.0.1:0/123,v1:10.0.0.1:0/123]".
Napi::Value ClientAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RadosHandle* h = ClusterOf(info);
  if (!h) return Rejected(env, EBADF, "rados_getaddrs", "client");
  auto out = std::make_shared<std::string>();
  return CallWorker::Start(
      env, "client." + h->user, {h},
      [h, out](Outcome& o) {
        char* addrs = nullptr;
        if (!o.Ok(rados_getaddrs(h->cluster, &addrs), "rados_getaddrs")) return;
        if (addrs) *out = addrs;
        rados_buffer_free(addrs);
      },
      [out](Napi::Env env) -> Napi::Value { return Napi::String::New(env, *out); });
}

// instanceId(cluster) — rados_get_instance_id: the global id of this client (client.<id> in lock
// owners and watchers). Local, no I/O: synchronous.
Napi::Value InstanceId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RadosHandle* h = ClusterOf(info);
  if (!h) throw CephError(env, EBADF, "rados_get_instance_id", "client");
  return Napi::BigInt::New(env, static_cast<uint64_t>(rados_get_instance_id(h->cluster)));
}

}  // namespace

void RegisterRados(Napi::Env env, Napi::Object exports) {
  exports.Set("radosWriteOp", Napi::Function::New(env, WriteOp, "radosWriteOp"));
  exports.Set("radosOmapGet", Napi::Function::New(env, OmapGet, "radosOmapGet"));
  exports.Set("radosOmapList", Napi::Function::New(env, OmapList, "radosOmapList"));
  exports.Set("radosBlocklistAdd", Napi::Function::New(env, BlocklistAdd, "radosBlocklistAdd"));
  exports.Set("radosClientAddress", Napi::Function::New(env, ClientAddress, "radosClientAddress"));
  exports.Set("radosInstanceId", Napi::Function::New(env, InstanceId, "radosInstanceId"));
}

}  // namespace cephrbd
