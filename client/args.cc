#include "client/args.h"

#include <charconv>
#include <limits>
#include <optional>
#include <system_error>
#include <utility>

#include "common/logging.h"

namespace zmr::client {

namespace {

constexpr unsigned Bit(Command c) { return 1u << static_cast<unsigned>(c); }
constexpr unsigned kGlobal = ~0u;

struct FlagSpec {
  std::string_view name;
  bool takes_value;
  bool multi;         // takes every following non-flag token (--input a b c)
  unsigned commands;  // where it is allowed
};

constexpr FlagSpec kFlags[] = {
    {"--coordinator", true, false, kGlobal},
    {"--timeout-ms", true, false, kGlobal},
    {"--log-level", true, false, kGlobal},
    {"--help", false, false, kGlobal},
    {"--version", false, false, kGlobal},
    {"--input", true, true, Bit(Command::kSubmit)},
    {"--output", true, false, Bit(Command::kSubmit)},
    {"--app", true, false, Bit(Command::kSubmit)},
    {"--param", true, false, Bit(Command::kSubmit)},
    {"--maps", true, false, Bit(Command::kSubmit)},
    {"--reduces", true, false, Bit(Command::kSubmit)},
    {"--name", true, false, Bit(Command::kSubmit)},
    {"--wait", false, false, Bit(Command::kSubmit)},
    {"--plugin", true, false, Bit(Command::kSubmit)},
    {"--mapper", true, false, Bit(Command::kSubmit)},
    {"--combiner", true, false, Bit(Command::kSubmit)},
    {"--reducer", true, false, Bit(Command::kSubmit)},
    {"--file", true, false, Bit(Command::kSubmit)},
    {"--cmdenv", true, false, Bit(Command::kSubmit)},
    {"--max-attempts", true, false, Bit(Command::kSubmit)},
    {"--priority", true, false, Bit(Command::kSubmit)},
    {"--no-speculation", false, false, Bit(Command::kSubmit)},
    {"--json", false, false,
     Bit(Command::kSubmit) | Bit(Command::kStatus) | Bit(Command::kJobs) | Bit(Command::kTasks) |
         Bit(Command::kWorkers) | Bit(Command::kWatch) | Bit(Command::kCancel) |
         Bit(Command::kLogs)},
    {"--attempt", true, false, Bit(Command::kLogs)},
    {"--no-progress", false, false, Bit(Command::kSubmit) | Bit(Command::kWait)},
    {"--all", false, false, Bit(Command::kJobs)},
};

struct CommandSpec {
  std::string_view name;
  Command command;
  int min_args;
  int max_args;
};

constexpr CommandSpec kCommands[] = {
    {"submit", Command::kSubmit, 0, 0}, {"status", Command::kStatus, 1, 1},
    {"jobs", Command::kJobs, 0, 0},     {"tasks", Command::kTasks, 1, 1},
    {"workers", Command::kWorkers, 0, 0},
    {"watch", Command::kWatch, 0, 1},   {"wait", Command::kWait, 1, 1},
    {"cancel", Command::kCancel, 1, 1}, {"logs", Command::kLogs, 2, 2},
};

bool IsFlagToken(std::string_view arg) {
  return (arg.size() > 2 && arg.substr(0, 2) == "--") || arg == "-h";
}

ParseResult Fail(std::string message) {
  ParseResult r;
  r.error = "zmr: " + std::move(message);
  return r;
}

// Parses a decimal integer in [min, max]; false for anything else (including "", "1x", "abc").
bool ParseInt(std::string_view text, int64_t min, int64_t max, int64_t* out) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  if (value < min || value > max) return false;
  *out = value;
  return true;
}

// Sets (*params)[KEY] = VALUE for a `text` of KEY=VALUE (KEY non-empty; VALUE may be empty or
// hold '='); false, changing nothing, for anything else.
bool AddKeyValue(const std::string& text, Params* params) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  (*params)[text.substr(0, eq)] = text.substr(eq + 1);
  return true;
}

bool IsEndpoint(std::string_view s) {
  auto scheme = s.find("://");
  return scheme != std::string_view::npos && scheme > 0 && scheme + 3 < s.size();
}

struct FlagUse {
  const FlagSpec* spec;
  std::string name;
  std::vector<std::string> values;
};

}  // namespace

ParseResult ParseArgs(const std::vector<std::string>& args, std::string_view env_coordinator) {
  // --help and --version win over everything else on the line.
  for (const std::string& arg : args) {
    if (arg == "--help" || arg == "-h") {
      ParseResult r;
      r.ok = true;
      r.options.command = Command::kHelp;
      return r;
    }
  }
  for (const std::string& arg : args) {
    if (arg == "--version") {
      ParseResult r;
      r.ok = true;
      r.options.command = Command::kVersion;
      return r;
    }
  }

  std::vector<std::string> positional;
  std::vector<FlagUse> flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!IsFlagToken(arg)) {
      positional.push_back(arg);
      continue;
    }
    std::string name = arg;
    std::optional<std::string> inline_value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& f : kFlags) {
      if (f.name == name) spec = &f;
    }
    if (!spec) return Fail("unknown flag " + name + " (see zmr --help)");
    FlagUse use{spec, name, {}};
    if (!spec->takes_value) {
      if (inline_value) return Fail(name + " takes no value");
    } else {
      if (inline_value) {
        use.values.push_back(*inline_value);
      } else if (i + 1 < args.size() && !IsFlagToken(args[i + 1])) {
        use.values.push_back(args[++i]);
      } else {
        return Fail(name + " needs a value");
      }
      while (spec->multi && i + 1 < args.size() && !IsFlagToken(args[i + 1])) {
        use.values.push_back(args[++i]);
      }
    }
    flags.push_back(std::move(use));
  }

  if (positional.empty()) return Fail("missing subcommand (see zmr --help)");
  const CommandSpec* command = nullptr;
  for (const CommandSpec& c : kCommands) {
    if (c.name == positional[0]) command = &c;
  }
  if (!command) return Fail("unknown subcommand '" + positional[0] + "' (see zmr --help)");
  const std::string cmd_name(command->name);
  const int num_args = static_cast<int>(positional.size()) - 1;
  if (num_args < command->min_args) {
    return Fail(cmd_name + (command->min_args == 2 ? " needs JOB and TASK arguments"
                                                   : " needs a JOB argument"));
  }
  if (num_args > command->max_args)
    return Fail("unexpected argument '" + positional[1 + command->max_args] + "' for " + cmd_name);

  ParseResult r;
  Options& o = r.options;
  o.command = command->command;
  if (num_args >= 1) {
    o.job_id = positional[1];
    if (o.job_id.empty()) return Fail(cmd_name + " needs a JOB argument");
  }
  if (num_args == 2) {
    o.task_id = positional[2];
    if (o.task_id.empty()) return Fail(cmd_name + " needs a TASK argument (e.g. m-00000)");
  }
  if (!env_coordinator.empty()) o.coordinator = std::string(env_coordinator);
  bool coordinator_from_flag = false;

  bool have_output = false;
  bool have_app = false;
  for (const FlagUse& use : flags) {
    if ((use.spec->commands & Bit(o.command)) == 0) {
      return Fail(use.name + " is not an option of " + cmd_name + " (see zmr --help)");
    }
    const std::string value = use.values.empty() ? std::string() : use.values.front();
    if (use.name == "--coordinator") {
      o.coordinator = value;
      coordinator_from_flag = true;
    } else if (use.name == "--timeout-ms") {
      int64_t ms = 0;
      if (!ParseInt(value, 1, std::numeric_limits<int>::max(), &ms)) {
        return Fail("--timeout-ms must be a positive integer (milliseconds), got '" + value + "'");
      }
      o.timeout_ms = static_cast<int>(ms);
    } else if (use.name == "--log-level") {
      if (!IsLogLevel(value)) {
        return Fail(
            "--log-level must be one of trace, debug, info, warn, error, critical, off; "
            "got '" +
            value + "'");
      }
      o.log_level = value;
    } else if (use.name == "--input") {
      for (const std::string& path : use.values) {
        if (path.empty()) return Fail("--input needs a non-empty path");
        o.inputs.push_back(path);
      }
    } else if (use.name == "--output") {
      if (value.empty()) return Fail("--output needs a non-empty path");
      o.output = value;
      have_output = true;
    } else if (use.name == "--app") {
      if (value.empty()) return Fail("--app needs a non-empty name");
      o.app = value;
      have_app = true;
    } else if (use.name == "--param") {
      if (!AddKeyValue(value, &o.params)) {
        return Fail("--param must be KEY=VALUE, got '" + value + "'");
      }
    } else if (use.name == "--maps") {
      int64_t n = 0;
      if (!ParseInt(value, 1, std::numeric_limits<int32_t>::max(), &n)) {
        return Fail(use.name + " must be a positive integer, got '" + value + "'");
      }
      o.maps = n;
    } else if (use.name == "--reduces") {
      int64_t n = 0;
      if (!ParseInt(value, 0, std::numeric_limits<int32_t>::max(), &n)) {
        return Fail("--reduces must be a non-negative integer (0: map-only), got '" + value + "'");
      }
      o.reduces = n;
    } else if (use.name == "--max-attempts") {
      int64_t n = 0;
      if (!ParseInt(value, 1, 100, &n)) {
        return Fail("--max-attempts must be an integer from 1 to 100, got '" + value + "'");
      }
      o.max_attempts = n;
    } else if (use.name == "--priority") {
      int64_t n = 0;
      if (!ParseInt(value, -1000000, 1000000, &n)) {
        return Fail("--priority must be an integer from -1000000 to 1000000, got '" + value +
                    "'");
      }
      o.priority = n;
    } else if (use.name == "--no-speculation") {
      o.speculation = false;
    } else if (use.name == "--plugin") {
      if (value.empty()) return Fail("--plugin needs a path to a shared library");
      o.plugin = value;
    } else if (use.name == "--mapper" || use.name == "--combiner" || use.name == "--reducer") {
      if (value.empty()) return Fail(use.name + " needs a command");
      (use.name == "--mapper" ? o.mapper : use.name == "--combiner" ? o.combiner : o.reducer) =
          value;
    } else if (use.name == "--file") {
      if (value.empty()) return Fail("--file needs a path");
      o.files.push_back(value);
    } else if (use.name == "--cmdenv") {
      if (!AddKeyValue(value, &o.cmdenv)) {
        return Fail("--cmdenv must be NAME=VALUE, got '" + value + "'");
      }
    } else if (use.name == "--name") {
      o.name = value;
    } else if (use.name == "--wait") {
      o.wait = true;
    } else if (use.name == "--json") {
      o.json = true;
    } else if (use.name == "--no-progress") {
      o.progress = false;
    } else if (use.name == "--all") {
      o.all = true;
    } else if (use.name == "--attempt") {
      if (!ParseInt(value, 1, std::numeric_limits<int32_t>::max(), &o.attempt)) {
        return Fail("--attempt must be a positive integer, got '" + value + "'");
      }
    }
  }
  if (!IsEndpoint(o.coordinator)) {
    return Fail(std::string(coordinator_from_flag ? "--coordinator" : kCoordinatorEnv) +
                " must be an endpoint like tcp://HOST:PORT, got '" + o.coordinator + "'");
  }
  if (o.command == Command::kSubmit) {
    if (o.inputs.empty()) return Fail("submit needs --input PATH");
    if (!have_output) return Fail("submit needs --output DIR");
    if (!o.mapper.empty()) {
      if (have_app) return Fail("--app cannot be combined with --mapper");
      if (!o.plugin.empty()) return Fail("--plugin cannot be combined with --mapper");
      if (o.reducer.empty() && o.reduces != 0) {
        return Fail("submit --mapper needs --reducer CMD (or --reducer NONE / --reduces 0 for a "
                    "map-only job)");
      }
    } else {
      if (!have_app) return Fail("submit needs --app NAME (or --mapper CMD)");
      if (!o.reducer.empty() || !o.combiner.empty() || !o.cmdenv.empty()) {
        return Fail("--reducer, --combiner and --cmdenv need --mapper");
      }
    }
  }
  r.ok = true;
  return r;
}

std::string UsageText() {
  return "usage: zmr [--coordinator tcp://HOST:PORT] [--timeout-ms N] [--log-level LEVEL] "
         "<subcommand> ...\n"
         "\n"
         "subcommands:\n"
         "  submit --input PATH... --output DIR --app NAME [--param K=V]... [--maps M]\n"
         "         [--reduces R] [--name NAME] [--max-attempts N] [--priority P]\n"
         "         [--no-speculation] [--wait] [--json] [--no-progress] [--plugin LIB.so]\n"
         "  submit --input PATH... --output DIR --mapper CMD [--combiner CMD]\n"
         "         --reducer CMD|NONE [--file PATH]... [--cmdenv NAME=VALUE]... [...]\n"
         "                       submit a job (a built-in app, an app from a plugin library,\n"
         "                       or Hadoop-Streaming commands); prints its id\n"
         "                       (with --wait: waits like `wait`)\n"
         "  status JOB [--json]  show one job\n"
         "  jobs [--all] [--json] list unfinished jobs (--all: finished ones too), oldest first\n"
         "  tasks JOB [--json]   list a job's tasks (* straggler, +backup: speculative attempt)\n"
         "  workers [--json]     list the live workers\n"
         "  watch [JOB] [--json] follow events (of one job until it ends, or all until Ctrl-C)\n"
         "  wait JOB [--no-progress]\n"
         "                       wait until the job ends, with a live display on a terminal\n"
         "                       (--no-progress: plain lines); exit code tells how it ended\n"
         "  cancel JOB [--json]  cancel a job\n"
         "  logs JOB TASK [--attempt N] [--json]\n"
         "                       print an attempt's stderr and the worker's notes about it,\n"
         "                       fetched from its worker (default: the latest attempt)\n"
         "\n"
         "global flags (before or after the subcommand):\n"
         "  --coordinator ADDR   coordinator client endpoint (default: $ZMR_COORDINATOR, else " +
         std::string(kDefaultCoordinator) +
         ")\n"
         "  --timeout-ms N       how long to wait for each reply (default " +
         std::to_string(kDefaultTimeoutMs) +
         ")\n"
         "  --log-level LEVEL    trace, debug, info, warn, error, critical, off (default warn)\n"
         "  --help, --version\n"
         "\n"
         "exit codes: 0 success/COMPLETED, 1 job FAILED, 2 usage error, invalid job or "
         "submission,\n"
         "            3 coordinator unreachable or timed out, 4 job CANCELLED, 130 interrupted;\n"
         "            logs: 1 when the log cannot be fetched (its worker is gone)\n";
}

}  // namespace zmr::client
