// The transport between `zmr` and the coordinator: one DEALER socket to its client endpoint, one
// request at a time, each reply awaited with a deadline while looking at PendingSignal()
// (client/client.h) every kSignalCheckSlice. Internal to the client: the Session
// (client/session.h) owns one Connection. connection.cc also defines EndpointHost and
// ResolveEventsEndpoint, declared in client/client.h. One thread, the one that made it.
#pragma once

#include <chrono>
#include <string>
#include <zmq.hpp>

#include "common/value.h"

namespace zmr::client {

// Longest time any loop of the client blocks without looking at PendingSignal().
inline constexpr std::chrono::milliseconds kSignalCheckSlice{50};

class Connection {
 public:
  enum class Status { kOk, kTimeout, kBadReply, kInterrupted };

  // Connects a DEALER (LINGER 0) to `endpoint`; the connection itself is made in the background.
  // Throws zmq::error_t for a malformed endpoint. `context` must outlive this.
  Connection(zmq::context_t& context, std::string endpoint, int timeout_ms);

  // Sends `request` and waits at most timeout_ms for its reply. kOk: *reply is a map with a
  // string type (*type). kBadReply: *error says why. kTimeout/kInterrupted: the socket is replaced
  // so a late reply can never be taken for the answer to a later request.
  Status Call(const Value& request, Value* reply, std::string* type, std::string* error);

 private:
  using Clock = std::chrono::steady_clock;

  // Replaces socket_ by a fresh DEALER connected to endpoint_ (pending requests are dropped).
  void Reset();
  // Reset(), then returns `s`.
  Status Fail(Status s);
  // Waits until the socket is ready for `events`, the deadline passes or a signal arrives.
  Status WaitFor(short events, Clock::time_point deadline);

  zmq::context_t& context_;
  std::string endpoint_;   // the coordinator's client endpoint
  int timeout_ms_;         // per request
  zmq::socket_t socket_;   // replaced after a timeout or an interruption
};

}  // namespace zmr::client
