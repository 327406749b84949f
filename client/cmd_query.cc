// The subcommands that ask the coordinator one question and print the answer: status, jobs,
// tasks, workers, cancel and logs (client/commands.h).
#include "client/commands.h"

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <string>
#include <utility>

#include "client/client.h"
#include "client/views_read.h"
#include "common/protocol.h"
#include "common/views.h"

namespace zmr::client {

namespace {

// Sends `request`, expects a reply of type `expect` that decodes as Reply, and prints it as
// `format` renders it, or with --json the array under `key` as received (an empty one when
// missing) as one JSON document. Returns kExitOk, or the exit code of a failed request (after
// printing why).
template <typename Reply, typename Format>
int PrintList(Session& session, Value request, const char* expect, const char* key,
              Format format) {
  Reply view;
  Value reply;
  if (int rc = session.RequestView(std::move(request), expect, &view, &reply); rc != kExitOk) {
    return rc;
  }
  if (session.options().json) {
    const Value* array = reply.Find(key);
    session.out() << ToJson(array && array->is_array() ? *array : Value(Array{})) << "\n";
  } else {
    session.out() << format(view);
  }
  return kExitOk;
}

}  // namespace

int RunStatus(Session& session) {
  const Options& options = session.options();
  std::ostream& out = session.out();
  JobInfo job;
  Value received;
  if (int rc = session.QueryStatus(options.job_id, &job, &received); rc != kExitOk) return rc;
  out << (options.json ? ToJson(received) + "\n" : FormatStatus(job));
  return kExitOk;
}

int RunJobs(Session& session) {
  return PrintList<JobsReply>(session, JobsRequest{session.options().all}.ToValue(), msg::kJobs,
                              "jobs", [](const JobsReply& r) { return FormatJobsTable(r.jobs); });
}

int RunTasks(Session& session) {
  return PrintList<TasksReply>(session, TasksRequest{session.options().job_id}.ToValue(),
                               msg::kTasks, "tasks",
                               [](const TasksReply& r) { return FormatTasksTable(r.tasks); });
}

int RunWorkers(Session& session) {
  // `workers` has no fields, so no request struct: just its type.
  return PrintList<WorkersReply>(
      session, wire::Typed(msg::kWorkers), msg::kWorkers, "workers",
      [](const WorkersReply& r) { return FormatWorkersTable(r.workers); });
}

int RunCancel(Session& session) {
  const Options& options = session.options();
  std::ostream& out = session.out();
  CancelledReply cancelled;
  Value reply;
  if (int rc = session.RequestView(CancelRequest{options.job_id}.ToValue(), msg::kCancelled,
                                   &cancelled, &reply);
      rc != kExitOk) {
    return rc;
  }
  if (options.json) {
    out << ToJson(reply) << "\n";
    return kExitOk;
  }
  const std::string& job_id = cancelled.job_id.empty() ? options.job_id : cancelled.job_id;
  if (!cancelled.changed) {
    out << "job " << job_id << " already finished (" << JobStateName(cancelled.state) << ")\n";
  } else {
    out << "job " << job_id << " cancelled\n";
  }
  return kExitOk;
}

int RunLogs(Session& session) {
  const Options& options = session.options();
  std::ostream& out = session.out();
  std::ostream& err = session.err();
  LogsRequest logs;
  logs.job_id = options.job_id;
  logs.task_id = options.task_id;
  logs.attempt = std::max<int64_t>(0, options.attempt);
  // The coordinator gives up on the worker before we give up on the coordinator.
  logs.wait_ms = std::max<int64_t>(1, options.timeout_ms * 3 / 4);
  Value request = logs.ToValue();
  // For the latest attempt zmr sends no `attempt` at all (PROTOCOL.md: 0 or absent).
  if (logs.attempt == 0) {
    std::erase_if(request.as_map(), [](const auto& field) { return field.first == "attempt"; });
  }
  // The `log` reply has no typed view in common/: read field by field (client/views_read.h).
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
