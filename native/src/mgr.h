// mgrCommand / monCommand: commands for ceph-mgr modules (rados_mgr_command), e.g. rbd_support's task
// queue, and for the monitors (rados_mon_command).
#pragma once

#include <napi.h>

namespace cephrbd {

// mgrCommand(cluster: NativeCluster, cmd: string, input: Buffer | undefined, timeoutMs: number)
//   -> Promise<{ output: Buffer, status: string }>
Napi::Value MgrCommand(const Napi::CallbackInfo& info);
// monCommand(cluster, cmd, input, timeoutMs) — the same through rados_mon_command.
Napi::Value MonCommand(const Napi::CallbackInfo& info);

}  // namespace cephrbd
