#include "cluster.h"

#include <errno.h>
#include <string.h>

#include <memory>
#include <vector>

#include "addon.h"
#include "errors.h"
#include "workers.h"

namespace cephrbd {

Napi::Function NativeCluster::Define(Napi::Env env) {
  return DefineClass(env, "NativeCluster",
                     {StaticMethod<&NativeCluster::Connect>("connect"),
                      InstanceMethod<&NativeCluster::Fsid>("fsid"),
                      InstanceMethod<&NativeCluster::ConfGet>("confGet"),
                      InstanceMethod<&NativeCluster::ListPools>("listPools"),
                      InstanceMethod<&NativeCluster::OpenIoctx>("openIoctx"),
                      InstanceMethod<&NativeCluster::Close>("close")});
}

NativeCluster::NativeCluster(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<NativeCluster>(info) {
  if (info.Length() < 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "use NativeCluster.connect()");
  h_ = info[0].As<Napi::External<RadosHandle>>().Data();
  fsid_ = h_->fsid;
}

NativeCluster::~NativeCluster() {
  if (h_) Handle::ReleaseDetached(h_);
}

// connect(confPath, user, keyring | undefined, timeoutSeconds, [[key, value], ...]) -> Promise<NativeCluster>
// rados_create2, rados_conf_read_file, rados_conf_set (client_mount_timeout), rados_connect, rados_cluster_fsid. The pairs are set
// after ceph.conf is read, so they win over it.
Napi::Value NativeCluster::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct State {
    std::string confPath, user, keyring, timeout;
    std::vector<std::pair<std::string, std::string>> options;
    std::vector<std::string> optionCalls;  // "rados_conf_set <key>", named in the error when one fails
    rados_t cluster = nullptr;
    char fsid[64] = {0};
  };
  auto st = std::make_shared<State>();
  st->confPath = info[0].As<Napi::String>().Utf8Value();
  st->user = info[1].As<Napi::String>().Utf8Value();
  st->keyring = OptString(info[2]);
  st->timeout = std::to_string(info[3].As<Napi::Number>().Uint32Value());
  if (info.Length() > 4 && info[4].IsArray()) {
    Napi::Array pairs = info[4].As<Napi::Array>();
    for (uint32_t i = 0; i < pairs.Length(); ++i) {
      Napi::Array pair = pairs.Get(i).As<Napi::Array>();
      std::string key = pair.Get(uint32_t(0)).As<Napi::String>().Utf8Value();
      st->options.emplace_back(key, pair.Get(uint32_t(1)).As<Napi::String>().Utf8Value());
      st->optionCalls.push_back("rados_conf_set " + key);
    }
  }
  std::string object = "client." + st->user;

  return CallWorker::Start(
      env, object, {},
      [st](Outcome& o) {
        std::string name = "client." + st->user;
        if (!o.Ok(rados_create2(&st->cluster, "ceph", name.c_str(), 0), "rados_create2")) return;
        bool ok = o.Ok(rados_conf_read_file(st->cluster, st->confPath.c_str()), "rados_conf_read_file") &&
                  (st->keyring.empty() ||
                   o.Ok(rados_conf_set(st->cluster, "keyring", st->keyring.c_str()), "rados_conf_set")) &&
                  o.Ok(rados_conf_set(st->cluster, "client_mount_timeout", st->timeout.c_str()), "rados_conf_set");
        // The op timeouts (rados_osd_op_timeout, rados_mon_op_timeout) come with the pairs: the connect
        // timeout bounds connecting only, so an OSD failover or mon election mid-run is ridden out.
        for (size_t i = 0; ok && i < st->options.size(); ++i) {
          const auto& kv = st->options[i];
          ok = o.Ok(rados_conf_set(st->cluster, kv.first.c_str(), kv.second.c_str()), st->optionCalls[i].c_str());
        }
        ok = ok && o.Ok(rados_connect(st->cluster), "rados_connect") &&
                  o.Ok(rados_cluster_fsid(st->cluster, st->fsid, sizeof(st->fsid) - 1), "rados_cluster_fsid");
        if (!ok) {
          rados_shutdown(st->cluster);
          st->cluster = nullptr;
        }
      },
      [st](Napi::Env env) -> Napi::Value {
        auto* h = new RadosHandle(st->cluster, st->fsid, st->user);
        st->cluster = nullptr;
        return Data(env)->clusterCtor.New({Napi::External<RadosHandle>::New(env, h)});
      });
}

Napi::Value NativeCluster::Fsid(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), fsid_);
}

// confGet(key) -> string — rados_conf_get: the value this connection uses (local, no I/O: synchronous).
Napi::Value NativeCluster::ConfGet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string key = info[0].As<Napi::String>().Utf8Value();
  if (!h_) throw CephError(env, EBADF, "rados_conf_get", "cluster " + fsid_);
  std::vector<char> buf(256);
  for (;;) {
    int r = rados_conf_get(h_->cluster, key.c_str(), buf.data(), buf.size());
    if (r == -ENAMETOOLONG && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 4);
      continue;
    }
    if (r < 0) throw CephError(env, -r, "rados_conf_get", key);
    return Napi::String::New(env, buf.data());
  }
}

// rados_pool_list
Napi::Value NativeCluster::ListPools(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!h_) return Rejected(env, EBADF, "rados_pool_list", "cluster " + fsid_);
  auto names = std::make_shared<std::vector<std::string>>();
  RadosHandle* h = h_;
  return CallWorker::Start(
      env, "cluster " + fsid_, {h},
      [h, names](Outcome& o) {
        std::vector<char> buf(4096);
        for (;;) {
          int r = rados_pool_list(h->cluster, buf.data(), buf.size());
          if (!o.Ok(r, "rados_pool_list")) return;
          if (static_cast<size_t>(r) <= buf.size()) break;
          buf.resize(r);
        }
        for (const char* p = buf.data(); *p; p += strlen(p) + 1) names->emplace_back(p);
      },
      [names](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, names->size());
        for (size_t i = 0; i < names->size(); ++i) out.Set(i, (*names)[i]);
        return out;
      });
}

// openIoctx(pool, namespace) -> Promise<NativeIoctx>
// rados_ioctx_create, rados_ioctx_set_namespace.
Napi::Value NativeCluster::OpenIoctx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pool = info[0].As<Napi::String>().Utf8Value();
  std::string ns = OptString(info[1]);
  std::string object = ImageSpec(pool, ns, "");
  if (!h_) return Rejected(env, EBADF, "rados_ioctx_create", object);
  struct State {
    rados_ioctx_t io = nullptr;
  };
  auto st = std::make_shared<State>();
  RadosHandle* h = h_;
  return CallWorker::Start(
      env, object, {h},
      [h, st, pool, ns](Outcome& o) {
        if (!o.Ok(rados_ioctx_create(h->cluster, pool.c_str(), &st->io), "rados_ioctx_create")) return;
        if (!ns.empty()) rados_ioctx_set_namespace(st->io, ns.c_str());
      },
      [h, st, pool, ns](Napi::Env env) -> Napi::Value {
        auto* ioh = new IoctxHandle(h, st->io, pool, ns);
        return Data(env)->ioctxCtor.New({Napi::External<IoctxHandle>::New(env, ioh)});
      });
}

// Drops this object's reference; rados_shutdown runs (in a worker) once no ioctx or image
// opened from the cluster remains.
Napi::Value NativeCluster::Close(const Napi::CallbackInfo& info) {
  return ReleaseToPromise(info.Env(), h_);
}

}  // namespace cephrbd
