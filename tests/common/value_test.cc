#include "common/value.h"

#include <doctest/doctest.h>
#include <msgpack.hpp>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define ZMR_TEST_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ZMR_TEST_HAVE_ASAN 1
#endif
#endif

#if defined(ZMR_TEST_HAVE_ASAN)
// From <sanitizer/allocator_interface.h>, which g++ does not install.
extern "C" int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void*, std::size_t),
    void (*free_hook)(const volatile void*));
#endif

namespace zmr {
namespace {

using namespace std::string_literals;

// Bytes written with msgpack's own packer, for what a Value cannot express (non-string keys, ext,
// uint64 beyond int64, float32, bin) and as an encoder independent of Pack().
std::string Craft(const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& write) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  write(pk);
  return std::string(buf.data(), buf.size());
}

// Pack then Unpack; fails the test case when the bytes do not decode.
Value RoundTrip(const Value& v) {
  std::string error;
  std::optional<Value> back = Unpack(Pack(v), &error);
  REQUIRE_MESSAGE(back.has_value(), "Unpack failed: " << error << " for " << ToJson(v));
  return *back;
}

// True when `bytes` are rejected by Unpack with a non-empty error, without throwing.
bool Rejected(std::string_view bytes, std::string* error_out = nullptr) {
  std::string error;
  std::optional<Value> v = Unpack(bytes, &error);
  if (error_out != nullptr) *error_out = error;
  return !v.has_value() && !error.empty();
}

// `depth` arrays nested in one another around a nil: depth 1 is [nil].
std::string NestedArrayBytes(int depth) {
  std::string bytes(static_cast<std::size_t>(depth), '\x91');  // fixarray of one element
  bytes += '\xc0';
  return bytes;
}

// A map exercising every type the protocol uses, nested.
Value SampleMessage() {
  Value v;
  v.Set("type", "task_done");
  v.Set("job_id", "job_20261128023200_0001");
  v.Set("attempt", 3);
  v.Set("progress", 0.75);
  v.Set("ok", true);
  v.Set("none", nullptr);
  v.Set("negative", -123456789012LL);
  v.Set("bytes", "a\0b\xff"s);
  Array outputs;
  for (int p = 0; p < 3; ++p) {
    Value o;
    o.Set("partition", p);
    o.Set("location", "/tmp/zmr/m-00000/part-" + std::to_string(p));
    o.Set("records", 1000 * p);
    outputs.push_back(std::move(o));
  }
  v.Set("outputs", Value(std::move(outputs)));
  Value counters;
  counters.Set("map_input_records", 42);
  counters.Set("map_output_records", int64_t{1} << 40);
  v.Set("counters", counters);
  v.Set("empty_array", Array{});
  v.Set("empty_map", Map{});
  return v;
}

// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + static_cast<std::size_t>(len) > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      const unsigned char b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (len == 3 && cp < 0x800) return false;
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return false;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    i += static_cast<std::size_t>(len);
  }
  return true;
}

// What a strict JSON parser needs of the text: valid UTF-8 and no raw control characters.
bool IsJsonSafe(std::string_view json) {
  if (!IsValidUtf8(json)) return false;
  for (char ch : json) {
    if (static_cast<unsigned char>(ch) < 0x20) return false;
  }
  return true;
}

std::string Hex(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (char ch : bytes) {
    const unsigned char c = static_cast<unsigned char>(ch);
    out += kDigits[c >> 4];
    out += kDigits[c & 0xF];
    out += ' ';
  }
  return out;
}

const std::string kReplacement = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Bytes requested from the allocator while a callable runs. Only ASan builds can observe every
// malloc (msgpack's zone uses malloc, not operator new); elsewhere it returns nullopt.
#if defined(ZMR_TEST_HAVE_ASAN)
std::atomic<bool> g_counting{false};
std::atomic<std::size_t> g_allocated{0};

void CountMalloc(const volatile void*, std::size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_allocated.fetch_add(size, std::memory_order_relaxed);
  }
}
void IgnoreFree(const volatile void*) {}

std::optional<std::size_t> BytesAllocatedDuring(const std::function<void()>& fn) {
  static const bool installed = __sanitizer_install_malloc_and_free_hooks(CountMalloc, IgnoreFree);
  if (!installed) {
    fn();
    return std::nullopt;
  }
  g_allocated = 0;
  g_counting = true;
  fn();
  g_counting = false;
  return g_allocated.load();
}
#else
std::optional<std::size_t> BytesAllocatedDuring(const std::function<void()>& fn) {
  fn();
  return std::nullopt;
}
#endif

constexpr std::size_t kGiB = std::size_t{1} << 30;

// ---------------------------------------------------------------------------------------------
// Round trips

TEST_CASE("scalars of every type survive pack and unpack unchanged") {
  const std::vector<Value> scalars = {
      Value(),
      Value(nullptr),
      Value(true),
      Value(false),
      Value(""),
      Value("hello"),
      Value(std::string(31, 'x')),      // fixstr limit
      Value(std::string(32, 'x')),      // str8
      Value(std::string(256, 'y')),     // str16
      Value(std::string(70000, 'z')),   // str32
  };
  for (const Value& v : scalars) {
    CAPTURE(ToJson(v).substr(0, 40));
    CHECK(RoundTrip(v) == v);
  }
}

TEST_CASE("integers at every msgpack width boundary and both int64 extremes round trip") {
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  const int64_t kMin = std::numeric_limits<int64_t>::min();
  const std::vector<int64_t> ints = {0,
                                     1,
                                     -1,
                                     127,
                                     128,
                                     -32,
                                     -33,
                                     -128,
                                     -129,
                                     255,
                                     256,
                                     65535,
                                     65536,
                                     -32768,
                                     -32769,
                                     int64_t{std::numeric_limits<int32_t>::max()},
                                     int64_t{std::numeric_limits<int32_t>::max()} + 1,
                                     int64_t{std::numeric_limits<uint32_t>::max()},
                                     int64_t{std::numeric_limits<uint32_t>::max()} + 1,
                                     int64_t{std::numeric_limits<int32_t>::min()},
                                     int64_t{std::numeric_limits<int32_t>::min()} - 1,
                                     int64_t{1} << 53,
                                     -(int64_t{1} << 53) - 1,
                                     kMax,
                                     kMax - 1,
                                     kMin,
                                     kMin + 1};
  for (int64_t i : ints) {
    CAPTURE(i);
    Value back = RoundTrip(Value(i));
    REQUIRE(back.is_int());
    CHECK(back.as_int() == i);
  }
}

TEST_CASE("non-integral doubles, infinities and NaN round trip as doubles, bit for bit") {
  const std::vector<double> doubles = {1.5,
                                       -2.25,
                                       0.1,
                                       1e300,  // integral, but beyond any msgpack integer
                                       -1e-300,
                                       std::numeric_limits<double>::denorm_min(),
                                       std::numeric_limits<double>::max(),
                                       std::numeric_limits<double>::lowest(),
                                       std::numeric_limits<double>::infinity(),
                                       -std::numeric_limits<double>::infinity()};
  for (double d : doubles) {
    CAPTURE(d);
    Value back = RoundTrip(Value(d));
    REQUIRE(back.is_double());
    CHECK(back.as_double() == d);
  }
  Value nan = RoundTrip(Value(std::numeric_limits<double>::quiet_NaN()));
  REQUIRE(nan.is_double());
  CHECK(std::isnan(nan.as_double()));
}

TEST_CASE("integral doubles keep their type and sign through pack and unpack") {
  // msgpack-c 4.x packer::pack_double() writes a double with an integral value as a msgpack
  // integer, and Pack() uses it: 1.0 comes back as the integer 1, -0.0 as 0.
  for (double d : {0.0, 1.0, -3.0, 4096.0, 9007199254740992.0}) {
    CAPTURE(d);
    std::string error;
    std::optional<Value> back = Unpack(Pack(Value(d)), &error);
    REQUIRE_MESSAGE(back.has_value(), error);
    CHECK(back->is_double());
    CHECK(back->as_double() == d);  // the number itself survives
  }
  std::optional<Value> negative_zero = Unpack(Pack(Value(-0.0)), nullptr);
  REQUIRE(negative_zero.has_value());
  CHECK(std::signbit(negative_zero->as_double()));
}

TEST_CASE("a double of 2^63 or more packs into bytes that unpack accepts") {
  // The integral-double shortcut above writes these as uint64 beyond int64 max, which Unpack
  // (rightly) refuses, so Pack() produces a message its own peer drops.
  for (double d : {9223372036854775808.0, 1e19}) {
    CAPTURE(d);
    std::string error;
    std::optional<Value> back = Unpack(Pack(Value(d)), &error);
    CHECK_MESSAGE(back.has_value(), error);
    Value map;
    map.Set("bytes_per_second", d);
    CHECK(Unpack(Pack(map), nullptr).has_value());
  }
}

TEST_CASE("strings with NUL bytes and every byte value round trip byte for byte") {
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  const std::vector<std::string> strings = {"\0"s, "a\0b"s, "\0\0\0"s, "trailing\0"s,
                                            "\xff\xfe\x00\x80"s, all_bytes, all_bytes + all_bytes};
  for (const std::string& s : strings) {
    CAPTURE(Hex(s.substr(0, 16)));
    Value back = RoundTrip(Value(s));
    REQUIRE(back.is_string());
    CHECK(back.as_string().size() == s.size());
    CHECK(back.as_string() == s);
  }
}

TEST_CASE("empty and nested arrays and maps round trip with map key order kept") {
  CHECK(RoundTrip(Value(Array{})) == Value(Array{}));
  CHECK(RoundTrip(Value(Map{})) == Value(Map{}));
  CHECK(RoundTrip(Value(Array{Value(Array{}), Value(Map{})})) ==
        Value(Array{Value(Array{}), Value(Map{})}));

  Value nested = SampleMessage();
  Value deeper;
  deeper.Set("inner", nested);
  deeper.Set("list", Array{nested, Value(Array{nested, Value(1)}), Value()});
  CHECK(RoundTrip(nested) == nested);
  CHECK(RoundTrip(deeper) == deeper);

  // Keys are kept in insertion order, not sorted, and NUL bytes in keys survive.
  Map ordered = {{"zeta", Value(1)}, {"alpha", Value(2)}, {"k\0ey"s, Value(3)}, {"", Value(4)}};
  Value back = RoundTrip(Value(ordered));
  REQUIRE(back.is_map());
  REQUIRE(back.as_map().size() == 4);
  CHECK(back.as_map()[0].first == "zeta");
  CHECK(back.as_map()[1].first == "alpha");
  CHECK(back.as_map()[2].first == "k\0ey"s);
  CHECK(back.as_map()[3].first == "");
  CHECK(back == Value(ordered));
}

TEST_CASE("containers past the fix and 16-bit msgpack sizes round trip") {
  for (std::size_t n : {15u, 16u, 65535u, 65536u}) {
    CAPTURE(n);
    Array items;
    for (std::size_t i = 0; i < n; ++i) items.emplace_back(static_cast<int64_t>(i));
    CHECK(RoundTrip(Value(items)) == Value(items));

    Map entries;
    for (std::size_t i = 0; i < n; ++i) {
      std::string key = "k";
      key += std::to_string(i);
      entries.emplace_back(std::move(key), Value(i % 7 == 0));
    }
    CHECK(RoundTrip(Value(entries)) == Value(entries));
  }
}

TEST_CASE("nesting of exactly 32 levels decodes") {
  std::string error;
  std::optional<Value> arrays = Unpack(NestedArrayBytes(32), &error);
  CHECK_MESSAGE(arrays.has_value(), error);

  Value v;  // 32 maps, one inside the other
  for (int i = 0; i < 32; ++i) {
    Value outer;
    outer.Set("k", v);
    v = outer;
  }
  CHECK(RoundTrip(v) == v);
}

TEST_CASE("pack writes standard msgpack that another encoder's bytes match") {
  CHECK(Pack(Value()) == "\xc0"s);
  CHECK(Pack(Value(true)) == "\xc3"s);
  CHECK(Pack(Value(false)) == "\xc2"s);
  CHECK(Pack(Value(1)) == "\x01"s);
  CHECK(Pack(Value(-1)) == "\xff"s);
  CHECK(Pack(Value("ab")) == "\xa2"
                             "ab"s);  // str, not bin: Python's msgpack reads it as text
  CHECK(Pack(Value(1.5)) == Craft([](auto& pk) { pk.pack_double(1.5); }));
  CHECK(Pack(Value(Array{Value(1), Value("x")})) == "\x92\x01\xa1x"s);
  Value m;
  m.Set("type", "heartbeat");
  m.Set("running", 2);
  CHECK(Pack(m) == Craft([](auto& pk) {
          pk.pack_map(2);
          pk.pack(std::string("type"));
          pk.pack(std::string("heartbeat"));
          pk.pack(std::string("running"));
          pk.pack(2);
        }));
}

TEST_CASE("bytes from another msgpack encoder decode to the same values") {
  std::string error;
  // Unsigned encodings within int64 range are plain integers.
  const uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  std::optional<Value> u64 = Unpack(Craft([&](auto& pk) { pk.pack_uint64(kInt64Max); }), &error);
  REQUIRE_MESSAGE(u64.has_value(), error);
  CHECK(*u64 == Value(std::numeric_limits<int64_t>::max()));

  std::optional<Value> u8 = Unpack(Craft([](auto& pk) { pk.pack_uint8(200); }), &error);
  REQUIRE(u8.has_value());
  CHECK(*u8 == Value(200));

  // float32 widens to double.
  std::optional<Value> f32 = Unpack(Craft([](auto& pk) { pk.pack_float(0.5f); }), &error);
  REQUIRE(f32.has_value());
  CHECK(*f32 == Value(0.5));

  // bin is read as Binary, not as a string.
  std::optional<Value> bin = Unpack(Craft([](auto& pk) {
                                      pk.pack_bin(3);
                                      pk.pack_bin_body("a\0b", 3);
                                    }),
                                    &error);
  REQUIRE(bin.has_value());
  CHECK(bin->is_binary());
  CHECK(*bin == Value(Binary{"a\0b"s}));
}

TEST_CASE("binary values round trip as msgpack bin and stay distinct from strings") {
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  for (const std::string& data : {""s, "\0"s, all_bytes, std::string(70000, '\xff')}) {
    CAPTURE(data.size());
    const Value v(Binary{data});
    const std::string bytes = Pack(v);
    REQUIRE_FALSE(bytes.empty());
    const unsigned char format = static_cast<unsigned char>(bytes[0]);
    CHECK((format == 0xc4 || format == 0xc5 || format == 0xc6));  // bin 8/16/32
    Value back = RoundTrip(v);
    REQUIRE(back.is_binary());
    CHECK_FALSE(back.is_string());
    CHECK(back.as_binary() == data);
    CHECK(back == v);
  }
  CHECK(Value(Binary{"x"}) != Value("x"));
  Value nested;
  nested.Set("blobs", Map{{"abc", Value(Binary{"\x00\x01"s})}, {"def", Value("text")}});
  CHECK(RoundTrip(nested) == nested);
}

// ---------------------------------------------------------------------------------------------
// Rejection

TEST_CASE("empty input is rejected") {
  std::string error;
  CHECK_FALSE(Unpack("", &error).has_value());
  CHECK_FALSE(error.empty());
  // A null error pointer is allowed.
  CHECK_FALSE(Unpack("", nullptr).has_value());
  CHECK_FALSE(Unpack("\xc1", nullptr).has_value());
}

TEST_CASE("every strict prefix of a packed message is rejected as truncated") {
  const std::vector<Value> messages = {SampleMessage(), Value(std::string(300, 's')),
                                       Value(std::numeric_limits<int64_t>::min()), Value(0.25),
                                       Value(Array{Value(Array{Value(Map{{"k", Value("v")}})})})};
  for (const Value& v : messages) {
    const std::string bytes = Pack(v);
    for (std::size_t len = 0; len < bytes.size(); ++len) {
      CAPTURE(len);
      CAPTURE(bytes.size());
      std::string error;
      CHECK(Rejected(std::string_view(bytes).substr(0, len), &error));
    }
    CHECK(Unpack(bytes, nullptr).has_value());
  }
}

TEST_CASE("trailing bytes after a complete value are rejected") {
  const std::string bytes = Pack(SampleMessage());
  std::string error;
  CHECK(Rejected(bytes + "\xc0"s, &error));
  CHECK(error.find("trailing") != std::string::npos);
  CHECK(Rejected(bytes + bytes));
  CHECK(Rejected("\x01\x02"s));
  CHECK(Rejected("\xc0\x00"s));
}

TEST_CASE("maps with keys that are not strings are rejected") {
  const std::vector<std::string> inputs = {
      Craft([](auto& pk) {
        pk.pack_map(1);
        pk.pack(1);
        pk.pack(std::string("v"));
      }),
      Craft([](auto& pk) {
        pk.pack_map(1);
        pk.pack_nil();
        pk.pack(1);
      }),
      Craft([](auto& pk) {
        pk.pack_map(1);
        pk.pack_array(0);
        pk.pack(1);
      }),
      Craft([](auto& pk) {
        pk.pack_map(1);
        pk.pack_bin(1);
        pk.pack_bin_body("k", 1);
        pk.pack(1);
      }),
      // A bad key deep inside an otherwise valid message.
      Craft([](auto& pk) {
        pk.pack_map(2);
        pk.pack(std::string("type"));
        pk.pack(std::string("ready"));
        pk.pack(std::string("params"));
        pk.pack_map(2);
        pk.pack(std::string("ok"));
        pk.pack(std::string("v"));
        pk.pack(true);
        pk.pack(std::string("v"));
      }),
  };
  for (const std::string& bytes : inputs) {
    CAPTURE(Hex(bytes));
    std::string error;
    CHECK(Rejected(bytes, &error));
    CHECK(error.find("key") != std::string::npos);
  }
}

TEST_CASE("unsigned integers beyond int64 max are rejected") {
  const uint64_t kJustOver = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1;
  for (uint64_t u : {kJustOver, std::numeric_limits<uint64_t>::max()}) {
    CAPTURE(u);
    std::string error;
    CHECK(Rejected(Craft([u](auto& pk) { pk.pack_uint64(u); }), &error));
    CHECK(error.find("range") != std::string::npos);
    // Also when buried in a message.
    CHECK(Rejected(Craft([u](auto& pk) {
      pk.pack_map(1);
      pk.pack(std::string("attempt"));
      pk.pack_array(1);
      pk.pack_uint64(u);
    })));
  }
}

TEST_CASE("ext types are rejected") {
  const std::vector<std::string> inputs = {
      "\xd4\x01\x00"s,                    // fixext1
      "\xd5\x01\x00\x00"s,                // fixext2
      "\xd8\x01"s + std::string(16, 'x'),  // fixext16
      "\xc7\x00\x05"s,                    // ext8 with no data
      "\xc7\x03\x05xyz"s,                 // ext8
      "\xd6\xff\x00\x00\x00\x01"s,        // timestamp32 (ext type -1)
      Craft([](auto& pk) {
        pk.pack_map(1);
        pk.pack(std::string("k"));
        pk.pack_ext(2, 7);
        pk.pack_ext_body("ab", 2);
      }),
  };
  for (const std::string& bytes : inputs) {
    CAPTURE(Hex(bytes));
    CHECK(Rejected(bytes));
  }
}

TEST_CASE("nesting deeper than 32 levels is rejected") {
  CHECK(Rejected(NestedArrayBytes(33)));
  CHECK(Rejected(NestedArrayBytes(1000)));
  std::string maps;
  for (int i = 0; i < 33; ++i) maps += "\x81\xa1k"s;  // {"k": ...}
  maps += '\xc0';
  CHECK(Rejected(maps));

  // A deep Value packs fine but is refused on the way back in.
  Value deep;
  for (int i = 0; i < 40; ++i) deep = Value(Array{deep});
  CHECK(Rejected(Pack(deep)));
}

TEST_CASE("reserved and garbage bytes are rejected") {
  CHECK(Rejected("\xc1"s));
  CHECK(Rejected("not msgpack at all"s));
  CHECK(Rejected("\xde\xad\xbe\xef"s));
}

TEST_CASE("a header declaring a huge length with few bytes present is rejected cheaply") {
  const std::vector<std::string> headers = {
      "\xdb\xff\xff\xff\xff" "abc"s,  // str32 of 4 GiB
      "\xdb\x3f\xff\xff\xff" "abc"s,  // str32 just under 1 GiB
      "\xc6\xff\xff\xff\xff" "abc"s,  // bin32 of 4 GiB
      "\xdd\xff\xff\xff\xff\xc0"s,    // array32 of 4G items
      "\xdf\xff\xff\xff\xff\xa1k"s,   // map32 of 4G pairs
      "\xdd\x00\x40\x00\x00\xc0"s,    // array32 at the item limit (4Mi)
      "\xdf\x00\x40\x00\x00\xa1k"s,   // map32 at the item limit
  };
  for (const std::string& bytes : headers) {
    CAPTURE(Hex(bytes));
    bool rejected = false;
    std::optional<std::size_t> allocated =
        BytesAllocatedDuring([&] { rejected = Rejected(bytes); });
    CHECK(rejected);
    if (allocated) {
      CAPTURE(*allocated);
      CHECK(*allocated < kGiB);
    }
  }
}

TEST_CASE("a chain of nested huge container headers is rejected without allocating gigabytes") {
  // Ten array32 headers, each declaring 4Mi items (the per-container limit), 50 bytes in all. The
  // decoder reserves every container's items before any item is read, so the reservations add up
  // level by level. A peer can send this (up to 32 levels) in one message.
  std::string bytes;
  for (int level = 0; level < 10; ++level) bytes += "\xdd\x00\x40\x00\x00"s;
  bool rejected = false;
  std::optional<std::size_t> allocated = BytesAllocatedDuring([&] { rejected = Rejected(bytes); });
  CHECK(rejected);
  if (!allocated) {
    MESSAGE("allocation not measured: needs an AddressSanitizer build (-DZMR_SANITIZE=ON)");
    return;
  }
  MESSAGE("Unpack of " << bytes.size() << " bytes allocated " << (*allocated >> 20) << " MiB");
  CHECK(*allocated < kGiB);
}

TEST_CASE("10000 random byte strings never crash or throw, and what decodes re-encodes stably") {
  std::mt19937 rng(20261128);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(1, 64);
  int decoded = 0;
  for (int i = 0; i < 10000; ++i) {
    std::string bytes(static_cast<std::size_t>(length(rng)), '\0');
    for (char& c : bytes) c = static_cast<char>(byte(rng));
    std::string error;
    std::optional<Value> v;
    REQUIRE_NOTHROW(v = Unpack(bytes, &error));
    if (!v) {
      CHECK_FALSE(error.empty());
      continue;
    }
    ++decoded;
    // Whatever decodes is a legal Value: packing it again decodes to the same bytes.
    const std::string repacked = Pack(*v);
    std::optional<Value> again = Unpack(repacked, &error);
    REQUIRE_MESSAGE(again.has_value(), Hex(bytes));
    CHECK(Pack(*again) == repacked);
  }
  MESSAGE(decoded << " of 10000 random strings decoded");
}

TEST_CASE("10000 mutations of valid messages never crash or throw") {
  std::mt19937 rng(7);
  const std::vector<std::string> seeds = {Pack(SampleMessage()),
                                          Pack(Value(Array{Value(1), Value("two"), Value(3.0)}))};
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < 10000; ++i) {
    std::string bytes = seeds[static_cast<std::size_t>(i) % seeds.size()];
    std::uniform_int_distribution<std::size_t> pos(0, bytes.size() - 1);
    const int edits = 1 + i % 4;
    for (int e = 0; e < edits; ++e) {
      switch (byte(rng) % 3) {
        case 0: bytes[pos(rng)] = static_cast<char>(byte(rng)); break;              // overwrite
        case 1: bytes[pos(rng)] ^= static_cast<char>(1 << (byte(rng) % 8)); break;  // bit flip
        default: bytes.resize(pos(rng) + 1); break;                                  // truncate
      }
      if (bytes.empty()) bytes.assign(1, '\xc0');
      pos = std::uniform_int_distribution<std::size_t>(0, bytes.size() - 1);
    }
    std::optional<Value> v;
    std::string error;
    REQUIRE_NOTHROW(v = Unpack(bytes, &error));
    if (!v) CHECK_FALSE(error.empty());
  }
}

// ---------------------------------------------------------------------------------------------
// JSON

TEST_CASE("json escapes quotes, backslashes and control characters") {
  CHECK(ToJson(Value("say \"hi\"")) == R"("say \"hi\"")");
  CHECK(ToJson(Value("C:\\dir\\")) == R"("C:\\dir\\")");
  CHECK(ToJson(Value("a\nb\rc\td")) == R"("a\nb\rc\td")");
  CHECK(ToJson(Value("\x01")) == R"("\u0001")");
  CHECK(ToJson(Value("\x1f")) == R"("\u001f")");
  CHECK(ToJson(Value("nul\0byte"s)) == R"("nul\u0000byte")");
  for (int c = 0; c < 0x20; ++c) {
    CAPTURE(c);
    const std::string json = ToJson(Value(std::string(1, static_cast<char>(c))));
    CHECK(IsJsonSafe(json));
    CHECK(json.size() > 3);  // escaped, never the raw byte
  }
  // Keys are escaped the same way.
  Value m;
  m.Set("k\"\n", 1);
  CHECK(ToJson(m) == R"({"k\"\n":1})");
}

TEST_CASE("json keeps valid multi-byte UTF-8 as is") {
  const std::vector<std::string> valid = {
      "caf\xC3\xA9",            // é, 2 bytes
      "\xE2\x82\xAC 5",         // €, 3 bytes
      "\xF0\x9F\x98\x80",       // 😀, 4 bytes
      "\xC2\x80",               // U+0080, smallest 2-byte
      "\xDF\xBF",               // U+07FF
      "\xE0\xA0\x80",           // U+0800, smallest 3-byte
      "\xED\x9F\xBF",           // U+D7FF, just below the surrogates
      "\xEE\x80\x80",           // U+E000, just above them
      "\xEF\xBF\xBF",           // U+FFFF
      "\xF0\x90\x80\x80",       // U+10000, smallest 4-byte
      "\xF4\x8F\xBF\xBF",       // U+10FFFF, the last code point
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",  // 日本語
  };
  for (const std::string& s : valid) {
    CAPTURE(Hex(s));
    CHECK(ToJson(Value(s)) == "\"" + s + "\"");
  }
}

TEST_CASE("json replaces invalid UTF-8 bytes with U+FFFD") {
  CHECK(ToJson(Value("\x80")) == "\"" + kReplacement + "\"");
  CHECK(ToJson(Value("\xff")) == "\"" + kReplacement + "\"");
  CHECK(ToJson(Value("a\xfe" "b")) == "\"a" + kReplacement + "b\"");
  CHECK(ToJson(Value("\xC3")) == "\"" + kReplacement + "\"");  // truncated at the end
  // Overlong 2-byte forms.
  CHECK(ToJson(Value("\xC0\x80")).find('\0') == std::string::npos);
  CHECK(IsJsonSafe(ToJson(Value("\xC0\x80"))));
  CHECK(IsJsonSafe(ToJson(Value("\xC1\xBF"))));
  // A broken sequence: the ASCII byte after it is kept.
  const std::string broken = ToJson(Value("\xE2\x82" "A"));
  CHECK(IsJsonSafe(broken));
  CHECK(broken.find(kReplacement) != std::string::npos);
  CHECK(broken.find('A') != std::string::npos);
  // Valid text around invalid bytes survives.
  const std::string mixed = ToJson(Value("caf\xC3\xA9\xff\xE2\x82\xAC"));
  CHECK(mixed == "\"caf\xC3\xA9" + kReplacement + "\xE2\x82\xAC\"");
}

TEST_CASE("json never passes through sequences that strict UTF-8 decoders refuse") {
  // Well-formed-looking lead/continuation patterns that are still invalid UTF-8 (RFC 3629).
  const std::vector<std::string> invalid = {
      "\xE0\x80\x80",       // overlong 3-byte NUL
      "\xE0\x9F\xBF",       // overlong 3-byte U+07FF
      "\xED\xA0\x80",       // UTF-16 surrogate U+D800
      "\xED\xBF\xBF",       // UTF-16 surrogate U+DFFF
      "\xF0\x80\x80\x80",   // overlong 4-byte NUL
      "\xF0\x8F\xBF\xBF",   // overlong 4-byte U+FFFF
      "\xF4\x90\x80\x80",   // U+110000, beyond Unicode
      "\xF5\x80\x80\x80",   // lead byte F5 never appears in UTF-8
      "\xF7\xBF\xBF\xBF",   // lead byte F7
  };
  for (const std::string& s : invalid) {
    CAPTURE(Hex(s));
    const std::string json = ToJson(Value(s));
    CAPTURE(Hex(json));
    CHECK(IsJsonSafe(json));
  }

  // The same property over random bytes.
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> byte(0, 255);
  int unsafe = 0;
  std::string first_unsafe;
  for (int i = 0; i < 2000; ++i) {
    std::string s(16, '\0');
    for (char& c : s) c = static_cast<char>(byte(rng));
    if (!IsJsonSafe(ToJson(Value(s)))) {
      if (unsafe++ == 0) first_unsafe = s;
    }
  }
  CHECK_MESSAGE(unsafe == 0, unsafe << " of 2000 random strings gave invalid UTF-8 JSON, first: "
                                   << Hex(first_unsafe));
}

TEST_CASE("json prints binary values as their size, never their bytes") {
  CHECK(ToJson(Value(Binary{"\x00\xff\"secret"s})) == R"({"bytes":9})");
  CHECK(ToJson(Value(Binary{""})) == R"({"bytes":0})");
  Value v;
  v.Set("data", Binary{std::string(1000, '\x80')});
  CHECK(ToJson(v) == R"({"data":{"bytes":1000}})");
}

TEST_CASE("json prints scalars and nested structures compactly in insertion order") {
  CHECK(ToJson(Value()) == "null");
  CHECK(ToJson(Value(true)) == "true");
  CHECK(ToJson(Value(false)) == "false");
  CHECK(ToJson(Value(0)) == "0");
  CHECK(ToJson(Value(-42)) == "-42");
  CHECK(ToJson(Value(std::numeric_limits<int64_t>::min())) == "-9223372036854775808");
  CHECK(ToJson(Value(std::numeric_limits<int64_t>::max())) == "9223372036854775807");
  CHECK(ToJson(Value(2.5)) == "2.5");
  CHECK(ToJson(Value(-0.125)) == "-0.125");
  // Finite doubles print with enough digits to read back exactly.
  for (double d : {0.1, 1.0 / 3.0, 1e300, -2.5e-308, 123456789.123456789}) {
    CAPTURE(d);
    CHECK(std::strtod(ToJson(Value(d)).c_str(), nullptr) == d);
  }
  // JSON has no NaN or infinity.
  CHECK(ToJson(Value(std::numeric_limits<double>::quiet_NaN())) == "null");
  CHECK(ToJson(Value(std::numeric_limits<double>::infinity())) == "null");
  CHECK(ToJson(Value(-std::numeric_limits<double>::infinity())) == "null");
  CHECK(ToJson(Value("")) == R"("")");
  CHECK(ToJson(Value(Array{})) == "[]");
  CHECK(ToJson(Value(Map{})) == "{}");

  Value job;
  job.Set("job_id", "j1");
  job.Set("state", "MAPPING");
  Value maps;
  maps.Set("total", 4);
  maps.Set("done", 1);
  job.Set("maps", maps);
  job.Set("map_progress", 0.5);
  job.Set("inputs", Array{Value("/a"), Value("/b")});
  job.Set("nested", Array{Value(Array{}), Value(Map{}), Value(Array{Value(), Value(true)})});
  job.Set("zzz", nullptr);
  job.Set("aaa", false);
  CHECK(ToJson(job) ==
        R"({"job_id":"j1","state":"MAPPING","maps":{"total":4,"done":1},"map_progress":0.5,)"
        R"("inputs":["/a","/b"],"nested":[[],{},[null,true]],"zzz":null,"aaa":false})");
}

// ---------------------------------------------------------------------------------------------
// Map access and field readers

TEST_CASE("find looks up map keys and set replaces in place or appends") {
  Value v;
  CHECK(v.Find("a") == nullptr);  // nil is not a map
  v.Set("a", 1);
  v.Set("b", "two");
  v.Set("a", 3.5);  // replaces, keeps position
  REQUIRE(v.is_map());
  REQUIRE(v.as_map().size() == 2);
  CHECK(v.as_map()[0].first == "a");
  REQUIRE(v.Find("a") != nullptr);
  CHECK(*v.Find("a") == Value(3.5));
  CHECK(*v.Find("b") == Value("two"));
  CHECK(v.Find("c") == nullptr);
  CHECK(Value(5).Find("a") == nullptr);
  CHECK(Value(Array{Value("a")}).Find("a") == nullptr);
}

TEST_CASE("value equality distinguishes types, including an int from an equal double") {
  CHECK(Value(1) != Value(1.0));
  CHECK(Value(0) != Value(false));
  CHECK(Value("") != Value());
  CHECK(Value(Array{}) != Value(Map{}));
  CHECK(Value(1) == Value(int64_t{1}));
  CHECK(Value(1).as_double() == 1.0);  // as_double accepts ints
}

Value Fields() {
  Value m;
  m.Set("s", "text");
  m.Set("i", 7);
  m.Set("d", 0.5);
  m.Set("b", true);
  m.Set("n", nullptr);
  return m;
}

TEST_CASE("required field readers return the value of the right type") {
  const Value m = Fields();
  std::string error, s;
  int64_t i = 0;
  double d = 0;
  bool b = false;
  CHECK(ReadString(m, "s", &s, &error));
  CHECK(s == "text");
  CHECK(ReadInt(m, "i", &i, &error));
  CHECK(i == 7);
  CHECK(ReadDouble(m, "d", &d, &error));
  CHECK(d == 0.5);
  CHECK(ReadDouble(m, "i", &d, &error));  // an integer is a number
  CHECK(d == 7.0);
  CHECK(ReadBool(m, "b", &b, &error));
  CHECK(b);
  CHECK(error.empty());
}

TEST_CASE("required field readers report missing and wrongly typed fields differently") {
  const Value m = Fields();
  std::string s = "untouched";
  int64_t i = -1;
  double d = -1;
  bool b = false;

  struct Case {
    std::function<bool(std::string*)> read;
    const char* key;
  };
  // Absent keys and nil values are both "missing".
  const std::vector<Case> missing = {
      {[&](std::string* e) { return ReadString(m, "x", &s, e); }, "x"},
      {[&](std::string* e) { return ReadInt(m, "x", &i, e); }, "x"},
      {[&](std::string* e) { return ReadDouble(m, "x", &d, e); }, "x"},
      {[&](std::string* e) { return ReadBool(m, "x", &b, e); }, "x"},
      {[&](std::string* e) { return ReadString(m, "n", &s, e); }, "n"},
      {[&](std::string* e) { return ReadInt(m, "n", &i, e); }, "n"},
      {[&](std::string* e) { return ReadString(Value(Array{}), "s", &s, e); }, "s"},
      {[&](std::string* e) { return ReadInt(Value(3), "i", &i, e); }, "i"},
  };
  for (const Case& c : missing) {
    CAPTURE(c.key);
    std::string error;
    CHECK_FALSE(c.read(&error));
    CHECK(error.find("missing") != std::string::npos);
    CHECK(error.find(std::string("'") + c.key + "'") != std::string::npos);
  }

  const std::vector<Case> wrong = {
      {[&](std::string* e) { return ReadString(m, "i", &s, e); }, "i"},
      {[&](std::string* e) { return ReadInt(m, "s", &i, e); }, "s"},
      {[&](std::string* e) { return ReadInt(m, "d", &i, e); }, "d"},  // 0.5 is not an integer
      {[&](std::string* e) { return ReadInt(m, "b", &i, e); }, "b"},
      {[&](std::string* e) { return ReadDouble(m, "s", &d, e); }, "s"},
      {[&](std::string* e) { return ReadDouble(m, "b", &d, e); }, "b"},
      {[&](std::string* e) { return ReadBool(m, "i", &b, e); }, "i"},
      {[&](std::string* e) { return ReadBool(m, "s", &b, e); }, "s"},
  };
  for (const Case& c : wrong) {
    CAPTURE(c.key);
    std::string error;
    CHECK_FALSE(c.read(&error));
    CHECK(error.find("missing") == std::string::npos);
    CHECK(error.find(std::string("'") + c.key + "'") != std::string::npos);
  }
  // Failed reads leave the outputs alone.
  CHECK(s == "untouched");
  CHECK(i == -1);
  CHECK(d == -1);
  CHECK_FALSE(b);

  // A double holding an integral value is still not an integer.
  Value one;
  one.Set("attempt", 1.0);
  std::string error;
  CHECK_FALSE(ReadInt(one, "attempt", &i, &error));
}

TEST_CASE("the bytes reader takes bin or str and refuses anything else") {
  Value m;
  m.Set("bin", Binary{"a\0\xff"s});
  m.Set("str", "text");
  m.Set("int", 1);
  m.Set("arr", Array{Value("a")});
  m.Set("nil", nullptr);
  std::string out = "untouched", error;
  CHECK(ReadBytes(m, "bin", &out, &error));
  CHECK(out == "a\0\xff"s);
  CHECK(ReadBytes(m, "str", &out, &error));
  CHECK(out == "text");
  for (const char* key : {"int", "arr"}) {
    CAPTURE(key);
    error.clear();
    out = "untouched";
    CHECK_FALSE(ReadBytes(m, key, &out, &error));
    CHECK(error.find(std::string("'") + key + "'") != std::string::npos);
    CHECK(error.find("missing") == std::string::npos);
    CHECK(out == "untouched");
  }
  for (const char* key : {"absent", "nil"}) {
    CAPTURE(key);
    error.clear();
    CHECK_FALSE(ReadBytes(m, key, &out, &error));
    CHECK(error.find("missing") != std::string::npos);
  }
  // Binary is not a string to ReadString.
  error.clear();
  CHECK_FALSE(ReadString(m, "bin", &out, &error));
  CHECK(error.find("'bin'") != std::string::npos);
}

TEST_CASE("optional field readers skip absent or nil fields but refuse wrong types") {
  const Value m = Fields();
  std::string s = "default";
  int64_t i = 99;
  double d = 9.5;
  bool b = true;
  std::string error;
  for (const char* key : {"absent", "n"}) {
    CAPTURE(key);
    CHECK(ReadOptString(m, key, &s, &error));
    CHECK(ReadOptInt(m, key, &i, &error));
    CHECK(ReadOptDouble(m, key, &d, &error));
    CHECK(ReadOptBool(m, key, &b, &error));
  }
  CHECK(error.empty());
  CHECK(s == "default");
  CHECK(i == 99);
  CHECK(d == 9.5);
  CHECK(b);
  // Reading from a value that is not a map finds nothing.
  CHECK(ReadOptInt(Value(5), "i", &i, &error));
  CHECK(i == 99);

  CHECK(ReadOptString(m, "s", &s, &error));
  CHECK(s == "text");
  CHECK(ReadOptInt(m, "i", &i, &error));
  CHECK(i == 7);
  CHECK(ReadOptDouble(m, "d", &d, &error));
  CHECK(d == 0.5);
  CHECK(ReadOptBool(m, "b", &b, &error));
  CHECK(b);

  error.clear();
  CHECK_FALSE(ReadOptString(m, "i", &s, &error));
  CHECK(error.find("'i'") != std::string::npos);
  error.clear();
  CHECK_FALSE(ReadOptInt(m, "d", &i, &error));
  CHECK(error.find("'d'") != std::string::npos);
  error.clear();
  CHECK_FALSE(ReadOptDouble(m, "s", &d, &error));
  CHECK(error.find("'s'") != std::string::npos);
  error.clear();
  CHECK_FALSE(ReadOptBool(m, "i", &b, &error));
  CHECK(error.find("'i'") != std::string::npos);
  CHECK(error.find("missing") == std::string::npos);
}

}  // namespace
}  // namespace zmr
