{
  "targets": [
    {
      "target_name": "ceph_rbd",
      "sources": [
        "src/addon.cc",
        "src/errors.cc",
        "src/handles.cc",
        "src/workers.cc",
        "src/aio.cc",
        "src/cluster.cc",
        "src/ioctx.cc",
        "src/image.cc",
        "src/objects.cc",
        "src/rados.cc",
        "src/mgr.cc",
        "src/group.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-std=gnu++17"],
      "libraries": ["-lrbd", "-lrados"]
    }
  ]
}
