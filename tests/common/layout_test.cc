#include "common/layout.h"

#include <doctest/doctest.h>

namespace zmr {
namespace {

TEST_CASE("task ids are a kind letter and a five-digit index, and parse back") {
  CHECK(layout::TaskId(TaskKind::kMap, 4) == "m-00004");
  CHECK(layout::TaskId(TaskKind::kReduce, 0) == "r-00000");
  CHECK(layout::TaskId(TaskKind::kMap, 123456) == "m-123456");
  TaskKind kind = TaskKind::kReduce;
  int64_t index = -1;
  REQUIRE(layout::ParseTaskId("m-00004", &kind, &index));
  CHECK(kind == TaskKind::kMap);
  CHECK(index == 4);
  REQUIRE(layout::ParseTaskId("r-123456", &kind, &index));
  CHECK(kind == TaskKind::kReduce);
  CHECK(index == 123456);
  for (const char* bad : {"", "m", "m-", "x-00001", "m_00001", "m-0000a", "m-99999999999"}) {
    INFO(bad);
    CHECK_FALSE(layout::ParseTaskId(bad, &kind, &index));
  }
}

TEST_CASE("attempts, part files and a job's output are named as PROTOCOL.md and README say") {
  CHECK(layout::AttemptName("m-00004", 2) == "m-00004.a2");
  CHECK(layout::AttemptName(AttemptRef{"job_1", "r-00001", 3}) == "r-00001.a3");
  CHECK(layout::PartFileName(3) == "part-00003");
  CHECK(layout::PartFileName(123456) == "part-123456");
  CHECK(layout::IsPartFileName("part-00003"));
  CHECK_FALSE(layout::IsPartFileName("part-"));
  CHECK_FALSE(layout::IsPartFileName("part-0001.tmp"));
  CHECK_FALSE(layout::IsPartFileName("_SUCCESS"));
  CHECK(layout::OutputTemporaryDir("/out") == "/out/_temporary");
  CHECK(layout::AttemptOutputDir("/out", "r-00001", 2) == "/out/_temporary/r-00001.a2");
  CHECK(layout::CommittedPartPath("/out", 1) == "/out/part-00001");
  CHECK(layout::SuccessPath("/out") == "/out/_SUCCESS");
}

TEST_CASE("a worker's work dir holds each job's runs, spills, attempt dirs and logs") {
  const AttemptRef ref{"job_7", "m-00002", 1};
  CHECK(layout::JobsDir("/w") == "/w/jobs");
  CHECK(layout::JobWorkDir("/w", "job_7") == "/w/jobs/job_7");
  CHECK(layout::MapRunPath("/w", "job_7", "m-00002", 1, 3) == "/w/jobs/job_7/m-00002.a1.p00003.run");
  CHECK(layout::MapSpillDir("/w", "job_7", "m-00002", 1) == "/w/jobs/job_7/m-00002.a1.spill");
  CHECK(layout::AttemptDir("/w", ref) == "/w/jobs/job_7/attempts/m-00002.a1");
  CHECK(layout::JobLogsDir("/w", "job_7") == "/w/jobs/job_7/logs");
  CHECK(layout::AttemptLogPath("/w", ref) == "/w/jobs/job_7/logs/m-00002.a1.log");
  CHECK(layout::SucceededLogPath("/w", "job_7") == "/w/jobs/job_7/logs/succeeded.log");
  CHECK(layout::BlobCacheDir("/w") == "/w/cache");
}

TEST_CASE("cached blobs, shipped files and spill runs are named as the layout tree says") {
  const std::string sha(64, 'a');
  CHECK(layout::BlobPath("/w/cache", sha) == "/w/cache/" + sha);
  CHECK(layout::ShippedFilePath("/w/jobs/j/attempts/m-00000.a1", "dict.txt") ==
        "/w/jobs/j/attempts/m-00000.a1/dict.txt");
  CHECK(layout::SpillRunPath("/s", "spill", 0, 3) == "/s/spill-000000.p00003.run");
  CHECK(layout::SpillRunPath("/s", "merge", 1234567, 123456) == "/s/merge-1234567.p123456.run");
  CHECK(layout::TempSpillDirName("job_7", "m-00002", 1, 4321) == "zmr-spill-job_7-m-00002.a1-4321");
}

TEST_CASE("a file being written is its name plus .tmp; racing writers add their pid and a serial") {
  CHECK(layout::TempPathFor("/w/jobs/j/m-00000.a1.p00000.run") ==
        "/w/jobs/j/m-00000.a1.p00000.run.tmp");
  CHECK(layout::TempPathFor("ready") == std::string("ready") + layout::kTempSuffix);
  CHECK(layout::UniqueTempPathFor("/w/cache/abc", 4321, 7) == "/w/cache/abc.tmp.4321.7");
}

TEST_CASE("only a plain name is a safe path component") {
  CHECK(layout::IsSafeComponent("job_1"));
  CHECK(layout::IsSafeComponent("m-00001.a1"));
  CHECK(layout::IsSafeComponent("..."));
  for (std::string bad : {std::string(""), std::string("."), std::string(".."), std::string("a/b"),
                          std::string("/abs"), std::string("nul\0x", 5)}) {
    INFO(bad);
    CHECK_FALSE(layout::IsSafeComponent(bad));
  }
}

}  // namespace
}  // namespace zmr
