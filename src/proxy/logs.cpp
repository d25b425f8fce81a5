#include "proxy/logs.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>

namespace wsgate::proxy {

namespace {

struct log_files {
  std::mutex mutex;
  std::string error_path = "stderr";
  std::atomic<int> error_fd{2};
  std::atomic<int> error_level{static_cast<int>(log_level::error)};
  std::map<std::string, int> access;  // path -> fd (fds stay valid: reopen uses dup2)
  bool stderr_follows = false;        // a daemon: fd 2 is a copy of the error log
};

log_files& files() {
  static log_files f;
  return f;
}

constexpr std::string_view kNames[] = {"debug", "info", "notice", "warn",
                                       "error", "crit", "alert",  "emerg"};

int open_append(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

// Called with the mutex held whenever the error log's file changes.
void follow_stderr(log_files& f) {
  if (f.stderr_follows && f.error_path != "stderr") ::dup2(f.error_fd.load(), STDERR_FILENO);
}

}  // namespace

std::optional<log_level> parse_log_level(std::string_view name) {
  for (size_t i = 0; i < std::size(kNames); ++i)
    if (kNames[i] == name) return static_cast<log_level>(i);
  return std::nullopt;
}

std::string_view log_level_name(log_level level) {
  return kNames[static_cast<int>(level)];
}

std::string open_error_log(const std::string& path, log_level level) {
  auto& f = files();
  std::lock_guard lock(f.mutex);
  f.error_level = static_cast<int>(level);
  if (path == "stderr" || path.empty()) {
    const int old = f.error_fd.exchange(2);
    if (old > 2) ::close(old);
    f.error_path = "stderr";
    return {};
  }
  const int fd = open_append(path);
  if (fd < 0) return "open() \"" + path + "\" failed (" + std::to_string(errno) + ")";
  const int old = f.error_fd.exchange(fd);
  if (old > 2) ::close(old);
  f.error_path = path;
  follow_stderr(f);
  return {};
}

bool error_log_enabled(log_level level) {
  return static_cast<int>(level) >= files().error_level.load(std::memory_order_relaxed);
}

namespace {

void write_error_line(int fd, log_level level, std::string_view message) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char prefix[96];
  const int n = std::snprintf(prefix, sizeof prefix,
                              "%04d/%02d/%02d %02d:%02d:%02d [%s] %d#%ld: ", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                              kNames[static_cast<int>(level)].data(), static_cast<int>(getpid()),
                              static_cast<long>(syscall(SYS_gettid)));
  std::string line;
  line.reserve(static_cast<size_t>(n) + message.size() + 1);
  line.append(prefix, static_cast<size_t>(n));
  line.append(message);
  line.push_back('\n');
  const ssize_t w = ::write(fd, line.data(), line.size());
  (void)w;
}

}  // namespace

void log_error(log_level level, std::string_view message) {
  if (!error_log_enabled(level)) return;
  write_error_line(files().error_fd.load(std::memory_order_relaxed), level, message);
}

error_sink open_error_sink(const std::string& path, log_level level) {
  error_sink s;
  s.level = level;
  s.fd = path == "stderr" ? STDERR_FILENO : access_log_fd(path);
  return s;
}

void log_error(const error_sink& sink, log_level level, std::string_view message) {
  if (sink.fd < 0) return log_error(level, message);
  if (level >= sink.level) write_error_line(sink.fd, level, message);
}

int access_log_fd(const std::string& path) {
  auto& f = files();
  std::lock_guard lock(f.mutex);
  auto it = f.access.find(path);
  if (it != f.access.end()) return it->second;
  const int fd = open_append(path);
  if (fd < 0) return -1;
  f.access.emplace(path, fd);
  return fd;
}

void write_access_log(int fd, std::string_view line) {
  if (fd < 0) return;
  const ssize_t w = ::write(fd, line.data(), line.size());
  (void)w;
}

void reopen_logs() {
  auto& f = files();
  std::lock_guard lock(f.mutex);
  for (auto& [path, fd] : f.access) {
    const int fresh = open_append(path);
    if (fresh < 0) continue;
    ::dup2(fresh, fd);  // the same descriptor number now names the new file
    ::close(fresh);
  }
  if (f.error_path != "stderr") {
    const int fresh = open_append(f.error_path);
    if (fresh >= 0) {
      ::dup2(fresh, f.error_fd.load());
      ::close(fresh);
      follow_stderr(f);
    }
  }
}

void redirect_stderr_to_error_log() {
  auto& f = files();
  std::lock_guard lock(f.mutex);
  f.stderr_follows = true;
  follow_stderr(f);
}

void close_logs() {
  auto& f = files();
  std::lock_guard lock(f.mutex);
  for (auto& [path, fd] : f.access) ::close(fd);
  f.access.clear();
}

}  // namespace wsgate::proxy
