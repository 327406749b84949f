#include "worker/resources.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/posix/fd.h"
#include "common/posix/io.h"

namespace zmr {

namespace {

// Reads up to cap - 1 bytes of a small file (a /proc entry) into buf and NUL-terminates it.
// Returns the length, or -1 if the file cannot be opened or read (a process that vanished).
ssize_t ReadSmallFile(const char* path, char* buf, std::size_t cap) {
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return -1;
  int err = 0;
  const ssize_t len = ReadFull(fd.get(), buf, cap - 1, &err);
  if (len < 0) return -1;
  buf[len] = '\0';
  return len;
}

// Parses the space-separated unsigned field after *p, advancing *p. False if there is none.
bool NextField(const char** p, unsigned long long* value) {
  char* end = nullptr;
  errno = 0;
  *value = std::strtoull(*p, &end, 10);
  if (end == *p || errno != 0) return false;
  *p = end;
  return true;
}

// Skips one space-separated field (any text) after *p.
bool SkipField(const char** p) {
  const char* s = *p;
  while (*s == ' ') ++s;
  if (*s == '\0') return false;
  while (*s != ' ' && *s != '\0') ++s;
  *p = s;
  return true;
}

// Parses /proc/PID/stat text. The comm field (2) is in parentheses and may itself contain spaces
// and parentheses, so fields are counted from the LAST ')'. Fields (1-based, proc(5)): 4 ppid,
// 14 utime, 15 stime, 16 cutime, 17 cstime, 24 rss (pages).
bool ParseStat(const char* text, pid_t* ppid, uint64_t* cpu_ticks, int64_t* rss_pages) {
  const char* close = std::strrchr(text, ')');
  if (close == nullptr) return false;
  const char* p = close + 1;
  unsigned long long value = 0;
  for (int field = 3; field <= 24; ++field) {
    bool wanted = field == 4 || (field >= 14 && field <= 17) || field == 24;
    if (!wanted) {
      if (!SkipField(&p)) return false;
      continue;
    }
    if (!NextField(&p, &value)) return false;
    if (field == 4) {
      *ppid = static_cast<pid_t>(value);
    } else if (field == 14) {
      *cpu_ticks = value;
    } else if (field <= 17) {
      *cpu_ticks += value;
    } else {
      *rss_pages = static_cast<int64_t>(value);
    }
  }
  return true;
}

}  // namespace

ResourceSampler::ResourceSampler(std::string work_dir)
    : work_dir_(std::move(work_dir)),
      root_(::getpid()),
      ticks_per_second_(std::max(1L, ::sysconf(_SC_CLK_TCK))),
      page_kb_(std::max(1L, ::sysconf(_SC_PAGESIZE) / 1024)) {}

bool ResourceSampler::SampleTree(uint64_t* cpu_ticks, int64_t* rss_pages) {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return false;
  procs_.clear();
  char path[64];
  char buf[1024];
  while (dirent* entry = ::readdir(proc)) {
    const char* name = entry->d_name;
    if (name[0] < '1' || name[0] > '9') continue;
    char* end = nullptr;
    long pid = std::strtol(name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    // A process that exits between readdir and here is normal: skip it.
    if (ReadSmallFile(path, buf, sizeof(buf)) <= 0) continue;
    Proc p{static_cast<pid_t>(pid), 0, 0, 0};
    if (!ParseStat(buf, &p.ppid, &p.cpu_ticks, &p.rss_pages)) continue;
    procs_.push_back(p);
  }
  ::closedir(proc);

  // Walk the tree from the root over a by-parent ordering.
  std::sort(procs_.begin(), procs_.end(),
            [](const Proc& a, const Proc& b) { return a.ppid < b.ppid; });
  auto by_parent = [](const Proc& p, pid_t ppid) { return p.ppid < ppid; };
  bool root_found = false;
  for (const Proc& p : procs_) {
    if (p.pid == root_) {
      *cpu_ticks = p.cpu_ticks;
      *rss_pages = p.rss_pages;
      root_found = true;
      break;
    }
  }
  if (!root_found) return false;
  stack_.clear();
  stack_.push_back(root_);
  // The scan is not a snapshot: with a pid reused mid-scan the parent links could in theory form
  // a cycle, so the walk stops after as many steps as there are processes.
  std::size_t visits = 0;
  while (!stack_.empty()) {
    pid_t parent = stack_.back();
    stack_.pop_back();
    for (auto it = std::lower_bound(procs_.begin(), procs_.end(), parent, by_parent);
         it != procs_.end() && it->ppid == parent; ++it) {
      if (++visits > procs_.size()) return true;
      *cpu_ticks += it->cpu_ticks;
      *rss_pages += it->rss_pages;
      stack_.push_back(it->pid);
    }
  }
  return true;
}

bool ResourceSampler::ReadHostTicks(uint64_t* busy, uint64_t* total) {
  char buf[512];  // only the first line ("cpu  user nice system idle iowait irq softirq steal")
  if (ReadSmallFile("/proc/stat", buf, sizeof(buf)) <= 0) return false;
  if (std::strncmp(buf, "cpu ", 4) != 0) return false;
  const char* p = buf + 4;
  unsigned long long v[8] = {0};
  for (int i = 0; i < 8; ++i) {
    // Old kernels have fewer columns; missing ones stay 0.
    if (!NextField(&p, &v[i])) break;
  }
  // guest and guest_nice (columns 9, 10) are already included in user and nice.
  uint64_t sum = 0;
  for (unsigned long long x : v) sum += x;
  uint64_t idle = v[3] + v[4];
  *total = sum;
  *busy = sum >= idle ? sum - idle : 0;
  return sum > 0;
}

double ResourceSampler::ReadLoad1() {
  char buf[128];
  if (ReadSmallFile("/proc/loadavg", buf, sizeof(buf)) <= 0) return -1;
  char* end = nullptr;
  double load = std::strtod(buf, &end);
  if (end == buf || load < 0) return -1;
  return load;
}

ResourceSample ResourceSampler::Sample(int64_t steady_now_ms) {
  ResourceSample s;

  uint64_t ticks = 0;
  int64_t rss_pages = 0;
  if (SampleTree(&ticks, &rss_pages)) {
    s.rss_kb = rss_pages * page_kb_;
    if (have_tree_) {
      ticks = std::max(ticks, tree_ticks_);  // see the header: absorbs scan races
      int64_t elapsed_ms = steady_now_ms - tree_ms_;
      if (elapsed_ms > 0) {
        double used_s = static_cast<double>(ticks - tree_ticks_) / ticks_per_second_;
        s.cpu = used_s * 1000.0 / static_cast<double>(elapsed_ms);
      }
    }
    s.tree_cpu_seconds = static_cast<double>(ticks) / ticks_per_second_;
    have_tree_ = true;
    tree_ticks_ = ticks;
    tree_ms_ = steady_now_ms;
  }

  uint64_t busy = 0, total = 0;
  if (ReadHostTicks(&busy, &total)) {
    if (have_host_ && total > host_total_) {
      uint64_t d_busy = busy > host_busy_ ? busy - host_busy_ : 0;
      s.host_cpu = std::clamp(static_cast<double>(d_busy) / (total - host_total_), 0.0, 1.0);
    }
    have_host_ = true;
    host_busy_ = busy;
    host_total_ = total;
  } else {
    have_host_ = false;
  }

  long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (cores > 0) s.cores = cores;
  s.load1 = ReadLoad1();

  struct statvfs fs_info;
  if (::statvfs(work_dir_.c_str(), &fs_info) == 0) {
    uint64_t unit = fs_info.f_frsize != 0 ? fs_info.f_frsize : fs_info.f_bsize;
    s.disk_free_bytes = static_cast<int64_t>(static_cast<uint64_t>(fs_info.f_bavail) * unit);
  }
  return s;
}

}  // namespace zmr
