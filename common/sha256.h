// SHA-256 (FIPS 180-4), used to name shipped files (plugin libraries, --file payloads) by their
// content: the client, the coordinator and the worker's blob cache must agree on the digest.
// Pure functions; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace zmr {

// The SHA-256 digest of `data` as 64 lower-case hex digits.
std::string Sha256Hex(std::string_view data);

}  // namespace zmr
