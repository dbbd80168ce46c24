// mgrCommand: commands for ceph-mgr modules (rados_mgr_command), e.g. rbd_support's task queue.
#pragma once

#include <napi.h>

namespace cephrbd {

// mgrCommand(cluster: NativeCluster, cmd: string, input: Buffer | undefined, timeoutMs: number)
//   -> Promise<{ output: Buffer, status: string }>
Napi::Value MgrCommand(const Napi::CallbackInfo& info);

}  // namespace cephrbd
