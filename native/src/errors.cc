#include "errors.h"

#include <string.h>

namespace cephrbd {

Napi::Error CephError(Napi::Env env, int err, const char* call, const std::string& object) {
  char buf[256];
  // GNU strerror_r: returns a pointer to the message, which may or may not be buf.
  const char* text = strerror_r(err, buf, sizeof(buf));
  std::string message = std::string(call ? call : "ceph call") + " failed";
  if (!object.empty()) message += " for " + object;
  message += ": ";
  message += text;
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("call", Napi::String::New(env, call ? call : ""));
  if (!object.empty()) error.Set("object", Napi::String::New(env, object));
  return error;
}

std::string ImageSpec(const std::string& pool, const std::string& ns, const std::string& image,
                      const std::string& snap) {
  std::string spec = pool;
  if (!ns.empty()) spec += "/" + ns;
  if (!image.empty()) spec += "/" + image;
  if (!snap.empty()) spec += "@" + snap;
  return spec;
}

}  // namespace cephrbd
