// The error funnel: every negative librados/librbd return code reaches JS through CephError.
#pragma once

#include <napi.h>

#include <string>

namespace cephrbd {

// Result of a sequence of C calls made off the JS thread. The first failure is kept: later
// cleanup calls must not overwrite the errno that explains what went wrong.
struct Outcome {
  int err = 0;                 // positive errno; 0 means success
  const char* call = nullptr;  // the C function that failed

  // Records r when it is a failure; true when r is a success.
  bool Ok(long r, const char* fn) {
    if (r >= 0) return true;
    if (err == 0) {
      err = static_cast<int>(-r);
      call = fn;
    }
    return false;
  }
  bool Failed() const { return err != 0; }
};

// A JS Error carrying errno (positive), call (the C function name) and object (the
// pool/image/snapshot it concerned). index.js turns it into the matching error class.
Napi::Error CephError(Napi::Env env, int err, const char* call, const std::string& object);

// "pool/namespace/image@snap", leaving out the empty parts (the rbd CLI's image spec).
std::string ImageSpec(const std::string& pool, const std::string& ns, const std::string& image,
                      const std::string& snap = "");

}  // namespace cephrbd
