#include "client/follow.h"

namespace zmr::client {

namespace {

int64_t IntField(const Value& map, std::string_view key) {
  const Value* v = map.Find(key);
  return v != nullptr && v->is_int() ? v->as_int() : 0;
}

std::string StringField(const Value& map, std::string_view key) {
  const Value* v = map.Find(key);
  return v != nullptr && v->is_string() ? v->as_string() : std::string();
}

}  // namespace

void JobFollower::Reset(const Value& job_info) {
  last_seq_ = IntField(job_info, "last_seq");
  state_ = StringField(job_info, "state");
}

JobFollower::Verdict JobFollower::Offer(const Value& event) {
  const Value* seq_field = event.Find("seq");
  if (seq_field == nullptr || !seq_field->is_int() || StringField(event, "job_id") != job_id_) {
    return Verdict::kStale;
  }
  const int64_t seq = seq_field->as_int();
  if (seq <= last_seq_) {
    after_resnapshot_ = false;
    return Verdict::kStale;
  }
  if (seq > last_seq_ + 1 && !after_resnapshot_) {
    after_resnapshot_ = true;
    gap_ = seq - last_seq_ - 1;
    missed_ += gap_;
    return Verdict::kResnapshot;
  }
  after_resnapshot_ = false;
  last_seq_ = seq;
  if (StringField(event, "type") == "job_state") state_ = StringField(event, "state");
  return Verdict::kApply;
}

std::optional<std::vector<Value>> JobFollower::CatchUp(const Value& events_reply) {
  const Value* complete = events_reply.Find("complete");
  const Value* events = events_reply.Find("events");
  if (complete == nullptr || !complete->is_bool() || !complete->as_bool() || events == nullptr ||
      !events->is_array()) {
    return std::nullopt;
  }
  std::vector<Value> missing;
  int64_t next = last_seq_ + 1;
  for (const Value& event : events->as_array()) {
    const Value* seq = event.Find("seq");
    if (seq == nullptr || !seq->is_int() || StringField(event, "job_id") != job_id_) {
      return std::nullopt;
    }
    if (seq->as_int() < next) continue;  // already known
    if (seq->as_int() != next) return std::nullopt;
    missing.push_back(event);
    ++next;
  }
  if (missing.empty()) return std::nullopt;  // nothing newer: the gap cannot be closed here
  for (const Value& event : missing) {
    if (StringField(event, "type") == "job_state") state_ = StringField(event, "state");
  }
  last_seq_ = next - 1;
  missed_ -= gap_;
  gap_ = 0;
  after_resnapshot_ = false;
  return missing;
}

}  // namespace zmr::client
