// RBD groups (consistency groups): group create/remove/list, image add/remove/list, group snapshots,
// and the image calls a reader of a group snapshot needs (the image's group, a snapshot's group
// namespace, switching a handle to a snapshot by id). See group.cc.
#pragma once

#include <napi.h>

namespace cephrbd {

// Adds groupCreate, groupRemove, groupList, groupImageAdd, groupImageRemove, groupImageList,
// groupSnapCreate, groupSnapRemove, groupSnapList, imageGetGroup, imageSnapGroupNamespace and
// imageSnapSetById to the module's exports.
void RegisterGroup(Napi::Env env, Napi::Object exports);

}  // namespace cephrbd
