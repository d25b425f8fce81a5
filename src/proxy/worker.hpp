// One worker thread's state: its event loop, the config it serves new connections with, its
// connection count, its idle upstream connections and its relay buffers. Everything here is
// touched only from the worker's own thread (other threads post into `io`).
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "http/flat_buffer.hpp"
#include "proxy/runtime.hpp"
#include "proxy/tunnel_registry.hpp"

namespace wsgate::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct tls_connection;  // proxy/tls_stream.hpp
// Frees a tls_connection where its type is complete, so this header needs no OpenSSL.
struct tls_connection_deleter {
  void operator()(tls_connection* c) const;
};
using tls_connection_ptr = std::unique_ptr<tls_connection, tls_connection_deleter>;

// TLS sessions with https upstreams, by context and peer, for resumption (type-erased
// SSL_SESSION, freed by its deleter). Where a new session of a connection goes: OpenSSL hands it
// over (a TLS 1.3 ticket arrives after the handshake) through the SSL's app data.
using tls_session_store = std::unordered_map<std::string, std::shared_ptr<void>>;
struct upstream_tls_session {
  tls_session_store* store = nullptr;
  std::string key;
};

// An upstream connection, kept between requests when its upstream{} allows keepalive.
struct upstream_conn {
  explicit upstream_conn(asio::io_context& io) : socket(io) {}
  tcp::socket socket;
  tls_connection_ptr tls;  // an https upstream: TLS on `socket`
  upstream_tls_session tls_session;
  http::flat_buffer in;
  std::string pool_key;  // group name + peer; empty: never pooled
  std::string peer;      // "127.0.0.1:8000", for logs
  int requests = 0;
  std::chrono::steady_clock::time_point idle_since;
};

// Relay buffers lent to a connection while data flows, returned when its socket would block:
// an idle connection owns none.
class buffer_pool {
 public:
  static constexpr size_t kSize = 64 * 1024;
  std::unique_ptr<char[]> take() {
    if (free_.empty()) return std::make_unique_for_overwrite<char[]>(kSize);
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void give(std::unique_ptr<char[]> b) {
    if (b && free_.size() < 64) free_.push_back(std::move(b));
  }

 private:
  std::vector<std::unique_ptr<char[]>> free_;
};

// What stub_status and wsgate_status report. Written only by the worker's own thread (a relaxed
// load and store, no locked instruction), read by any worker serving a status page.
struct worker_counters {
  std::atomic<uint64_t> accepted{0}, handled{0}, requests{0};
  // Client connections open; of them reading a request head, and busy with a request (a tunnel
  // counts as busy while open, as in nginx); the rest wait for their next request.
  std::atomic<int64_t> active{0}, reading{0}, writing{0};

  template <class T>
  static void add(std::atomic<T>& c, T n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  // The counters as read at one moment (from any thread), and their sum over workers.
  struct values {
    int64_t active = 0, reading = 0, writing = 0;
    uint64_t accepted = 0, handled = 0, requests = 0;
    int64_t waiting() const { return active - reading - writing; }
    values& operator+=(const values& o) {
      active += o.active, reading += o.reading, writing += o.writing;
      accepted += o.accepted, handled += o.handled, requests += o.requests;
      return *this;
    }
  };
  values read() const {
    constexpr auto r = std::memory_order_relaxed;
    return {active.load(r),   reading.load(r), writing.load(r),
            accepted.load(r), handled.load(r), requests.load(r)};
  }
};

struct worker_context {
  explicit worker_context(int idx) : index(idx) {}
  // Sockets and timers are used from this thread only (others just post): no reactor I/O locks.
  asio::io_context io{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  int index = 0;
  std::shared_ptr<const runtime> rt;  // the config new connections use
  int connections = 0;                // client and upstream sockets open
  int max_connections = 512;          // worker_connections
  bool draining = false;              // QUIT: finish in-flight requests, then close
  buffer_pool buffers;
  std::unordered_map<std::string, std::vector<std::unique_ptr<upstream_conn>>> idle_upstreams;
  std::unordered_set<tcp::socket*> idle_clients;  // keep-alive connections waiting for a request
  tls_session_store tls_sessions;                 // https upstreams' sessions to resume
  tunnel_registry tunnels;                        // open upgrade tunnels and their accounting
  // The tunnels' io_uring relay (proxy/relay_ring.hpp), made with the worker's first tunnel;
  // type-erased to keep io_uring out of this header. Tunnels share it: it goes with the last.
  std::shared_ptr<void> relay_ring;
  bool relay_ring_tried = false;
  worker_counters counters;
  // Every worker of the process (this one included), set before the workers start: a status
  // page collects from all of them.
  std::vector<worker_context*> peers;
  std::chrono::system_clock::time_point started = std::chrono::system_clock::now();
};

// One non-blocking sendmsg on a socket in non-blocking mode: what usually fits the socket
// buffer whole (a request or response head, a relayed piece) goes without an Asio operation,
// completion post or scheduler trip. False: `rest` holds what the socket did not take, for an
// async_write (or `ec` says why it failed).
bool send_now(tcp::socket& s, std::span<const asio::const_buffer> bufs,
              std::vector<asio::const_buffer>& rest, boost::system::error_code& ec);

// Runs a client connection to its end (requests, then possibly a tunnel). `peer` and `local`,
// when the caller knows them (accept() gives the peer; a listener on one address is the local
// end), save the system calls that would ask the socket. `tls`: the listener is `ssl`.
void start_session(worker_context& w, tcp::socket socket, const tcp::endpoint* peer = nullptr,
                   const tcp::endpoint* local = nullptr, bool tls = false);

// QUIT on this worker: close idle keep-alive connections; busy ones close after their request.
void drain(worker_context& w);

}  // namespace wsgate::proxy
