// The wire message codecs. Over 600 lines because it is one codec per message of protocol.h, each
// encoder next to its decoder, plus the allocation-free heartbeat reader of the hot path.
#include "common/protocol.h"

#include <cstring>
#include <iterator>
#include <limits>

namespace zmr {

namespace wire {

bool ReadStringMap(const Value& v, std::string_view key, std::map<std::string, std::string>* out,
                   std::string* error) {
  const Value* m = v.Find(key);
  if (m == nullptr || m->is_nil()) return true;
  if (!m->is_map()) {
    *error = "field '" + std::string(key) + "' is not a map";
    return false;
  }
  for (const auto& [k, item] : m->as_map()) {
    if (!item.is_string()) {
      *error = "field '" + std::string(key) + "." + k + "' is not a string";
      return false;
    }
    (*out)[k] = item.as_string();
  }
  return true;
}

bool ReadIntMap(const Value& v, std::string_view key, std::map<std::string, int64_t>* out,
                std::string* error) {
  const Value* m = v.Find(key);
  if (m == nullptr || m->is_nil()) return true;
  if (!m->is_map()) {
    *error = "field '" + std::string(key) + "' is not a map";
    return false;
  }
  for (const auto& [k, item] : m->as_map()) {
    if (!item.is_int()) {
      *error = "field '" + std::string(key) + "." + k + "' is not an integer";
      return false;
    }
    (*out)[k] = item.as_int();
  }
  return true;
}

bool ReadStringList(const Value& v, std::string_view key, std::vector<std::string>* out,
                    std::string* error) {
  const Value* a = v.Find(key);
  if (a == nullptr || a->is_nil()) return true;
  if (!a->is_array()) {
    *error = "field '" + std::string(key) + "' is not an array";
    return false;
  }
  for (const Value& item : a->as_array()) {
    if (!item.is_string()) {
      *error = "field '" + std::string(key) + "' has a non-string item";
      return false;
    }
    out->push_back(item.as_string());
  }
  return true;
}

Value StringMapValue(const std::map<std::string, std::string>& m) {
  Map out;
  for (const auto& [k, v] : m) out.emplace_back(k, Value(v));
  return Value(std::move(out));
}

Value IntMapValue(const std::map<std::string, int64_t>& m) {
  Map out;
  for (const auto& [k, v] : m) out.emplace_back(k, Value(v));
  return Value(std::move(out));
}

Value StringListValue(const std::vector<std::string>& items) {
  Array out;
  for (const auto& s : items) out.emplace_back(s);
  return Value(std::move(out));
}

Value Typed(const char* type) {
  Value v;
  v.Set("type", type);
  return v;
}

bool RequireMap(const Value& v, std::string* error) {
  if (!v.is_map()) {
    *error = "message is not a map";
    return false;
  }
  return true;
}

// For a map nested in field `field` of a message.
bool RequireMapIn(const Value& v, std::string_view field, std::string* error) {
  if (!v.is_map()) {
    *error = "field '" + std::string(field) + "' is not a map (or has an item that is not)";
    return false;
  }
  return true;
}

bool ReadJobState(const Value& v, std::string_view key, JobState* state, std::string* error) {
  std::string name;
  if (!ReadString(v, key, &name, error)) return false;
  std::optional<JobState> parsed = ParseJobState(name);
  if (!parsed) {
    *error = "field '" + std::string(key) + "' is not a job state: '" + name + "'";
    return false;
  }
  *state = *parsed;
  return true;
}

bool ReadTaskKind(const Value& v, std::string_view key, TaskKind* kind, std::string* error) {
  std::string name;
  if (!ReadString(v, key, &name, error)) return false;
  if (name != "map" && name != "reduce") {
    *error = "field '" + std::string(key) + "' must be \"map\" or \"reduce\"";
    return false;
  }
  *kind = name == "map" ? TaskKind::kMap : TaskKind::kReduce;
  return true;
}

}  // namespace wire

using namespace wire;

namespace {

Value FileRefValue(const FileRef& f) {
  Value v;
  v.Set("name", f.name);
  v.Set("sha256", f.sha256);
  v.Set("mode", f.mode);
  return v;
}

bool ValidFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

bool ReadFileRefs(const Value& v, std::string_view key, std::vector<FileRef>* out,
                  std::string* error) {
  const Value* a = v.Find(key);
  if (a == nullptr || a->is_nil()) return true;
  if (!a->is_array()) {
    *error = "field '" + std::string(key) + "' is not an array";
    return false;
  }
  for (const Value& item : a->as_array()) {
    FileRef f;
    if (!item.is_map()) {
      *error = "field '" + std::string(key) + "' has a non-map item";
      return false;
    }
    if (!ReadString(item, "name", &f.name, error) || !ReadString(item, "sha256", &f.sha256, error) ||
        !ReadInt(item, "mode", &f.mode, error)) {
      return false;
    }
    if (!ValidFileName(f.name)) {
      *error = "invalid file name '" + f.name + "'";
      return false;
    }
    out->push_back(std::move(f));
  }
  return true;
}

void SetRef(Value& v, const AttemptRef& ref) {
  v.Set("job_id", ref.job_id);
  v.Set("task_id", ref.task_id);
  v.Set("attempt", ref.attempt);
}

bool ReadRef(const Value& v, AttemptRef* ref, std::string* error) {
  return ReadString(v, "job_id", &ref->job_id, error) &&
         ReadString(v, "task_id", &ref->task_id, error) &&
         ReadInt(v, "attempt", &ref->attempt, error);
}

}  // namespace

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kSubmitted: return "SUBMITTED";
    case JobState::kMapping: return "MAPPING";
    case JobState::kReducing: return "REDUCING";
    case JobState::kCompleted: return "COMPLETED";
    case JobState::kFailed: return "FAILED";
    case JobState::kCancelled: return "CANCELLED";
  }
  return "UNKNOWN";
}

std::optional<JobState> ParseJobState(const std::string& name) {
  for (JobState s : {JobState::kSubmitted, JobState::kMapping, JobState::kReducing,
                     JobState::kCompleted, JobState::kFailed, JobState::kCancelled}) {
    if (name == JobStateName(s)) return s;
  }
  return std::nullopt;
}

bool IsTerminal(JobState state) {
  return state == JobState::kCompleted || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

const char* TaskKindName(TaskKind kind) { return kind == TaskKind::kMap ? "map" : "reduce"; }

std::optional<Value> DecodeMessage(std::string_view bytes, std::string* type, std::string* error) {
  std::optional<Value> v = Unpack(bytes, error);
  if (!v) return std::nullopt;
  if (!v->is_map()) {
    *error = "message is not a map";
    return std::nullopt;
  }
  if (!ReadString(*v, "type", type, error)) return std::nullopt;
  return v;
}

Value ReadyMsg::ToValue() const {
  Value v = Typed(msg::kReady);
  v.Set("proto", proto);
  v.Set("name", name);
  v.Set("host", host);
  v.Set("pid", pid);
  v.Set("slots", slots);
  v.Set("queue", queue);
  v.Set("work_dir", work_dir);
  return v;
}

std::optional<ReadyMsg> ReadyMsg::FromValue(const Value& v, std::string* error) {
  ReadyMsg m;
  if (!RequireMap(v, error) || !ReadInt(v, "proto", &m.proto, error) ||
      !ReadString(v, "name", &m.name, error) || !ReadString(v, "host", &m.host, error) ||
      !ReadInt(v, "pid", &m.pid, error) || !ReadInt(v, "slots", &m.slots, error) ||
      !ReadOptInt(v, "queue", &m.queue, error) ||
      !ReadOptString(v, "work_dir", &m.work_dir, error)) {
    return std::nullopt;
  }
  if (m.name.empty()) {
    *error = "field 'name' is empty";
    return std::nullopt;
  }
  if (m.slots < 1 || m.slots > 4096) {
    *error = "field 'slots' out of range";
    return std::nullopt;
  }
  if (m.queue < 0 || m.queue > 4096) {
    *error = "field 'queue' out of range";
    return std::nullopt;
  }
  return m;
}

Value WelcomeMsg::ToValue() const {
  Value v = Typed(msg::kWelcome);
  v.Set("proto", proto);
  v.Set("worker", worker);
  v.Set("heartbeat_ms", heartbeat_ms);
  v.Set("liveness", liveness);
  return v;
}

std::optional<WelcomeMsg> WelcomeMsg::FromValue(const Value& v, std::string* error) {
  WelcomeMsg m;
  if (!RequireMap(v, error) || !ReadInt(v, "proto", &m.proto, error) ||
      !ReadString(v, "worker", &m.worker, error) ||
      !ReadInt(v, "heartbeat_ms", &m.heartbeat_ms, error) ||
      !ReadInt(v, "liveness", &m.liveness, error)) {
    return std::nullopt;
  }
  return m;
}

Value RefusedMsg::ToValue() const {
  Value v = Typed(msg::kRefused);
  v.Set("error", error);
  return v;
}

std::optional<RefusedMsg> RefusedMsg::FromValue(const Value& v, std::string* error) {
  RefusedMsg m;
  if (!RequireMap(v, error) || !ReadString(v, "error", &m.error, error)) return std::nullopt;
  return m;
}

Value HeartbeatMsg::ToValue() const {
  Value v = Typed(msg::kHeartbeat);
  v.Set("running", running);
  if (free_slots >= 0) v.Set("free_slots", free_slots);
  if (cpu >= 0) v.Set("cpu", cpu);
  if (host_cpu >= 0) v.Set("host_cpu", host_cpu);
  if (cores > 0) v.Set("cores", cores);
  if (load1 >= 0) v.Set("load1", load1);
  if (rss_kb >= 0) v.Set("rss_kb", rss_kb);
  if (disk_free_bytes >= 0) v.Set("disk_free_bytes", disk_free_bytes);
  return v;
}

std::optional<HeartbeatMsg> HeartbeatMsg::FromValue(const Value& v, std::string* error) {
  HeartbeatMsg m;
  if (!RequireMap(v, error) || !ReadOptInt(v, "running", &m.running, error) ||
      !ReadOptInt(v, "free_slots", &m.free_slots, error) ||
      !ReadOptDouble(v, "cpu", &m.cpu, error) ||
      !ReadOptDouble(v, "host_cpu", &m.host_cpu, error) ||
      !ReadOptInt(v, "cores", &m.cores, error) || !ReadOptDouble(v, "load1", &m.load1, error) ||
      !ReadOptInt(v, "rss_kb", &m.rss_kb, error) ||
      !ReadOptInt(v, "disk_free_bytes", &m.disk_free_bytes, error)) {
    return std::nullopt;
  }
  return m;
}

namespace {

// Reads msgpack scalars and strings from a byte range, for ParsePlainHeartbeat. Each method
// returns false, consuming an unknown amount, when the next object is not of its kind.
class PlainReader {
 public:
  explicit PlainReader(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  bool at_end() const { return p_ == end_; }

  bool MapHeader(uint32_t* size) {
    if (p_ == end_) return false;
    const uint8_t b = *p_++;
    if (b >= 0x80 && b <= 0x8f) {
      *size = b & 0x0f;
      return true;
    }
    uint64_t n = 0;
    if (b != 0xde || !BigEndian(2, &n)) return false;
    *size = static_cast<uint32_t>(n);
    return true;
  }

  bool Str(std::string_view* out) {
    if (p_ == end_) return false;
    const uint8_t b = *p_++;
    uint64_t n = 0;
    if (b >= 0xa0 && b <= 0xbf) {
      n = b & 0x1f;
    } else if (!(b == 0xd9 && BigEndian(1, &n)) && !(b == 0xda && BigEndian(2, &n)) &&
               !(b == 0xdb && BigEndian(4, &n))) {
      return false;
    }
    if (n > static_cast<uint64_t>(end_ - p_)) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }

  enum class Kind { kNil, kInt, kFloat };
  // A nil, an integer within int64 (*i) or a float (*d).
  bool Scalar(Kind* kind, int64_t* i, double* d) {
    if (p_ == end_) return false;
    const uint8_t b = *p_++;
    uint64_t u = 0;
    if (b <= 0x7f || b >= 0xe0) {
      *kind = Kind::kInt;
      *i = static_cast<int8_t>(b);
      return true;
    }
    switch (b) {
      case 0xc0: *kind = Kind::kNil; return true;
      case 0xca: {  // float32
        if (!BigEndian(4, &u)) return false;
        float f;
        const auto bits = static_cast<uint32_t>(u);
        std::memcpy(&f, &bits, sizeof(f));
        *kind = Kind::kFloat;
        *d = f;
        return true;
      }
      case 0xcb:  // float64
        if (!BigEndian(8, &u)) return false;
        std::memcpy(d, &u, sizeof(*d));
        *kind = Kind::kFloat;
        return true;
      case 0xcc: case 0xcd: case 0xce: case 0xcf:  // uint 8..64
        if (!BigEndian(1 << (b - 0xcc), &u) ||
            u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return false;
        }
        *kind = Kind::kInt;
        *i = static_cast<int64_t>(u);
        return true;
      case 0xd0: case 0xd1: case 0xd2: case 0xd3: {  // int 8..64, sign-extended
        const int bytes = 1 << (b - 0xd0);
        if (!BigEndian(bytes, &u)) return false;
        if (bytes < 8 && (u >> (8 * bytes - 1)) != 0) u |= ~uint64_t{0} << (8 * bytes);
        *kind = Kind::kInt;
        *i = static_cast<int64_t>(u);
        return true;
      }
      default: return false;
    }
  }

 private:
  bool BigEndian(int n, uint64_t* out) {
    if (end_ - p_ < n) return false;
    uint64_t v = 0;
    for (int k = 0; k < n; ++k) v = (v << 8) | *p_++;
    *out = v;
    return true;
  }

  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace

std::optional<HeartbeatMsg> ParsePlainHeartbeat(std::string_view bytes) {
  PlainReader r(bytes);
  uint32_t fields = 0;
  if (!r.MapHeader(&fields)) return std::nullopt;
  HeartbeatMsg m;
  struct Field {
    std::string_view name;
    int64_t* int_out;    // integer fields
    double* double_out;  // number fields (an integer is taken as a double)
  };
  const Field known[] = {{"running", &m.running, nullptr},
                         {"free_slots", &m.free_slots, nullptr},
                         {"cpu", nullptr, &m.cpu},
                         {"host_cpu", nullptr, &m.host_cpu},
                         {"cores", &m.cores, nullptr},
                         {"load1", nullptr, &m.load1},
                         {"rss_kb", &m.rss_kb, nullptr},
                         {"disk_free_bytes", &m.disk_free_bytes, nullptr}};
  bool typed = false;
  uint32_t seen = 0;  // bit per HeartbeatMsg field, to refuse duplicates
  for (uint32_t n = 0; n < fields; ++n) {
    std::string_view key;
    if (!r.Str(&key)) return std::nullopt;
    if (key == "type") {
      std::string_view type;
      if (typed || !r.Str(&type) || type != msg::kHeartbeat) return std::nullopt;
      typed = true;
      continue;
    }
    std::size_t f = 0;
    while (f < std::size(known) && known[f].name != key) ++f;
    if (f == std::size(known) || (seen & (1u << f)) != 0) return std::nullopt;
    seen |= 1u << f;
    PlainReader::Kind kind;
    int64_t i = 0;
    double d = 0;
    if (!r.Scalar(&kind, &i, &d)) return std::nullopt;
    if (kind == PlainReader::Kind::kNil) continue;  // as if absent
    if (known[f].int_out != nullptr) {
      if (kind != PlainReader::Kind::kInt) return std::nullopt;
      *known[f].int_out = i;
    } else {
      *known[f].double_out = kind == PlainReader::Kind::kInt ? static_cast<double>(i) : d;
    }
  }
  if (!typed || !r.at_end()) return std::nullopt;
  return m;
}

Value MapOutput::ToValue() const {
  Value v;
  v.Set("partition", partition);
  v.Set("location", location);
  v.Set("bytes", bytes);
  v.Set("records", records);
  return v;
}

std::optional<MapOutput> MapOutput::FromValue(const Value& v, std::string* error) {
  MapOutput m;
  if (!RequireMap(v, error) || !ReadInt(v, "partition", &m.partition, error) ||
      !ReadString(v, "location", &m.location, error) || !ReadInt(v, "bytes", &m.bytes, error) ||
      !ReadInt(v, "records", &m.records, error)) {
    return std::nullopt;
  }
  return m;
}

Value AssignMsg::ToValue() const {
  Value v = Typed(msg::kAssign);
  v.Set("job_id", job_id);
  v.Set("task_id", task_id);
  v.Set("attempt", attempt);
  v.Set("kind", TaskKindName(kind));
  v.Set("app", app);
  v.Set("params", StringMapValue(params));
  Value c;
  c.Set("plugin", code.plugin);
  c.Set("mapper", code.mapper);
  c.Set("combiner", code.combiner);
  c.Set("reducer", code.reducer);
  c.Set("cmdenv", StringMapValue(code.cmdenv));
  Array files;
  for (const FileRef& f : code.files) files.push_back(FileRefValue(f));
  c.Set("files", Value(std::move(files)));
  v.Set("code", std::move(c));
  v.Set("num_reduces", num_reduces);
  v.Set("output_dir", output_dir);
  v.Set("partition", partition);
  if (kind == TaskKind::kMap) {
    Array ranges;
    for (const FileRange& r : split) {
      Value range;
      range.Set("path", r.path);
      range.Set("start", r.start);
      range.Set("end", r.end);
      ranges.push_back(std::move(range));
    }
    v.Set("split", Value(std::move(ranges)));
  } else {
    v.Set("inputs", StringListValue(inputs));
  }
  return v;
}

std::optional<AssignMsg> AssignMsg::FromValue(const Value& v, std::string* error) {
  AssignMsg m;
  std::string kind;
  if (!RequireMap(v, error) || !ReadString(v, "job_id", &m.job_id, error) ||
      !ReadString(v, "task_id", &m.task_id, error) || !ReadInt(v, "attempt", &m.attempt, error) ||
      !ReadString(v, "kind", &kind, error) || !ReadString(v, "app", &m.app, error) ||
      !ReadStringMap(v, "params", &m.params, error) ||
      !ReadInt(v, "num_reduces", &m.num_reduces, error) ||
      !ReadString(v, "output_dir", &m.output_dir, error)) {
    return std::nullopt;
  }
  if (m.num_reduces < 0) {
    *error = "field 'num_reduces' is negative";
    return std::nullopt;
  }
  if (const Value* c = v.Find("code"); c != nullptr && !c->is_nil()) {
    if (!RequireMapIn(*c, "code", error) || !ReadOptString(*c, "plugin", &m.code.plugin, error) ||
        !ReadOptString(*c, "mapper", &m.code.mapper, error) ||
        !ReadOptString(*c, "combiner", &m.code.combiner, error) ||
        !ReadOptString(*c, "reducer", &m.code.reducer, error) ||
        !ReadStringMap(*c, "cmdenv", &m.code.cmdenv, error) ||
        !ReadFileRefs(*c, "files", &m.code.files, error)) {
      return std::nullopt;
    }
  }
  if (!ReadOptInt(v, "partition", &m.partition, error)) return std::nullopt;
  if (m.partition < 0) {
    *error = "field 'partition' is negative";
    return std::nullopt;
  }
  if (kind == "map") {
    m.kind = TaskKind::kMap;
    const Value* ranges = v.Find("split");
    if (ranges == nullptr || !ranges->is_array()) {
      *error = "field 'split' is not an array";
      return std::nullopt;
    }
    for (const Value& item : ranges->as_array()) {
      FileRange r;
      if (!RequireMapIn(item, "split", error) || !ReadString(item, "path", &r.path, error) ||
          !ReadInt(item, "start", &r.start, error) || !ReadInt(item, "end", &r.end, error)) {
        return std::nullopt;
      }
      if (r.start < 0 || r.end < r.start) {
        *error = "split range out of order";
        return std::nullopt;
      }
      m.split.push_back(std::move(r));
    }
  } else if (kind == "reduce") {
    m.kind = TaskKind::kReduce;
    if (!ReadInt(v, "partition", &m.partition, error) ||
        !ReadStringList(v, "inputs", &m.inputs, error)) {
      return std::nullopt;
    }
    if (m.num_reduces < 1) {
      *error = "field 'num_reduces' must be positive for a reduce task";
      return std::nullopt;
    }
    if (m.partition < 0 || m.partition >= m.num_reduces) {
      *error = "field 'partition' out of range";
      return std::nullopt;
    }
  } else {
    *error = "field 'kind' must be \"map\" or \"reduce\"";
    return std::nullopt;
  }
  return m;
}

Value TaskProgressMsg::ToValue() const {
  Value v = Typed(msg::kTaskProgress);
  SetRef(v, ref);
  v.Set("progress", progress);
  if (!status.empty()) v.Set("status", status);
  return v;
}

std::optional<TaskProgressMsg> TaskProgressMsg::FromValue(const Value& v, std::string* error) {
  TaskProgressMsg m;
  if (!RequireMap(v, error) || !ReadRef(v, &m.ref, error) ||
      !ReadDouble(v, "progress", &m.progress, error) ||
      !ReadOptString(v, "status", &m.status, error)) {
    return std::nullopt;
  }
  if (!(m.progress >= 0.0 && m.progress <= 1.0)) {
    *error = "field 'progress' outside 0..1";
    return std::nullopt;
  }
  return m;
}

Value TaskDoneMsg::ToValue() const {
  Value v = Typed(msg::kTaskDone);
  SetRef(v, ref);
  Array outs;
  for (const MapOutput& o : outputs) outs.push_back(o.ToValue());
  v.Set("outputs", Value(std::move(outs)));
  v.Set("counters", IntMapValue(counters));
  return v;
}

std::optional<TaskDoneMsg> TaskDoneMsg::FromValue(const Value& v, std::string* error) {
  TaskDoneMsg m;
  if (!RequireMap(v, error) || !ReadRef(v, &m.ref, error) ||
      !ReadIntMap(v, "counters", &m.counters, error)) {
    return std::nullopt;
  }
  const Value* outs = v.Find("outputs");
  if (outs != nullptr && !outs->is_nil()) {
    if (!outs->is_array()) {
      *error = "field 'outputs' is not an array";
      return std::nullopt;
    }
    for (const Value& item : outs->as_array()) {
      if (!RequireMapIn(item, "outputs", error)) return std::nullopt;
      std::optional<MapOutput> o = MapOutput::FromValue(item, error);
      if (!o) return std::nullopt;
      m.outputs.push_back(std::move(*o));
    }
  }
  return m;
}

Value TaskFailedMsg::ToValue() const {
  Value v = Typed(msg::kTaskFailed);
  SetRef(v, ref);
  v.Set("error", error);
  if (!bad_inputs.empty()) v.Set("bad_inputs", StringListValue(bad_inputs));
  if (!stderr_tail.empty()) v.Set("stderr_tail", StringListValue(stderr_tail));
  return v;
}

std::optional<TaskFailedMsg> TaskFailedMsg::FromValue(const Value& v, std::string* error) {
  TaskFailedMsg m;
  if (!RequireMap(v, error) || !ReadRef(v, &m.ref, error) ||
      !ReadString(v, "error", &m.error, error) ||
      !ReadStringList(v, "bad_inputs", &m.bad_inputs, error) ||
      !ReadStringList(v, "stderr_tail", &m.stderr_tail, error)) {
    return std::nullopt;
  }
  return m;
}

Value FetchLogMsg::ToValue() const {
  Value v = Typed(msg::kFetchLog);
  v.Set("request_id", request_id);
  SetRef(v, ref);
  return v;
}

std::optional<FetchLogMsg> FetchLogMsg::FromValue(const Value& v, std::string* error) {
  FetchLogMsg m;
  if (!RequireMap(v, error) || !ReadInt(v, "request_id", &m.request_id, error) ||
      !ReadRef(v, &m.ref, error)) {
    return std::nullopt;
  }
  return m;
}

Value LogMsg::ToValue() const {
  Value v = Typed(msg::kLog);
  v.Set("request_id", request_id);
  SetRef(v, ref);
  v.Set("found", found);
  v.Set("data", Binary{data});
  v.Set("truncated", truncated);
  v.Set("size", size);
  return v;
}

std::optional<LogMsg> LogMsg::FromValue(const Value& v, std::string* error) {
  LogMsg m;
  if (!RequireMap(v, error) || !ReadInt(v, "request_id", &m.request_id, error) ||
      !ReadRef(v, &m.ref, error) || !ReadBool(v, "found", &m.found, error) ||
      !ReadBytes(v, "data", &m.data, error) ||
      !ReadOptBool(v, "truncated", &m.truncated, error) ||
      !ReadOptInt(v, "size", &m.size, error)) {
    return std::nullopt;
  }
  return m;
}

Value CancelAttemptMsg::ToValue() const {
  Value v = Typed(msg::kCancel);
  SetRef(v, ref);
  return v;
}

std::optional<CancelAttemptMsg> CancelAttemptMsg::FromValue(const Value& v, std::string* error) {
  CancelAttemptMsg m;
  if (!RequireMap(v, error) || !ReadRef(v, &m.ref, error)) return std::nullopt;
  return m;
}

Value CleanupMsg::ToValue() const {
  Value v = Typed(msg::kCleanup);
  v.Set("job_id", job_id);
  return v;
}

std::optional<CleanupMsg> CleanupMsg::FromValue(const Value& v, std::string* error) {
  CleanupMsg m;
  if (!RequireMap(v, error) || !ReadString(v, "job_id", &m.job_id, error)) return std::nullopt;
  return m;
}

Value JobFilesMsg::ToValue() const {
  Value v = Typed(msg::kJobFiles);
  v.Set("job_id", job_id);
  Map blob_map;
  for (const auto& [sha, data] : blobs) blob_map.emplace_back(sha, Value(Binary{data}));
  v.Set("blobs", Value(std::move(blob_map)));
  return v;
}

std::optional<JobFilesMsg> JobFilesMsg::FromValue(const Value& v, std::string* error) {
  JobFilesMsg m;
  if (!RequireMap(v, error) || !ReadString(v, "job_id", &m.job_id, error)) return std::nullopt;
  const Value* blobs = v.Find("blobs");
  if (blobs == nullptr || !blobs->is_map()) {
    *error = "field 'blobs' is not a map";
    return std::nullopt;
  }
  for (const auto& [sha, data] : blobs->as_map()) {
    if (data.is_binary()) {
      m.blobs[sha] = data.as_binary();
    } else if (data.is_string()) {
      m.blobs[sha] = data.as_string();
    } else {
      *error = "field 'blobs." + sha + "' is not bytes";
      return std::nullopt;
    }
  }
  return m;
}

namespace {

Value SubmitFileValue(const SubmitFile& f) {
  Value v;
  v.Set("name", f.name);
  v.Set("mode", f.mode);
  v.Set("data", Binary{f.data});
  return v;
}

bool ReadSubmitFile(const Value& item, std::string_view field, SubmitFile* f,
                    std::string* error) {
  if (!RequireMapIn(item, field, error) || !ReadString(item, "name", &f->name, error) ||
      !ReadOptInt(item, "mode", &f->mode, error) || !ReadBytes(item, "data", &f->data, error)) {
    return false;
  }
  if (!ValidFileName(f->name)) {
    *error = "invalid file name '" + f->name + "'";
    return false;
  }
  return true;
}

}  // namespace

Value SubmitMsg::ToValue() const {
  Value v = Typed(msg::kSubmit);
  v.Set("proto", kProtocolVersion);
  v.Set("name", name);
  v.Set("app", app);
  v.Set("inputs", StringListValue(inputs));
  v.Set("output", output);
  v.Set("params", StringMapValue(params));
  v.Set("maps", maps);
  v.Set("reduces", reduces);
  v.Set("max_attempts", max_attempts);
  v.Set("priority", priority);
  v.Set("speculation", speculation);
  if (!mapper.empty()) v.Set("mapper", mapper);
  if (!combiner.empty()) v.Set("combiner", combiner);
  if (!reducer.empty()) v.Set("reducer", reducer);
  if (!cmdenv.empty()) v.Set("cmdenv", StringMapValue(cmdenv));
  if (!files.empty()) {
    Array items;
    for (const SubmitFile& f : files) items.push_back(SubmitFileValue(f));
    v.Set("files", Value(std::move(items)));
  }
  if (plugin) v.Set("plugin", SubmitFileValue(*plugin));
  return v;
}

std::optional<SubmitMsg> SubmitMsg::FromValue(const Value& v, std::string* error) {
  SubmitMsg m;
  if (!RequireMap(v, error) || !ReadOptString(v, "name", &m.name, error) ||
      !ReadOptString(v, "app", &m.app, error) ||
      !ReadStringList(v, "inputs", &m.inputs, error) ||
      !ReadString(v, "output", &m.output, error) ||
      !ReadStringMap(v, "params", &m.params, error) || !ReadOptInt(v, "maps", &m.maps, error) ||
      !ReadOptInt(v, "reduces", &m.reduces, error) ||
      !ReadOptInt(v, "max_attempts", &m.max_attempts, error) ||
      !ReadOptInt(v, "priority", &m.priority, error) ||
      !ReadOptBool(v, "speculation", &m.speculation, error) ||
      !ReadOptString(v, "mapper", &m.mapper, error) ||
      !ReadOptString(v, "combiner", &m.combiner, error) ||
      !ReadOptString(v, "reducer", &m.reducer, error) ||
      !ReadStringMap(v, "cmdenv", &m.cmdenv, error)) {
    return std::nullopt;
  }
  if (const Value* files = v.Find("files"); files != nullptr && !files->is_nil()) {
    if (!files->is_array()) {
      *error = "field 'files' is not an array";
      return std::nullopt;
    }
    for (const Value& item : files->as_array()) {
      SubmitFile f;
      if (!ReadSubmitFile(item, "files", &f, error)) return std::nullopt;
      m.files.push_back(std::move(f));
    }
  }
  if (const Value* plugin = v.Find("plugin"); plugin != nullptr && !plugin->is_nil()) {
    SubmitFile f;
    if (!ReadSubmitFile(*plugin, "plugin", &f, error)) return std::nullopt;
    m.plugin = std::move(f);
  }
  return m;
}

namespace {

Value JobIdValue(const char* type, const std::string& job_id) {
  Value v = Typed(type);
  v.Set("job_id", job_id);
  return v;
}

template <typename Request>
std::optional<Request> ReadJobId(const Value& v, std::string* error) {
  Request r;
  if (!RequireMap(v, error) || !ReadString(v, "job_id", &r.job_id, error)) return std::nullopt;
  return r;
}

}  // namespace

Value StatusRequest::ToValue() const { return JobIdValue(msg::kStatus, job_id); }

std::optional<StatusRequest> StatusRequest::FromValue(const Value& v, std::string* error) {
  return ReadJobId<StatusRequest>(v, error);
}

Value CancelRequest::ToValue() const { return JobIdValue(msg::kCancel, job_id); }

std::optional<CancelRequest> CancelRequest::FromValue(const Value& v, std::string* error) {
  return ReadJobId<CancelRequest>(v, error);
}

Value TasksRequest::ToValue() const { return JobIdValue(msg::kTasks, job_id); }

std::optional<TasksRequest> TasksRequest::FromValue(const Value& v, std::string* error) {
  return ReadJobId<TasksRequest>(v, error);
}

Value JobsRequest::ToValue() const {
  Value v = Typed(msg::kJobs);
  v.Set("all", all);
  return v;
}

std::optional<JobsRequest> JobsRequest::FromValue(const Value& v, std::string* error) {
  JobsRequest r;
  if (!RequireMap(v, error) || !ReadOptBool(v, "all", &r.all, error)) return std::nullopt;
  return r;
}

Value EventsRequest::ToValue() const {
  Value v = JobIdValue(msg::kEvents, job_id);
  v.Set("after_seq", after_seq);
  return v;
}

std::optional<EventsRequest> EventsRequest::FromValue(const Value& v, std::string* error) {
  std::optional<EventsRequest> r = ReadJobId<EventsRequest>(v, error);
  if (r && !ReadOptInt(v, "after_seq", &r->after_seq, error)) return std::nullopt;
  return r;
}

Value LogsRequest::ToValue() const {
  Value v = JobIdValue(msg::kLogs, job_id);
  v.Set("task_id", task_id);
  v.Set("attempt", attempt);
  v.Set("wait_ms", wait_ms);
  return v;
}

std::optional<LogsRequest> LogsRequest::FromValue(const Value& v, std::string* error) {
  std::optional<LogsRequest> r = ReadJobId<LogsRequest>(v, error);
  if (r && (!ReadString(v, "task_id", &r->task_id, error) ||
            !ReadOptInt(v, "attempt", &r->attempt, error) ||
            !ReadOptInt(v, "wait_ms", &r->wait_ms, error))) {
    return std::nullopt;
  }
  return r;
}

Value SubmittedReply::ToValue() const {
  Value v = JobIdValue(msg::kSubmitted, job_id);
  v.Set("maps", maps);
  v.Set("reduces", reduces);
  return v;
}

std::optional<SubmittedReply> SubmittedReply::FromValue(const Value& v, std::string* error) {
  std::optional<SubmittedReply> r = ReadJobId<SubmittedReply>(v, error);
  if (r && (!ReadInt(v, "maps", &r->maps, error) || !ReadInt(v, "reduces", &r->reduces, error))) {
    return std::nullopt;
  }
  return r;
}

Value CancelledReply::ToValue() const {
  Value v = JobIdValue(msg::kCancelled, job_id);
  v.Set("state", JobStateName(state));
  v.Set("changed", changed);
  return v;
}

std::optional<CancelledReply> CancelledReply::FromValue(const Value& v, std::string* error) {
  std::optional<CancelledReply> r = ReadJobId<CancelledReply>(v, error);
  if (r && (!ReadJobState(v, "state", &r->state, error) ||
            !ReadBool(v, "changed", &r->changed, error))) {
    return std::nullopt;
  }
  return r;
}

Value ErrorReply(const char* code, const std::string& message) {
  Value v = Typed(msg::kError);
  v.Set("code", code);
  v.Set("error", message);
  return v;
}

}  // namespace zmr
