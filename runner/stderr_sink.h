// Where the stderr lines of a streaming App's commands (runner/streaming.h) go: user counters
// (`reporter:counter:`), the attempt's status (`reporter:status:`) and, for every other line, this
// process's stderr (the attempt log). One sink belongs to one StreamingApp and is fed by its
// commands' ChildProcess (runner/streaming_process.h), all on the attempt's thread.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "common/app.h"

namespace zmr {

class StderrSink {
 public:
  ~StderrSink();  // writes out the log lines not yet written

  // Called with each new status (only when it changes). May be empty.
  void set_status_callback(std::function<void(const std::string&)> f) {
    set_status_ = std::move(f);
  }

  // Handles one line (without its "\n"); returns true if it is an ordinary line (not a reporter
  // line). Ordinary lines are batched: FlushLog writes them out.
  bool Line(std::string_view line);

  // Writes the batched ordinary lines to our stderr (best effort).
  void FlushLog();

  // Adds the counters gathered so far to *into (saturating at the int64 limits) and forgets them.
  void TakeCounters(Counters* into);

 private:
  Counters counters_;
  std::function<void(const std::string&)> set_status_;
  std::string last_status_;  // set_status_ is called only when the status changes
  std::string log_;          // ordinary lines not yet written to our stderr
};

}  // namespace zmr
