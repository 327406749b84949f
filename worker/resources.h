// Samples the load figures a worker reports in its heartbeats (HeartbeatMsg in common/protocol.h):
// CPU and resident memory of the worker's process tree (the worker, its zmr-task children and
// everything they started), the host's CPU busy fraction, online CPUs, 1-minute load average and
// the free space of the work dir. Reads /proc and statvfs directly: no child processes, and the
// buffers of one sample are reused by the next.
//
// Threads: a ResourceSampler is used by one thread at a time (the worker's loop calls Sample once
// per heartbeat). Separate samplers are independent.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace zmr {

// One sample. Every figure has an "unknown" value (the HeartbeatMsg defaults) used when it cannot
// be read, and for the rate figures on the first sample.
struct ResourceSample {
  // CPU used by the process tree since the previous sample, in cores (1.0 = one core busy for the
  // whole interval). -1 on the first sample, when no time passed, or when /proc is unreadable.
  double cpu = -1;
  // Busy fraction of all host CPUs since the previous sample, 0..1 (busy = total - idle - iowait
  // in /proc/stat). -1 on the first sample or when /proc/stat did not advance or is unreadable.
  double host_cpu = -1;
  int64_t cores = 0;              // online CPUs (0: unknown)
  double load1 = -1;              // 1-minute load average (/proc/loadavg)
  int64_t rss_kb = -1;            // resident memory summed over the process tree
  int64_t disk_free_bytes = -1;   // bytes available to unprivileged users in the work dir
  // Total CPU time (user + system, including reaped children) of the process tree, in seconds;
  // never decreases from one sample to the next. -1 when /proc is unreadable.
  double tree_cpu_seconds = -1;
};

class ResourceSampler {
 public:
  // Samples the process tree rooted at this process (getpid()) and the file system holding
  // `work_dir` (which need not exist yet: disk_free_bytes is then unknown).
  explicit ResourceSampler(std::string work_dir);
  ResourceSampler(const ResourceSampler&) = delete;
  ResourceSampler& operator=(const ResourceSampler&) = delete;

  // Takes a sample. `steady_now_ms` is a monotonic clock reading (SteadyMs()); the rate figures
  // (cpu) are per interval between consecutive calls, so readings must not decrease. The first
  // call has no previous sample and reports cpu and host_cpu as unknown; call it once early (say,
  // at start-up) so that later samples have a baseline.
  //
  // The process-tree CPU total is the sum of utime + stime + cutime + cstime over the live tree
  // (a reaped child's time moves into its parent's cutime/cstime, so the sum only grows). A scan
  // racing with a reap can see a child's time twice or not at all; the total reported is therefore
  // the highest seen so far, so an overshoot is absorbed by the following samples.
  ResourceSample Sample(int64_t steady_now_ms);

 private:
  // One process seen in a /proc scan.
  struct Proc {
    pid_t pid;
    pid_t ppid;
    uint64_t cpu_ticks;  // utime + stime + cutime + cstime
    int64_t rss_pages;
  };

  // Scans /proc into procs_ and sums the tree rooted at root_. False if /proc is unreadable or
  // the root is not found.
  bool SampleTree(uint64_t* cpu_ticks, int64_t* rss_pages);
  // Busy and total jiffies of all CPUs from /proc/stat's "cpu" line.
  static bool ReadHostTicks(uint64_t* busy, uint64_t* total);
  static double ReadLoad1();

  const std::string work_dir_;
  const pid_t root_;
  const long ticks_per_second_;
  const int64_t page_kb_;

  std::vector<Proc> procs_;   // reused by every scan
  std::vector<pid_t> stack_;  // reused by the tree walk

  bool have_tree_ = false;        // previous tree figures are valid
  uint64_t tree_ticks_ = 0;       // highest tree total seen
  int64_t tree_ms_ = 0;           // when tree_ticks_ was sampled
  bool have_host_ = false;        // previous host figures are valid
  uint64_t host_busy_ = 0;
  uint64_t host_total_ = 0;
};

}  // namespace zmr
