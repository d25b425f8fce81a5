// The error log and access logs: process-wide sinks written with one write(2) per line (atomic
// with O_APPEND, so worker threads need no lock), reopened on USR1.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wsgate::proxy {

enum class log_level { debug, info, notice, warn, error, crit, alert, emerg };

std::optional<log_level> parse_log_level(std::string_view name);
std::string_view log_level_name(log_level level);

// Opens the error log ("stderr" or a path). Returns an error message on failure.
std::string open_error_log(const std::string& path, log_level level);
bool error_log_enabled(log_level level);
// Writes "YYYY/MM/DD HH:MM:SS [level] PID#TID: message".
void log_error(log_level level, std::string_view message);

// The error_log of an http, server or location level: nginx writes a request's errors to the
// error_log of the level that handled it. fd -1 stands for the main error log.
struct error_sink {
  int fd = -1;
  log_level level = log_level::error;
};
// `path` is resolved against the prefix already; "stderr" is fd 2. The file is shared with every
// level naming it and reopened on USR1. A file that cannot be opened falls back to the main log.
error_sink open_error_sink(const std::string& path, log_level level);
void log_error(const error_sink& sink, log_level level, std::string_view message);

// A log file (an access log, or a level's error_log through open_error_sink), shared by every
// level naming the same path.
int access_log_fd(const std::string& path);  // opened on first use; -1 on failure
void write_access_log(int fd, std::string_view line);

// A daemon's stderr follows the error log from now on (nginx's ngx_log_redirect_stderr): what
// libraries write to stderr lands in the log, not in a terminal that is gone. Kept through reloads
// and USR1; an error log of "stderr" leaves stderr alone.
void redirect_stderr_to_error_log();

// USR1: reopen every log file (after logrotate moved them).
void reopen_logs();
// Closes the log files (at exit).
void close_logs();

}  // namespace wsgate::proxy
