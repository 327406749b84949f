// The built-in apps (wordcount, grep, invertedindex, sort), written against the public plugin API
// (include/zmr/api.h) exactly like a user's plugin. Each source compiles twice: into the static
// library zmr_builtin_apps, which apps/registry.cc serves through MakeApp (via the api adapter), and,
// with ZMR_PLUGIN_BUILD defined, into a shared-library plugin libzmr_<app>.so that exports
// zmr_plugin_info. Only apps/registry.cc includes this header. Thread-safe: plain functions
// returning constants.
#pragma once

#include <string>

namespace zmr::api {
struct PluginInfo;
}

namespace zmr::apps {

// The registration of each built-in app (static storage; never null).
const api::PluginInfo& WordCountPluginInfo();
const api::PluginInfo& GrepPluginInfo();
const api::PluginInfo& InvertedIndexPluginInfo();
const api::PluginInfo& SortPluginInfo();

// Empty when grep can run with this `pattern` parameter (nullptr: absent), else the one-line
// error that MakeApp reports and the grep mapper's Setup throws.
std::string GrepPatternError(const std::string* pattern);

}  // namespace zmr::apps
