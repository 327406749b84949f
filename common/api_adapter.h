// Runs user code written against the public plugin API (include/zmr/api.h) behind zmr's App
// interface (common/app.h). The built-in apps (apps/, through MakeApp) and dlopen'd plugins
// (runner/plugin_loader.h) share this one adapter, so they behave the same: same lifetime rules,
// same exception handling, same counters. An adapted App belongs to one attempt (one thread), like
// every App.
//
// Per record it only forwards: Map/Reduce/Combine bind the caller's Emitter and the line's file
// name to a Context owned by the App, and Context::Emit passes the views straight to that Emitter.
// Nothing is allocated per record (user counters allocate only the first time a name is seen).
#pragma once

#include <memory>
#include <string>

#include "common/app.h"
#include "common/protocol.h"
#include "include/zmr/api.h"

namespace zmr {

// Creates an App running the user classes that `info` describes, with the job's `params`.
// `label` names the code in error messages ("app 'wordcount'", "plugin app 'stopwords'"), e.g.
// "plugin app 'stopwords' threw in Map: <what()>". `keep_alive` (may be null) is released only
// after every user object is destroyed: the plugin loader passes its library handle here so the
// code stays loaded while the App lives. `info` is copied; its strings and functions must stay
// valid as long as `keep_alive` is held (for a built-in: forever).
//
// User objects are created lazily: Start creates the ones its attempt needs (a map attempt: the
// mapper, combiner and partitioner; a reduce attempt: the reducer) and calls their Setup; without
// Start the first call that needs one creates it. A constructor or Setup that throws fails Start
// (false with the message). After any user exception Failure() is non-empty, the failed code is
// called no further, and Finish/FlushCombine return false with the same text. An exception that
// comes from zmr's own Emitter (e.g. a full disk) is not user error: it is re-thrown to the caller
// unchanged.
//
// `combiner` declares what info's combiner computes (KnownCombiner()); only the built-in registry
// (apps/registry.cc) passes anything but kOpaque, for the apps whose combiner is apps::SumReducer.
//
// Requires info.create_mapper and a destroy function for every non-null factory (the loader checks
// this for plugins).
std::unique_ptr<App> MakeApiApp(const api::PluginInfo& info, const Params& params,
                                std::string label, std::shared_ptr<void> keep_alive,
                                CombinerKind combiner = CombinerKind::kOpaque);

}  // namespace zmr
