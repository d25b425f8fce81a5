// The running proxy: listeners, worker threads (one event loop each), signals, the pid file,
// reload and drain. cli/ turns nginx's flags into serve_options.
#pragma once

#include <string>

namespace wsgate::ops {

struct serve_options {
  std::string conf_file;          // -c
  std::string prefix;             // -p
  std::string error_log;          // -e FILE|stderr ("" = the config's error_log)
  std::string global_directives;  // -g
};

// Runs until TERM/INT (fast) or QUIT (graceful); HUP reloads, USR1 reopens logs. Returns the
// process exit code.
int serve(const serve_options& options);

// -s stop|quit|reload|reopen: signals the process named by the config's pid file.
int send_signal(const serve_options& options, const std::string& signal);

}  // namespace wsgate::ops
