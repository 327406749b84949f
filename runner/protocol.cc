#include "runner/protocol.h"

#include <utility>

namespace zmr {

Value TaskRequest::ToValue() const {
  Value v;
  v.Set("assign", assign.ToValue());
  v.Set("attempt_dir", attempt_dir);
  v.Set("work_dir", work_dir);
  v.Set("sort_buffer_bytes", sort_buffer_bytes);
  v.Set("merge_fan_in", merge_fan_in);
  v.Set("memory_limit_bytes", memory_limit_bytes);
  v.Set("plugin_path", plugin_path);
  v.Set("parent_pid", parent_pid);
  return v;
}

std::optional<TaskRequest> TaskRequest::FromValue(const Value& v, std::string* error) {
  TaskRequest r;
  const Value* assign = v.Find("assign");
  if (assign == nullptr) {
    *error = "missing field 'assign'";
    return std::nullopt;
  }
  std::optional<AssignMsg> a = AssignMsg::FromValue(*assign, error);
  if (!a) return std::nullopt;
  r.assign = std::move(*a);
  if (!ReadString(v, "attempt_dir", &r.attempt_dir, error) ||
      !ReadString(v, "work_dir", &r.work_dir, error) ||
      !ReadInt(v, "sort_buffer_bytes", &r.sort_buffer_bytes, error) ||
      !ReadInt(v, "merge_fan_in", &r.merge_fan_in, error) ||
      !ReadInt(v, "memory_limit_bytes", &r.memory_limit_bytes, error) ||
      !ReadString(v, "plugin_path", &r.plugin_path, error) ||
      !ReadOptInt(v, "parent_pid", &r.parent_pid, error)) {
    return std::nullopt;
  }
  if (r.sort_buffer_bytes < 1 || r.merge_fan_in < 2 || r.merge_fan_in > (1 << 20) ||
      r.memory_limit_bytes < 0) {
    *error = "sort_buffer_bytes, merge_fan_in or memory_limit_bytes out of range";
    return std::nullopt;
  }
  return r;
}

std::string EncodeControlFrame(const Value& body) {
  std::string bytes = Pack(body);
  auto n = static_cast<uint32_t>(bytes.size());
  std::string frame;
  frame.reserve(kFrameHeaderBytes + bytes.size());
  frame += static_cast<char>((n >> 24) & 0xff);
  frame += static_cast<char>((n >> 16) & 0xff);
  frame += static_cast<char>((n >> 8) & 0xff);
  frame += static_cast<char>(n & 0xff);
  frame += bytes;
  return frame;
}

uint32_t DecodeFrameLength(const unsigned char* header) {
  return (uint32_t{header[0]} << 24) | (uint32_t{header[1]} << 16) | (uint32_t{header[2]} << 8) |
         uint32_t{header[3]};
}

int FrameReader::Next(Value* frame, std::string* type, std::string* error) {
  if (buffer_.size() - offset_ < kFrameHeaderBytes) return Compact();
  const uint32_t length =
      DecodeFrameLength(reinterpret_cast<const unsigned char*>(buffer_.data() + offset_));
  if (length > kMaxControlFrameBytes) {
    *error = "control frame of " + std::to_string(length) + " bytes";
    return -1;
  }
  if (buffer_.size() - offset_ - kFrameHeaderBytes < length) return Compact();
  std::optional<Value> v = DecodeMessage(
      std::string_view(buffer_).substr(offset_ + kFrameHeaderBytes, length), type, error);
  offset_ += kFrameHeaderBytes + length;
  if (!v) return -1;
  *frame = std::move(*v);
  return 1;
}

int FrameReader::Compact() {
  buffer_.erase(0, offset_);
  offset_ = 0;
  return 0;
}

}  // namespace zmr
