// The subcommands that ask the coordinator one question and print the answer: status, jobs,
// tasks, workers, cancel and logs (client/commands.h).
#include "client/commands.h"

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>

#include "client/client.h"
#include "client/views_read.h"
#include "common/protocol.h"

namespace zmr::client {

namespace {

// Sends `request`, expects a reply of type `expect`, and prints the array under `key` (an empty
// one when missing or not an array) as `format` renders it, or with --json as one JSON document.
// Returns kExitOk, or the exit code of a failed request (after printing why).
int PrintList(Session& session, const Value& request, const char* expect, const char* key,
              std::string (*format)(const Value&)) {
  Value reply;
  if (int rc = session.Request(request, expect, &reply); rc != kExitOk) return rc;
  const Value* array = reply.Find(key);
  const Value list = array && array->is_array() ? *array : Value(Array{});
  session.out() << (session.options().json ? ToJson(list) + "\n" : format(list));
  return kExitOk;
}

}  // namespace

int RunStatus(Session& session) {
  const Options& options = session.options();
  std::ostream& out = session.out();
  Value job;
  if (int rc = session.QueryStatus(options.job_id, &job); rc != kExitOk) return rc;
  out << (options.json ? ToJson(job) + "\n" : FormatStatus(job));
  return kExitOk;
}

int RunJobs(Session& session) {
  Value request;
  request.Set("type", msg::kJobs);
  request.Set("all", session.options().all);
  return PrintList(session, request, msg::kJobs, "jobs", FormatJobsTable);
}

int RunTasks(Session& session) {
  Value request;
  request.Set("type", msg::kTasks);
  request.Set("job_id", session.options().job_id);
  return PrintList(session, request, msg::kTasks, "tasks", FormatTasksTable);
}

int RunWorkers(Session& session) {
  Value request;
  request.Set("type", msg::kWorkers);
  return PrintList(session, request, msg::kWorkers, "workers", FormatWorkersTable);
}

int RunCancel(Session& session) {
  const Options& options = session.options();
  std::ostream& out = session.out();
  Value request;
  request.Set("type", msg::kCancel);
  request.Set("job_id", options.job_id);
  Value reply;
  if (int rc = session.Request(request, msg::kCancelled, &reply); rc != kExitOk) return rc;
  if (options.json) {
    out << ToJson(reply) << "\n";
    return kExitOk;
  }
  const std::string job_id =
      GetString(reply, "job_id").empty() ? options.job_id : GetString(reply, "job_id");
  const Value* changed = reply.Find("changed");
  if (changed && changed->is_bool() && !changed->as_bool()) {
    out << "job " << job_id << " already finished (" << GetString(reply, "state") << ")\n";
  } else {
    out << "job " << job_id << " cancelled\n";
  }
  return kExitOk;
}

int RunLogs(Session& session) {
  const Options& options = session.options();
  std::ostream& out = session.out();
  std::ostream& err = session.err();
  Value request;
  request.Set("type", msg::kLogs);
  request.Set("job_id", options.job_id);
  request.Set("task_id", options.task_id);
  if (options.attempt > 0) request.Set("attempt", options.attempt);
  // The coordinator gives up on the worker before we give up on the coordinator.
  request.Set("wait_ms", std::max<int64_t>(1, options.timeout_ms * 3 / 4));
  Value reply;
  if (int rc = session.Request(request, msg::kLog, &reply); rc != kExitOk) return rc;
  std::string data;
  std::string error;
  ReadBytes(reply, "data", &data, &error);
  const Value* truncated = reply.Find("truncated");
  const bool cut = truncated != nullptr && truncated->is_bool() && truncated->as_bool();
  if (options.json) {
    Value doc;
    for (const char* key : {"job_id", "task_id", "worker", "state"}) {
      doc.Set(key, GetString(reply, key));
    }
    doc.Set("attempt", GetInt(reply, "attempt"));
    doc.Set("truncated", cut);
    doc.Set("size", GetInt(reply, "size"));
    doc.Set("log", data);
    out << ToJson(doc) << "\n";
    return kExitOk;
  }
  if (cut) {
    err << "zmr: the log of " << options.task_id << " attempt " << GetInt(reply, "attempt")
        << " has " << GetInt(reply, "size") << " bytes; showing the last " << data.size() << "\n";
  }
  out << data;
  if (!data.empty() && data.back() != '\n') out << "\n";
  out.flush();
  return kExitOk;
}

}  // namespace zmr::client
