// Loads a user's C++ plugin (a shared library built against include/zmr/api.h) and runs its app
// behind zmr's App interface. Used by the process that runs an attempt, on that attempt's thread;
// the returned App belongs to that attempt like any App.
#pragma once

#include <memory>
#include <string>

#include "common/app.h"
#include "common/protocol.h"

namespace zmr {

// dlopens `library_path` (RTLD_NOW | RTLD_LOCAL), looks up `zmr_plugin_info`, checks that the
// plugin was built for this worker's plugin API version and that it provides `app_name`, and
// returns an App running it with `params` (through the shared api adapter, common/api_adapter.h:
// user exceptions become Failure() text "plugin app 'NAME' threw in Map: ...").
//
// The App keeps the library loaded while it lives: its user objects are destroyed first, then the
// library is closed. Loading the same library for several attempts is fine (the loader counts).
//
// On failure returns nullptr and sets *error to one line naming the library by its file name:
//   "cannot load plugin libfoo.so: <reason from the dynamic loader>"
//   "plugin libfoo.so has no zmr_plugin_info (not a zmr plugin)"
//   "plugin libfoo.so was built for zmr plugin API 7, this worker supports API 1"
//   "plugin libfoo.so provides app 'x', not 'y'"
//   "plugin libfoo.so is malformed: <what is missing>"
std::unique_ptr<App> LoadPluginApp(const std::string& library_path, const std::string& app_name,
                                   const Params& params, std::string* error);

}  // namespace zmr
