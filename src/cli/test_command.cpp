// wsgate -t / -T: load the configuration, lint it, and report as nginx -t does.
//
//   wsgate: [warn] TEXT in FILE:LINE          (lint findings; they do not fail the test)
//     fix: WHAT TO WRITE
//   wsgate: the configuration file FILE syntax is ok
//   wsgate: configuration file FILE test is successful
//
// -q keeps only errors; -T then dumps every file read ("# configuration file PATH:" + text) to
// stdout, as nginx -T.
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli/commands.hpp"
#include "config/loader.hpp"
#include "proxy/runtime.hpp"
#include "routing/lint.hpp"

namespace wsgate::cli {

namespace {

std::string where_text(const config::source_loc& where) {
  if (where.file.empty()) return "";
  return " in " + where.file + ":" + std::to_string(where.line);
}

// The file name nginx prints: the -c path made absolute against the prefix.
std::string shown_conf_file(const options& opts) {
  namespace fs = std::filesystem;
  fs::path conf = opts.conf_file.empty() ? fs::path("conf/nginx.conf") : fs::path(opts.conf_file);
  if (conf.is_relative())
    conf = (opts.prefix.empty() ? fs::current_path() : fs::path(opts.prefix)) / conf;
  return conf.lexically_normal().string();
}

}  // namespace

int test_config(const options& opts) {
  config::load_options lo;
  lo.conf_file = opts.conf_file;
  lo.prefix = opts.prefix;
  lo.global_directives = opts.global_directives;
  const config::load_result r = config::load_file(lo);
  if (!r.config) {
    const std::string file = shown_conf_file(opts);
    if (r.error) std::fprintf(stderr, "%s\n", r.error->format().c_str());
    std::fprintf(stderr, "wsgate: configuration file %s test failed\n", file.c_str());
    return 1;
  }
  const config::snapshot& snap = *r.config;
  const std::string& file = snap.conf_file;
  const auto warnings = routing::lint(snap);

  // nginx refuses a configuration that uses an unknown variable (after parsing, so its message
  // names no line); wsgate says where as well.
  bool failed = false;
  for (const auto& w : warnings) {
    if (w.id != "unknown-variable") continue;
    std::fprintf(stderr, "wsgate: [emerg] %s%s\n  hint: %s\n", w.text.c_str(),
                 where_text(w.where).c_str(), w.fix.c_str());
    failed = true;
  }
  // Certificates, keys and trusted CAs are loaded as the server would, as nginx -t does.
  if (const std::string error = proxy::load_tls(snap, nullptr); !error.empty()) {
    std::fprintf(stderr, "wsgate: [emerg] %s\n", error.c_str());
    failed = true;
  }
  if (failed) {
    std::fprintf(stderr, "wsgate: configuration file %s test failed\n", file.c_str());
    return 1;
  }

  if (!opts.quiet) {
    for (const auto& n : snap.notices)
      std::fprintf(stderr, "wsgate: [notice] %s%s\n", n.text.c_str(), where_text(n.where).c_str());
    for (const auto& w : warnings) {
      std::fprintf(stderr, "wsgate: [%s] %s%s\n", routing::is_notice(w) ? "notice" : "warn",
                   w.text.c_str(), where_text(w.where).c_str());
      if (!w.fix.empty()) std::fprintf(stderr, "  fix: %s\n", w.fix.c_str());
    }
    std::fprintf(stderr, "wsgate: the configuration file %s syntax is ok\n", file.c_str());
    std::fprintf(stderr, "wsgate: configuration file %s test is successful\n", file.c_str());
  }
  if (opts.dump) {
    for (const auto& [path, text] : snap.files) {
      std::fprintf(stdout, "# configuration file %s:\n", path.c_str());
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fputc('\n', stdout);
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace wsgate::cli
