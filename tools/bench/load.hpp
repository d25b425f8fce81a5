// The load engine behind wsgate-bench: one epoll loop per thread over raw non-blocking sockets.
// Request bytes and masked frames are built once per run; responses are parsed as a stream with a
// few bytes of state per connection, so nothing is allocated per message.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "histogram.hpp"
#include "net.hpp"

namespace wsgate::bench {

enum class load_mode { http, ws, handshake, idle };
std::string_view mode_name(load_mode m);

// How sockets are driven: io_uring (multishot receives into provided buffers, sends batched into
// one system call per loop turn) or epoll (one recv and one send call per message). auto picks
// io_uring when the kernel allows it.
enum class io_backend { automatic, uring, epoll };

// Errors are counted by what went wrong, as the report prints them.
enum class error_kind {
  connect,   // connect() failed (refused, no ports left, ...)
  status,    // unexpected HTTP status (not 101 on an upgrade, 4xx/5xx on a request)
  timeout,   // no answer within --timeout
  protocol,  // unparsable response, bad accept key, wrong echo size, ...
  closed,    // the peer closed or reset the connection while we were waiting
};
inline constexpr std::size_t kErrorKinds = 5;
std::string_view error_name(error_kind k);

struct load_config {
  load_mode mode = load_mode::http;
  target dest;
  unsigned conns = 1;
  unsigned threads = 1;
  double duration_s = 0;      // run for this long (0: use count)
  uint64_t count = 0;         // or until this many requests/messages completed
  double rate = 0;            // fixed total rate (per second); 0 = as fast as possible
  std::size_t body_size = 0;  // http: POST a body of this size (0: GET)
  std::size_t msg_size = 64;  // ws: payload bytes per message
  unsigned inflight = 1;      // ws: messages in flight per connection
  bool binary = false;        // ws: binary frames instead of text
  double timeout_s = 5;       // per-request/handshake answer timeout
  double hold_s = 0;          // idle: hold the connections this long once all are open
  double ramp = 0;            // idle: new connections per second (0: as fast as accepted)
  bool ping = true;           // idle: ping every connection once at the end
  std::string ready_file;     // idle: written (with the count) once all connections are open
  bool progress = false;      // print a progress line to stderr every second
  io_backend io = io_backend::automatic;
};

struct load_result {
  uint64_t completed = 0;    // requests, messages or handshakes that got their full answer
  uint64_t sent = 0;         // requests/messages issued (in --rate mode: scheduled and sent)
  uint64_t bytes_in = 0;     // payload bytes received in completed answers
  uint64_t bytes_out = 0;    // bytes written to sockets
  uint64_t established = 0;  // idle: connections upgraded; others: connections opened
  uint64_t alive = 0;        // idle: connections that answered the final ping
  double elapsed_s = 0;
  std::array<uint64_t, kErrorKinds> errors{};
  std::string first_error;  // a sample of what went wrong, for the human report
  std::string io;           // the backend used: "io_uring" or "epoll"
  std::string io_note;      // why io_uring was not used, when it was asked for or automatic
  double cpu_s = 0;         // this process's CPU time (user + system) during the measured window
  histogram latency;        // nanoseconds
  uint64_t error_total() const;
};

// File descriptors a run needs (one per connection, plus a margin for the process itself).
uint64_t fds_needed(const load_config& cfg);

// Runs the load described by `cfg`; returns the merged result of every thread. The caller raises
// RLIMIT_NOFILE to fds_needed() first.
void run_load(const load_config& cfg, load_result& out);

}  // namespace wsgate::bench
