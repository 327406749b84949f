// Lenient reading of the coordinator replies that have no typed struct in common/ (the `hello`,
// `error` and `log` replies; the views and the other replies are read through common/views.h and
// common/protocol.h), and of the client's own requests in messages: a missing or mistyped field
// reads as empty/0, because the client only displays these fields, it never acts on them. Also
// OneLine, for peer text in a one-line message. For the client's own units; pure functions,
// callable from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/value.h"

namespace zmr::client {

// The string at `key` of `map`; "" when `map` is not a map, lacks `key` or holds another type.
std::string GetString(const Value& map, std::string_view key);
// The integer at `key` (a double is truncated toward zero); 0 when missing or not a number.
int64_t GetInt(const Value& map, std::string_view key);

// `s` with each line break replaced by a space, so a peer-provided message stays one line.
std::string OneLine(std::string s);

}  // namespace zmr::client
