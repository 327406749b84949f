// One invocation of a `zmr` subcommand that talks to the coordinator: the parsed Options, the two
// output streams, the ZeroMQ context, the Connection once Connect() has said hello, the events
// endpoint the coordinator announced, and what the message after an interrupt needs to know. Its
// requests return the typed replies of common/views.h and common/protocol.h.
// Run (client/client.cc) makes one; the commands (client/commands.h) take it by reference. One
// thread: every socket of the invocation lives on the thread that made the Session.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <zmq.hpp>

#include "client/args.h"
#include "client/client.h"
#include "client/connection.h"
#include "client/live_block.h"
#include "common/value.h"
#include "common/views.h"

namespace zmr::client {

class Session {
 public:
  // `options`, `out` and `err` must outlive the Session. Connects nothing yet.
  Session(const Options& options, std::ostream& out, std::ostream& err)
      : options_(options), out_(out), err_(err), live_block_(out) {}

  const Options& options() const { return options_; }
  std::ostream& out() { return out_; }  // results
  std::ostream& err() { return err_; }  // diagnostics
  // For the commands' own sockets (SUB); they must be closed before the Session goes.
  zmq::context_t& context() { return context_; }
  // Where the coordinator publishes events (from its hello reply, a wildcard host replaced by
  // the coordinator's); "" before Connect() and when the coordinator did not say.
  const std::string& events_endpoint() const { return events_endpoint_; }
  // The progress block of `wait` on out(), for Interrupted() to know whether one is shown.
  LiveBlock& live_block() { return live_block_; }
  // The job being waited for, named by Interrupted() (submit --wait learns it from the reply).
  void set_current_job(std::string job_id) { current_job_ = std::move(job_id); }

  // Opens the DEALER and says hello. Returns kExitOk, or the exit code after printing why not
  // (a malformed endpoint or a protocol version mismatch is kExitUsage).
  int Connect();

  // Sends a request (adding `proto`) and expects a reply of type `expect`. Returns kExitOk with
  // *reply, or prints a one-line diagnostic and returns the exit code: error replies are usage
  // errors (2), silence or nonsense is 3, a signal is 130. Requires Connect() to have opened the
  // DEALER.
  int Request(Value request, const char* expect, Value* reply);

  // Request, then the reply decoded as Reply: a reply of common/views.h as the client reads views
  // (Missing::kDefault), one of common/protocol.h as its FromValue reads it. kExitOk with *view
  // and, when `received` is given, the reply as it came; or the exit code after printing why not
  // (a reply that does not decode is kExitUnreachable).
  template <typename Reply>
  int RequestView(Value request, const char* expect, Reply* view, Value* received = nullptr);

  // Asks for one job's JobInfo. kExitOk with *job and, when `received` is given, the JobInfo map
  // as it came; or an exit code after printing.
  int QueryStatus(const std::string& job_id, JobInfo* job, Value* received = nullptr);

  // After SIGINT/SIGTERM: clears the ^C echoed below a progress block, says that the job keeps
  // running (or that the command was interrupted) on err(), and returns 128 + the signal number;
  // `watch` of everything just returns kExitOk.
  int Interrupted();

 private:
  // Prints that the `expect` reply did not decode (`error` says why); returns kExitUnreachable.
  int Malformed(const char* expect, const std::string& error);

  const Options& options_;
  std::ostream& out_;
  std::ostream& err_;
  zmq::context_t context_{1};             // before connection_: its sockets close first
  std::optional<Connection> connection_;  // the DEALER, after Connect()
  std::string events_endpoint_;           // from hello, wildcard host resolved
  std::string current_job_;               // the job being waited for
  LiveBlock live_block_;                  // wait's progress block on out_
};

template <typename Reply>
int Session::RequestView(Value request, const char* expect, Reply* view, Value* received) {
  Value reply;
  if (int rc = Request(std::move(request), expect, &reply); rc != kExitOk) return rc;
  std::string error;
  std::optional<Reply> decoded;
  if constexpr (requires { Reply::FromValue(reply, &error, Missing::kDefault); }) {
    decoded = Reply::FromValue(reply, &error, Missing::kDefault);
  } else {
    decoded = Reply::FromValue(reply, &error);
  }
  if (!decoded) return Malformed(expect, error);
  *view = std::move(*decoded);
  if (received != nullptr) *received = std::move(reply);
  return kExitOk;
}

}  // namespace zmr::client
