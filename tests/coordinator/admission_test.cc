// Submit admission (coordinator/admission.h) against real files in a temporary directory.
#include "coordinator/admission.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>

namespace zmr {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

// A wordcount submission of two files (10 and 20 bytes) writing to OUT.
struct Fixture {
  TempDir dir;
  SubmitMsg submit;
  std::set<std::string> in_use;
  std::string error;

  Fixture() {
    submit.name = "count";
    submit.app = "wordcount";
    submit.inputs = {dir.Write("in/a", "one two\nx\n"), dir.Write("in/b", "three four five\nsix\n")};
    submit.output = dir.Path("out");
    submit.reduces = 2;
  }

  std::optional<Admission> Admit() { return AdmitSubmission(submit, in_use, &error); }

  // The refusal's message; the submission must be refused and nothing created.
  std::string Refused() {
    std::optional<Admission> admitted = Admit();
    CHECK_FALSE(admitted.has_value());
    CHECK_FALSE(fs::exists(dir.Path("out")));
    return error;
  }
};

TEST_CASE("a valid submission becomes a job spec with its splits planned and nothing created") {
  Fixture f;
  f.submit.maps = 3;
  f.submit.priority = 7;
  f.submit.max_attempts = 2;
  f.submit.speculation = false;
  std::optional<Admission> a = f.Admit();
  REQUIRE_MESSAGE(a, f.error);
  CHECK(a->maps == 3);
  CHECK(a->spec.splits.size() == 3);
  int64_t planned = 0;
  for (const Split& split : a->spec.splits) {
    for (const FileRange& r : split) planned += r.end - r.start;
  }
  CHECK(planned == 30);
  CHECK(a->spec.input_files == 2);
  CHECK(a->spec.input_bytes == 30);
  CHECK(a->spec.output_dir == f.dir.Path("out"));
  CHECK(a->spec.num_reduces == 2);
  CHECK(a->spec.priority == 7);
  CHECK(a->spec.max_attempts == 2);
  CHECK_FALSE(a->spec.speculation);
  CHECK(a->spec.name == "count");
  CHECK(a->spec.code == JobCode{});
  CHECK_FALSE(fs::exists(f.dir.Path("out")));
}

TEST_CASE("without a map count a small input gets one map") {
  Fixture f;
  std::optional<Admission> a = f.Admit();
  REQUIRE_MESSAGE(a, f.error);
  CHECK(a->maps == 1);
  CHECK(a->spec.splits.size() == 1);
}

TEST_CASE("inputs must be absolute paths of existing files") {
  Fixture f;
  f.submit.inputs.clear();
  CHECK(f.Refused() == "no input files");
  f.submit.inputs = {"relative/a"};
  CHECK(f.Refused() == "input path is not absolute: relative/a");
  f.submit.inputs = {f.dir.Path("in/missing")};
  CHECK(f.Refused().find("in/missing") != std::string::npos);
}

TEST_CASE("the output must be absolute, unused by a running job, and empty if it exists") {
  Fixture f;
  f.submit.output = "out";
  CHECK(f.Refused() == "output path is not absolute: out");
  f.submit.output = f.dir.Path("out");
  f.in_use.insert(f.dir.Path("out"));
  CHECK(f.Refused() == "output is in use by a running job: " + f.dir.Path("out"));
  f.in_use.clear();
  f.submit.output = f.dir.Path("out") + "/../out/";  // the same dir, spelled otherwise
  f.in_use.insert(f.dir.Path("out"));
  CHECK(f.Refused().rfind("output is in use", 0) == 0);
  f.in_use.clear();
  f.dir.Write("out/part-00000", "old");
  std::optional<Admission> a = f.Admit();
  CHECK_FALSE(a.has_value());
  CHECK(f.error.find("out") != std::string::npos);
}

TEST_CASE("an unknown app or invalid params are refused by the app's own check") {
  Fixture f;
  f.submit.app = "nosuchapp";
  CHECK(f.Refused().find("nosuchapp") != std::string::npos);
  f.submit.app = "";
  CHECK(f.Refused().rfind("no app:", 0) == 0);
  f.submit.app = "grep";
  f.submit.params = {{"pattern", "("}};
  CHECK_FALSE(f.Refused().empty());
}

TEST_CASE("limits on maps, reduces, attempts and priority are enforced") {
  Fixture f;
  f.submit.maps = kMaxMaps + 1;
  CHECK(f.Refused().rfind("maps must be", 0) == 0);
  f.submit.maps = -1;
  CHECK(f.Refused().rfind("maps must be", 0) == 0);
  f.submit.maps = 0;
  f.submit.reduces = kMaxReduces + 1;
  CHECK(f.Refused().rfind("reduces must be", 0) == 0);
  f.submit.reduces = 1;
  f.submit.max_attempts = 0;
  CHECK(f.Refused() == "max attempts must be between 1 and 100");
  f.submit.max_attempts = 4;
  f.submit.priority = kMaxPriority + 1;
  CHECK(f.Refused() == "priority must be between -1000000 and 1000000");
}

TEST_CASE("a streaming job needs a reducer unless map-only, and no app or plugin") {
  Fixture f;
  f.submit.app = "";
  f.submit.mapper = "cat";
  CHECK(f.Refused().rfind("--reducer is required", 0) == 0);
  f.submit.reducer = "NONE";
  std::optional<Admission> map_only = f.Admit();
  REQUIRE_MESSAGE(map_only, f.error);
  CHECK(map_only->spec.num_reduces == 0);
  CHECK(map_only->spec.code.mapper == "cat");
  CHECK(map_only->spec.code.reducer.empty());
  f.submit.reducer = "wc -l";
  f.submit.cmdenv = {{"LC_ALL", "C"}};
  std::optional<Admission> full = f.Admit();
  REQUIRE_MESSAGE(full, f.error);
  CHECK(full->spec.code.reducer == "wc -l");
  CHECK(full->spec.code.cmdenv.at("LC_ALL") == "C");
  f.submit.app = "wordcount";
  CHECK(f.Refused() == "--app cannot be combined with --mapper");
  Fixture g;
  g.submit.combiner = "uniq";
  CHECK(g.Refused() == "--reducer, --combiner and --cmdenv need --mapper");
}

TEST_CASE("shipped files and a plugin travel as blobs by sha256 under distinct names") {
  Fixture f;
  f.submit.app = "myapp";
  f.submit.plugin = SubmitFile{"libmy.so", 0755, "\x7f" "ELF\x02\x01"s};
  f.submit.files = {{"dict.txt", 0644, "words"}, {"run.sh", 0777, "#!/bin/sh\n"}};
  std::optional<Admission> a = f.Admit();
  REQUIRE_MESSAGE(a, f.error);
  const JobCode& code = a->spec.code;
  REQUIRE(code.files.size() == 3);
  CHECK(code.files[0].name == "libmy.so");
  CHECK(code.plugin == code.files[0].sha256);
  CHECK(code.files[2].mode == 0777);
  CHECK(a->spec.blobs.size() == 3);
  CHECK(a->spec.blobs.at(code.files[1].sha256) == "words");

  f.submit.files.push_back({"dict.txt", 0644, "again"});
  CHECK(f.Refused() == "two shipped files are named dict.txt");
  f.submit.files.clear();
  f.submit.plugin->data = "not a library";
  CHECK(f.Refused() == "plugin libmy.so is not a shared library (no ELF header)");
  f.submit.plugin.reset();
  f.submit.files = {{"big", 0644, std::string(kMaxShippedBytes + 1, 'x')}};
  f.submit.app = "wordcount";
  CHECK(f.Refused().rfind("shipped files total", 0) == 0);
}

}  // namespace
}  // namespace zmr
