// The registry of built-in apps (wordcount, grep, invertedindex, sort): their names, the checks
// of an app name and its params at submission (the coordinator and the client call ValidateApp,
// the client PlanAppParams), and the factory the runner uses. The apps themselves are in this
// folder, written against the public plugin API (include/zmr/api.h) like any plugin, and run
// behind App (common/app.h) through the api adapter. Thread-safe: no state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/app.h"
#include "common/protocol.h"
#include "common/splits.h"

namespace zmr {

// Names of the built-in apps, sorted.
std::vector<std::string> BuiltinAppNames();

// Checks an app name and its params (e.g. grep needs a valid ECMAScript `pattern`) for a job with
// `reduces` reduce tasks (-1: not known; then only what does not depend on it is checked, e.g.
// sort needs a reduce and split points that fit R). Returns false with a one-line *error otherwise.
bool ValidateApp(const std::string& name, const Params& params, std::string* error,
                 int64_t reduces = -1);

// Adds the params a built-in app computes from its input at submission, unless the user gave
// them: for sort with R > 1 reduces, split_points from a sample of `files` (apps/sort_sampler.h).
// Reads input files; the client calls it before ValidateApp. Returns false with a one-line *error
// when a param it needs is invalid or a file cannot be read. Other apps: nothing to do.
bool PlanAppParams(const std::string& name, const std::vector<InputFile>& files, int64_t reduces,
                   Params* params, std::string* error);

// Creates an app instance; nullptr with *error when ValidateApp would fail.
std::unique_ptr<App> MakeApp(const std::string& name, const Params& params, std::string* error);

}  // namespace zmr
