// Lenient reading of coordinator data for display: the JobInfo, TaskInfo, WorkerInfo and event
// maps the client shows. A missing or mistyped field reads as empty/0, because the client only
// displays these, it never trusts them for control. For the client's own units (client/format.*,
// client/progress.*, the commands); pure functions, callable from any thread. Kept together so
// that one later step can replace them by the typed views shared with the coordinator.
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
// The number at `key` as a double; 0.0 when missing or not a number.
double GetDouble(const Value& map, std::string_view key);
// True only when `key` holds the boolean true.
bool GetBool(const Value& map, std::string_view key);
// The value at `key`; when missing, a nil Value that lives as long as the program.
const Value& GetField(const Value& map, std::string_view key);

// `s` with each line break replaced by a space, so a peer-provided message stays one line.
std::string OneLine(std::string s);

}  // namespace zmr::client
