// Image.dataObjects: the numbers of an image's data objects that exist in RADOS, found by listing the
// objects of its data pool (rados_nobjects_list) and keeping those named `<block name prefix>.<n>`.
// Without an object map this is how to find where a large sparse image holds data without visiting every
// object: rbd_diff_iterate2 (and `rbd export-diff`) send one list-snaps op per object of the image
// (262,144 for 1 TiB of 4 MiB objects), a listing costs one op per ~1000 objects the pool holds.
// A head object deleted after a snapshot stays listed (as a whiteout) while the snapshot's clone of it
// exists, so every object the open snapshot holds data in is among the ones listed.
#include <errno.h>
#include <rados/librados.h>
#include <string.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "image.h"
#include "workers.h"

namespace cephrbd {

namespace {

struct ListedObjects {
  // False when the listing was not done: more objects in the pool than allowed, or a striped image.
  bool listed = false;
  std::vector<uint64_t> numbers;
};

// Parses the 16 hex digits after `<prefix>.`; false for any other name.
bool ObjectNumber(const char* name, const std::string& prefix, uint64_t* n) {
  size_t len = strlen(name);
  if (len != prefix.size() + 1 + 16 || strncmp(name, prefix.c_str(), prefix.size()) != 0 || name[prefix.size()] != '.') return false;
  char* end = nullptr;
  *n = strtoull(name + prefix.size() + 1, &end, 16);
  return end == name + len;
}

// Lists `io`'s objects (its namespace) named after `prefix`; stops (listed = false) past `max` entries.
void ListPrefix(rados_ioctx_t io, const std::string& prefix, uint64_t max, Outcome& o, ListedObjects& out) {
  rados_list_ctx_t ctx = nullptr;
  if (!o.Ok(rados_nobjects_list_open(io, &ctx), "rados_nobjects_list_open")) return;
  uint64_t seen = 0;
  int r = 0;
  for (;;) {
    const char* entry = nullptr;
    r = rados_nobjects_list_next(ctx, &entry, nullptr, nullptr);
    if (r < 0) break;
    if (++seen > max) break;
    uint64_t n = 0;
    if (ObjectNumber(entry, prefix, &n)) out.numbers.push_back(n);
  }
  rados_nobjects_list_close(ctx);
  if (r != -ENOENT && !o.Ok(r, "rados_nobjects_list_next")) return;
  if (seen > max) return;
  std::sort(out.numbers.begin(), out.numbers.end());
  out.listed = true;
}

// Worker thread: checks the layout and the pool's size, then lists.
void ListDataObjects(rbd_image_t img, rados_ioctx_t io, const std::string& ns, uint64_t maxPoolObjects, Outcome& o,
                     ListedObjects& out) {
  rbd_image_info_t info{};
  uint64_t stripeUnit = 0, stripeCount = 0;
  if (!o.Ok(rbd_stat(img, &info, sizeof(info)), "rbd_stat")) return;
  if (!o.Ok(rbd_get_stripe_unit(img, &stripeUnit), "rbd_get_stripe_unit")) return;
  if (!o.Ok(rbd_get_stripe_count(img, &stripeCount), "rbd_get_stripe_count")) return;
  // Object n holds [n × object size, (n + 1) × object size) only without fancy striping.
  if (stripeCount != 1 || stripeUnit != info.obj_size) return;
  std::string prefix(info.block_name_prefix);
  int64_t dataPool = rbd_get_data_pool_id(img);
  if (!o.Ok(dataPool < 0 ? static_cast<int>(dataPool) : 0, "rbd_get_data_pool_id")) return;
  rados_ioctx_t dataIo = io;
  std::unique_ptr<void, void (*)(void*)> own(nullptr, [](void* p) { rados_ioctx_destroy(static_cast<rados_ioctx_t>(p)); });
  if (dataPool != rados_ioctx_get_id(io)) {
    if (!o.Ok(rados_ioctx_create2(rados_ioctx_get_cluster(io), dataPool, &dataIo), "rados_ioctx_create2")) return;
    own.reset(dataIo);
    rados_ioctx_set_namespace(dataIo, ns.c_str());
  }
  struct rados_pool_stat_t st {};
  if (!o.Ok(rados_ioctx_pool_stat(dataIo, &st), "rados_ioctx_pool_stat")) return;
  if (st.num_objects > maxPoolObjects) return;
  ListPrefix(dataIo, prefix, maxPoolObjects, o, out);
}

}  // namespace

// dataObjects(maxPoolObjects) -> number[] | null — rados_nobjects_list over the image's data pool.
Napi::Value NativeImage::DataObjects(const Napi::CallbackInfo& info) {
  const char* call = "rados_nobjects_list";
  if (!h_) return Rejected(info.Env(), EBADF, call, spec_);
  uint64_t max = ToU64(info[0], "maxPoolObjects");
  ImageHandle* h = h_;
  auto out = std::make_shared<ListedObjects>();
  return CallWorker::Start(
      info.Env(), h->Spec(), {h},
      [h, max, out](Outcome& o) { ListDataObjects(h->image, h->ioctx->io, h->ioctx->ns, max, o, *out); },
      [out](Napi::Env env) -> Napi::Value {
        if (!out->listed) return env.Null();
        Napi::Array a = Napi::Array::New(env, out->numbers.size());
        for (size_t i = 0; i < out->numbers.size(); ++i) a.Set(i, Napi::Number::New(env, static_cast<double>(out->numbers[i])));
        return a;
      });
}

}  // namespace cephrbd
