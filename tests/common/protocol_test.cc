#include "common/protocol.h"

#include <doctest/doctest.h>
#include <msgpack.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zmr {
namespace {

using namespace std::string_literals;

// What a receiver made of one message body: DecodeMessage's verdict and type, then FromValue's.
template <typename Msg>
struct Received {
  std::optional<Msg> msg;
  bool decoded = false;  // DecodeMessage accepted the bytes
  std::string type;
  std::string error;
};

// A second msgpack encoder, standing in for a peer written in another language (Python's msgpack
// packs every float as float64). Unlike Pack(), it never turns an integral double into an integer,
// so "attempt: 1.0" reaches the decoder as a float.
void PeerPackValue(msgpack::packer<msgpack::sbuffer>& pk, msgpack::sbuffer& buf, const Value& v) {
  if (v.is_nil()) {
    pk.pack_nil();
  } else if (v.is_bool()) {
    pk.pack(v.as_bool());
  } else if (v.is_int()) {
    pk.pack_int64(v.as_int());
  } else if (v.is_double()) {
    const double d = v.as_double();
    uint64_t bits = 0;
    std::memcpy(&bits, &d, sizeof(bits));
    char raw[9];
    raw[0] = static_cast<char>(0xcb);  // float 64
    for (int i = 0; i < 8; ++i) raw[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
    buf.write(raw, sizeof(raw));
  } else if (v.is_string()) {
    pk.pack(v.as_string());
  } else if (v.is_binary()) {
    pk.pack_bin(static_cast<uint32_t>(v.as_binary().size()));
    pk.pack_bin_body(v.as_binary().data(), static_cast<uint32_t>(v.as_binary().size()));
  } else if (v.is_array()) {
    pk.pack_array(static_cast<uint32_t>(v.as_array().size()));
    for (const Value& item : v.as_array()) PeerPackValue(pk, buf, item);
  } else {
    pk.pack_map(static_cast<uint32_t>(v.as_map().size()));
    for (const auto& [key, item] : v.as_map()) {
      pk.pack(key);
      PeerPackValue(pk, buf, item);
    }
  }
}

std::string PeerPack(const Value& v) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  PeerPackValue(pk, buf, v);
  return std::string(buf.data(), buf.size());
}

// What a receiver makes of `v` sent by a peer: the bytes go through DecodeMessage and FromValue.
template <typename Msg>
Received<Msg> Receive(const Value& v) {
  Received<Msg> r;
  const std::string bytes = PeerPack(v);
  std::optional<Value> body = DecodeMessage(bytes, &r.type, &r.error);
  if (!body) return r;
  r.decoded = true;
  r.msg = Msg::FromValue(*body, &r.error);
  return r;
}

// Sends `original` the way zmr does (ToValue, Pack) and decodes it the way zmr does
// (DecodeMessage, FromValue); checks the type string and that nothing changed. Also decodes the
// same message as sent by another encoder.
template <typename Msg>
void CheckRoundTrip(const Msg& original, const char* want_type) {
  const Value v = original.ToValue();
  CAPTURE(ToJson(v));
  std::string type, error;
  std::optional<Value> body = DecodeMessage(Pack(v), &type, &error);
  REQUIRE_MESSAGE(body.has_value(), error);
  CHECK(type == want_type);
  std::optional<Msg> back = Msg::FromValue(*body, &error);
  REQUIRE_MESSAGE(back.has_value(), error);
  CHECK(*back == original);

  Received<Msg> r = Receive<Msg>(v);
  REQUIRE_MESSAGE(r.msg.has_value(), r.error);
  CHECK(r.type == want_type);
  CHECK(*r.msg == original);
}

Value With(Value v, const std::string& key, Value field) {
  v.Set(key, std::move(field));
  return v;
}

Value Without(Value v, std::string_view key) {
  Map& m = v.as_map();
  std::erase_if(m, [&](const auto& kv) { return kv.first == key; });
  return v;
}

// A field replaced by a value of the wrong type: the message must be refused, naming the field.
struct WrongField {
  WrongField(std::string key_in, Value value_in, std::string named_in = "")
      : key(std::move(key_in)), value(std::move(value_in)), named(std::move(named_in)) {}
  std::string key;
  Value value;
  std::string named;  // what the error must mention (the key itself when empty)
};

template <typename Msg>
void CheckWrongTypesRejected(const Value& good, const std::vector<WrongField>& cases) {
  REQUIRE(Receive<Msg>(good).msg.has_value());
  for (const WrongField& c : cases) {
    const std::string named = c.named.empty() ? c.key : c.named;
    CAPTURE(c.key);
    CAPTURE(ToJson(c.value));
    Received<Msg> r = Receive<Msg>(With(good, c.key, c.value));
    CHECK_FALSE(r.msg.has_value());
    CHECK_MESSAGE(r.error.find("'" + named) != std::string::npos, r.error);
  }
}

template <typename Msg>
void CheckRequiredFields(const Value& good, const std::vector<std::string>& keys) {
  REQUIRE(Receive<Msg>(good).msg.has_value());
  for (const std::string& key : keys) {
    CAPTURE(key);
    Received<Msg> absent = Receive<Msg>(Without(good, key));
    CHECK(absent.decoded);
    CHECK_FALSE(absent.msg.has_value());
    CHECK_MESSAGE(absent.error.find("missing field '" + key + "'") != std::string::npos,
                  absent.error);
    // nil counts as missing.
    Received<Msg> nil = Receive<Msg>(With(good, key, Value()));
    CHECK_FALSE(nil.msg.has_value());
    CHECK(nil.error.find("'" + key + "'") != std::string::npos);
  }
}

template <typename Msg>
void CheckOptionalFields(const Value& good, const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    CAPTURE(key);
    Received<Msg> r = Receive<Msg>(Without(good, key));
    CHECK_MESSAGE(r.msg.has_value(), r.error);
    Received<Msg> nil = Receive<Msg>(With(good, key, Value()));
    CHECK_MESSAGE(nil.msg.has_value(), nil.error);
  }
}

// Populated instances of every message.

ReadyMsg SampleReady() {
  ReadyMsg m;
  m.proto = kProtocolVersion;
  m.name = "worker-a";
  m.host = "node7.example";
  m.pid = 31337;
  m.slots = 8;
  m.queue = 8;
  m.work_dir = "/var/tmp/zmr/worker-a";
  return m;
}

WelcomeMsg SampleWelcome() {
  WelcomeMsg m;
  m.proto = kProtocolVersion;
  m.worker = "worker-a";
  m.heartbeat_ms = 250;
  m.liveness = 5;
  return m;
}

HeartbeatMsg SampleHeartbeat() {
  HeartbeatMsg m;
  m.running = 3;
  m.free_slots = 1;
  m.cpu = 2.75;
  m.host_cpu = 0.5;
  m.cores = 8;
  m.load1 = 3.25;
  m.rss_kb = 123456;
  m.disk_free_bytes = int64_t{5} << 40;
  return m;
}

MapOutput SampleMapOutput(int64_t partition) {
  MapOutput o;
  o.partition = partition;
  o.location = "/var/tmp/zmr/job_1/m-00002.a1/part-0000" + std::to_string(partition);
  o.bytes = (int64_t{1} << 33) + partition;
  o.records = 1000 + partition;
  return o;
}

const std::string kSha1(64, 'a');
const std::string kSha2(64, '0');

JobCode SampleCode() {
  JobCode c;
  c.plugin = kSha2;
  c.mapper = "python3 mapper.py --flag 'quoted arg'";
  c.combiner = "sort | uniq -c";
  c.reducer = "./reduce.sh";
  c.cmdenv = {{"LC_ALL", "C"}, {"EMPTY", ""}};
  c.files = {FileRef{"mapper.py", kSha1, 0755}, FileRef{"libwc.so", kSha2, 0644},
             FileRef{".hidden data", kSha1, 0600}};
  return c;
}

AssignMsg SampleMapAssign() {
  AssignMsg m;
  m.job_id = "job_20261128023200_0001";
  m.task_id = "m-00002";
  m.attempt = 2;
  m.kind = TaskKind::kMap;
  m.app = "wordcount";
  m.params = {{"case", "fold"}, {"min", "2"}, {"empty", ""}};
  m.code = SampleCode();
  m.num_reduces = 4;
  m.output_dir = "/data/out";
  m.partition = 2;  // the map index
  m.split = {FileRange{"/data/in/a.txt", 1024, 4096}, FileRange{"/data/in/b.txt", 0, 0},
             FileRange{"/data/in/c d.txt", 0, int64_t{1} << 40}};
  return m;
}

AssignMsg SampleReduceAssign() {
  AssignMsg m;
  m.job_id = "job_20261128023200_0001";
  m.task_id = "r-00003";
  m.attempt = 1;
  m.kind = TaskKind::kReduce;
  m.app = "grep";
  m.params = {{"pattern", "a.*b"}};
  m.code.reducer = "wc -l";
  m.num_reduces = 4;
  m.output_dir = "/data/out";
  m.partition = 3;
  m.inputs = {"/w1/m-00000/part-00003", "/w2/m-00001/part-00003", ""};
  return m;
}

AttemptRef SampleRef() { return AttemptRef{"job_20261128023200_0001", "m-00007", 4}; }

TaskProgressMsg SampleProgress() {
  TaskProgressMsg m;
  m.ref = SampleRef();
  m.progress = 0.375;
  m.status = "reading b.txt \xe2\x80\x94 50%";
  return m;
}

TaskDoneMsg SampleDone() {
  TaskDoneMsg m;
  m.ref = SampleRef();
  m.outputs = {SampleMapOutput(0), SampleMapOutput(1), SampleMapOutput(2)};
  m.counters = {{"map_input_records", 12345},
                {"map_input_bytes", int64_t{1} << 35},
                {"map_output_records", 0},
                {"custom", -7}};
  return m;
}

TaskFailedMsg SampleFailed() {
  TaskFailedMsg m;
  m.ref = SampleRef();
  m.error = "cannot open /data/in/a.txt: No such file or directory";
  m.bad_inputs = {"/w1/m-00000/part-00003", "/w2/m-00001/part-00003"};
  m.stderr_tail = {"Traceback (most recent call last):", "OSError: [Errno 2]"};
  return m;
}

FetchLogMsg SampleFetchLog() {
  FetchLogMsg m;
  m.request_id = 42;
  m.ref = SampleRef();
  return m;
}

LogMsg SampleLog() {
  LogMsg m;
  m.request_id = 42;
  m.ref = SampleRef();
  m.found = true;
  m.data = "line one\n\xff\x00 binary\n"s;
  m.truncated = true;
  m.size = 12345678;
  return m;
}

CancelAttemptMsg SampleCancel() {
  CancelAttemptMsg m;
  m.ref = SampleRef();
  return m;
}

CleanupMsg SampleCleanup() {
  CleanupMsg m;
  m.job_id = "job_20261128023200_0001";
  return m;
}

SubmitMsg SampleSubmit() {
  SubmitMsg m;
  m.name = "nightly count";
  m.app = "wordcount";
  m.inputs = {"/data/in/a.txt", "/data/in/b.txt"};
  m.output = "/data/out";
  m.params = {{"case", "fold"}};
  m.maps = 16;
  m.reduces = 3;
  m.max_attempts = 2;
  m.priority = -7;
  m.speculation = false;
  m.mapper = "python3 mapper.py";
  m.combiner = "cat";
  m.reducer = "NONE";
  m.cmdenv = {{"PYTHONHASHSEED", "0"}};
  m.files = {SubmitFile{"mapper.py", 0755, "import sys\n"},
             SubmitFile{"table.bin", 0644, "\x00\xff\x00 binary"s}, SubmitFile{"empty", 0600, ""}};
  m.plugin = SubmitFile{"libwc.so", 0755, "\x7f" "ELF\x02\x01\x01\x00"s};
  return m;
}

JobFilesMsg SampleJobFiles() {
  JobFilesMsg m;
  m.job_id = "job_20261128023200_0001";
  m.blobs = {{kSha1, "import sys\n"},
             {kSha2, "\x7f" "ELF\x00\x00\xff"s},
             {std::string(64, 'f'), ""}};
  return m;
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST_CASE("every worker and client message survives the wire unchanged") {
  CheckRoundTrip(SampleReady(), "ready");
  CheckRoundTrip(SampleWelcome(), "welcome");
  CheckRoundTrip(SampleHeartbeat(), "heartbeat");
  CheckRoundTrip(SampleMapAssign(), "assign");
  CheckRoundTrip(SampleReduceAssign(), "assign");
  CheckRoundTrip(SampleProgress(), "task_progress");
  CheckRoundTrip(SampleDone(), "task_done");
  CheckRoundTrip(SampleFailed(), "task_failed");
  CheckRoundTrip(SampleCancel(), "cancel");
  CheckRoundTrip(SampleCleanup(), "cleanup");
  CheckRoundTrip(SampleJobFiles(), "job_files");
  CheckRoundTrip(SampleSubmit(), "submit");
  CheckRoundTrip(SampleFetchLog(), "fetch_log");
  CheckRoundTrip(SampleLog(), "log");
}

TEST_CASE("messages with default and edge values survive the wire unchanged") {
  ReadyMsg ready = SampleReady();
  ready.work_dir = "";
  ready.slots = 4096;
  ready.pid = std::numeric_limits<int64_t>::max();
  CheckRoundTrip(ready, "ready");
  ready.slots = 1;
  CheckRoundTrip(ready, "ready");

  CheckRoundTrip(HeartbeatMsg{}, "heartbeat");

  AssignMsg map = SampleMapAssign();
  map.params.clear();
  map.split.clear();
  map.code = JobCode{};
  map.num_reduces = 1;
  CheckRoundTrip(map, "assign");
  map.num_reduces = 0;  // a map-only job
  CheckRoundTrip(map, "assign");

  AssignMsg reduce = SampleReduceAssign();
  reduce.inputs.clear();
  reduce.partition = 0;
  reduce.num_reduces = 1;
  CheckRoundTrip(reduce, "assign");

  TaskProgressMsg progress = SampleProgress();
  for (double p : {0.0, 1.0, 1e-9, 0.999999999}) {
    CAPTURE(p);
    progress.progress = p;
    CheckRoundTrip(progress, "task_progress");
  }

  TaskDoneMsg reduce_done = SampleDone();
  reduce_done.ref.task_id = "r-00000";
  reduce_done.outputs.clear();
  reduce_done.counters.clear();
  CheckRoundTrip(reduce_done, "task_done");

  progress.status.clear();
  CheckRoundTrip(progress, "task_progress");

  TaskFailedMsg failed = SampleFailed();
  failed.error = "bad bytes: \xff\x00 \"quoted\""s;
  failed.bad_inputs.clear();
  CheckRoundTrip(failed, "task_failed");

  JobFilesMsg no_files;
  no_files.job_id = "j";
  CheckRoundTrip(no_files, "job_files");

  SubmitMsg submit;
  submit.app = "wordcount";
  submit.output = "/out";
  CheckRoundTrip(submit, "submit");
  submit.reduces = 0;
  submit.max_attempts = 1;
  CheckRoundTrip(submit, "submit");
}

TEST_CASE("a map output survives the wire unchanged") {
  // MapOutput travels inside task_done; it has no type of its own.
  const MapOutput original = SampleMapOutput(5);
  std::string error;
  std::optional<Value> v = Unpack(Pack(original.ToValue()), &error);
  REQUIRE_MESSAGE(v.has_value(), error);
  std::optional<MapOutput> back = MapOutput::FromValue(*v, &error);
  REQUIRE_MESSAGE(back.has_value(), error);
  CHECK(*back == original);

  // Alone it is not a message.
  std::string type;
  CHECK_FALSE(DecodeMessage(Pack(original.ToValue()), &type, &error).has_value());
}

TEST_CASE("a task_progress packed by another msgpack encoder with float32 and uint is accepted") {
  // What a Python peer may send: unsigned ints, a float32 and extra unknown fields.
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(6);
  pk.pack(std::string("type"));
  pk.pack(std::string("task_progress"));
  pk.pack(std::string("job_id"));
  pk.pack(std::string("j"));
  pk.pack(std::string("task_id"));
  pk.pack(std::string("m-00000"));
  pk.pack(std::string("attempt"));
  pk.pack_uint64(2);
  pk.pack(std::string("progress"));
  pk.pack_float(0.5f);
  pk.pack(std::string("future_field"));
  pk.pack_array(1);
  pk.pack_nil();
  std::string type, error;
  std::optional<Value> v = DecodeMessage(std::string(buf.data(), buf.size()), &type, &error);
  REQUIRE_MESSAGE(v.has_value(), error);
  CHECK(type == "task_progress");
  std::optional<TaskProgressMsg> m = TaskProgressMsg::FromValue(*v, &error);
  REQUIRE_MESSAGE(m.has_value(), error);
  CHECK(m->ref == AttemptRef{"j", "m-00000", 2});
  CHECK(m->progress == 0.5);
}

TEST_CASE("unknown extra fields are ignored by every message") {
  const Value extra = Value(Map{{"x", Value(Array{Value(1), Value("y")})}});
  CHECK(Receive<ReadyMsg>(With(SampleReady().ToValue(), "future", extra)).msg == SampleReady());
  CHECK(Receive<WelcomeMsg>(With(SampleWelcome().ToValue(), "future", extra)).msg ==
        SampleWelcome());
  CHECK(Receive<HeartbeatMsg>(With(SampleHeartbeat().ToValue(), "future", extra)).msg ==
        SampleHeartbeat());
  CHECK(Receive<AssignMsg>(With(SampleMapAssign().ToValue(), "future", extra)).msg ==
        SampleMapAssign());
  CHECK(Receive<AssignMsg>(With(SampleReduceAssign().ToValue(), "future", extra)).msg ==
        SampleReduceAssign());
  CHECK(Receive<TaskProgressMsg>(With(SampleProgress().ToValue(), "future", extra)).msg ==
        SampleProgress());
  CHECK(Receive<TaskDoneMsg>(With(SampleDone().ToValue(), "future", extra)).msg == SampleDone());
  CHECK(Receive<TaskFailedMsg>(With(SampleFailed().ToValue(), "future", extra)).msg ==
        SampleFailed());
  CHECK(Receive<CancelAttemptMsg>(With(SampleCancel().ToValue(), "future", extra)).msg ==
        SampleCancel());
  CHECK(Receive<CleanupMsg>(With(SampleCleanup().ToValue(), "future", extra)).msg ==
        SampleCleanup());
  CHECK(Receive<SubmitMsg>(With(SampleSubmit().ToValue(), "future", extra)).msg == SampleSubmit());
  CHECK(Receive<JobFilesMsg>(With(SampleJobFiles().ToValue(), "future", extra)).msg ==
        SampleJobFiles());
}

// ---------------------------------------------------------------------------------------------
// Wrong types and missing fields, message by message

const Value kStr = Value("7");
const Value kDouble = Value(1.0);
const Value kHalf = Value(1.5);
const Value kInt = Value(7);
const Value kBool = Value(true);
const Value kArr = Value(Array{Value(1)});
const Value kMap = Value(Map{{"k", Value(1)}});

TEST_CASE("ready refuses wrongly typed and missing fields") {
  const Value good = SampleReady().ToValue();
  CheckWrongTypesRejected<ReadyMsg>(good, {{"proto", kStr},   {"proto", kDouble},
                                           {"name", kInt},    {"name", kArr},
                                           {"host", kBool},   {"pid", kStr},
                                           {"pid", kHalf},    {"slots", kStr},
                                           {"slots", kDouble}, {"slots", kMap},
                                           {"work_dir", kInt}, {"work_dir", kMap},
                                           {"queue", kStr},   {"queue", kDouble}});
  CheckRequiredFields<ReadyMsg>(good, {"proto", "name", "host", "pid", "slots"});
  CheckOptionalFields<ReadyMsg>(good, {"work_dir", "queue"});
  CHECK(Receive<ReadyMsg>(Without(good, "work_dir")).msg->work_dir.empty());
  // A worker that says nothing about a queue takes no assignment beyond its slots.
  CHECK(Receive<ReadyMsg>(Without(good, "queue")).msg->queue == 0);
}

TEST_CASE("welcome refuses wrongly typed and missing fields") {
  const Value good = SampleWelcome().ToValue();
  CheckWrongTypesRejected<WelcomeMsg>(good, {{"proto", kStr},
                                             {"worker", kInt},
                                             {"heartbeat_ms", kDouble},
                                             {"heartbeat_ms", kStr},
                                             {"liveness", kHalf},
                                             {"liveness", kArr}});
  CheckRequiredFields<WelcomeMsg>(good, {"proto", "worker", "heartbeat_ms", "liveness"});
}

TEST_CASE("heartbeat refuses wrongly typed figures and leaves missing ones unknown") {
  const Value good = SampleHeartbeat().ToValue();
  CheckWrongTypesRejected<HeartbeatMsg>(good, {{"running", kStr},
                                               {"running", kDouble},
                                               {"running", kBool},
                                               {"running", kMap},
                                               {"free_slots", kDouble},
                                               {"cpu", kStr},
                                               {"host_cpu", kBool},
                                               {"cores", kHalf},
                                               {"load1", kArr},
                                               {"rss_kb", kStr},
                                               {"disk_free_bytes", kDouble}});
  CheckOptionalFields<HeartbeatMsg>(good, {"running", "free_slots", "cpu", "host_cpu", "cores",
                                           "load1", "rss_kb", "disk_free_bytes"});
  Received<HeartbeatMsg> bare = Receive<HeartbeatMsg>(Value(Map{{"type", Value("heartbeat")}}));
  REQUIRE(bare.msg.has_value());
  CHECK(bare.msg->running == 0);
  CHECK(bare.msg->free_slots == -1);
  CHECK(bare.msg->cpu == -1);
  CHECK(bare.msg->host_cpu == -1);
  CHECK(bare.msg->cores == 0);
  CHECK(bare.msg->rss_kb == -1);
  // Integers are accepted where a float is expected (other encoders pack 1.0 as 1).
  Received<HeartbeatMsg> ints = Receive<HeartbeatMsg>(With(good, "cpu", Value(2)));
  REQUIRE(ints.msg.has_value());
  CHECK(ints.msg->cpu == 2.0);
}

TEST_CASE("map output refuses wrongly typed and missing fields") {
  const Value good = SampleMapOutput(1).ToValue();
  std::string error;
  REQUIRE(MapOutput::FromValue(good, &error).has_value());
  const std::vector<WrongField> wrong = {{"partition", kStr},  {"partition", kDouble},
                                         {"location", kInt},   {"location", kArr},
                                         {"bytes", kHalf},     {"bytes", kStr},
                                         {"records", kDouble}, {"records", kMap}};
  for (const WrongField& c : wrong) {
    CAPTURE(c.key);
    error.clear();
    CHECK_FALSE(MapOutput::FromValue(With(good, c.key, c.value), &error).has_value());
    CHECK(error.find("'" + c.key + "'") != std::string::npos);
  }
  for (const std::string key : {"partition", "location", "bytes", "records"}) {
    CAPTURE(key);
    error.clear();
    CHECK_FALSE(MapOutput::FromValue(Without(good, key), &error).has_value());
    CHECK(error.find("missing field '" + key + "'") != std::string::npos);
  }
  CHECK_FALSE(MapOutput::FromValue(Value(Array{}), &error).has_value());
  CHECK_FALSE(MapOutput::FromValue(Value("x"), &error).has_value());
}

TEST_CASE("map assign refuses wrongly typed and missing fields") {
  const Value good = SampleMapAssign().ToValue();
  const Value range = Value(Map{{"path", Value("/a")}, {"start", Value(0)}, {"end", Value(10)}});
  CheckWrongTypesRejected<AssignMsg>(
      good, {{"job_id", kInt},
             {"task_id", kArr},
             {"attempt", kDouble},
             {"attempt", kStr},
             {"kind", kInt},
             {"app", kMap},
             {"params", kStr},
             {"params", kArr},
             {"params", Value(Map{{"k", Value(1)}}), "params.k"},
             {"num_reduces", kHalf},
             {"num_reduces", kStr},
             {"output_dir", kBool},
             {"partition", kStr},
             {"partition", kDouble},
             {"split", kMap},
             {"split", kStr},
             {"split", Value(Array{With(range, "path", kInt)}), "path"},
             {"split", Value(Array{With(range, "start", kStr)}), "start"},
             {"split", Value(Array{With(range, "end", kDouble)}), "end"},
             {"split", Value(Array{range, Without(range, "end")}), "end"}});
  CheckRequiredFields<AssignMsg>(
      good, {"job_id", "task_id", "attempt", "kind", "app", "num_reduces", "output_dir"});
  CheckOptionalFields<AssignMsg>(good, {"params", "code", "partition"});
  CHECK(Receive<AssignMsg>(Without(good, "code")).msg->code == JobCode{});
  CHECK(Receive<AssignMsg>(Without(good, "partition")).msg->partition == 0);

  // A map task cannot go without its split.
  Received<AssignMsg> no_split = Receive<AssignMsg>(Without(good, "split"));
  CHECK_FALSE(no_split.msg.has_value());
  CHECK(no_split.error.find("'split'") != std::string::npos);
}

TEST_CASE("assign refuses a wrongly typed job code") {
  const Value good = SampleMapAssign().ToValue();
  const Value code = *good.Find("code");
  const Value file =
      Value(Map{{"name", Value("m.py")}, {"sha256", Value(kSha1)}, {"mode", Value(0755)}});
  const std::vector<WrongField> cases = {
      {"plugin", kInt},
      {"mapper", kArr},
      {"combiner", kBool},
      {"reducer", kMap},
      {"reducer", Value(Binary{"wc"})},
      {"cmdenv", kStr},
      {"cmdenv", Value(Map{{"LC_ALL", Value(1)}}), "cmdenv.LC_ALL"},
      {"files", kStr},
      {"files", kMap},
      {"files", Value(Array{Value("m.py")})},
      {"files", Value(Array{With(file, "name", kInt)}), "name"},
      {"files", Value(Array{With(file, "sha256", kInt)}), "sha256"},
      {"files", Value(Array{With(file, "mode", kStr)}), "mode"},
      {"files", Value(Array{With(file, "mode", kHalf)}), "mode"},
      {"files", Value(Array{file, Without(file, "sha256")}), "sha256"},
      {"files", Value(Array{Without(file, "name")}), "name"},
      {"files", Value(Array{Without(file, "mode")}), "mode"},
  };
  REQUIRE(Receive<AssignMsg>(With(good, "code", With(code, "files", Array{file}))).msg.has_value());
  for (const WrongField& c : cases) {
    const std::string named = c.named.empty() ? c.key : c.named;
    CAPTURE(c.key);
    CAPTURE(ToJson(c.value));
    Received<AssignMsg> r = Receive<AssignMsg>(With(good, "code", With(code, c.key, c.value)));
    CHECK_FALSE(r.msg.has_value());
    CHECK_MESSAGE(r.error.find("'" + named) != std::string::npos, r.error);
  }
  // Every code field is optional.
  for (const char* key : {"plugin", "mapper", "combiner", "reducer", "cmdenv", "files"}) {
    CAPTURE(key);
    CHECK(Receive<AssignMsg>(With(good, "code", Without(code, key))).msg.has_value());
  }
  CHECK(Receive<AssignMsg>(With(good, "code", Map{})).msg.has_value());
  for (const Value& not_a_map : {kStr, kArr, kInt}) {
    CAPTURE(ToJson(not_a_map));
    CHECK_FALSE(Receive<AssignMsg>(With(good, "code", not_a_map)).msg.has_value());
  }
}

TEST_CASE("assign refuses shipped file names that could leave the attempt directory") {
  const Value good = SampleMapAssign().ToValue();
  const Value code = *good.Find("code");
  for (const std::string& name : {""s, "."s, ".."s, "a/b"s, "/etc/passwd"s, "../up"s, "sub/"s,
                                  "nul\0byte"s}) {
    CAPTURE(name);
    const Value file =
        Value(Map{{"name", Value(name)}, {"sha256", Value(kSha1)}, {"mode", Value(0644)}});
    Received<AssignMsg> r =
        Receive<AssignMsg>(With(good, "code", With(code, "files", Array{file})));
    CHECK_FALSE(r.msg.has_value());
    CHECK_FALSE(r.error.empty());
  }
  for (const std::string& name : {"a"s, "..."s, "..a"s, ".profile"s, "with space.txt"s}) {
    CAPTURE(name);
    const Value file =
        Value(Map{{"name", Value(name)}, {"sha256", Value(kSha1)}, {"mode", Value(0644)}});
    CHECK(Receive<AssignMsg>(With(good, "code", With(code, "files", Array{file}))).msg.has_value());
  }
}

TEST_CASE("reduce assign refuses wrongly typed and missing fields") {
  const Value good = SampleReduceAssign().ToValue();
  CheckWrongTypesRejected<AssignMsg>(good, {{"partition", kStr},
                                            {"partition", kDouble},
                                            {"partition", kMap},
                                            {"inputs", kStr},
                                            {"inputs", kMap},
                                            {"inputs", Value(Array{Value("/a"), Value(1)})},
                                            {"kind", kArr}});
  CheckRequiredFields<AssignMsg>(good,
                                 {"partition", "kind", "num_reduces", "job_id", "output_dir"});
  CheckOptionalFields<AssignMsg>(good, {"inputs", "params", "code"});
}

TEST_CASE("task progress refuses wrongly typed and missing fields") {
  const Value good = SampleProgress().ToValue();
  CheckWrongTypesRejected<TaskProgressMsg>(good, {{"job_id", kInt},
                                                  {"task_id", kBool},
                                                  {"attempt", kDouble},
                                                  {"attempt", kStr},
                                                  {"progress", kStr},
                                                  {"progress", kBool},
                                                  {"progress", kArr},
                                                  {"status", kInt},
                                                  {"status", kArr}});
  CheckRequiredFields<TaskProgressMsg>(good, {"job_id", "task_id", "attempt", "progress"});
  CheckOptionalFields<TaskProgressMsg>(good, {"status"});
  // An integer progress is a number (0 and 1 from peers that do not write floats).
  Received<TaskProgressMsg> one = Receive<TaskProgressMsg>(With(good, "progress", Value(1)));
  REQUIRE(one.msg.has_value());
  CHECK(one.msg->progress == 1.0);
}

TEST_CASE("task done refuses wrongly typed and missing fields") {
  const Value good = SampleDone().ToValue();
  const Value output = SampleMapOutput(0).ToValue();
  CheckWrongTypesRejected<TaskDoneMsg>(
      good, {{"job_id", kInt},
             {"task_id", kMap},
             {"attempt", kHalf},
             {"attempt", kStr},
             {"outputs", kMap},
             {"outputs", kStr},
             {"outputs", Value(Array{With(output, "partition", kStr)}), "partition"},
             {"outputs", Value(Array{output, With(output, "bytes", kDouble)}), "bytes"},
             {"outputs", Value(Array{Without(output, "location")}), "location"},
             {"counters", kArr},
             {"counters", kInt},
             {"counters", Value(Map{{"map_input_records", Value(1.5)}}),
              "counters.map_input_records"},
             {"counters", Value(Map{{"c", Value("1")}}), "counters.c"}});
  CheckRequiredFields<TaskDoneMsg>(good, {"job_id", "task_id", "attempt"});
  CheckOptionalFields<TaskDoneMsg>(good, {"outputs", "counters"});
}

TEST_CASE("task failed refuses wrongly typed and missing fields") {
  const Value good = SampleFailed().ToValue();
  CheckWrongTypesRejected<TaskFailedMsg>(good, {{"job_id", kArr},
                                                {"task_id", kInt},
                                                {"attempt", kDouble},
                                                {"error", kInt},
                                                {"error", kMap},
                                                {"bad_inputs", kStr},
                                                {"bad_inputs", kMap},
                                                {"bad_inputs", Value(Array{Value("/a"), kInt})},
                                                {"stderr_tail", kStr},
                                                {"stderr_tail", Value(Array{kInt})}});
  CheckRequiredFields<TaskFailedMsg>(good, {"job_id", "task_id", "attempt", "error"});
  CheckOptionalFields<TaskFailedMsg>(good, {"bad_inputs", "stderr_tail"});
}

TEST_CASE("fetch_log and log refuse wrongly typed and missing fields") {
  CheckWrongTypesRejected<FetchLogMsg>(SampleFetchLog().ToValue(),
                                       {{"request_id", kStr}, {"task_id", kInt}});
  CheckRequiredFields<FetchLogMsg>(SampleFetchLog().ToValue(),
                                   {"request_id", "job_id", "task_id", "attempt"});
  const Value good = SampleLog().ToValue();
  CheckWrongTypesRejected<LogMsg>(good, {{"request_id", kDouble},
                                         {"found", kInt},
                                         {"data", kInt},
                                         {"truncated", kStr},
                                         {"size", kStr}});
  CheckRequiredFields<LogMsg>(good, {"request_id", "job_id", "task_id", "attempt", "found", "data"});
  CheckOptionalFields<LogMsg>(good, {"truncated", "size"});
}

TEST_CASE("cancel refuses wrongly typed and missing fields") {
  const Value good = SampleCancel().ToValue();
  CheckWrongTypesRejected<CancelAttemptMsg>(good, {{"job_id", kInt},
                                                   {"task_id", kDouble},
                                                   {"attempt", kDouble},
                                                   {"attempt", kStr},
                                                   {"attempt", kBool}});
  CheckRequiredFields<CancelAttemptMsg>(good, {"job_id", "task_id", "attempt"});
}

TEST_CASE("cleanup refuses a wrongly typed or missing job id") {
  const Value good = SampleCleanup().ToValue();
  CheckWrongTypesRejected<CleanupMsg>(good, {{"job_id", kInt}, {"job_id", kArr}, {"job_id", kMap}});
  CheckRequiredFields<CleanupMsg>(good, {"job_id"});
}

TEST_CASE("job files refuses wrongly typed and missing fields") {
  const Value good = SampleJobFiles().ToValue();
  CheckWrongTypesRejected<JobFilesMsg>(
      good, {{"job_id", kInt},
             {"blobs", kArr},
             {"blobs", kStr},
             {"blobs", Value(Map{{kSha1, kInt}}), "blobs." + kSha1},
             {"blobs", Value(Map{{kSha1, Value(Binary{"ok"})}, {kSha2, kArr}}), "blobs." + kSha2}});
  CheckRequiredFields<JobFilesMsg>(good, {"job_id"});
  Received<JobFilesMsg> no_blobs = Receive<JobFilesMsg>(Without(good, "blobs"));
  CHECK_FALSE(no_blobs.msg.has_value());
  CHECK(no_blobs.error.find("'blobs'") != std::string::npos);
  // A blob sent as str (a peer without a bin type) is accepted as bytes.
  Received<JobFilesMsg> as_str =
      Receive<JobFilesMsg>(With(good, "blobs", Map{{kSha1, Value("import sys\n")}}));
  REQUIRE_MESSAGE(as_str.msg.has_value(), as_str.error);
  CHECK(as_str.msg->blobs.at(kSha1) == "import sys\n");
  // On the wire the bytes are msgpack bin.
  CHECK(good.Find("blobs")->Find(kSha1)->is_binary());
}

TEST_CASE("submit refuses wrongly typed and missing fields") {
  const Value good = SampleSubmit().ToValue();
  const Value file = Value(Map{{"name", Value("m.py")}, {"mode", Value(0755)},
                               {"data", Value(Binary{"print()"})}});
  CheckWrongTypesRejected<SubmitMsg>(
      good, {{"name", kInt},
             {"app", kArr},
             {"inputs", kStr},
             {"inputs", kMap},
             {"inputs", Value(Array{Value("/a"), Value(Array{})}), "inputs"},
             {"output", kInt},
             {"params", kArr},
             {"params", Value(Map{{"case", Value(true)}}), "params.case"},
             {"maps", kStr},
             {"maps", kHalf},
             {"reduces", kDouble},
             {"reduces", kStr},
             {"max_attempts", kDouble},
             {"max_attempts", kStr},
             {"priority", kDouble},
             {"priority", kStr},
             {"speculation", kInt},
             {"speculation", kStr},
             {"mapper", kInt},
             {"combiner", kArr},
             {"reducer", kBool},
             {"cmdenv", kArr},
             {"cmdenv", Value(Map{{"K", kInt}}), "cmdenv.K"},
             {"files", kStr},
             {"files", kMap},
             {"files", Value(Array{With(file, "name", kInt)}), "name"},
             {"files", Value(Array{With(file, "mode", kStr)}), "mode"},
             {"files", Value(Array{With(file, "data", kInt)}), "data"},
             {"files", Value(Array{file, Without(file, "data")}), "data"},
             {"files", Value(Array{Without(file, "name")}), "name"},
             {"plugin", With(file, "data", kArr), "data"},
             {"plugin", Without(file, "name"), "name"}});
  CheckRequiredFields<SubmitMsg>(good, {"output"});
  CheckOptionalFields<SubmitMsg>(good, {"name", "app", "params", "maps", "reduces", "max_attempts",
                                        "priority", "speculation", "mapper", "combiner", "reducer", "cmdenv", "files",
                                        "plugin", "inputs"});
  Received<SubmitMsg> minimal = Receive<SubmitMsg>(Value(Map{{"type", Value("submit")},
                                                             {"app", Value("wordcount")},
                                                             {"inputs", Array{Value("/in")}},
                                                             {"output", Value("/out")}}));
  REQUIRE_MESSAGE(minimal.msg.has_value(), minimal.error);
  CHECK(minimal.msg->maps == 0);
  CHECK(minimal.msg->reduces == 1);
  CHECK(minimal.msg->max_attempts == 4);
  CHECK(minimal.msg->priority == 0);
  CHECK(minimal.msg->speculation);
  CHECK(minimal.msg->name.empty());
  CHECK(minimal.msg->params.empty());
  CHECK(minimal.msg->files.empty());
  CHECK_FALSE(minimal.msg->plugin.has_value());

  // A file's data may come as str; its mode defaults to 0644.
  Received<SubmitMsg> str_data = Receive<SubmitMsg>(
      With(good, "files", Array{Value(Map{{"name", Value("a.txt")}, {"data", Value("xyz")}})}));
  REQUIRE_MESSAGE(str_data.msg.has_value(), str_data.error);
  REQUIRE(str_data.msg->files.size() == 1);
  CHECK(str_data.msg->files[0] == SubmitFile{"a.txt", 0644, "xyz"});
}

TEST_CASE("submit refuses shipped file names that could leave the attempt directory") {
  const Value good = SampleSubmit().ToValue();
  for (const std::string& name : {""s, "."s, ".."s, "a/b"s, "/etc/passwd"s, "../up"s,
                                  "nul\0byte"s}) {
    CAPTURE(name);
    const Value file = Value(Map{{"name", Value(name)}, {"data", Value(Binary{"x"})}});
    Received<SubmitMsg> in_files = Receive<SubmitMsg>(With(good, "files", Array{file}));
    CHECK_FALSE(in_files.msg.has_value());
    CHECK_FALSE(in_files.error.empty());
    CHECK_FALSE(Receive<SubmitMsg>(With(good, "plugin", file)).msg.has_value());
  }
}

TEST_CASE("errors for a malformed nested item name the field that holds it") {
  struct Case {
    std::string field;
    std::function<std::pair<bool, std::string>()> receive;  // (accepted, error)
  };
  auto result = [](const auto& r) { return std::make_pair(r.msg.has_value(), r.error); };
  const std::vector<Case> cases = {
      {"split",
       [&] {
         return result(Receive<AssignMsg>(With(SampleMapAssign().ToValue(), "split", Array{kInt})));
       }},
      {"outputs",
       [&] {
         return result(Receive<TaskDoneMsg>(With(SampleDone().ToValue(), "outputs", Array{kStr})));
       }},
      {"code",
       [&] { return result(Receive<AssignMsg>(With(SampleMapAssign().ToValue(), "code", kStr))); }},
      {"files",
       [&] {
         return result(Receive<SubmitMsg>(With(SampleSubmit().ToValue(), "files", Array{kStr})));
       }},
      {"plugin",
       [&] { return result(Receive<SubmitMsg>(With(SampleSubmit().ToValue(), "plugin", kStr))); }},
      {"files",  // files inside an assign's code: this one is named
       [&] {
         const Value assign = SampleMapAssign().ToValue();
         const Value code = *assign.Find("code");
         return result(Receive<AssignMsg>(With(assign, "code", With(code, "files", Array{kStr}))));
       }},
  };
  for (const Case& c : cases) {
    CAPTURE(c.field);
    const auto [accepted, error] = c.receive();
    CHECK_FALSE(accepted);
    CHECK_FALSE(error.empty());
    CHECK_MESSAGE(error.find(c.field) != std::string::npos, error);
  }
}

TEST_CASE("typed decoders refuse values that are not maps") {
  std::string error;
  for (const Value& v : {Value(), Value(1), Value("ready"), Value(Array{Value("type")})}) {
    CAPTURE(ToJson(v));
    CHECK_FALSE(ReadyMsg::FromValue(v, &error).has_value());
    CHECK_FALSE(WelcomeMsg::FromValue(v, &error).has_value());
    CHECK_FALSE(HeartbeatMsg::FromValue(v, &error).has_value());
    CHECK_FALSE(MapOutput::FromValue(v, &error).has_value());
    CHECK_FALSE(AssignMsg::FromValue(v, &error).has_value());
    CHECK_FALSE(TaskProgressMsg::FromValue(v, &error).has_value());
    CHECK_FALSE(TaskDoneMsg::FromValue(v, &error).has_value());
    CHECK_FALSE(TaskFailedMsg::FromValue(v, &error).has_value());
    CHECK_FALSE(CancelAttemptMsg::FromValue(v, &error).has_value());
    CHECK_FALSE(CleanupMsg::FromValue(v, &error).has_value());
    CHECK_FALSE(JobFilesMsg::FromValue(v, &error).has_value());
    CHECK_FALSE(SubmitMsg::FromValue(v, &error).has_value());
  }
}

// ---------------------------------------------------------------------------------------------
// Client requests and the replies without a view

TEST_CASE("every client request and plain reply survives the wire unchanged") {
  CheckRoundTrip(StatusRequest{"job_x_0001"}, "status");
  CheckRoundTrip(CancelRequest{"job_x_0001"}, "cancel");
  CheckRoundTrip(TasksRequest{"job_x_0001"}, "tasks");
  CheckRoundTrip(JobsRequest{false}, "jobs");
  CheckRoundTrip(JobsRequest{true}, "jobs");
  CheckRoundTrip(EventsRequest{"job_x_0001", 41}, "events");
  CheckRoundTrip(LogsRequest{"job_x_0001", "r-00002", 3, 250}, "logs");
  CheckRoundTrip(SubmittedReply{"job_x_0001", 12, 0}, "submitted");
  CheckRoundTrip(CancelledReply{"job_x_0001", JobState::kCompleted, false}, "cancelled");
  CheckRoundTrip(RefusedMsg{"protocol version 2 not supported"}, "refused");
}

TEST_CASE("client requests take absent optional fields as their defaults") {
  const Value events = EventsRequest{"job_x_0001", 41}.ToValue();
  CheckOptionalFields<EventsRequest>(events, {"after_seq"});
  CHECK(Receive<EventsRequest>(Without(events, "after_seq")).msg->after_seq == 0);
  const Value logs = LogsRequest{"job_x_0001", "m-00000", 2, 10}.ToValue();
  CheckOptionalFields<LogsRequest>(logs, {"attempt", "wait_ms"});
  LogsRequest bare = *Receive<LogsRequest>(Without(Without(logs, "attempt"), "wait_ms")).msg;
  CHECK(bare.attempt == 0);
  CHECK(bare.wait_ms == kDefaultLogWaitMs);
  const Value jobs = JobsRequest{false}.ToValue();
  CheckOptionalFields<JobsRequest>(jobs, {"all"});
  CHECK(Receive<JobsRequest>(Without(jobs, "all")).msg->all);
}

TEST_CASE("client requests refuse wrongly typed and missing fields") {
  CheckWrongTypesRejected<StatusRequest>(StatusRequest{"j"}.ToValue(),
                                         {{"job_id", kInt}, {"job_id", kArr}});
  CheckRequiredFields<StatusRequest>(StatusRequest{"j"}.ToValue(), {"job_id"});
  CheckRequiredFields<CancelRequest>(CancelRequest{"j"}.ToValue(), {"job_id"});
  CheckRequiredFields<TasksRequest>(TasksRequest{"j"}.ToValue(), {"job_id"});
  CheckWrongTypesRejected<JobsRequest>(JobsRequest{}.ToValue(), {{"all", kInt}, {"all", kStr}});
  const Value events = EventsRequest{"j", 1}.ToValue();
  CheckWrongTypesRejected<EventsRequest>(events, {{"job_id", kBool}, {"after_seq", kStr},
                                                  {"after_seq", kHalf}});
  CheckRequiredFields<EventsRequest>(events, {"job_id"});
  const Value logs = LogsRequest{"j", "m-00000", 1, 5}.ToValue();
  CheckWrongTypesRejected<LogsRequest>(logs, {{"task_id", kInt}, {"attempt", kStr},
                                              {"wait_ms", kHalf}, {"wait_ms", kMap}});
  CheckRequiredFields<LogsRequest>(logs, {"job_id", "task_id"});
  const Value cancelled = CancelledReply{"j", JobState::kCancelled, true}.ToValue();
  CheckWrongTypesRejected<CancelledReply>(cancelled, {{"state", kInt}, {"state", Value("GONE")},
                                                      {"changed", kStr}});
  CheckRequiredFields<SubmittedReply>(SubmittedReply{"j", 1, 1}.ToValue(),
                                      {"job_id", "maps", "reduces"});
  CheckRequiredFields<RefusedMsg>(RefusedMsg{"x"}.ToValue(), {"error"});
  std::string error;
  for (const Value& v : {Value(), Value(1), Value(Array{})}) {
    CHECK_FALSE(StatusRequest::FromValue(v, &error));
    CHECK_FALSE(JobsRequest::FromValue(v, &error));
    CHECK_FALSE(EventsRequest::FromValue(v, &error));
    CHECK_FALSE(LogsRequest::FromValue(v, &error));
  }
}

// ---------------------------------------------------------------------------------------------
// Range checks

TEST_CASE("ready accepts 1 to 4096 slots and a non-empty name only") {
  const Value good = SampleReady().ToValue();
  for (int64_t slots : {int64_t{0}, int64_t{-1}, int64_t{4097}, std::numeric_limits<int64_t>::min(),
                        std::numeric_limits<int64_t>::max()}) {
    CAPTURE(slots);
    Received<ReadyMsg> r = Receive<ReadyMsg>(With(good, "slots", Value(slots)));
    CHECK_FALSE(r.msg.has_value());
    CHECK(r.error.find("'slots'") != std::string::npos);
  }
  for (int64_t slots : {1, 2, 4096}) {
    CAPTURE(slots);
    CHECK(Receive<ReadyMsg>(With(good, "slots", Value(slots))).msg.has_value());
  }
  for (int64_t queue : {int64_t{-1}, int64_t{4097}}) {
    CAPTURE(queue);
    Received<ReadyMsg> r = Receive<ReadyMsg>(With(good, "queue", Value(queue)));
    CHECK_FALSE(r.msg.has_value());
    CHECK(r.error.find("'queue'") != std::string::npos);
  }
  for (int64_t queue : {0, 1, 4096}) {
    CAPTURE(queue);
    CHECK(Receive<ReadyMsg>(With(good, "queue", Value(queue))).msg->queue == queue);
  }
  Received<ReadyMsg> unnamed = Receive<ReadyMsg>(With(good, "name", Value("")));
  CHECK_FALSE(unnamed.msg.has_value());
  CHECK(unnamed.error.find("'name'") != std::string::npos);
}

TEST_CASE("task progress outside 0..1 or not a number is refused") {
  const Value good = SampleProgress().ToValue();
  for (double p : {1.5, 1.0000001, -0.1, -0.0 - 1e-300, std::numeric_limits<double>::quiet_NaN(),
                   std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity()}) {
    CAPTURE(p);
    Received<TaskProgressMsg> r = Receive<TaskProgressMsg>(With(good, "progress", Value(p)));
    CHECK_FALSE(r.msg.has_value());
    CHECK(r.error.find("'progress'") != std::string::npos);
  }
  CHECK_FALSE(Receive<TaskProgressMsg>(With(good, "progress", Value(2))).msg.has_value());
  CHECK_FALSE(Receive<TaskProgressMsg>(With(good, "progress", Value(-1))).msg.has_value());
  CHECK(Receive<TaskProgressMsg>(With(good, "progress", Value(-0.0))).msg.has_value());
}

TEST_CASE("a reduce assign for a partition outside 0..num_reduces-1 is refused") {
  const Value good = SampleReduceAssign().ToValue();  // num_reduces 4
  for (int64_t partition : {4, 5, -1, 1000}) {
    CAPTURE(partition);
    Received<AssignMsg> r = Receive<AssignMsg>(With(good, "partition", Value(partition)));
    CHECK_FALSE(r.msg.has_value());
    CHECK(r.error.find("'partition'") != std::string::npos);
  }
  for (int64_t partition : {0, 3}) {
    CAPTURE(partition);
    CHECK(Receive<AssignMsg>(With(good, "partition", Value(partition))).msg.has_value());
  }
  // Lowering num_reduces below the partition makes the same message invalid.
  CHECK_FALSE(Receive<AssignMsg>(With(good, "num_reduces", Value(3))).msg.has_value());
}

TEST_CASE("an assign with an unknown kind is refused") {
  for (const Value& good : {SampleMapAssign().ToValue(), SampleReduceAssign().ToValue()}) {
    for (const char* kind : {"bogus", "", "MAP", "Reduce", "map "}) {
      CAPTURE(kind);
      Received<AssignMsg> r = Receive<AssignMsg>(With(good, "kind", Value(kind)));
      CHECK_FALSE(r.msg.has_value());
      CHECK(r.error.find("'kind'") != std::string::npos);
    }
  }
}

TEST_CASE("a map assign may have no reduces (map-only) but a reduce assign may not") {
  const Value map = SampleMapAssign().ToValue();
  const Value reduce = SampleReduceAssign().ToValue();
  Received<AssignMsg> map_only = Receive<AssignMsg>(With(map, "num_reduces", Value(0)));
  REQUIRE_MESSAGE(map_only.msg.has_value(), map_only.error);
  CHECK(map_only.msg->num_reduces == 0);

  Received<AssignMsg> reduce_none =
      Receive<AssignMsg>(With(With(reduce, "num_reduces", Value(0)), "partition", Value(0)));
  CHECK_FALSE(reduce_none.msg.has_value());
  CHECK(reduce_none.error.find("'num_reduces'") != std::string::npos);

  for (const Value& good : {map, reduce}) {
    for (int64_t n : {int64_t{-1}, std::numeric_limits<int64_t>::min()}) {
      CAPTURE(n);
      Received<AssignMsg> r = Receive<AssignMsg>(With(good, "num_reduces", Value(n)));
      CHECK_FALSE(r.msg.has_value());
      CHECK(r.error.find("'num_reduces'") != std::string::npos);
    }
  }
}

TEST_CASE("a map assign with a negative map index is refused") {
  const Value good = SampleMapAssign().ToValue();
  Received<AssignMsg> r = Receive<AssignMsg>(With(good, "partition", Value(-1)));
  CHECK_FALSE(r.msg.has_value());
  CHECK(r.error.find("'partition'") != std::string::npos);
  // The map index is not bounded by num_reduces (map-only jobs name part files by it).
  Received<AssignMsg> big = Receive<AssignMsg>(With(good, "partition", Value(100000)));
  REQUIRE_MESSAGE(big.msg.has_value(), big.error);
  CHECK(big.msg->partition == 100000);
}

TEST_CASE("a map assign with a split range out of order is refused") {
  const Value good = SampleMapAssign().ToValue();
  auto with_range = [&](int64_t start, int64_t end) {
    const Value range =
        Value(Map{{"path", Value("/a")}, {"start", Value(start)}, {"end", Value(end)}});
    return With(good, "split", Array{range});
  };
  CHECK_FALSE(Receive<AssignMsg>(with_range(10, 5)).msg.has_value());
  CHECK_FALSE(Receive<AssignMsg>(with_range(-1, 5)).msg.has_value());
  CHECK(Receive<AssignMsg>(with_range(5, 5)).msg.has_value());  // an empty range is fine
  CHECK(Receive<AssignMsg>(with_range(0, 1)).msg.has_value());
}

// ---------------------------------------------------------------------------------------------
// DecodeMessage

TEST_CASE("decoding refuses bodies that are not maps with a string type") {
  const std::vector<Value> bad = {
      Value(),
      Value(1),
      Value("ready"),
      Value(Array{Value("type"), Value("ready")}),
      Value(Map{}),
      Value(Map{{"name", Value("w")}}),
      Value(Map{{"type", Value()}}),
      Value(Map{{"type", Value(1)}}),
      Value(Map{{"type", Value(1.5)}}),
      Value(Map{{"type", Value(true)}}),
      Value(Map{{"type", Value(Array{Value("ready")})}}),
      Value(Map{{"type", Value(Map{{"type", Value("ready")}})}}),
  };
  for (const Value& v : bad) {
    CAPTURE(ToJson(v));
    std::string type = "unchanged", error;
    CHECK_FALSE(DecodeMessage(Pack(v), &type, &error).has_value());
    CHECK_FALSE(error.empty());
  }
  std::string type, error;
  CHECK_FALSE(DecodeMessage(Pack(Value(Map{{"name", Value("w")}})), &type, &error).has_value());
  CHECK(error.find("'type'") != std::string::npos);
}

TEST_CASE("decoding refuses truncated, garbage and trailing bytes") {
  const std::vector<std::string> messages = {
      Pack(SampleReady().ToValue()), Pack(SampleMapAssign().ToValue()),
      Pack(SampleReduceAssign().ToValue()), Pack(SampleDone().ToValue()),
      Pack(SampleSubmit().ToValue())};
  for (const std::string& bytes : messages) {
    std::string type, error;
    REQUIRE(DecodeMessage(bytes, &type, &error).has_value());
    for (std::size_t len = 0; len < bytes.size(); ++len) {
      CAPTURE(len);
      error.clear();
      CHECK_FALSE(DecodeMessage(std::string_view(bytes).substr(0, len), &type, &error).has_value());
      CHECK_FALSE(error.empty());
    }
    CHECK_FALSE(DecodeMessage(bytes + "\x00"s, &type, &error).has_value());
  }
  std::string type, error;
  for (const std::string& garbage : {""s, "\xc1"s, "hello"s, "\x81\xa4type"s, "\xff\xff\xff"s}) {
    CHECK_FALSE(DecodeMessage(garbage, &type, &error).has_value());
  }
}

TEST_CASE("decoding refuses a message with an integer field beyond int64") {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(2);
  pk.pack(std::string("type"));
  pk.pack(std::string("heartbeat"));
  pk.pack(std::string("running"));
  pk.pack_uint64(std::numeric_limits<uint64_t>::max());
  std::string type, error;
  CHECK_FALSE(DecodeMessage(std::string(buf.data(), buf.size()), &type, &error).has_value());
  CHECK_FALSE(error.empty());
}

TEST_CASE("decoding returns the type of any well formed message, known or not") {
  std::string type, error;
  std::optional<Value> v =
      DecodeMessage(Pack(Value(Map{{"n", Value(1)}, {"type", Value("from_the_future")}})), &type,
                    &error);
  REQUIRE_MESSAGE(v.has_value(), error);
  CHECK(type == "from_the_future");
  CHECK(v->Find("n") != nullptr);
}

// ---------------------------------------------------------------------------------------------
// Job states, task kinds, replies, constants

TEST_CASE("job state names round trip and only ended jobs are terminal") {
  const std::vector<std::pair<JobState, const char*>> states = {
      {JobState::kSubmitted, "SUBMITTED"}, {JobState::kMapping, "MAPPING"},
      {JobState::kReducing, "REDUCING"},   {JobState::kCompleted, "COMPLETED"},
      {JobState::kFailed, "FAILED"},       {JobState::kCancelled, "CANCELLED"}};
  for (const auto& [state, name] : states) {
    CAPTURE(name);
    CHECK(std::string(JobStateName(state)) == name);
    std::optional<JobState> parsed = ParseJobState(name);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == state);
  }
  for (const char* bad : {"", "mapping", "Completed", "RUNNING", "UNKNOWN", "FAILED "}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseJobState(bad).has_value());
  }
  CHECK_FALSE(IsTerminal(JobState::kSubmitted));
  CHECK_FALSE(IsTerminal(JobState::kMapping));
  CHECK_FALSE(IsTerminal(JobState::kReducing));
  CHECK(IsTerminal(JobState::kCompleted));
  CHECK(IsTerminal(JobState::kFailed));
  CHECK(IsTerminal(JobState::kCancelled));
}

TEST_CASE("task kinds are named map and reduce on the wire") {
  CHECK(std::string(TaskKindName(TaskKind::kMap)) == "map");
  CHECK(std::string(TaskKindName(TaskKind::kReduce)) == "reduce");
  const Value map = SampleMapAssign().ToValue();
  const Value reduce = SampleReduceAssign().ToValue();
  CHECK(*map.Find("kind") == Value("map"));
  CHECK(*reduce.Find("kind") == Value("reduce"));
  // A map carries its split and map index, a reduce its partition and inputs.
  CHECK(map.Find("split") != nullptr);
  CHECK(*map.Find("partition") == Value(2));
  CHECK(map.Find("inputs") == nullptr);
  CHECK(*reduce.Find("partition") == Value(3));
  CHECK(reduce.Find("inputs") != nullptr);
  CHECK(reduce.Find("split") == nullptr);
}

TEST_CASE("an error reply carries type error, its code and the message") {
  const Value reply = ErrorReply(errc::kNotFound, "no job \"job_x\"");
  std::string type, error;
  std::optional<Value> v = DecodeMessage(Pack(reply), &type, &error);
  REQUIRE_MESSAGE(v.has_value(), error);
  CHECK(type == "error");
  std::string code, message;
  REQUIRE(ReadString(*v, "code", &code, &error));
  REQUIRE(ReadString(*v, "error", &message, &error));
  CHECK(code == "not_found");
  CHECK(message == "no job \"job_x\"");

  CHECK(std::string(errc::kInvalid) == "invalid");
  CHECK(std::string(errc::kVersion) == "version");
  CHECK(std::string(errc::kBadRequest) == "bad_request");
  CHECK(*ErrorReply(errc::kBadRequest, "").Find("code") == Value("bad_request"));
}

TEST_CASE("submit carries the protocol version the coordinator checks") {
  const Value v = SampleSubmit().ToValue();
  REQUIRE(v.Find("proto") != nullptr);
  CHECK(*v.Find("proto") == Value(1));
  CHECK(kProtocolVersion == 1);
  const Value ready = SampleReady().ToValue();
  CHECK(*ready.Find("proto") == Value(1));
}

}  // namespace
}  // namespace zmr

namespace zmr {
namespace {

// One random heartbeat-like body, packed with a random choice of integer widths and float sizes:
// mostly what workers send, sometimes with wrongly typed, duplicate, unknown or missing fields.
std::string RandomHeartbeatBytes(std::mt19937& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  const char* keys[] = {"type", "running", "free_slots", "cpu", "host_cpu", "cores",
                        "load1", "rss_kb", "disk_free_bytes", "future"};
  std::vector<std::string> fields;
  fields.push_back("type");
  for (int i = 1; i < 10; ++i) {
    if (pick(3) != 0) fields.push_back(keys[i]);
  }
  if (pick(8) == 0) fields.push_back(keys[pick(10)]);  // a duplicate
  if (pick(10) == 0) fields.erase(fields.begin());     // no type
  std::shuffle(fields.begin(), fields.end(), rng);
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(static_cast<uint32_t>(fields.size()));
  for (const std::string& key : fields) {
    pk.pack(key);
    if (key == "type") {
      const int t = pick(10);
      if (t == 0) pk.pack(std::string("task_done"));
      else if (t == 1) pk.pack_int(5);
      else pk.pack(std::string("heartbeat"));
      continue;
    }
    const int64_t magnitude = pick(4) == 0 ? (int64_t{1} << 40) + pick(1000) : pick(300);
    const int64_t i = pick(4) == 0 ? -magnitude : magnitude;
    switch (pick(14)) {
      case 0: pk.pack_nil(); break;
      case 1: pk.pack(std::string("7")); break;
      case 2: pk.pack(pick(2) == 0); break;
      case 3: pk.pack_array(1); pk.pack_int(1); break;
      case 4: pk.pack_float(static_cast<float>(i) / 8); break;
      case 5: pk.pack_double(static_cast<double>(i) / 3); break;
      case 6: pk.pack_uint64(std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(pick(3)));
        break;
      case 7: pk.pack_fix_int64(i); break;
      case 8: if (i >= 0) pk.pack_fix_uint32(static_cast<uint32_t>(i)); else pk.pack_fix_int32(
                  static_cast<int32_t>(std::max<int64_t>(i, INT32_MIN)));
        break;
      case 9: pk.pack_fix_int16(static_cast<int16_t>(std::clamp<int64_t>(i, -30000, 30000)));
        break;
      case 10: pk.pack_fix_int8(static_cast<int8_t>(std::clamp<int64_t>(i, -100, 100))); break;
      case 11: pk.pack_fix_uint8(static_cast<uint8_t>(std::clamp<int64_t>(i, 0, 255))); break;
      default: pk.pack_int64(i); break;
    }
  }
  std::string bytes(buf.data(), buf.size());
  if (pick(20) == 0) bytes.resize(static_cast<size_t>(pick(static_cast<int>(bytes.size()))));
  if (pick(20) == 0) bytes.push_back('\0');
  return bytes;
}

TEST_CASE("the plain heartbeat reader agrees with the general decoder on whatever it accepts") {
  std::mt19937 rng(20261202);
  int accepted = 0;
  for (int n = 0; n < 20000; ++n) {
    const std::string bytes = RandomHeartbeatBytes(rng);
    std::optional<HeartbeatMsg> plain = ParsePlainHeartbeat(bytes);
    if (!plain) continue;
    ++accepted;
    std::string type, error;
    std::optional<Value> v = DecodeMessage(bytes, &type, &error);
    REQUIRE_MESSAGE(v.has_value(), error);
    REQUIRE(type == msg::kHeartbeat);
    std::optional<HeartbeatMsg> general = HeartbeatMsg::FromValue(*v, &error);
    REQUIRE_MESSAGE(general.has_value(), error);
    CHECK(*general == *plain);
  }
  CHECK(accepted > 250);  // the comparison ran on hundreds of accepted bodies, not a handful
}

TEST_CASE("the heartbeats zmr's workers send are read by the plain heartbeat reader") {
  for (const HeartbeatMsg& hb : {HeartbeatMsg{}, SampleHeartbeat()}) {
    std::optional<HeartbeatMsg> plain = ParsePlainHeartbeat(Pack(hb.ToValue()));
    REQUIRE(plain.has_value());
    CHECK(*plain == hb);
    // And as a Python peer packs them (every float as float64).
    plain = ParsePlainHeartbeat(PeerPack(hb.ToValue()));
    REQUIRE(plain.has_value());
    CHECK(*plain == hb);
  }
  CHECK_FALSE(ParsePlainHeartbeat(Pack(Value(Map{{"type", Value("ready")}}))).has_value());
  CHECK_FALSE(ParsePlainHeartbeat("").has_value());
}

}  // namespace
}  // namespace zmr
