// Late-join-safe following of one job's event stream, as `zmr watch JOB` does it: subscribe,
// take a snapshot (a JobInfo, whose last_seq is the seq of the job's latest event), then apply
// only events newer than the snapshot, one seq at a time. A gap in seq means the PUB socket
// dropped events: the caller first asks the coordinator for the events it still keeps (CatchUp)
// and, when those do not close the gap, takes a fresh snapshot instead of showing a wrong picture.
// It reads the typed JobInfo and JobEvent (common/views.h); the overloads taking a Value take the
// snapshot or event as received and decode it as the client reads views (Missing::kDefault). A
// pure class: no sockets, no clock; one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/value.h"
#include "common/views.h"

namespace zmr::client {

class JobFollower {
 public:
  enum class Verdict {
    kApply,       // the next event: show it (last_seq() is now its seq)
    kStale,       // a duplicate, or older than what is known: drop it
    kResnapshot,  // events are missing before this one: take a snapshot, Reset, Offer it again
  };

  explicit JobFollower(std::string job_id) : job_id_(std::move(job_id)) {}

  // Starts (again) from a snapshot: a JobInfo of this job. Its `last_seq` and `state` become the
  // known position. The Value form changes nothing and returns false for a snapshot that does
  // not decode.
  void Reset(const JobInfo& job_info);
  bool Reset(const Value& job_info);

  // Judges an event of this job (events of other jobs, without a seq (0), or, in the Value form,
  // that do not decode are kStale). After Reset from a snapshot taken because of a kResnapshot,
  // an event that is still ahead of the snapshot is applied (the snapshot cannot be newer than it
  // says), so a gap never loops.
  Verdict Offer(const JobEvent& event);
  Verdict Offer(const Value& event);

  // After kResnapshot: `events_reply` is the coordinator's answer to `events` after last_seq(), as
  // received. When it decodes as an EventsReply and closes the gap (complete, and its events run on
  // from last_seq() without a hole), returns the missing events in order, as received, to be shown
  // instead of a snapshot (the gap then does not count as missed; offer the event that revealed
  // the gap again afterwards). nullopt: take a snapshot and Reset.
  std::optional<std::vector<Value>> CatchUp(const Value& events_reply);

  int64_t last_seq() const { return last_seq_; }
  // The job's state as last known (from the snapshot or a job_state event); "" before Reset.
  const std::string& state() const { return state_; }
  // Events found missing at gaps so far (a snapshot stood in for them), for a message.
  int64_t missed() const { return missed_; }

 private:
  std::string job_id_;
  int64_t last_seq_ = 0;
  std::string state_;
  bool after_resnapshot_ = false;  // the last Offer asked for a snapshot
  int64_t gap_ = 0;                // events missing at the last kResnapshot
  int64_t missed_ = 0;
};

}  // namespace zmr::client
