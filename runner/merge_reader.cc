// The k-way merge: a priority queue of run indices ordered by their current key, then by run.
#include "runner/merge_reader.h"

#include <queue>
#include <utility>

namespace zmr {

struct MergeReader::Impl {
  struct Head {
    std::string_view key;
    std::string_view value;
  };
  // Orders run indices so the priority queue's top is the smallest key, then the lowest run.
  struct After {
    const std::vector<Head>* heads;
    bool operator()(std::size_t a, std::size_t b) const {
      int c = (*heads)[a].key.compare((*heads)[b].key);
      return c > 0 || (c == 0 && a > b);
    }
  };

  std::vector<std::unique_ptr<RunReader>> runs;
  std::vector<Head> heads;  // current record of each run in the heap (views into its reader)
  std::priority_queue<std::size_t, std::vector<std::size_t>, After> heap;
  bool started = false;
  bool failed = false;
  std::size_t last = SIZE_MAX;  // run whose head was returned last (advanced on the next call)
  std::string error;
  std::size_t failed_run = SIZE_MAX;
  ReadFault fault = ReadFault::kNone;
  int64_t total_bytes = 0;

  explicit Impl(std::vector<std::unique_ptr<RunReader>> r)
      : runs(std::move(r)), heads(runs.size()), heap(After{&heads}) {
    for (const auto& run : runs) total_bytes += run ? run->size() : 0;
  }

  // Advances run i and pushes it back if it has a record. False on a run error.
  bool Advance(std::size_t i) {
    if (!runs[i]) return true;
    Head& h = heads[i];
    if (runs[i]->Next(&h.key, &h.value)) {
      heap.push(i);
      return true;
    }
    if (!runs[i]->error().empty()) {
      error = runs[i]->error();
      failed_run = i;
      fault = runs[i]->fault();
      failed = true;
      return false;
    }
    return true;
  }
};

MergeReader::MergeReader(std::vector<std::unique_ptr<RunReader>> runs)
    : impl_(std::make_unique<Impl>(std::move(runs))) {}
MergeReader::~MergeReader() = default;

bool MergeReader::Next(std::string_view* key, std::string_view* value) {
  Impl& m = *impl_;
  if (m.failed) return false;
  if (!m.started) {
    m.started = true;
    for (std::size_t i = 0; i < m.runs.size(); ++i) {
      if (!m.Advance(i)) return false;
    }
  } else if (m.last != SIZE_MAX) {
    std::size_t i = m.last;
    m.last = SIZE_MAX;
    if (!m.Advance(i)) return false;
  }
  if (m.heap.empty()) return false;
  std::size_t top = m.heap.top();
  m.heap.pop();
  m.last = top;
  *key = m.heads[top].key;
  *value = m.heads[top].value;
  return true;
}

const std::string& MergeReader::error() const { return impl_->error; }
std::size_t MergeReader::failed_run() const { return impl_->failed_run; }
ReadFault MergeReader::fault() const { return impl_->fault; }

int64_t MergeReader::bytes_read() const {
  int64_t sum = 0;
  for (const auto& run : impl_->runs) sum += run ? run->bytes_read() : 0;
  return sum;
}

int64_t MergeReader::total_bytes() const { return impl_->total_bytes; }

}  // namespace zmr
