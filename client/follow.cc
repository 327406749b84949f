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
    missed_ += seq - last_seq_ - 1;
    return Verdict::kResnapshot;
  }
  after_resnapshot_ = false;
  last_seq_ = seq;
  if (StringField(event, "type") == "job_state") state_ = StringField(event, "state");
  return Verdict::kApply;
}

}  // namespace zmr::client
