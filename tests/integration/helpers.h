// Helpers shared by the integration tests (doctest assertions inside): submitting through the
// real client, reading a job's status as JSON and polling it. Test thread only.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/support/cluster.h"

namespace zmr::testing {

// Submits and returns the job id (stdout holds it alone); fails the test if refused.
inline std::string Submit(const Cluster& cluster, std::vector<std::string> args) {
  args.insert(args.begin(), "submit");
  ClientResult r = cluster.RunClient(args);
  INFO("zmr " << Join(args) << "\n" << r.Describe());
  REQUIRE(r.exit_code == 0);
  const std::string job_id = Trim(r.out);
  REQUIRE(!job_id.empty());
  REQUIRE(job_id.find('\n') == std::string::npos);
  return job_id;
}

// The JobInfo of a job from `zmr status JOB --json`, or nullopt when the command failed.
inline std::optional<Json> Status(const Cluster& cluster, const std::string& job_id) {
  ClientResult r = cluster.RunClient({"status", job_id, "--json"});
  if (r.exit_code != 0) return std::nullopt;
  return Json::Parse(r.out);
}

inline int64_t TaskCount(const Json& job, std::string_view kind, std::string_view field) {
  const Json* counts = job.Get(kind);
  return counts ? counts->Int(field) : -1;
}

inline bool IsTerminal(const std::string& state) {
  return state == "COMPLETED" || state == "FAILED" || state == "CANCELLED";
}

// Polls the job's status until `done(job)` holds or the job ends; returns the last status read.
// Fails the test if the status cannot be read or patience runs out.
inline Json PollStatus(const Cluster& cluster, const std::string& job_id,
                       const std::function<bool(const Json&)>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  for (;;) {
    std::optional<Json> job = Status(cluster, job_id);
    REQUIRE_MESSAGE(job.has_value(), "cannot read the status of " << job_id);
    if (done(*job) || IsTerminal(job->String("state"))) return *job;
    REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline,
                    "job " << job_id << " stuck in " << job->String("state") << "\n"
                           << cluster.Logs());
    std::this_thread::sleep_for(kPollInterval);
  }
}

// The number of jobs the coordinator knows, finished ones included (`zmr jobs --all --json`).
inline int JobCount(const Cluster& cluster) {
  ClientResult r = cluster.RunClient({"jobs", "--all", "--json"});
  INFO(r.Describe());
  REQUIRE(r.exit_code == 0);
  std::optional<Json> jobs = Json::Parse(r.out);
  REQUIRE(jobs.has_value());
  REQUIRE(jobs->AsArray() != nullptr);
  return static_cast<int>(jobs->AsArray()->size());
}

// The ids listed by `zmr jobs --json` plus `extra` flags (e.g. "--all").
inline std::vector<std::string> ListedJobs(const Cluster& cluster,
                                           std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"jobs", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  ClientResult r = cluster.RunClient(args);
  INFO(r.Describe());
  REQUIRE(r.exit_code == 0);
  std::optional<Json> jobs = Json::Parse(r.out);
  REQUIRE(jobs.has_value());
  REQUIRE(jobs->AsArray() != nullptr);
  std::vector<std::string> ids;
  for (const Json& job : *jobs->AsArray()) ids.push_back(job.String("job_id"));
  return ids;
}

}  // namespace zmr::testing
