// Test helper shared by every test binary: a fresh directory under /tmp, removed with its contents
// when the object goes away.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace treaty::testing {

class TempDir {
 public:
  // prefix names the test family in the directory name, e.g. "log" -> /tmp/treaty_log_XXXXXX.
  explicit TempDir(const std::string& prefix = "test") {
    std::string pattern = "/tmp/treaty_" + prefix + "_XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Empty if the directory could not be created.
  const std::string& path() const { return path_; }
  // A path inside the directory that does not exist yet.
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace treaty::testing
