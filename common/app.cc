// App's default behaviour.
#include "common/app.h"

#include <string>

#include "common/partition.h"

namespace zmr {

bool App::Start(const AttemptInfo&, std::string*) { return true; }
bool App::Finish(Emitter&, std::string*) { return true; }
std::string App::Failure() const { return {}; }
int64_t App::Partition(std::string_view key, int64_t num_partitions) {
  return PartitionOf(key, num_partitions);
}
bool App::FlushCombine(Emitter&, std::string*) { return true; }
void App::TakeCounters(Counters*) {}

void App::Combine(std::string_view key, ValueStream& values, Emitter& out) {
  // Identity: a combiner that combines nothing is always correct.
  std::string_view value;
  while (values.Next(&value)) out.Emit(key, value);
}

}  // namespace zmr
