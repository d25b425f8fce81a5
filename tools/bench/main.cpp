// wsgate-bench: the load generator for wsgate and the proxies it is compared with.
//   wsgate-bench http URL -c CONNS (-d SECS | -n REQUESTS) [--rate R] [--body-size N] [-t N]
//   wsgate-bench ws URL -c CONNS --size BYTES [--inflight K] (-d SECS | -n MESSAGES) [--binary]
//   wsgate-bench handshake URL -c CONNS -d SECS [--rate R]
//   wsgate-bench idle URL -n N [--hold SECS] [--ramp R]
// Every mode takes --json (machine-readable result on stdout) and --timeout SECS.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "load.hpp"
#include "report.hpp"
#include "uring.hpp"

namespace {

using wsgate::bench::load_config;
using wsgate::bench::load_mode;

struct cli_state {
  std::string url;
  std::string io = "auto";
  bool json = false;
  load_config cfg;
};

void add_common(CLI::App* sub, cli_state& st) {
  sub->add_option("url", st.url, "target URL (http://HOST:PORT/PATH or ws://...)")->required();
  sub->add_flag("--json", st.json, "print the result as JSON on stdout");
  sub->add_option("--timeout", st.cfg.timeout_s, "seconds to wait for an answer (default 5)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--io", st.io,
                  "socket backend: auto (io_uring when the kernel allows it), uring or epoll")
      ->check(CLI::IsMember({"auto", "uring", "epoll"}));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wsgate-bench: HTTP and WebSocket load generator"};
  app.require_subcommand(1);
  cli_state http_st, ws_st, hs_st, idle_st;

  auto* http = app.add_subcommand("http", "HTTP/1.1 keep-alive requests");
  add_common(http, http_st);
  http->add_option("-c,--connections", http_st.cfg.conns, "connections")
      ->required()
      ->check(CLI::PositiveNumber);
  auto* http_d = http->add_option("-d,--duration", http_st.cfg.duration_s, "seconds to run")
                     ->check(CLI::PositiveNumber);
  auto* http_n = http->add_option("-n,--requests", http_st.cfg.count, "requests to complete")
                     ->check(CLI::PositiveNumber);
  http_d->excludes(http_n);
  http->add_option(
          "--rate", http_st.cfg.rate,
          "fixed total rate in requests/s; latency counted from each request's scheduled time")
      ->check(CLI::PositiveNumber);
  http->add_option("--body-size", http_st.cfg.body_size, "POST a body of N bytes (default: GET)");
  http->add_option("-t,--threads", http_st.cfg.threads, "threads (default 1)")
      ->check(CLI::PositiveNumber);

  auto* ws = app.add_subcommand("ws", "WebSocket echo round trips");
  add_common(ws, ws_st);
  ws->add_option("-c,--connections", ws_st.cfg.conns, "connections")
      ->required()
      ->check(CLI::PositiveNumber);
  ws->add_option("--size", ws_st.cfg.msg_size, "message payload bytes (default 64)");
  ws->add_option("--inflight", ws_st.cfg.inflight, "messages in flight per connection (default 1)")
      ->check(CLI::PositiveNumber);
  auto* ws_d = ws->add_option("-d,--duration", ws_st.cfg.duration_s, "seconds to run")
                   ->check(CLI::PositiveNumber);
  auto* ws_n = ws->add_option("-n,--messages", ws_st.cfg.count, "messages to complete")
                   ->check(CLI::PositiveNumber);
  ws_d->excludes(ws_n);
  ws->add_option("--rate", ws_st.cfg.rate, "fixed total rate in messages/s")
      ->check(CLI::PositiveNumber);
  ws->add_flag("--binary", ws_st.cfg.binary, "send binary frames (default: text)");
  ws->add_option("-t,--threads", ws_st.cfg.threads, "threads (default 1)")
      ->check(CLI::PositiveNumber);

  auto* hs =
      app.add_subcommand("handshake", "WebSocket handshakes per second (connect, upgrade, close)");
  add_common(hs, hs_st);
  hs->add_option("-c,--connections", hs_st.cfg.conns, "concurrent handshakes")
      ->required()
      ->check(CLI::PositiveNumber);
  hs->add_option("-d,--duration", hs_st.cfg.duration_s, "seconds to run")
      ->required()
      ->check(CLI::PositiveNumber);
  hs->add_option("--rate", hs_st.cfg.rate,
                 "fixed total rate in handshakes/s; latency counted from each one's scheduled time")
      ->check(CLI::PositiveNumber);
  hs->add_option("-t,--threads", hs_st.cfg.threads, "threads (default 1)")
      ->check(CLI::PositiveNumber);

  auto* idle = app.add_subcommand("idle", "open N WebSocket connections and hold them");
  add_common(idle, idle_st);
  idle->add_option("-n,--connections", idle_st.cfg.conns, "connections to open")
      ->required()
      ->check(CLI::PositiveNumber);
  idle->add_option("--hold", idle_st.cfg.hold_s,
                   "seconds to hold them once all are open (default 0)")
      ->check(CLI::NonNegativeNumber);
  idle->add_option("--ramp", idle_st.cfg.ramp,
                   "new connections per second (default: as fast as accepted)")
      ->check(CLI::PositiveNumber);
  idle->add_option("--ready-file", idle_st.cfg.ready_file,
                   "write the established count to this file once all are open (for scripts)");
  bool no_ping = false;
  idle->add_flag("--no-ping", no_ping, "do not ping each connection at the end");

  CLI11_PARSE(app, argc, argv);

  cli_state* st = nullptr;
  if (*http) {
    st = &http_st;
    st->cfg.mode = load_mode::http;
  } else if (*ws) {
    st = &ws_st;
    st->cfg.mode = load_mode::ws;
  } else if (*hs) {
    st = &hs_st;
    st->cfg.mode = load_mode::handshake;
  } else {
    st = &idle_st;
    st->cfg.mode = load_mode::idle;
    st->cfg.ping = !no_ping;
  }
  load_config& cfg = st->cfg;
  cfg.io = st->io == "uring"   ? wsgate::bench::io_backend::uring
           : st->io == "epoll" ? wsgate::bench::io_backend::epoll
                               : wsgate::bench::io_backend::automatic;
  if ((cfg.mode == load_mode::http || cfg.mode == load_mode::ws) && cfg.duration_s <= 0 &&
      cfg.count == 0) {
    std::cerr << "wsgate-bench: give a duration (-d SECS) or a count (-n N)\n";
    return 2;
  }
  if (const std::string err = wsgate::bench::parse_target(st->url, cfg.dest); !err.empty()) {
    std::cerr << "wsgate-bench: " << err << "\n";
    return 2;
  }
  if (cfg.mode == load_mode::http && cfg.dest.websocket) {
    std::cerr << "wsgate-bench: http mode needs an http:// URL (got ws://)\n";
    return 2;
  }
  if (cfg.mode != load_mode::http && !cfg.dest.websocket) {
    std::cerr << "wsgate-bench: " << wsgate::bench::mode_name(cfg.mode)
              << " mode needs a ws:// URL (got http://)\n";
    return 2;
  }
  cfg.progress = true;
  if (const uint64_t need = wsgate::bench::fds_needed(cfg),
      have = wsgate::bench::raise_nofile(need);
      have < need) {
    std::cerr << "wsgate-bench: " << cfg.conns << " connections need " << need
              << " file descriptors but RLIMIT_NOFILE stops at " << have
              << "; raise the hard limit (ulimit -Hn, needs CAP_SYS_RESOURCE) or use fewer\n";
    return 2;
  }

  if (cfg.io == wsgate::bench::io_backend::uring) {
    if (const std::string err = wsgate::bench::uring::probe(); !err.empty()) {
      std::cerr << "wsgate-bench: --io uring: " << err
                << "; use --io epoll, or allow io_uring (sysctl kernel.io_uring_disabled=0, "
                   "seccomp)\n";
      return 2;
    }
  }
  wsgate::bench::load_result result;
  wsgate::bench::run_load(cfg, result);
  if (st->json) {
    std::cout << wsgate::bench::to_json(cfg, st->url, result).dump(2) << "\n";
  } else {
    std::cout << wsgate::bench::to_table(cfg, st->url, result);
  }
  // Exit 1 when nothing completed, so scripts notice a dead target.
  const bool nothing =
      cfg.mode == load_mode::idle ? result.established == 0 : result.completed == 0;
  return nothing ? 1 : 0;
}
