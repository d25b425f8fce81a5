#include "ops/server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include "config/loader.hpp"
#include "proxy/logs.hpp"
#include "proxy/runtime.hpp"
#include "proxy/worker.hpp"

namespace wsgate::ops {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using proxy::log_error;
using proxy::log_level;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

std::string full_path(const std::string& prefix, const std::string& path) {
  if (path.empty() || path.front() == '/' || path == "stderr") return path;
  return (prefix.empty() ? std::string(".") : prefix) + "/" + path;
}

// A bound, listening socket: one per worker when several workers share an address
// (SO_REUSEPORT lets the kernel spread connections over them).
int open_listener(const proxy::listen_point& lp, bool reuseport, std::string& error) {
  const int fd =
      ::socket(lp.address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = "socket() " + lp.key + " failed (" + std::to_string(errno) + ": " +
            std::strerror(errno) + ")";
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (lp.ipv6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&lp.address.storage), lp.address.length) != 0) {
    error = "bind() to " + lp.key + " failed (" + std::to_string(errno) + ": " +
            std::strerror(errno) + ")";
    ::close(fd);
    return -1;
  }
  if (::listen(fd, lp.backlog) != 0) {
    error = "listen() to " + lp.key + ", backlog " + std::to_string(lp.backlog) + " failed (" +
            std::to_string(errno) + ": " + std::strerror(errno) + ")";
    ::close(fd);
    return -1;
  }
  return fd;
}

struct worker {
  explicit worker(int index) : ctx(index), guard(asio::make_work_guard(ctx.io)) {}
  proxy::worker_context ctx;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::map<std::string, std::unique_ptr<tcp::acceptor>> acceptors;  // by listen key
  std::thread thread;
  std::atomic<bool> exited{false};
};

// busy_polling: once idle, the worker keeps polling (epoll with no timeout, which also runs the
// io_uring completions the kernel queued for it) for kPollWindow before it sleeps. Waking a
// sleeping thread costs a context switch and, in a VM, a halted vCPU's exit and re-entry (here
// 100-800us); with the next event due within microseconds, polling answers sooner. The window
// is fixed: an adaptive one (grown when a sleep ended soon, as the guest kernel's haltpoll)
// counted that wake-up cost in the sleep, shrank to nothing and gave the wake-ups back; 200us
// let a lone ping-pong client's p99 up to 1.3 ms, 1 ms kept it under 0.7 ms. What it costs is
// at most kPollWindow of CPU after each burst of events.
void run_busy_polling(asio::io_context& io) {
  using clock = std::chrono::steady_clock;
  constexpr clock::duration kPollWindow = std::chrono::milliseconds(1);
  while (!io.stopped()) {
    if (io.poll() > 0) continue;
    const auto idle_at = clock::now();
    bool woke = false;
    while (!woke && !io.stopped() && clock::now() - idle_at < kPollWindow) woke = io.poll() > 0;
    if (!woke && io.run_one() == 0) break;  // stopped, or no work left (a finished QUIT)
  }
}

asio::awaitable<void> accept_loop(worker& wk, tcp::acceptor& acceptor, std::string key) {
  auto& w = wk.ctx;
  // A listener on one address is every connection's local end; on a wildcard, the session
  // asks each socket (getsockname), as nginx does.
  boost::system::error_code lec;
  const tcp::endpoint bound = acceptor.local_endpoint(lec);
  const bool local_known = !lec && !bound.address().is_unspecified();
  tcp::endpoint peer;
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(peer, use_nothrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      log_error(log_level::alert,
                "accept() failed (" + std::to_string(ec.value()) + ": " + ec.message() + ")");
      asio::steady_timer pause(w.io, std::chrono::milliseconds(100));
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    proxy::worker_counters::add(w.counters.accepted, uint64_t{1});
    if (w.connections >= w.max_connections) {
      log_error(log_level::alert,
                std::to_string(w.max_connections) + " worker_connections are not enough");
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    proxy::worker_counters::add(w.counters.handled, uint64_t{1});
    // Whether this address:port speaks TLS is the configuration's of the moment (a reload may
    // add or drop `ssl` on a listener that stays open).
    const proxy::listen_point* lp = w.rt->find_listen(key);
    proxy::start_session(w, std::move(socket), &peer, local_known ? &bound : nullptr,
                         lp && lp->ssl);
  }
}

// The listeners each worker needs: for every listen point, one socket per worker.
struct listener_set {
  std::map<std::string, std::vector<int>> fds;  // key -> one fd per worker
};

bool open_listeners(const proxy::runtime& rt, int workers, listener_set& out,
                    const listener_set* keep, std::string& error) {
  for (const auto& lp : rt.listens) {
    if (keep && keep->fds.count(lp.key)) continue;
    std::vector<int> fds;
    const bool reuse = workers > 1 || lp.reuseport;
    for (int i = 0; i < workers; ++i) {
      const int fd = open_listener(lp, reuse, error);
      if (fd < 0) {
        for (int f : fds) ::close(f);
        return false;
      }
      fds.push_back(fd);
    }
    out.fds[lp.key] = std::move(fds);
  }
  return true;
}

void attach_listener(worker& wk, const std::string& key, int fd, bool v6) {
  auto acc = std::make_unique<tcp::acceptor>(wk.ctx.io);
  boost::system::error_code ec;
  acc->assign(v6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (ec) {
    log_error(log_level::emerg, "cannot use the listening socket " + key + ": " + ec.message());
    ::close(fd);
    return;
  }
  auto& ref = *acc;
  wk.acceptors[key] = std::move(acc);
  asio::co_spawn(wk.ctx.io, accept_loop(wk, ref, key), asio::detached);
}

struct pid_file {
  std::string path;
  bool write_now() {
    std::ofstream out(path, std::ios::trunc);
    if (!out) return false;
    out << getpid() << "\n";
    return static_cast<bool>(out);
  }
  ~pid_file() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

void daemonize() {
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("wsgate: fork()");
    std::exit(1);
  }
  if (pid > 0) std::_Exit(0);
  ::setsid();
  ::umask(0);
  const int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::close(null);
  }
}

struct loaded {
  std::shared_ptr<const config::snapshot> config;
  std::shared_ptr<const proxy::runtime> rt;
  std::string error;
};

loaded load(const serve_options& o) {
  loaded out;
  config::load_options lo;
  lo.conf_file = o.conf_file.empty() ? "conf/nginx.conf" : o.conf_file;
  lo.prefix = o.prefix;
  lo.global_directives = o.global_directives;
  auto r = config::load_file(lo);
  if (!r.config) {
    out.error = r.error ? r.error->format() : "wsgate: [emerg] the configuration did not load";
    return out;
  }
  out.config = r.config;
  auto rt = proxy::build_runtime(r.config);
  if (!rt.value) {
    out.error = "wsgate: [emerg] " + rt.error;
    return out;
  }
  out.rt = rt.value;
  return out;
}

std::string error_log_path(const serve_options& o, const config::snapshot& c, log_level& level) {
  level = log_level::error;
  if (c.main.error_log) {
    if (auto l = proxy::parse_log_level(c.main.error_log->level.empty() ? "error"
                                                                        : c.main.error_log->level))
      level = *l;
  }
  // As nginx: the configuration's error_log wins; -e only replaces the built-in default.
  if (c.main.error_log && !c.main.error_log->path.empty())
    return full_path(c.prefix, c.main.error_log->path);
  if (!o.error_log.empty()) return full_path(c.prefix, o.error_log);
  return "stderr";
}

}  // namespace

int serve(const serve_options& o) {
  loaded first = load(o);
  if (!first.rt) {
    std::fprintf(stderr, "%s\n", first.error.c_str());
    return 1;
  }
  const auto& cfg = *first.config;
  log_level level;
  const std::string elog = error_log_path(o, cfg, level);
  if (auto err = proxy::open_error_log(elog, level); !err.empty()) {
    std::fprintf(stderr, "wsgate: [emerg] %s\n", err.c_str());
    return 1;
  }
  const int nworkers = std::max(1, cfg.main.worker_processes);
  listener_set listeners;
  std::string error;
  if (!open_listeners(*first.rt, nworkers, listeners, nullptr, error)) {
    std::fprintf(stderr, "wsgate: [emerg] %s\n", error.c_str());
    log_error(log_level::emerg, error);
    return 1;
  }

  if (cfg.main.daemon) {
    daemonize();
    proxy::redirect_stderr_to_error_log();
  }

  pid_file pid;
  if (!cfg.main.pid_path.empty()) {
    pid.path = full_path(cfg.prefix, cfg.main.pid_path);
    if (!pid.write_now()) {
      log_error(log_level::emerg, "open() \"" + pid.path + "\" failed (" + std::to_string(errno) +
                                      ": " + std::strerror(errno) + ")");
      pid.path.clear();
      return 1;
    }
  }

  // Signals are taken by the main thread only (sigwaitinfo); workers inherit the mask.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD})
    sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<std::unique_ptr<worker>> workers;
  auto current = first.rt;
  for (int i = 0; i < nworkers; ++i) {
    auto wk = std::make_unique<worker>(i);
    wk->ctx.rt = current;
    wk->ctx.max_connections = std::max(1, cfg.main.worker_connections);
    for (const auto& lp : current->listens)
      attach_listener(*wk, lp.key, listeners.fds[lp.key][static_cast<size_t>(i)], lp.ipv6);
    workers.push_back(std::move(wk));
  }
  for (auto& wk : workers)
    for (auto& other : workers) wk->ctx.peers.push_back(&other->ctx);
  const bool busy_polling = cfg.main.busy_polling;
  for (auto& wk : workers) {
    worker* p = wk.get();
    wk->thread = std::thread([p, busy_polling] {
      for (;;) {
        try {
          if (busy_polling)
            run_busy_polling(p->ctx.io);
          else
            p->ctx.io.run();
          break;
        } catch (const std::exception& e) {
          log_error(log_level::alert, std::string("worker: ") + e.what());
        }
      }
      p->exited = true;
    });
  }
  log_error(log_level::notice,
            "wsgate/" WSGATE_VERSION " started, " + std::to_string(nworkers) + " worker thread(s)");

  auto stop_fast = [&] {
    for (auto& wk : workers) wk->ctx.io.stop();
  };
  bool graceful = false;
  std::chrono::steady_clock::time_point graceful_deadline =
      std::chrono::steady_clock::time_point::max();
  for (;;) {
    bool all_exited = true;
    for (auto& wk : workers) all_exited = all_exited && wk->exited;
    if (all_exited) break;
    if (graceful && std::chrono::steady_clock::now() >= graceful_deadline) {
      log_error(log_level::notice,
                "worker_shutdown_timeout passed: closing the remaining connections");
      stop_fast();
    }
    timespec ts{0, 100 * 1000 * 1000};
    siginfo_t info;
    const int sig = sigtimedwait(&set, &info, &ts);
    if (sig < 0) continue;
    if (sig == SIGTERM || sig == SIGINT) {
      log_error(log_level::notice,
                std::string("signal ") + std::to_string(sig) + " received, exiting");
      stop_fast();
    } else if (sig == SIGQUIT) {
      if (graceful) continue;
      log_error(log_level::notice, "signal 3 (SIGQUIT) received, shutting down gracefully");
      graceful = true;
      if (cfg.main.worker_shutdown_timeout.count() > 0)
        graceful_deadline = std::chrono::steady_clock::now() + cfg.main.worker_shutdown_timeout;
      for (auto& wk : workers) {
        worker* p = wk.get();
        asio::post(p->ctx.io, [p] {
          for (auto& [key, acc] : p->acceptors) {
            boost::system::error_code ec;
            acc->close(ec);
          }
          proxy::drain(p->ctx);
          p->guard.reset();
        });
      }
    } else if (sig == SIGHUP) {
      if (graceful) continue;
      log_error(log_level::notice, "signal 1 (SIGHUP) received, reconfiguring");
      loaded next = load(o);
      if (!next.rt) {
        std::string why = next.error;
        if (why.rfind("wsgate: [emerg] ", 0) == 0) why.erase(0, 16);
        for (auto& c : why)
          if (c == '\n') c = ' ';
        log_error(log_level::emerg, why + "; the running configuration stays");
        continue;
      }
      listener_set added;
      std::string lerr;
      if (!open_listeners(*next.rt, nworkers, added, &listeners, lerr)) {
        log_error(log_level::emerg, lerr + "; the running configuration stays");
        continue;
      }
      // Listen points the new configuration drops are closed; new ones are attached.
      std::vector<std::string> removed;
      for (auto& [key, fds] : listeners.fds) {
        bool still = false;
        for (const auto& lp : next.rt->listens) still = still || lp.key == key;
        if (!still) removed.push_back(key);
      }
      for (const auto& key : removed) listeners.fds.erase(key);
      for (auto& [key, fds] : added.fds) listeners.fds[key] = fds;
      current = next.rt;
      if (next.config->main.busy_polling != busy_polling)
        log_error(log_level::notice,
                  std::string("busy_polling ") + (busy_polling ? "on" : "off") +
                      " stays until wsgate restarts: the workers read it at start");
      for (auto& wk : workers) {
        worker* p = wk.get();
        const size_t idx = static_cast<size_t>(p->ctx.index);
        std::vector<std::tuple<std::string, int, bool>> attach;
        for (const auto& lp : current->listens)
          if (added.fds.count(lp.key)) attach.emplace_back(lp.key, added.fds[lp.key][idx], lp.ipv6);
        asio::post(p->ctx.io, [p, rt = current, removed, attach] {
          p->ctx.rt = rt;
          for (const auto& key : removed) {
            auto it = p->acceptors.find(key);
            if (it == p->acceptors.end()) continue;
            boost::system::error_code ec;
            it->second->close(ec);
            p->acceptors.erase(it);
          }
          for (const auto& [key, fd, v6] : attach) attach_listener(*p, key, fd, v6);
        });
      }
      // Log files named by the new configuration open on first use.
      log_level nlevel;
      const std::string npath = error_log_path(o, *next.config, nlevel);
      if (auto err = proxy::open_error_log(npath, nlevel); !err.empty())
        log_error(log_level::alert, err);
    } else if (sig == SIGUSR1) {
      log_error(log_level::notice, "signal 10 (SIGUSR1) received, reopening logs");
      proxy::reopen_logs();
    }
  }
  for (auto& wk : workers)
    if (wk->thread.joinable()) wk->thread.join();
  log_error(log_level::notice, "exit");
  proxy::close_logs();
  return 0;
}

int send_signal(const serve_options& o, const std::string& signal) {
  loaded l;
  config::load_options lo;
  lo.conf_file = o.conf_file.empty() ? "conf/nginx.conf" : o.conf_file;
  lo.prefix = o.prefix;
  lo.global_directives = o.global_directives;
  auto r = config::load_file(lo);
  if (!r.config) {
    std::fprintf(
        stderr, "%s\n",
        r.error ? r.error->format().c_str() : "wsgate: [emerg] the configuration did not load");
    return 1;
  }
  const std::string path = full_path(r.config->prefix, r.config->main.pid_path);
  std::ifstream in(path);
  long pid = 0;
  if (!(in >> pid) || pid <= 0) {
    std::fprintf(stderr, "wsgate: [error] invalid PID number \"\" in \"%s\"\n", path.c_str());
    if (!in.is_open())
      std::fprintf(stderr, "wsgate: [error] open() \"%s\" failed (%d: %s)\n", path.c_str(), ENOENT,
                   std::strerror(ENOENT));
    return 1;
  }
  int sig = 0;
  if (signal == "stop")
    sig = SIGTERM;
  else if (signal == "quit")
    sig = SIGQUIT;
  else if (signal == "reload")
    sig = SIGHUP;
  else if (signal == "reopen")
    sig = SIGUSR1;
  else {
    std::fprintf(stderr, "wsgate: invalid option: \"-s %s\"\n", signal.c_str());
    return 1;
  }
  if (::kill(static_cast<pid_t>(pid), sig) != 0) {
    std::fprintf(stderr, "wsgate: [alert] kill(%ld, %d) failed (%d: %s)\n", pid, sig, errno,
                 std::strerror(errno));
    return 1;
  }
  return 0;
}

}  // namespace wsgate::ops
