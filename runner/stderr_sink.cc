// The stderr sink, and the parse of the reporter lines it reads (ParseReporterLine, declared in
// runner/streaming.h with the rest of the streaming protocol; defined here beside its caller).
#include "runner/stderr_sink.h"

#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <system_error>
#include <utility>

#include "common/posix/io.h"
#include "runner/streaming.h"

namespace zmr {

namespace {

// Ordinary stderr lines are copied to our stderr in batches of up to this many bytes.
constexpr std::size_t kLogBatchBytes = 64 << 10;

constexpr std::string_view kCounterPrefix = "reporter:counter:";
constexpr std::string_view kStatusPrefix = "reporter:status:";

}  // namespace

ReporterLine ParseReporterLine(std::string_view line) {
  ReporterLine r;
  if (line.substr(0, kCounterPrefix.size()) == kCounterPrefix) {
    std::string_view rest = line.substr(kCounterPrefix.size());
    std::size_t first = rest.find(',');
    std::size_t last = rest.rfind(',');
    if (first == std::string_view::npos || first == last) return r;
    std::string_view group = rest.substr(0, first);
    std::string_view name = rest.substr(first + 1, last - first - 1);
    std::string_view amount = rest.substr(last + 1);
    auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
    while (!amount.empty() && blank(amount.front())) amount.remove_prefix(1);
    while (!amount.empty() && blank(amount.back())) amount.remove_suffix(1);
    if (amount.size() > 1 && amount.front() == '+' && amount[1] != '-') amount.remove_prefix(1);
    if (group.empty() || name.empty() || amount.empty()) return r;
    int64_t n = 0;
    auto [end, ec] = std::from_chars(amount.data(), amount.data() + amount.size(), n);
    if (ec != std::errc() || end != amount.data() + amount.size()) return r;
    r.kind = ReporterLine::Kind::kCounter;
    r.group = group;
    r.name = name;
    r.amount = n;
    return r;
  }
  if (line.substr(0, kStatusPrefix.size()) == kStatusPrefix) {
    r.kind = ReporterLine::Kind::kStatus;
    r.status = line.substr(kStatusPrefix.size());
  }
  return r;
}

StderrSink::~StderrSink() { FlushLog(); }

bool StderrSink::Line(std::string_view line) {
  ReporterLine r = ParseReporterLine(line);
  switch (r.kind) {
    case ReporterLine::Kind::kCounter: {
      std::string name;
      name.reserve(r.group.size() + 1 + r.name.size());
      name.append(r.group).append("/").append(r.name);
      int64_t& counter = counters_[name];
      if (__builtin_add_overflow(counter, r.amount, &counter)) {
        counter = r.amount > 0 ? INT64_MAX : INT64_MIN;
      }
      return false;
    }
    case ReporterLine::Kind::kStatus:
      if (set_status_ && r.status != last_status_) {
        last_status_.assign(r.status);
        set_status_(last_status_);
      }
      return false;
    case ReporterLine::Kind::kOther:
      break;
  }
  log_.append(line);
  log_.push_back('\n');
  if (log_.size() >= kLogBatchBytes) FlushLog();
  return true;
}

void StderrSink::FlushLog() {
  WriteAll(STDERR_FILENO, log_);  // best effort
  log_.clear();
}

void StderrSink::TakeCounters(Counters* into) {
  for (const auto& [name, amount] : counters_) {
    int64_t& total = (*into)[name];
    if (__builtin_add_overflow(total, amount, &total)) total = amount > 0 ? INT64_MAX : INT64_MIN;
  }
  counters_.clear();
}

}  // namespace zmr
