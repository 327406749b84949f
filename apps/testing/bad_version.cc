// Test plugin: a library that claims a plugin API version no worker supports (999). The loader must
// refuse it by version before trusting anything else in the struct.
#include <zmr/api.h>

#include <string_view>

namespace {

class NothingMapper : public zmr::api::Mapper {
 public:
  void Map(std::string_view, zmr::api::Context&) override {}
};

constexpr zmr::api::PluginInfo MakeFutureInfo() {
  zmr::api::PluginInfo info = zmr::api::MakePluginInfo<NothingMapper, void>("badversion");
  info.api_version = 999;
  return info;
}

}  // namespace

extern "C" ZMR_PLUGIN_EXPORT const zmr::api::PluginInfo* zmr_plugin_info() {
  static constexpr zmr::api::PluginInfo kInfo = MakeFutureInfo();
  return &kInfo;
}
