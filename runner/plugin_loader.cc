// Plugin loading, in order: dlopen (a missing file, a wrong architecture or an unresolved symbol
// fails here), dlsym of the entry point, the API version (read before anything else in the info
// struct is trusted), the app name, the presence of the factories the adapter requires. Each
// failure closes the library again and returns one line.
#include "runner/plugin_loader.h"

#include <dlfcn.h>

#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "common/api_adapter.h"
#include "include/zmr/api.h"

namespace zmr {
namespace {

std::string BaseName(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// dlerror() text without the leading "<path>: " the loader puts in front (our message names the
// library already), on one line.
std::string LoaderError(const std::string& path) {
  const char* raw = dlerror();
  std::string text = raw != nullptr ? raw : "unknown dynamic loader error";
  const std::string prefix = path + ": ";
  if (text.compare(0, prefix.size(), prefix) == 0) text.erase(0, prefix.size());
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

// The dlopen handle; closes the library when the last App using it is gone.
std::shared_ptr<void> OpenLibrary(const std::string& path, std::string* error) {
  // A path without '/' would be searched for in the system library path; a plugin is a file.
  const std::string open_path = path.find('/') == std::string::npos ? "./" + path : path;
  dlerror();
  void* handle = dlopen(open_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    *error = "cannot load plugin " + BaseName(path) + ": " + LoaderError(open_path);
    return nullptr;
  }
  return std::shared_ptr<void>(handle, [](void* h) { dlclose(h); });
}

// Which required part of a well-versioned info struct is missing, or "" when it is complete.
std::string MissingParts(const api::PluginInfo& info) {
  if (info.create_mapper == nullptr) return "no mapper factory";
  if (info.destroy_mapper == nullptr) return "no mapper destroy function";
  if (info.create_reducer != nullptr && info.destroy_reducer == nullptr) {
    return "no reducer destroy function";
  }
  if (info.create_combiner != nullptr && info.destroy_combiner == nullptr) {
    return "no combiner destroy function";
  }
  if (info.create_partitioner != nullptr && info.destroy_partitioner == nullptr) {
    return "no partitioner destroy function";
  }
  return {};
}

}  // namespace

std::unique_ptr<App> LoadPluginApp(const std::string& library_path, const std::string& app_name,
                                   const Params& params, std::string* error) {
  const std::string name = BaseName(library_path);
  std::shared_ptr<void> library = OpenLibrary(library_path, error);
  if (!library) return nullptr;

  dlerror();
  void* symbol = dlsym(library.get(), api::kPluginInfoSymbol);
  if (symbol == nullptr) {
    *error = "plugin " + name + " has no " + api::kPluginInfoSymbol + " (not a zmr plugin)";
    return nullptr;
  }
  auto info_function = reinterpret_cast<api::PluginInfoFunction>(symbol);
  const api::PluginInfo* info = nullptr;
  try {
    info = info_function();
  } catch (const std::exception& e) {
    *error = "plugin " + name + " threw in " + api::kPluginInfoSymbol + ": " + e.what();
    return nullptr;
  } catch (...) {
    *error = "plugin " + name + " threw in " + api::kPluginInfoSymbol;
    return nullptr;
  }
  if (info == nullptr) {
    *error = "plugin " + name + " is malformed: " + api::kPluginInfoSymbol + " returned null";
    return nullptr;
  }
  if (info->api_version != api::kApiVersion) {
    *error = "plugin " + name + " was built for zmr plugin API " +
             std::to_string(info->api_version) + ", this worker supports API " +
             std::to_string(api::kApiVersion);
    return nullptr;
  }
  const std::string provided = info->app_name != nullptr ? info->app_name : "";
  if (provided != app_name) {
    *error = "plugin " + name + " provides app '" + provided + "', not '" + app_name + "'";
    return nullptr;
  }
  if (std::string missing = MissingParts(*info); !missing.empty()) {
    *error = "plugin " + name + " is malformed: " + missing;
    return nullptr;
  }
  return MakeApiApp(*info, params, "plugin app '" + app_name + "'", std::move(library));
}

}  // namespace zmr
