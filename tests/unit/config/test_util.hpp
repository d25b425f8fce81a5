// Helpers for the config tests: temporary files and running Debian's nginx on the same text.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/loader.hpp"

namespace wsgate::config::test {

// A fresh directory under /tmp, removed with everything in it at scope exit.
class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "wsgate-config-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string write(const std::string& name, const std::string& text) const {
    auto p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

// A configuration text that must load (the test fails with the error otherwise).
inline std::shared_ptr<const snapshot> load_ok(std::string_view text) {
  auto r = load_text(text, "test.conf");
  EXPECT_FALSE(r.error) << r.error->format();
  return r.config;
}

inline load_result load_path(const std::string& path, const std::string& globals = {}) {
  load_options o;
  o.conf_file = path;
  o.global_directives = globals;
  return load_file(o);
}

inline const char* nginx_binary() {
  return "/usr/sbin/nginx";
}
// nginx -t opens its compiled-in access log (/var/log/nginx/access.log) whatever the file says,
// so the comparison needs root, as the test setup runs it.
inline bool have_nginx() {
  return access(nginx_binary(), X_OK) == 0 && geteuid() == 0;
}

// Runs `nginx -t` on a file and returns its [emerg] line without the timestamp and pid, e.g.
// `unknown directive "foo" in /tmp/x/nginx.conf:3`; "" when the test passed.
inline std::string nginx_emerg(const std::string& conf_path, const std::string& dir) {
  std::string cmd = std::string(nginx_binary()) + " -e stderr -t -q -c " + conf_path + " -g 'pid " +
                    dir + "/nginx.pid; error_log stderr;' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "popen failed";
  std::string out, line;
  char buf[4096];
  while (fgets(buf, sizeof buf, p)) {
    line = buf;
    auto at = line.find("[emerg] ");
    if (at != std::string::npos && out.empty()) {
      auto colon = line.find(": ", at);  // after "PID#TID"
      out = line.substr(colon + 2);
      while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    }
  }
  pclose(p);
  return out;
}

}  // namespace wsgate::config::test
