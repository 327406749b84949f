#include "coordinator/admission.h"

#include <set>
#include <vector>

#include "apps/registry.h"
#include "common/inputs.h"
#include "common/sha256.h"
#include "common/splits.h"

namespace zmr {

namespace {

bool Refuse(std::string message, std::string* error) {
  *error = std::move(message);
  return false;
}

// What runs: a built-in app, a shipped plugin, or streaming commands. Fills spec.code, spec.blobs
// and spec.num_reduces (a streaming job with reducer NONE is map-only).
bool AdmitCode(const SubmitMsg& submit, JobSpec* spec, std::string* error) {
  JobCode& code = spec->code;
  spec->num_reduces = submit.reduces;
  if (!submit.mapper.empty()) {
    if (submit.plugin) return Refuse("--mapper and --plugin cannot be combined", error);
    if (!submit.app.empty()) return Refuse("--app cannot be combined with --mapper", error);
    code.mapper = submit.mapper;
    code.combiner = submit.combiner;
    if (submit.reducer == "NONE") {
      spec->num_reduces = 0;
    } else if (spec->num_reduces > 0) {
      if (submit.reducer.empty()) {
        return Refuse("--reducer is required with --mapper (--reducer NONE or --reduces 0 for a "
                      "map-only job)",
                      error);
      }
      code.reducer = submit.reducer;
    }
    code.cmdenv = submit.cmdenv;
    return true;
  }
  if (!submit.reducer.empty() || !submit.combiner.empty() || !submit.cmdenv.empty()) {
    return Refuse("--reducer, --combiner and --cmdenv need --mapper", error);
  }
  if (submit.app.empty()) {
    return Refuse("no app: give --app NAME (with --plugin for your own) or --mapper CMD", error);
  }
  if (!submit.plugin) return ValidateApp(submit.app, submit.params, error, spec->num_reduces);
  const SubmitFile& plugin = *submit.plugin;
  if (plugin.data.size() < 4 || plugin.data.compare(0, 4, "\x7f" "ELF") != 0) {
    return Refuse("plugin " + plugin.name + " is not a shared library (no ELF header)", error);
  }
  code.plugin = Sha256Hex(plugin.data);
  spec->blobs[code.plugin] = plugin.data;
  // Also placed in the attempt's directory under its own name, so errors name it.
  code.files.push_back({plugin.name, code.plugin, plugin.mode & 0777});
  return true;
}

// The files shipped with --file, after the plugin AdmitCode placed: distinct names, and all of
// them (the plugin included) within kMaxShippedBytes.
bool AdmitFiles(const SubmitMsg& submit, JobSpec* spec, std::string* error) {
  std::set<std::string> names;
  for (const FileRef& f : spec->code.files) names.insert(f.name);
  int64_t shipped_bytes = submit.plugin ? static_cast<int64_t>(submit.plugin->data.size()) : 0;
  for (const SubmitFile& f : submit.files) {
    if (!names.insert(f.name).second) return Refuse("two shipped files are named " + f.name, error);
    FileRef ref{f.name, Sha256Hex(f.data), f.mode & 0777};
    spec->blobs[ref.sha256] = f.data;
    spec->code.files.push_back(std::move(ref));
    shipped_bytes += static_cast<int64_t>(f.data.size());
  }
  if (shipped_bytes > kMaxShippedBytes) {
    return Refuse("shipped files total " + std::to_string(shipped_bytes) +
                      " bytes, more than the limit of " + std::to_string(kMaxShippedBytes),
                  error);
  }
  return true;
}

bool AdmitLimits(const SubmitMsg& submit, int64_t reduces, std::string* error) {
  if (submit.maps < 0 || submit.maps > kMaxMaps) {
    return Refuse("maps must be between 1 and " + std::to_string(kMaxMaps), error);
  }
  if (reduces < 0 || reduces > kMaxReduces) {
    return Refuse("reduces must be between 0 and " + std::to_string(kMaxReduces), error);
  }
  if (submit.max_attempts < 1 || submit.max_attempts > kMaxAttemptsLimit) {
    return Refuse("max attempts must be between 1 and " + std::to_string(kMaxAttemptsLimit),
                  error);
  }
  if (submit.priority < -kMaxPriority || submit.priority > kMaxPriority) {
    return Refuse("priority must be between -" + std::to_string(kMaxPriority) + " and " +
                      std::to_string(kMaxPriority),
                  error);
  }
  return true;
}

// The inputs (absolute paths of readable regular files) and the output (absolute, free, and
// usable as an output dir). Fills spec.output_dir and *files.
bool AdmitPaths(const SubmitMsg& submit, const std::set<std::string>& outputs_in_use,
                JobSpec* spec, std::vector<InputFile>* files, std::string* error) {
  if (submit.inputs.empty()) return Refuse("no input files", error);
  for (const std::string& path : submit.inputs) {
    if (path.empty() || path[0] != '/') return Refuse("input path is not absolute: " + path, error);
  }
  if (submit.output.empty() || submit.output[0] != '/') {
    return Refuse("output path is not absolute: " + submit.output, error);
  }
  spec->output_dir = AbsolutePath(submit.output);
  if (outputs_in_use.count(spec->output_dir) != 0) {
    return Refuse("output is in use by a running job: " + spec->output_dir, error);
  }
  return StatInputs(submit.inputs, files, error) && CheckOutputDir(spec->output_dir, error);
}

}  // namespace

std::optional<Admission> AdmitSubmission(const SubmitMsg& submit,
                                         const std::set<std::string>& outputs_in_use,
                                         std::string* error) {
  Admission admitted;
  JobSpec& spec = admitted.spec;
  std::vector<InputFile> files;
  if (!AdmitCode(submit, &spec, error) || !AdmitFiles(submit, &spec, error) ||
      !AdmitLimits(submit, spec.num_reduces, error) ||
      !AdmitPaths(submit, outputs_in_use, &spec, &files, error)) {
    return std::nullopt;
  }
  spec.name = submit.name;
  spec.app = submit.app;
  spec.params = submit.params;
  spec.max_attempts = submit.max_attempts;
  spec.priority = submit.priority;
  spec.speculation = submit.speculation;
  spec.input_files = static_cast<int64_t>(files.size());
  for (const InputFile& f : files) spec.input_bytes += f.size;
  admitted.maps = submit.maps > 0 ? submit.maps : DefaultMapCount(spec.input_bytes);
  spec.splits = PlanSplits(files, static_cast<int>(admitted.maps));
  return admitted;
}

}  // namespace zmr
