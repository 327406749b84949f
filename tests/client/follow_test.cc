// The late-join logic of `zmr watch JOB` (client/follow.h), driven with plain values: no sockets.
#include "client/follow.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

namespace zmr::client {
namespace {

Value Snapshot(int64_t last_seq, const std::string& state) {
  Value job;
  job.Set("job_id", "job_a");
  job.Set("state", state);
  job.Set("last_seq", last_seq);
  return job;
}

Value Event(int64_t seq, const std::string& type = "task_progress",
            const std::string& job_id = "job_a") {
  Value e;
  e.Set("type", type);
  e.Set("job_id", job_id);
  e.Set("seq", seq);
  return e;
}

using Verdict = JobFollower::Verdict;

TEST_CASE("after a snapshot only newer events apply, one seq at a time") {
  JobFollower f("job_a");
  f.Reset(Snapshot(7, "MAPPING"));
  CHECK(f.state() == "MAPPING");
  // Published before the snapshot was taken: already in it.
  CHECK(f.Offer(Event(6)) == Verdict::kStale);
  CHECK(f.Offer(Event(7)) == Verdict::kStale);
  CHECK(f.Offer(Event(8)) == Verdict::kApply);
  CHECK(f.Offer(Event(8)) == Verdict::kStale);  // a duplicate
  Value reducing = Event(9, "job_state");
  reducing.Set("state", "REDUCING");
  CHECK(f.Offer(reducing) == Verdict::kApply);
  CHECK(f.state() == "REDUCING");
  CHECK(f.last_seq() == 9);
  CHECK(f.missed() == 0);
}

TEST_CASE("events of other jobs or without a seq never apply") {
  JobFollower f("job_a");
  f.Reset(Snapshot(1, "MAPPING"));
  CHECK(f.Offer(Event(2, "task_progress", "job_b")) == Verdict::kStale);
  Value no_seq;
  no_seq.Set("type", "task_progress");
  no_seq.Set("job_id", "job_a");
  CHECK(f.Offer(no_seq) == Verdict::kStale);
  CHECK(f.Offer(Event(2)) == Verdict::kApply);
}

TEST_CASE("a gap in seq asks for a fresh snapshot, which then decides") {
  JobFollower f("job_a");
  f.Reset(Snapshot(3, "MAPPING"));
  // 4 and 5 were dropped by the PUB socket.
  CHECK(f.Offer(Event(6)) == Verdict::kResnapshot);
  CHECK(f.missed() == 2);
  // The fresh snapshot already covers 6 (and more): the event is not shown again.
  f.Reset(Snapshot(9, "REDUCING"));
  CHECK(f.Offer(Event(6)) == Verdict::kStale);
  CHECK(f.Offer(Event(10)) == Verdict::kApply);
  CHECK(f.state() == "REDUCING");
}

TEST_CASE("an event still ahead of the fresh snapshot applies instead of looping") {
  JobFollower f("job_a");
  f.Reset(Snapshot(0, "SUBMITTED"));
  CHECK(f.Offer(Event(5)) == Verdict::kResnapshot);
  f.Reset(Snapshot(2, "MAPPING"));  // a snapshot that lags the stream
  CHECK(f.Offer(Event(5)) == Verdict::kApply);
  CHECK(f.last_seq() == 5);
  CHECK(f.Offer(Event(6)) == Verdict::kApply);
  // A later gap asks again.
  CHECK(f.Offer(Event(9)) == Verdict::kResnapshot);
}

Value EventsReply(bool complete, std::vector<int64_t> seqs) {
  Array events;
  for (int64_t seq : seqs) events.push_back(Event(seq));
  Value reply;
  reply.Set("type", "events");
  reply.Set("events", Value(std::move(events)));
  reply.Set("complete", complete);
  return reply;
}

TEST_CASE("a gap the coordinator's kept events cover is filled from them, not a snapshot") {
  JobFollower f("job_a");
  f.Reset(Snapshot(4, "MAPPING"));
  CHECK(f.Offer(Event(8)) == Verdict::kResnapshot);
  CHECK(f.missed() == 3);
  // The kept events start earlier than needed and end with the event that showed the gap.
  std::optional<std::vector<Value>> missing = f.CatchUp(EventsReply(true, {3, 4, 5, 6, 7, 8}));
  REQUIRE(missing);
  REQUIRE(missing->size() == 4);
  CHECK(missing->front().Find("seq")->as_int() == 5);
  CHECK(missing->back().Find("seq")->as_int() == 8);
  CHECK(f.last_seq() == 8);
  CHECK(f.missed() == 0);
  CHECK(f.Offer(Event(8)) == Verdict::kStale);  // the one that showed the gap: already shown
  CHECK(f.Offer(Event(9)) == Verdict::kApply);
}

TEST_CASE("kept events that do not reach back to the gap, or have a hole, mean a snapshot") {
  JobFollower f("job_a");
  f.Reset(Snapshot(4, "MAPPING"));
  CHECK(f.Offer(Event(9)) == Verdict::kResnapshot);
  CHECK_FALSE(f.CatchUp(EventsReply(false, {7, 8, 9})));
  CHECK_FALSE(f.CatchUp(EventsReply(true, {5, 6, 8, 9})));
  CHECK_FALSE(f.CatchUp(EventsReply(true, {})));
  CHECK(f.last_seq() == 4);
  // The snapshot path still works after a failed catch-up.
  f.Reset(Snapshot(9, "MAPPING"));
  CHECK(f.Offer(Event(9)) == Verdict::kStale);
  CHECK(f.Offer(Event(10)) == Verdict::kApply);
  CHECK(f.missed() == 4);
}

}  // namespace
}  // namespace zmr::client
