#include "client/follow.h"

namespace zmr::client {

namespace {

// The state a job event moves the job to, if it is a job_state event.
std::optional<JobState> NewState(const JobEvent& event) {
  const auto* change = std::get_if<JobStateEvent>(&event.detail);
  return change != nullptr ? std::optional<JobState>(change->state) : std::nullopt;
}

}  // namespace

void JobFollower::Reset(const JobInfo& job_info) {
  last_seq_ = job_info.last_seq;
  state_ = JobStateName(job_info.state);
}

bool JobFollower::Reset(const Value& job_info) {
  std::string error;
  std::optional<JobInfo> info = JobInfo::FromValue(job_info, &error, Missing::kDefault);
  if (info) Reset(*info);
  return info.has_value();
}

JobFollower::Verdict JobFollower::Offer(const JobEvent& event) {
  if (event.job_id != job_id_ || event.seq <= 0) return Verdict::kStale;  // seqs start at 1
  if (event.seq <= last_seq_) {
    after_resnapshot_ = false;
    return Verdict::kStale;
  }
  if (event.seq > last_seq_ + 1 && !after_resnapshot_) {
    after_resnapshot_ = true;
    gap_ = event.seq - last_seq_ - 1;
    missed_ += gap_;
    return Verdict::kResnapshot;
  }
  after_resnapshot_ = false;
  last_seq_ = event.seq;
  if (std::optional<JobState> state = NewState(event)) state_ = JobStateName(*state);
  return Verdict::kApply;
}

JobFollower::Verdict JobFollower::Offer(const Value& event) {
  std::string error;
  std::optional<JobEvent> decoded = JobEvent::FromValue(event, &error, Missing::kDefault);
  return decoded ? Offer(*decoded) : Verdict::kStale;
}

std::optional<std::vector<Value>> JobFollower::CatchUp(const Value& events_reply) {
  std::string error;
  std::optional<EventsReply> reply =
      EventsReply::FromValue(events_reply, &error, Missing::kDefault);
  if (!reply || !reply->view.complete) return std::nullopt;
  const std::vector<JobEvent>& events = reply->view.events;
  std::vector<size_t> missing;  // indexes into events
  int64_t next = last_seq_ + 1;
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].job_id != job_id_ || events[i].seq <= 0) return std::nullopt;
    if (events[i].seq < next) continue;  // already known
    if (events[i].seq != next) return std::nullopt;
    missing.push_back(i);
    ++next;
  }
  if (missing.empty()) return std::nullopt;  // nothing newer: the gap cannot be closed here
  // Non-empty events decoded from the reply: it holds them as an array.
  const Array& received = events_reply.Find("events")->as_array();
  std::vector<Value> shown;
  for (size_t i : missing) {
    if (std::optional<JobState> state = NewState(events[i])) state_ = JobStateName(*state);
    shown.push_back(received[i]);
  }
  last_seq_ = next - 1;
  missed_ -= gap_;
  gap_ = 0;
  after_resnapshot_ = false;
  return shown;
}

}  // namespace zmr::client
