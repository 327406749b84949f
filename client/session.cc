#include "client/session.h"

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdint>
#include <ostream>

#include "client/client.h"
#include "client/views_read.h"
#include "common/protocol.h"

namespace zmr::client {

int Session::Connect() {
  try {
    connection_.emplace(context_, options_.coordinator, options_.timeout_ms);
  } catch (const zmq::error_t& e) {
    err_ << "zmr: cannot connect to " << options_.coordinator << ": " << e.what() << "\n";
    return kExitUsage;
  }
  Value hello;
  hello.Set("type", msg::kHello);
  hello.Set("proto", kProtocolVersion);
  Value reply;
  if (int rc = Request(hello, msg::kHello, &reply); rc != kExitOk) return rc;
  int64_t proto = 0;
  std::string error;
  if (ReadOptInt(reply, "proto", &proto, &error) && proto != 0 && proto != kProtocolVersion) {
    err_ << "zmr: coordinator at " << options_.coordinator << " speaks protocol " << proto
         << ", this zmr speaks " << kProtocolVersion << "\n";
    return kExitUsage;
  }
  const std::string events = GetString(reply, "events");
  if (!events.empty()) events_endpoint_ = ResolveEventsEndpoint(events, options_.coordinator);
  spdlog::debug("coordinator {} version {} events {}", options_.coordinator,
                GetString(reply, "version"), events_endpoint_);
  return kExitOk;
}

int Session::Request(Value request, const char* expect, Value* reply) {
  if (!request.Find("proto")) request.Set("proto", kProtocolVersion);
  std::string type;
  std::string error;
  switch (connection_->Call(request, reply, &type, &error)) {
    case Connection::Status::kOk:
      break;
    case Connection::Status::kTimeout:
      err_ << "zmr: coordinator at " << options_.coordinator << " did not answer within "
           << options_.timeout_ms << " ms\n";
      return kExitUnreachable;
    case Connection::Status::kInterrupted:
      return Interrupted();
    case Connection::Status::kBadReply:
      err_ << "zmr: undecodable reply from coordinator at " << options_.coordinator << ": "
           << OneLine(error) << "\n";
      return kExitUnreachable;
  }
  if (type == msg::kError) {
    const std::string code = GetString(*reply, "code");
    const std::string message = OneLine(GetString(*reply, "error"));
    if (code == errc::kNotFound && GetString(request, "type") == msg::kLogs) {
      err_ << "zmr: " << message << "\n";
    } else if (code == errc::kNotFound) {
      const std::string job = GetString(request, "job_id");
      err_ << "zmr: no such job: " << (job.empty() ? message : job) << "\n";
    } else if (code == errc::kUnavailable) {
      err_ << "zmr: " << message << "\n";
      return kExitJobFailed;
    } else if (code == errc::kVersion) {
      err_ << "zmr: coordinator at " << options_.coordinator << " refused protocol "
           << kProtocolVersion << (message.empty() ? "" : ": " + message) << "\n";
    } else if (code == errc::kInvalid) {
      err_ << "zmr: " << message << "\n";
    } else {
      err_ << "zmr: coordinator refused the request (" << code << "): " << message << "\n";
    }
    return kExitUsage;
  }
  if (type != expect) {
    err_ << "zmr: unexpected reply '" << OneLine(type) << "' from coordinator at "
         << options_.coordinator << " (expected '" << expect << "')\n";
    return kExitUnreachable;
  }
  return kExitOk;
}

int Session::QueryStatus(const std::string& job_id, JobInfo* job, Value* received) {
  JobReply reply;
  Value as_received;
  if (int rc = RequestView(StatusRequest{job_id}.ToValue(), msg::kJob, &reply, &as_received);
      rc != kExitOk) {
    return rc;
  }
  *job = std::move(reply.job);
  if (received != nullptr) *received = *as_received.Find("job");  // JobReply decoded it
  return kExitOk;
}

int Session::Malformed(const char* expect, const std::string& error) {
  err_ << "zmr: malformed '" << expect << "' reply from coordinator at " << options_.coordinator
       << ": " << OneLine(error) << "\n";
  return kExitUnreachable;
}

int Session::Interrupted() {
  // The last block stays on screen; the terminal echoed ^C below it: clear that.
  if (live_block_.rows() > 0) out_ << "\r\033[K" << std::flush;
  if (options_.command == Command::kWatch && options_.job_id.empty()) return kExitOk;
  const std::string& job = current_job_.empty() ? options_.job_id : current_job_;
  if (options_.command == Command::kWait || options_.command == Command::kWatch ||
      (options_.command == Command::kSubmit && !job.empty())) {
    err_ << "stopped watching; the job keeps running (zmr cancel " << job << " to stop it)\n";
  } else {
    err_ << "zmr: interrupted\n";
  }
  return 128 + (PendingSignal() != 0 ? PendingSignal() : SIGINT);
}

}  // namespace zmr::client
