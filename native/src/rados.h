// Plain RADOS object and client calls (omap write/read ops, blocklist, client address): see rados.cc.
#pragma once

#include <napi.h>

namespace cephrbd {

// Adds radosWriteOp, radosOmapGet, radosOmapList, radosBlocklistAdd, radosClientAddress and
// radosInstanceId to the module's exports.
void RegisterRados(Napi::Env env, Napi::Object exports);

}  // namespace cephrbd
