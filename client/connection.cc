#include "client/connection.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string_view>
#include <utility>

#include "client/client.h"
#include "client/views_read.h"
#include "common/protocol.h"

namespace zmr::client {

using std::chrono::milliseconds;

std::string EndpointHost(std::string_view endpoint) {
  auto scheme = endpoint.find("://");
  std::string_view rest = scheme == std::string_view::npos ? endpoint : endpoint.substr(scheme + 3);
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    return std::string(close == std::string_view::npos ? rest : rest.substr(0, close + 1));
  }
  auto colon = rest.rfind(':');
  return std::string(colon == std::string_view::npos ? rest : rest.substr(0, colon));
}

std::string ResolveEventsEndpoint(std::string_view events, std::string_view coordinator) {
  const std::string host = EndpointHost(events);
  if (host != "*" && host != "0.0.0.0" && host != "[::]" && host != "::") {
    return std::string(events);
  }
  auto scheme = events.find("://");
  const size_t host_start = scheme == std::string_view::npos ? 0 : scheme + 3;
  std::string resolved(events.substr(0, host_start));
  resolved += EndpointHost(coordinator);
  resolved += events.substr(host_start + host.size());
  return resolved;
}

Connection::Connection(zmq::context_t& context, std::string endpoint, int timeout_ms)
    : context_(context), endpoint_(std::move(endpoint)), timeout_ms_(timeout_ms) {
  Reset();
}

Connection::Status Connection::Call(const Value& request, Value* reply, std::string* type,
                                    std::string* error) {
  const std::string bytes = Pack(request);
  const auto deadline = Clock::now() + milliseconds(timeout_ms_);
  spdlog::debug("request {} to {}", GetString(request, "type"), endpoint_);
  if (Status s = WaitFor(ZMQ_POLLOUT, deadline); s != Status::kOk) return Fail(s);
  if (!socket_.send(zmq::buffer(bytes), zmq::send_flags::dontwait)) return Fail(Status::kTimeout);
  if (Status s = WaitFor(ZMQ_POLLIN, deadline); s != Status::kOk) return Fail(s);
  // A DEALER reply is [body]; tolerate extra envelope frames and take the last one.
  zmq::message_t frame;
  do {
    if (!socket_.recv(frame, zmq::recv_flags::dontwait)) return Fail(Status::kTimeout);
  } while (frame.more());
  std::optional<Value> decoded = DecodeMessage(frame.to_string_view(), type, error);
  if (!decoded) return Status::kBadReply;
  *reply = std::move(*decoded);
  spdlog::debug("reply {} from {}", *type, endpoint_);
  return Status::kOk;
}

void Connection::Reset() {
  socket_ = zmq::socket_t(context_, zmq::socket_type::dealer);
  socket_.set(zmq::sockopt::linger, 0);
  socket_.connect(endpoint_);  // throws zmq::error_t for a malformed endpoint
}

Connection::Status Connection::Fail(Status s) {
  Reset();
  return s;
}

Connection::Status Connection::WaitFor(short events, Clock::time_point deadline) {
  for (;;) {
    if (PendingSignal() != 0) return Status::kInterrupted;
    const auto now = Clock::now();
    if (now >= deadline) return Status::kTimeout;
    const auto slice = std::min<milliseconds>(
        kSignalCheckSlice,
        std::chrono::duration_cast<milliseconds>(deadline - now) + milliseconds(1));
    zmq::pollitem_t item{socket_.handle(), 0, events, 0};
    try {
      zmq::poll(&item, 1, slice);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      continue;
    }
    if (item.revents & events) return Status::kOk;
  }
}

}  // namespace zmr::client
