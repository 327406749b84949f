// `zmr submit` (client/commands.h): local checks, the files to ship, the submission.
#include "client/commands.h"

#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "apps/registry.h"
#include "client/client.h"
#include "client/views_read.h"
#include "common/inputs.h"
#include "common/protocol.h"

namespace zmr::client {

namespace {

// Reads a file to ship with a job (--file, --plugin): its base name, permission bits and bytes.
bool ReadLocalFile(const std::string& path, SubmitFile* file, std::string* error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    *error = "cannot ship " + path + ": not a readable regular file";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  file->data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) {
    *error = "cannot read " + path;
    return false;
  }
  std::string name = path;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  auto slash = name.rfind('/');
  file->name = slash == std::string::npos ? name : name.substr(slash + 1);
  file->mode = st.st_mode & 0777;
  return true;
}

}  // namespace

int RunSubmit(Session& session) {
  const Options& options = session.options();
  std::ostream& out = session.out();
  std::ostream& err = session.err();
  std::vector<InputFile> files;
  std::string error;
  if (!ExpandInputs(options.inputs, &files, &error)) {
    err << "zmr: " << OneLine(error) << "\n";
    return kExitUsage;
  }
  const std::string output = AbsolutePath(options.output);
  if (!CheckOutputDir(output, &error)) {
    err << "zmr: " << OneLine(error) << "\n";
    return kExitUsage;
  }
  SubmitMsg submit;
  // A built-in app's params computed from the input (sort's split points: sampled here, so the
  // coordinator never reads input data), then the app's checks.
  Params params = options.params;
  if (options.mapper.empty() && options.plugin.empty() &&
      (!PlanAppParams(options.app, files, options.reduces, &params, &error) ||
       !ValidateApp(options.app, params, &error, options.reduces))) {
    err << "zmr: " << OneLine(error) << "\n";
    return kExitUsage;
  }
  for (const std::string& path : options.files) {
    SubmitFile f;
    if (!ReadLocalFile(path, &f, &error)) {
      err << "zmr: " << OneLine(error) << "\n";
      return kExitUsage;
    }
    submit.files.push_back(std::move(f));
  }
  if (!options.plugin.empty()) {
    SubmitFile f;
    if (!ReadLocalFile(options.plugin, &f, &error)) {
      err << "zmr: " << OneLine(error) << "\n";
      return kExitUsage;
    }
    submit.plugin = std::move(f);
  }
  submit.mapper = options.mapper;
  submit.combiner = options.combiner;
  submit.reducer = options.reducer;
  submit.cmdenv = options.cmdenv;
  submit.max_attempts = options.max_attempts;
  submit.priority = options.priority;
  submit.speculation = options.speculation;
  if (int rc = session.Connect(); rc != kExitOk) return rc;

  submit.name = options.name;
  submit.app = options.app;
  for (const InputFile& f : files) submit.inputs.push_back(f.path);
  submit.output = output;
  submit.params = std::move(params);
  submit.maps = options.maps;
  submit.reduces = options.reduces;
  SubmittedReply submitted;
  if (int rc = session.RequestView(submit.ToValue(), msg::kSubmitted, &submitted); rc != kExitOk) {
    return rc;
  }
  const std::string& job_id = submitted.job_id;
  if (job_id.empty()) {
    err << "zmr: coordinator at " << options.coordinator << " accepted the job without an id\n";
    return kExitUnreachable;
  }
  if (options.json) {
    Value doc;
    doc.Set("job_id", job_id);
    doc.Set("maps", submitted.maps);
    doc.Set("reduces", submitted.reduces);
    out << ToJson(doc) << "\n";
  } else {
    out << job_id << "\n";
  }
  out.flush();
  if (!options.wait) return kExitOk;
  return WaitForJob(session, job_id);
}

}  // namespace zmr::client
