#include "common/partition.h"

#include <doctest/doctest.h>

#include <string>

namespace zmr {
namespace {

TEST_CASE("the partition hash is FNV-1a 64 and so the same in every process and build") {
  // Published FNV-1a 64-bit test vectors: any process, any machine, any build must agree.
  CHECK(Fnv1a64("") == 0xcbf29ce484222325ull);
  CHECK(Fnv1a64("a") == 0xaf63dc4c8601ec8cull);
  CHECK(Fnv1a64("foobar") == 0x85944171f73967e8ull);
}

TEST_CASE("keys are spread over every partition and always land in range") {
  int counts[7] = {0};
  for (int i = 0; i < 7000; ++i) {
    int64_t p = PartitionOf("key" + std::to_string(i), 7);
    REQUIRE(p >= 0);
    REQUIRE(p < 7);
    ++counts[p];
  }
  for (int c : counts) CHECK(c > 700);
  CHECK(PartitionOf("anything", 1) == 0);
}

}  // namespace
}  // namespace zmr
