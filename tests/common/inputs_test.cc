#include "common/inputs.h"
#include "tests/support/temp_dir.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace zmr {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed with everything in it when the guard goes
// out of scope (also when an assertion fails and the test case unwinds).
class InputTree {
 public:
  ~InputTree() {
    // Some tests take the owner's permissions away; give them back so the tree can be removed.
    std::error_code ec;
    fs::permissions(dir_.path(), fs::perms::owner_all, fs::perm_options::add, ec);
  }

  // Creates the file `relative` (and its parent directories) holding `content`; returns its path.
  std::string Write(const std::string& relative, const std::string& content) const {
    const fs::path file = dir_ / relative;
    fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    REQUIRE(out.good());
    return file.string();
  }

  std::string Mkdir(const std::string& relative) const {
    fs::create_directories(dir_ / relative);
    return (dir_ / relative).string();
  }

  std::string Path(const std::string& relative) const { return dir_.Path(relative); }
  std::string path() const { return dir_.path().string(); }

 private:
  TempDir dir_{"inputs-test"};
};

std::vector<std::string> Paths(const std::vector<InputFile>& files) {
  std::vector<std::string> paths;
  for (const InputFile& f : files) paths.push_back(f.path);
  return paths;
}

TEST_CASE("a directory contributes its files recursively, skipping names starting with . or _") {
  InputTree dir;
  const std::string a = dir.Write("in/a.txt", "hello\n");
  const std::string b = dir.Write("in/sub/b.txt", "xy");
  const std::string c = dir.Write("in/sub/deeper/c", "");
  dir.Write("in/.hidden", "no");
  dir.Write("in/_SUCCESS", "");
  dir.Write("in/_temporary/part-0", "no");
  dir.Write("in/.git/config", "no");
  dir.Write("in/sub/_logs/x", "no");
  dir.Mkdir("in/empty");

  std::vector<InputFile> files;
  std::string error;
  REQUIRE_MESSAGE(ExpandInputs({dir.Path("in")}, &files, &error), error);
  CHECK(files == std::vector<InputFile>{{a, 6}, {b, 2}, {c, 0}});
}

TEST_CASE("a hidden file named explicitly is taken") {
  InputTree dir;
  const std::string hidden = dir.Write(".secret", "abc");
  const std::string underscored = dir.Write("_part", "d");
  std::vector<InputFile> files;
  std::string error;
  REQUIRE_MESSAGE(ExpandInputs({hidden, underscored}, &files, &error), error);
  CHECK(files == std::vector<InputFile>{{hidden, 3}, {underscored, 1}});
}

TEST_CASE("a directory given explicitly is walked even if its own name starts with _") {
  InputTree dir;
  const std::string f = dir.Write("_in/f", "1");
  std::vector<InputFile> files;
  std::string error;
  REQUIRE_MESSAGE(ExpandInputs({dir.Path("_in")}, &files, &error), error);
  CHECK(Paths(files) == std::vector<std::string>{f});
}

TEST_CASE("results are absolute, sorted bytewise and de-duplicated") {
  InputTree dir;
  const std::string upper = dir.Write("d/Z", "z");
  const std::string lower = dir.Write("d/a", "a");
  const std::string dash = dir.Write("d/a-b", "ab");
  // The same files named again: by a relative path, a path with "..", and a trailing slash.
  const std::string relative = fs::relative(dir.Path("d/a"), fs::current_path()).string();
  REQUIRE(relative.front() != '/');
  std::vector<InputFile> files;
  std::string error;
  REQUIRE_MESSAGE(ExpandInputs({dir.Path("d") + "/", relative, dir.Path("d/../d/Z")}, &files,
                               &error),
                  error);
  CHECK(Paths(files) == std::vector<std::string>{upper, lower, dash});
  for (const InputFile& f : files) CHECK(f.path.front() == '/');
}

TEST_CASE("a glob expands to its matches, each expanded like a path") {
  InputTree dir;
  const std::string one = dir.Write("data/1.txt", "one\n");
  const std::string two = dir.Write("data/2.txt", "two\n");
  dir.Write("data/3.csv", "no\n");
  const std::string nested = dir.Write("data/more.txt/inner", "in\n");
  dir.Write("data/_hidden.txt", "no\n");
  std::vector<InputFile> files;
  std::string error;
  REQUIRE_MESSAGE(ExpandInputs({dir.Path("data/*.txt")}, &files, &error), error);
  CHECK(Paths(files) == std::vector<std::string>{one, two, nested});

  REQUIRE_MESSAGE(ExpandInputs({dir.Path("data/[12].tx?")}, &files, &error), error);
  CHECK(Paths(files) == std::vector<std::string>{one, two});
}

TEST_CASE("a glob whose last component starts with _ may match hidden names") {
  InputTree dir;
  const std::string hidden = dir.Write("data/_part1", "x");
  std::vector<InputFile> files;
  std::string error;
  REQUIRE_MESSAGE(ExpandInputs({dir.Path("data/_part*")}, &files, &error), error);
  CHECK(Paths(files) == std::vector<std::string>{hidden});
}

TEST_CASE("a glob matching nothing is an error naming the spec") {
  InputTree dir;
  dir.Write("data/1.csv", "x");
  const std::string spec = dir.Path("data/*.txt");
  std::vector<InputFile> files;
  std::string error;
  CHECK_FALSE(ExpandInputs({dir.Path("data"), spec}, &files, &error));
  CHECK(error == "no input files matched: " + spec);
}

TEST_CASE("a glob matching only hidden names is an error") {
  InputTree dir;
  dir.Write("data/_SUCCESS", "");
  const std::string spec = dir.Path("data/*");
  std::vector<InputFile> files;
  std::string error;
  CHECK_FALSE(ExpandInputs({spec}, &files, &error));
  CHECK(error == "no input files matched: " + spec);
}

TEST_CASE("a missing path is an error naming the spec") {
  InputTree dir;
  const std::string spec = dir.Path("nope/x.txt");
  std::vector<InputFile> files;
  std::string error;
  CHECK_FALSE(ExpandInputs({spec}, &files, &error));
  CHECK(error == "input not found: " + spec);
}

TEST_CASE("a dangling symlink is reported as not found") {
  InputTree dir;
  const std::string link = dir.Path("link");
  fs::create_symlink(dir.Path("target"), link);
  std::vector<InputFile> files;
  std::string error;
  CHECK_FALSE(ExpandInputs({link}, &files, &error));
  CHECK(error == "input not found: " + link);
}

TEST_CASE("a FIFO is rejected as not a regular file without blocking") {
  InputTree dir;
  const std::string fifo = dir.Path("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::vector<InputFile> files;
  std::string error;
  CHECK_FALSE(ExpandInputs({fifo}, &files, &error));
  CHECK(error.find("not a regular file") != std::string::npos);
  CHECK(error.find(fifo) != std::string::npos);
}

TEST_CASE("an unreadable file is an error naming it") {
  if (::geteuid() == 0) {
    MESSAGE("running as root: permissions do not block reading; skipped");
    return;
  }
  InputTree dir;
  const std::string secret = dir.Write("secret", "x");
  fs::permissions(secret, fs::perms::none);
  std::vector<InputFile> files;
  std::string error;
  CHECK_FALSE(ExpandInputs({dir.path()}, &files, &error));
  CHECK(error.find(secret) != std::string::npos);
  CHECK(error.find('\n') == std::string::npos);
}

TEST_CASE("empty directories are an error only when no spec yields a file") {
  InputTree dir;
  const std::string empty = dir.Mkdir("empty");
  const std::string only_hidden = dir.Mkdir("hidden_only");
  dir.Write("hidden_only/_SUCCESS", "");
  std::vector<InputFile> files;
  std::string error;
  CHECK_FALSE(ExpandInputs({empty, only_hidden}, &files, &error));
  CHECK(error.rfind("no input files", 0) == 0);
  CHECK(error.find(empty) != std::string::npos);

  const std::string f = dir.Write("f", "1\n");
  REQUIRE_MESSAGE(ExpandInputs({empty, f}, &files, &error), error);
  CHECK(files == std::vector<InputFile>{{f, 2}});
}

TEST_CASE("no specs at all is an error") {
  std::vector<InputFile> files;
  std::string error;
  CHECK_FALSE(ExpandInputs({}, &files, &error));
  CHECK(error == "no input files");
}

TEST_CASE("StatInputs returns the sizes of absolute paths in the given order") {
  InputTree dir;
  const std::string b = dir.Write("b", "12345");
  const std::string a = dir.Write("a", "");
  std::vector<InputFile> files;
  std::string error;
  REQUIRE_MESSAGE(StatInputs({b, a}, &files, &error), error);
  CHECK(files == std::vector<InputFile>{{b, 5}, {a, 0}});
}

TEST_CASE("StatInputs rejects missing files, directories and relative paths") {
  InputTree dir;
  const std::string f = dir.Write("f", "x");
  std::vector<InputFile> files;
  std::string error;

  const std::string missing = dir.Path("missing");
  CHECK_FALSE(StatInputs({f, missing}, &files, &error));
  CHECK(error == "input not found: " + missing);

  CHECK_FALSE(StatInputs({dir.path()}, &files, &error));
  CHECK(error == "input is not a regular file: " + dir.path());

  CHECK_FALSE(StatInputs({"relative/path"}, &files, &error));
  CHECK(error.find("relative/path") != std::string::npos);
}

TEST_CASE("an output that does not exist under an existing parent is accepted") {
  InputTree dir;
  std::string error;
  CHECK_MESSAGE(CheckOutputDir(dir.Path("out"), &error), error);
  CHECK_MESSAGE(CheckOutputDir(dir.Path("out") + "/", &error), error);
}

TEST_CASE("an empty output directory is accepted") {
  InputTree dir;
  std::string error;
  CHECK_MESSAGE(CheckOutputDir(dir.Mkdir("out"), &error), error);
}

TEST_CASE("a non-empty output directory or an existing file is refused") {
  InputTree dir;
  dir.Write("out/part-00000", "x");
  const std::string file = dir.Write("file", "x");
  std::string error;
  CHECK_FALSE(CheckOutputDir(dir.Path("out"), &error));
  CHECK(error == "output already exists: " + dir.Path("out"));
  CHECK_FALSE(CheckOutputDir(file, &error));
  CHECK(error == "output already exists: " + file);
}

TEST_CASE("an output whose parent is missing or not a directory is refused") {
  InputTree dir;
  std::string error;
  CHECK_FALSE(CheckOutputDir(dir.Path("no/such/out"), &error));
  CHECK(error == "output parent directory does not exist: " + dir.Path("no/such"));

  const std::string file = dir.Write("file", "x");
  CHECK_FALSE(CheckOutputDir(file + "/out", &error));
  CHECK(error.find(file) != std::string::npos);
}

TEST_CASE("AbsolutePath normalises and drops a trailing slash") {
  CHECK(AbsolutePath("/a/b/../c/") == "/a/c");
  CHECK(AbsolutePath("/a/./b//c") == "/a/b/c");
  CHECK(AbsolutePath("/") == "/");
  const std::string cwd = fs::current_path().lexically_normal().string();
  CHECK(AbsolutePath("x/./y/") == (fs::path(cwd) / "x/y").string());
  CHECK(AbsolutePath(".") == cwd);
}

}  // namespace
}  // namespace zmr
