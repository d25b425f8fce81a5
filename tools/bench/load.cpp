#include "load.hpp"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "uring.hpp"

namespace wsgate::bench {

std::string_view mode_name(load_mode m) {
  switch (m) {
    case load_mode::http:
      return "http";
    case load_mode::ws:
      return "ws";
    case load_mode::handshake:
      return "handshake";
    case load_mode::idle:
      return "idle";
  }
  return "?";
}

std::string_view error_name(error_kind k) {
  switch (k) {
    case error_kind::connect:
      return "connect";
    case error_kind::status:
      return "status";
    case error_kind::timeout:
      return "timeout";
    case error_kind::protocol:
      return "protocol";
    case error_kind::closed:
      return "closed";
  }
  return "?";
}

uint64_t load_result::error_total() const {
  uint64_t t = 0;
  for (auto e : errors) t += e;
  return t;
}

namespace {

constexpr uint64_t kSecond = 1'000'000'000ULL;
constexpr std::size_t kScratch = 256 * 1024;
constexpr std::size_t kMaxHeader = 64 * 1024;
constexpr uint64_t kSweepEvery = 50'000'000ULL;   // timeout and retry scan
constexpr uint64_t kRetryDelay = 100'000'000ULL;  // after a failed connect
constexpr unsigned kMaxPendingConnects = 512;     // stay under the peer's listen backlog
constexpr unsigned kRecvBuffers = 256;            // io_uring provided buffers per worker
constexpr unsigned kRecvBufferSize = 64 * 1024;

// The byte streams a connection writes; each is one unit repeated so that any run of owed
// units can be written from one contiguous slice.
enum pattern_id : uint8_t { p_request, p_upgrade, p_message, p_close, p_ping, p_count };
struct pattern {
  std::string block;
  std::size_t unit = 0;
};

enum class cstate : uint8_t { down, connecting, upgrading, running, closing };
// Response parser phases.
enum class rphase : uint8_t { head, body, chunk_size, chunk_data, chunk_crlf, trailer, frame };

struct conn {
  int fd = -1;
  uint32_t gen = 0;
  cstate st = cstate::down;
  pattern_id pat = p_request;
  bool out_armed = false;
  bool timer_armed = false;
  bool peer_close = false;   // handshake mode: the server's close frame arrived
  bool close_after = false;  // http: the response said Connection: close
  bool ready = false;        // counted as ready once
  bool bad_status = false;   // http: this response's status is counted as an error
  bool send_busy = false;    // io_uring: a send is in flight (one at a time keeps the order)
  uint16_t status = 0;
  rphase ph = rphase::head;
  uint8_t hdr_have = 0;
  uint8_t hdr[14] = {};
  uint32_t q_head = 0, q_len = 0;  // in-flight send stamps (ring in worker::stamps_)
  uint32_t aux = 0;                // chunked parser: line length / extension flag
  uint64_t owed = 0, woff = 0;     // bytes still to write, position in the pattern stream
  uint64_t left = 0;               // body / chunk / payload bytes still to read
  uint64_t msg_bytes = 0;          // payload of the current message so far
  uint64_t next_due = 0;           // --rate: when the next message is scheduled
  uint64_t wait_since = 0;         // last progress, for the timeout sweep
  uint64_t started = 0;            // connect time (handshake latency)
  uint32_t source = 0;             // local IPv4 to bind (0 = any)
  std::string partial;             // response head split across reads (rare)
};

struct shared_state {
  std::atomic<unsigned> ready{0};
  std::atomic<bool> go{false};
  std::atomic<uint64_t> start{0};
  std::atomic<bool> abort{false};
  std::mutex err_mu;
  std::string first_error;
};

struct alignas(64) live_counters {
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> established{0};
  std::atomic<bool> finished{false};
};

class worker {
 public:
  worker(const load_config& cfg, shared_state& sh, live_counters& live, unsigned first_conn,
         unsigned nconns, uint64_t budget, double rate, bool use_uring)
      : cfg_(cfg),
        sh_(sh),
        live_(live),
        conns_(nconns),
        budget_(budget),
        rate_(rate),
        uring_(use_uring) {
    const unsigned k = cfg.mode == load_mode::ws ? std::max(1U, cfg.inflight) : 1U;
    inflight_ = k;
    stamps_.assign(static_cast<std::size_t>(nconns) * k, 0);
    heap_.reserve(nconns);
    scratch_ = std::make_unique<char[]>(kScratch);
    build_patterns();
    // One source address has one ephemeral port range (~28k) and the kernel's port search slows
    // down as the range fills (TIME_WAIT left by earlier runs included): on loopback, idle mode and
    // large runs spread over 127.0.0.2, .3, ... with 10,000 connections each.
    const bool spread = cfg.dest.loopback() && (cfg.mode == load_mode::idle || cfg.conns > 20000);
    for (unsigned i = 0; i < nconns; ++i) {
      if (spread) conns_[i].source = (127U << 24) | (2U + (first_conn + i) / 10000U);
    }
  }

  void run() {
    if (uring_) {
      // Created on this thread: the ring has a single issuer.
      if (const std::string err = ring_.init(4096, kRecvBuffers, kRecvBufferSize); !err.empty()) {
        note_error(error_kind::protocol, "io_uring: " + err);
        live_.finished.store(true, std::memory_order_relaxed);
        return;
      }
    } else {
      ep_ = epoll_create1(EPOLL_CLOEXEC);
    }
    const uint64_t t0 = now_ns();
    setup_started_ = t0;
    if (cfg_.mode == load_mode::handshake) {
      // No warm-up: the handshakes are the load.
      wait_go();
      begin_running(now_ns());
    }
    loop();
    for (auto& c : conns_) {
      if (c.fd < 0) continue;
      if (cfg_.mode == load_mode::idle) {
        // Reset rather than close: tens of thousands of TIME_WAIT sockets would slow down the
        // port search of the next run.
        linger lg{1, 0};
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      }
      close(c.fd);
    }
    if (ep_ >= 0) close(ep_);
    live_.finished.store(true, std::memory_order_relaxed);
  }

  load_result result;

 private:
  // ---------------------------------------------------------------- setup
  void build_patterns() {
    const target& d = cfg_.dest;
    std::string req;
    if (cfg_.body_size > 0) {
      req = "POST " + d.path + " HTTP/1.1\r\nHost: " + d.host_header +
            "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
            std::to_string(cfg_.body_size) + "\r\n\r\n" + message_payload(cfg_.body_size);
    } else {
      req = "GET " + d.path + " HTTP/1.1\r\nHost: " + d.host_header + "\r\n\r\n";
    }
    set_pattern(p_request, req, true);
    set_pattern(p_upgrade,
                "GET " + d.path + " HTTP/1.1\r\nHost: " + d.host_header +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
                    std::string(kWsKey) + "\r\nSec-WebSocket-Version: 13\r\n\r\n",
                false);
    set_pattern(p_message, masked_frame(cfg_.binary ? 2 : 1, message_payload(cfg_.msg_size)), true);
    set_pattern(p_close, masked_frame(8, std::string("\x03\xe8", 2)), false);
    set_pattern(p_ping, masked_frame(9, "alive?"), false);
  }
  void set_pattern(pattern_id id, const std::string& unit, bool repeat) {
    pattern& p = patterns_[id];
    p.unit = unit.size();
    p.block = unit;
    while (repeat && p.block.size() < 64 * 1024) p.block += unit;
  }

  void wait_go() {
    sh_.ready.fetch_add(1);
    while (!sh_.go.load()) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }

  // ---------------------------------------------------------------- main loop
  void loop() {
    epoll_event evs[512];
    uint64_t next_sweep = now_ns() + kSweepEvery;
    for (;;) {
      uint64_t now = now_ns();
      if (sh_.abort.load(std::memory_order_relaxed)) break;
      if (!step_phase(now)) break;
      if (now >= next_sweep) {
        sweep(now);
        next_sweep = now + kSweepEvery;
      }
      // Wake for the earliest of: the end of the run, the next scheduled send, the sweep.
      uint64_t wake = next_sweep;
      if (end_ && end_ < wake) wake = end_;
      if (!heap_.empty() && heap_.front().due < wake) wake = heap_.front().due;
      if (cfg_.mode == load_mode::idle && phase_ == phase::setup)
        wake = std::min(wake, now + 1'000'000);
      // Waiting for the common start: poll the flag often so no worker starts late.
      if (phase_ == phase::waiting) wake = std::min(wake, now + 100'000);
      const uint64_t wait = wake > now ? wake - now : 0;
      if (uring_) {
        ring_.submit_and_wait(wait);
        now = now_ns();
        now_cached_ = now;
        ring_.drain(
            [&](uint64_t ud, int res, uint32_t flags) { on_completion(ud, res, flags, now); });
      } else {
        timespec ts{static_cast<time_t>(wait / kSecond), static_cast<long>(wait % kSecond)};
        const int n = epoll_pwait2(ep_, evs, 512, &ts, nullptr);
        now = now_ns();
        for (int i = 0; i < n; ++i) on_event(evs[i], now);
      }
      fire_timers(now);
    }
  }

  enum class phase { setup, waiting, running, holding, pinging, draining, done };

  // Advances the worker's phase; false when the run is over.
  bool step_phase(uint64_t now) {
    switch (phase_) {
      case phase::setup:
        open_more(now);
        if (cfg_.mode == load_mode::idle) {
          if (attempted_ == conns_.size() && pending_connects_ == 0 && upgrading_ == 0) {
            result.established = established_now();
            hold_until_ = now + static_cast<uint64_t>(cfg_.hold_s * 1e9);
            phase_ = phase::holding;
            sh_.ready.fetch_add(1);  // tells run_load this worker is holding
          }
        } else if (ready_ + failed_setup_ >= conns_.size()) {
          phase_ = phase::waiting;
          sh_.ready.fetch_add(1);
        }
        return true;
      case phase::waiting:
        // Everyone starts at the common start time, so the measured window is the same.
        if (sh_.go.load(std::memory_order_acquire) && now >= sh_.start.load()) begin_running(now);
        return true;
      case phase::running:
        if (end_ && now >= end_) {
          result.elapsed_s = static_cast<double>(end_ - start_) / 1e9;
          return false;
        }
        if (!end_ && budget_left_ == 0 && outstanding() == 0) {
          result.elapsed_s = static_cast<double>(now - start_) / 1e9;
          return false;
        }
        return true;
      case phase::holding:
        if (now < hold_until_) return true;
        if (!cfg_.ping) return false;
        for (uint32_t i = 0; i < conns_.size(); ++i) {
          conn& c = conns_[i];
          if (c.st == cstate::running) {
            c.wait_since = now;
            push_stamp(i, c, now);
            queue(i, c, p_ping, 1);
          }
        }
        ping_deadline_ = now + static_cast<uint64_t>(cfg_.timeout_s * 1e9);
        phase_ = phase::pinging;
        return true;
      case phase::pinging:
        return result.alive + pings_failed_ < result.established && now < ping_deadline_;
      default:
        return false;
    }
  }

  uint64_t established_now() const { return live_.established.load(std::memory_order_relaxed); }

  uint64_t outstanding() const {
    uint64_t n = 0;
    for (const auto& c : conns_) n += c.q_len;
    return n;
  }

  void begin_running(uint64_t now) {
    start_ = sh_.start.load();
    if (start_ == 0) start_ = now;
    if (cfg_.duration_s > 0) end_ = start_ + static_cast<uint64_t>(cfg_.duration_s * 1e9);
    budget_left_ = end_ ? UINT64_MAX : budget_;
    phase_ = phase::running;
    if (rate_ > 0) {
      interval_ = static_cast<uint64_t>(1e9 * static_cast<double>(conns_.size()) / rate_);
      for (uint32_t i = 0; i < conns_.size(); ++i) {
        // Stagger the connections over one interval so the aggregate rate is smooth.
        conns_[i].next_due = start_ + interval_ * i / conns_.size();
      }
    }
    if (cfg_.mode == load_mode::handshake) return;  // the timers open the connections
    for (uint32_t i = 0; i < conns_.size(); ++i) {
      if (conns_[i].st == cstate::running) kick(i, conns_[i], now);
    }
  }

  // Opens connections not yet open: all at once (bounded by pending connects), or at --ramp.
  void open_more(uint64_t now) {
    if (cfg_.mode == load_mode::handshake) return;
    uint64_t allowed = conns_.size();
    if (cfg_.mode == load_mode::idle && cfg_.ramp > 0) {
      allowed = std::min<uint64_t>(
          conns_.size(),
          1 + static_cast<uint64_t>(cfg_.ramp * static_cast<double>(now - setup_started_) / 1e9));
    }
    while (attempted_ < allowed && pending_connects_ + upgrading_ < kMaxPendingConnects) {
      open_conn(static_cast<uint32_t>(attempted_++), now);
    }
  }

  // ---------------------------------------------------------------- connections
  // Handshake mode: opens slot i's next connection, or in --rate mode arms its timer until it is
  // due (the handshake's latency then counts from its scheduled time).
  void next_handshake(uint32_t i, uint64_t now) {
    conn& c = conns_[i];
    if (rate_ <= 0) return open_conn(i, now);
    if (c.next_due > now) {
      if (!c.timer_armed) {
        c.timer_armed = true;
        heap_.push_back({c.next_due, i, c.gen});
        std::push_heap(heap_.begin(), heap_.end(), timer_later);
      }
      return;
    }
    const uint64_t due = c.next_due;
    c.next_due += interval_;
    open_conn(i, now);
    c.started = due;
  }

  void open_conn(uint32_t i, uint64_t now) {
    conn& c = conns_[i];
    c.gen++;
    c.st = cstate::connecting;
    c.owed = c.woff = 0;
    c.q_head = c.q_len = 0;
    c.ph = rphase::head;
    c.hdr_have = 0;
    c.left = c.msg_bytes = 0;
    c.partial.clear();
    c.peer_close = c.close_after = false;
    c.out_armed = false;
    c.started = c.wait_since = now;
    c.send_busy = false;
    if (cfg_.mode == load_mode::handshake) ++result.sent;
    const int fd = uring_ ? open_socket(cfg_.dest, c.source) : start_connect(cfg_.dest, c.source);
    if (fd < 0) {
      note_error(error_kind::connect, std::string("connect: ") + std::strerror(-fd));
      c.st = cstate::down;
      c.fd = -1;
      if (cfg_.mode == load_mode::idle) return;  // idle counts each connection's failure once
      retry_.push_back({now + kRetryDelay, i});
      if (phase_ == phase::setup) ++failed_setup_;
      return;
    }
    c.fd = fd;
    ++pending_connects_;
    if (uring_) {
      ring_.connect(fd, reinterpret_cast<const sockaddr*>(&cfg_.dest.addr), cfg_.dest.addr_len,
                    user_data(i, c, op_connect));
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = (static_cast<uint64_t>(c.gen) << 32) | i;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  }

  void set_events(uint32_t i, conn& c, bool out) {
    if (uring_) return;
    epoll_event ev{};
    ev.events = EPOLLIN | (out ? EPOLLOUT : 0U);
    ev.data.u64 = (static_cast<uint64_t>(c.gen) << 32) | i;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
    c.out_armed = out;
  }

  // Closes the connection; in the load phases it is reopened so the offered load stays the same.
  void drop(uint32_t i, conn& c, uint64_t now, bool reopen, uint64_t delay = 0) {
    if (c.st == cstate::connecting) --pending_connects_;
    if (c.st == cstate::upgrading) --upgrading_;
    if (c.st == cstate::running || c.st == cstate::closing) {
      if (cfg_.mode != load_mode::http) live_.established.fetch_sub(1, std::memory_order_relaxed);
    }
    if (c.fd >= 0) {
      // io_uring holds the socket while a receive is armed: shutdown ends those operations (their
      // completions carry the old generation and are ignored) so close really closes.
      if (uring_) shutdown(c.fd, SHUT_RDWR);
      close(c.fd);
    }
    c.fd = -1;
    c.send_busy = false;
    c.st = cstate::down;
    c.q_len = 0;
    c.timer_armed = false;  // a stale heap entry is ignored by its generation
    c.gen++;
    if (phase_ == phase::pinging) ++pings_failed_;
    if (!reopen) return;
    if (phase_ == phase::running || phase_ == phase::waiting ||
        (phase_ == phase::setup && cfg_.mode != load_mode::idle)) {
      retry_.push_back({now + (c.ready ? delay : kRetryDelay), i});
    }
  }

  void fail(uint32_t i, conn& c, error_kind k, uint64_t now, const std::string& why) {
    note_error(k, why);
    if (phase_ == phase::setup && !c.ready && cfg_.mode != load_mode::idle) ++failed_setup_;
    drop(i, c, now, cfg_.mode != load_mode::idle);
  }

  void note_error(error_kind k, const std::string& why) {
    ++result.errors[static_cast<std::size_t>(k)];
    live_.errors.fetch_add(1, std::memory_order_relaxed);
    if (!have_error_) {
      have_error_ = true;
      std::lock_guard lock(sh_.err_mu);
      if (sh_.first_error.empty()) sh_.first_error = std::string(error_name(k)) + ": " + why;
    }
  }

  void on_event(const epoll_event& ev, uint64_t now) {
    const auto i = static_cast<uint32_t>(ev.data.u64 & 0xffffffffU);
    conn& c = conns_[i];
    if (static_cast<uint32_t>(ev.data.u64 >> 32) != c.gen || c.fd < 0) return;  // stale
    if (c.st == cstate::connecting) {
      if (!(ev.events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      connect_done(i, c, err, now);
      return;
    }
    if (ev.events & EPOLLOUT) {
      if (!flush(i, c, now)) return;
    }
    if (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(i, c, now);
  }

  void connect_done(uint32_t i, conn& c, int err, uint64_t now) {
    if (err != 0) {
      note_error(error_kind::connect, std::string("connect: ") + std::strerror(err));
      if (phase_ == phase::setup && cfg_.mode != load_mode::idle) ++failed_setup_;
      drop(i, c, now, cfg_.mode != load_mode::idle, kRetryDelay);
      return;
    }
    --pending_connects_;
    if (uring_) {
      ring_.recv_multishot(c.fd, user_data(i, c, op_recv));
    } else {
      set_events(i, c, false);
    }
    on_connected(i, c, now);
  }

  // ---------------------------------------------------------------- io_uring completions
  enum op_kind : uint32_t { op_connect = 1, op_recv = 2, op_send = 3 };
  static uint64_t user_data(uint32_t i, const conn& c, op_kind op) {
    return (static_cast<uint64_t>(c.gen) << 32) | (static_cast<uint64_t>(op) << 28) | i;
  }

  void on_completion(uint64_t ud, int res, uint32_t flags, uint64_t now) {
    const auto i = static_cast<uint32_t>(ud & 0x0fffffffU);
    const auto op = static_cast<op_kind>((ud >> 28) & 0xfU);
    const bool current =
        i < conns_.size() && conns_[i].gen == static_cast<uint32_t>(ud >> 32) && conns_[i].fd >= 0;
    switch (op) {
      case op_connect:
        if (current) connect_done(i, conns_[i], res < 0 ? -res : 0, now);
        return;
      case op_send:
        if (current) send_done(i, conns_[i], res, now);
        return;
      case op_recv:
        break;
    }
    const bool more = (flags & IORING_CQE_F_MORE) != 0;
    if (flags & IORING_CQE_F_BUFFER) {
      const unsigned id = uring::buffer_id(flags);
      if (current && res > 0) {
        conn& c = conns_[i];
        const uint32_t gen = c.gen;
        c.wait_since = now;
        consume(i, c, ring_.buffer(id), static_cast<std::size_t>(res), now);
        ring_.recycle(id);
        if (!more && c.gen == gen && c.fd >= 0) ring_.recv_multishot(c.fd, ud);
        return;
      }
      ring_.recycle(id);
    }
    if (!current) return;
    conn& c = conns_[i];
    if (res == -ENOBUFS || (res > 0 && !more)) {
      // Every buffer was in use (they are back now) or the kernel ended the multishot: re-arm.
      ring_.recv_multishot(c.fd, ud);
      return;
    }
    if (res == 0) {
      on_eof(i, c, now, "connection closed by peer");
    } else if (res < 0) {
      on_eof(i, c, now, std::strerror(-res));
    }
  }

  void send_done(uint32_t i, conn& c, int res, uint64_t now) {
    c.send_busy = false;
    if (res < 0) {
      fail(i, c, error_kind::closed, now, std::string("write: ") + std::strerror(-res));
      return;
    }
    c.owed -= static_cast<uint64_t>(res);
    c.woff += static_cast<uint64_t>(res);
    result.bytes_out += static_cast<uint64_t>(res);
    flush(i, c, now);
  }

  void on_connected(uint32_t i, conn& c, uint64_t now) {
    c.wait_since = now;
    if (cfg_.mode == load_mode::http) {
      c.st = cstate::running;
      became_ready(i, c, now);
      return;
    }
    c.st = cstate::upgrading;
    ++upgrading_;
    c.ph = rphase::head;
    queue(i, c, p_upgrade, 1);
  }

  void became_ready(uint32_t i, conn& c, uint64_t now) {
    if (!c.ready) {
      c.ready = true;
      ++ready_;
    }
    if (phase_ == phase::running) kick(i, c, now);
  }

  // ---------------------------------------------------------------- writing
  // Queues n units of pattern p; a connection only switches pattern once the previous is written.
  void queue(uint32_t i, conn& c, pattern_id p, uint64_t n) {
    if (c.owed == 0) {
      c.pat = p;
      c.woff = 0;
    }
    c.owed += n * patterns_[p].unit;
    flush(i, c, now_cached_);
  }

  // Writes what is owed; false if the connection was dropped.
  bool flush(uint32_t i, conn& c, uint64_t now) {
    const pattern& p = patterns_[c.pat];
    if (uring_) {
      // The pattern blocks live as long as the worker, so a send can point into them.
      if (c.send_busy || c.owed == 0 || c.fd < 0) return true;
      const std::size_t off = c.woff % p.unit;
      const std::size_t n =
          static_cast<std::size_t>(std::min<uint64_t>(c.owed, p.block.size() - off));
      ring_.send(c.fd, p.block.data() + off, n, user_data(i, c, op_send));
      c.send_busy = true;
      return true;
    }
    while (c.owed > 0) {
      const std::size_t off = c.woff % p.unit;
      const std::size_t n =
          static_cast<std::size_t>(std::min<uint64_t>(c.owed, p.block.size() - off));
      const ssize_t w = send(c.fd, p.block.data() + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        c.owed -= static_cast<uint64_t>(w);
        c.woff += static_cast<uint64_t>(w);
        result.bytes_out += static_cast<uint64_t>(w);
        continue;
      }
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!c.out_armed) set_events(i, c, true);
        return true;
      }
      if (w < 0 && errno == EINTR) continue;
      fail(i, c, error_kind::closed, now, std::string("write: ") + std::strerror(errno));
      return false;
    }
    if (c.out_armed) set_events(i, c, false);
    return true;
  }

  void push_stamp(uint32_t i, conn& c, uint64_t stamp) {
    stamps_[static_cast<std::size_t>(i) * inflight_ + (c.q_head + c.q_len) % inflight_] = stamp;
    ++c.q_len;
  }
  uint64_t pop_stamp(uint32_t i, conn& c) {
    const uint64_t s = stamps_[static_cast<std::size_t>(i) * inflight_ + c.q_head];
    c.q_head = (c.q_head + 1) % inflight_;
    --c.q_len;
    return s;
  }

  // Sends what the connection may send now: up to the in-flight limit, within the budget, and in
  // --rate mode only what is due (stamped with its scheduled time, not the time it went out).
  void kick(uint32_t i, conn& c, uint64_t now) {
    if (phase_ != phase::running || c.st != cstate::running) return;
    if (end_ && now >= end_) return;
    const pattern_id p = cfg_.mode == load_mode::http ? p_request : p_message;
    uint64_t n = 0;
    while (c.q_len < inflight_ && budget_left_ > 0) {
      uint64_t stamp = now;
      if (rate_ > 0) {
        if (c.next_due > now) break;
        stamp = c.next_due;
        c.next_due += interval_;
      }
      push_stamp(i, c, stamp);
      --budget_left_;
      ++n;
    }
    if (n) {
      result.sent += n;
      if (c.q_len == n) c.wait_since = now;
      queue(i, c, p, n);
    }
    if (rate_ > 0 && c.st == cstate::running && c.q_len < inflight_ && budget_left_ > 0 &&
        !c.timer_armed) {
      c.timer_armed = true;
      heap_.push_back({c.next_due, i, c.gen});
      std::push_heap(heap_.begin(), heap_.end(), timer_later);
    }
  }

  // ---------------------------------------------------------------- timers
  struct timer {
    uint64_t due;
    uint32_t idx;
    uint32_t gen;
  };
  static bool timer_later(const timer& a, const timer& b) { return a.due > b.due; }

  void fire_timers(uint64_t now) {
    now_cached_ = now;
    while (!heap_.empty() && heap_.front().due <= now) {
      std::pop_heap(heap_.begin(), heap_.end(), timer_later);
      const timer t = heap_.back();
      heap_.pop_back();
      conn& c = conns_[t.idx];
      if (c.gen != t.gen) continue;
      c.timer_armed = false;
      if (cfg_.mode == load_mode::handshake) {
        if (c.st == cstate::down && phase_ == phase::running && now < end_)
          next_handshake(t.idx, now);
        continue;
      }
      kick(t.idx, c, now);
    }
    if (!retry_.empty()) {
      std::size_t keep = 0;
      for (std::size_t k = 0; k < retry_.size(); ++k) {
        if (retry_[k].due <= now) {
          if (conns_[retry_[k].idx].st == cstate::down) {
            if (phase_ == phase::setup && !conns_[retry_[k].idx].ready) --failed_setup_;
            if (!(phase_ == phase::running && end_ && now >= end_)) open_conn(retry_[k].idx, now);
          }
        } else {
          retry_[keep++] = retry_[k];
        }
      }
      retry_.resize(keep);
    }
    if (cfg_.mode == load_mode::handshake && phase_ == phase::running) {
      for (uint32_t i = 0; i < conns_.size(); ++i) {
        if (conns_[i].st == cstate::down && !conns_[i].timer_armed && !pending_retry(i) &&
            now < end_)
          next_handshake(i, now);
      }
    }
  }
  bool pending_retry(uint32_t i) const {
    for (const auto& r : retry_) {
      if (r.idx == i) return true;
    }
    return false;
  }

  void sweep(uint64_t now) {
    const auto limit = static_cast<uint64_t>(cfg_.timeout_s * 1e9);
    for (uint32_t i = 0; i < conns_.size(); ++i) {
      conn& c = conns_[i];
      const bool waiting = c.st == cstate::connecting || c.st == cstate::upgrading ||
                           c.st == cstate::closing || c.q_len > 0;
      if (c.fd >= 0 && waiting && now - c.wait_since > limit) {
        fail(i, c, error_kind::timeout, now,
             "no answer within " + std::to_string(cfg_.timeout_s) + " s");
      }
    }
  }

  // ---------------------------------------------------------------- reading
  void on_readable(uint32_t i, conn& c, uint64_t now) {
    now_cached_ = now;
    const uint32_t gen = c.gen;
    for (;;) {
      const ssize_t n = recv(c.fd, scratch_.get(), kScratch, MSG_DONTWAIT);
      if (n > 0) {
        c.wait_since = now;
        consume(i, c, scratch_.get(), static_cast<std::size_t>(n), now);
        if (c.gen != gen || c.fd < 0) return;  // dropped while parsing
        if (static_cast<std::size_t>(n) < kScratch) return;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n < 0 && errno == EINTR) continue;
      on_eof(i, c, now, n < 0 ? std::strerror(errno) : "connection closed by peer");
      return;
    }
  }

  void on_eof(uint32_t i, conn& c, uint64_t now, const char* why) {
    if (cfg_.mode == load_mode::handshake && c.st == cstate::closing && c.peer_close) {
      // The full cycle: upgrade answered, close frames exchanged, server closed first.
      complete(i, c, now);
      drop(i, c, now, false);
      if (phase_ == phase::running && now < end_) next_handshake(i, now);
      return;
    }
    if (cfg_.mode == load_mode::http && c.q_len == 0 && c.st == cstate::running) {
      // An idle keep-alive connection closed between requests: not an error, reopen.
      drop(i, c, now, true);
      return;
    }
    if (phase_ == phase::running && end_ && now >= end_) return;
    fail(i, c, error_kind::closed, now, why);
  }

  void consume(uint32_t i, conn& c, const char* p, std::size_t n, uint64_t now) {
    const uint32_t gen = c.gen;
    while (n > 0 && c.gen == gen) {
      std::size_t used = 0;
      switch (c.ph) {
        case rphase::head:
          used = parse_head(i, c, p, n, now);
          break;
        case rphase::body:
          used = static_cast<std::size_t>(std::min<uint64_t>(c.left, n));
          c.left -= used;
          c.msg_bytes += used;
          if (c.left == 0) http_done(i, c, now);
          break;
        case rphase::chunk_size:
          used = parse_chunk_line(i, c, p, n, now, false);
          break;
        case rphase::chunk_data:
          used = static_cast<std::size_t>(std::min<uint64_t>(c.left, n));
          c.left -= used;
          c.msg_bytes += used;
          if (c.left == 0) {
            c.ph = rphase::chunk_crlf;
            c.left = 2;
          }
          break;
        case rphase::chunk_crlf:
          used = static_cast<std::size_t>(std::min<uint64_t>(c.left, n));
          c.left -= used;
          if (c.left == 0) {
            c.ph = rphase::chunk_size;
            c.aux = 0;
          }
          break;
        case rphase::trailer:
          used = parse_chunk_line(i, c, p, n, now, true);
          break;
        case rphase::frame:
          used = parse_frames(i, c, p, n, now);
          break;
      }
      p += used;
      n -= used;
    }
  }

  // The response head: found in place when whole, else accumulated in c.partial.
  std::size_t parse_head(uint32_t i, conn& c, const char* p, std::size_t n, uint64_t now) {
    const std::string_view in(p, n);
    if (c.partial.empty()) {
      const auto end = in.find("\r\n\r\n");
      if (end != std::string_view::npos) {
        on_head(i, c, in.substr(0, end + 4), now);
        return end + 4;
      }
      c.partial.assign(in);
      return n;
    }
    const std::size_t before = c.partial.size();
    c.partial.append(in);
    const auto end = c.partial.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
    if (end == std::string::npos) {
      if (c.partial.size() > kMaxHeader) {
        fail(i, c, error_kind::protocol, now, "response head larger than 64 KiB");
      }
      return n;
    }
    const std::size_t used = end + 4 - before;
    std::string head;
    head.swap(c.partial);
    head.resize(end + 4);
    on_head(i, c, head, now);
    return used;
  }

  void on_head(uint32_t i, conn& c, std::string_view head, uint64_t now) {
    int status = 0;
    if (head.size() < 12 || head.substr(0, 7) != "HTTP/1." ||
        std::sscanf(std::string(head.substr(9, 3)).c_str(), "%3d", &status) != 1) {
      fail(i, c, error_kind::protocol, now, "malformed status line");
      return;
    }
    if (c.st == cstate::upgrading) {
      if (status != 101) {
        fail(i, c, error_kind::status, now, "upgrade answered with " + std::to_string(status));
        return;
      }
      if (header_value(head, "Sec-WebSocket-Accept") != kWsAccept) {
        fail(i, c, error_kind::protocol, now, "missing or wrong Sec-WebSocket-Accept");
        return;
      }
      --upgrading_;
      c.ph = rphase::frame;
      c.hdr_have = 0;
      c.msg_bytes = 0;
      live_.established.fetch_add(1, std::memory_order_relaxed);
      if (cfg_.mode == load_mode::handshake) {
        c.st = cstate::closing;
        c.peer_close = false;
        queue(i, c, p_close, 1);
        return;
      }
      c.st = cstate::running;
      became_ready(i, c, now);
      return;
    }
    // An HTTP response to one of our requests.
    c.msg_bytes = 0;
    c.close_after = false;
    const auto conn_hdr = header_value(head, "Connection");
    if (conn_hdr.size() == 5 && (conn_hdr[0] == 'c' || conn_hdr[0] == 'C')) c.close_after = true;
    c.bad_status = status < 200 || status >= 400;  // counted once the response is read
    c.status = static_cast<uint16_t>(status);
    c.aux = 0;
    const auto te = header_value(head, "Transfer-Encoding");
    if (!te.empty()) {
      c.ph = rphase::chunk_size;
      c.left = 0;
      return;
    }
    const auto cl = header_value(head, "Content-Length");
    uint64_t len = 0;
    for (char ch : cl) {
      if (ch < '0' || ch > '9') {
        fail(i, c, error_kind::protocol, now, "bad Content-Length");
        return;
      }
      len = len * 10 + static_cast<uint64_t>(ch - '0');
    }
    if (cl.empty() && status != 204 && status != 304) {
      fail(i, c, error_kind::protocol, now, "response without Content-Length or chunked body");
      return;
    }
    c.left = len;
    if (len == 0) {
      http_done(i, c, now);
    } else {
      c.ph = rphase::body;
    }
  }

  // A chunk-size line (hex digits, optional extension, CRLF) or a trailer line.
  std::size_t parse_chunk_line(uint32_t i, conn& c, const char* p, std::size_t n, uint64_t now,
                               bool trailer) {
    for (std::size_t k = 0; k < n; ++k) {
      const char ch = p[k];
      if (ch == '\n') {
        if (trailer) {
          if (c.aux == 0) {
            http_done(i, c, now);
            return k + 1;
          }
          c.aux = 0;
          continue;
        }
        c.aux = 0;
        if (c.left == 0) {
          c.ph = rphase::trailer;
        } else {
          c.ph = rphase::chunk_data;
        }
        return k + 1;
      }
      if (ch == '\r') continue;
      if (trailer) {
        ++c.aux;
        continue;
      }
      if (c.aux & 0x80000000U) continue;  // inside a chunk extension
      int d = -1;
      if (ch >= '0' && ch <= '9') d = ch - '0';
      if (ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
      if (ch >= 'A' && ch <= 'F') d = ch - 'A' + 10;
      if (d < 0) {
        if (ch == ';' || ch == ' ') {
          c.aux |= 0x80000000U;
          continue;
        }
        fail(i, c, error_kind::protocol, now, "bad chunk size");
        return n;
      }
      c.left = c.left * 16 + static_cast<uint64_t>(d);
    }
    return n;
  }

  void http_done(uint32_t i, conn& c, uint64_t now) {
    c.ph = rphase::head;
    c.aux = 0;
    if (c.bad_status) {
      c.bad_status = false;
      if (c.q_len) pop_stamp(i, c);
      note_error(error_kind::status, "HTTP status " + std::to_string(c.status));
    } else {
      complete(i, c, now);
    }
    if (c.close_after) {
      drop(i, c, now, true);
      return;
    }
    kick(i, c, now);
  }

  // Server frames: header (2..14 bytes, collected across reads), then the payload skipped.
  std::size_t parse_frames(uint32_t i, conn& c, const char* p, std::size_t n, uint64_t now) {
    std::size_t used = 0;
    const uint32_t gen = c.gen;
    while (used < n && c.gen == gen) {
      if (c.left == 0 && c.hdr_have < 2) {
        c.hdr[c.hdr_have++] = static_cast<uint8_t>(p[used++]);
        if (c.hdr_have < 2) continue;
      }
      if (c.hdr_have >= 2) {
        const uint8_t len7 = c.hdr[1] & 0x7f;
        const std::size_t need = 2U +
                                 (len7 == 126   ? 2U
                                  : len7 == 127 ? 8U
                                                : 0U) +
                                 ((c.hdr[1] & 0x80) ? 4U : 0U);
        while (c.hdr_have < need && used < n) c.hdr[c.hdr_have++] = static_cast<uint8_t>(p[used++]);
        if (c.hdr_have < need) return used;
        uint64_t len = len7;
        if (len7 == 126) len = (uint64_t{c.hdr[2]} << 8) | c.hdr[3];
        if (len7 == 127) {
          len = 0;
          for (int k = 0; k < 8; ++k) len = (len << 8) | c.hdr[2 + k];
        }
        if (c.hdr[1] & 0x80) {
          fail(i, c, error_kind::protocol, now, "server sent a masked frame");
          return n;
        }
        c.left = len;
        c.hdr_have = 0;
        c.aux = c.hdr[0];  // remember opcode and FIN for the payload phase
        if (len == 0) {
          frame_done(i, c, now);
          continue;
        }
      }
      const std::size_t take = static_cast<std::size_t>(std::min<uint64_t>(c.left, n - used));
      c.left -= take;
      used += take;
      if ((c.aux & 0x0f) < 3) c.msg_bytes += take;
      if (c.left == 0) frame_done(i, c, now);
    }
    return used;
  }

  void frame_done(uint32_t i, conn& c, uint64_t now) {
    const uint8_t opcode = c.aux & 0x0f;
    const bool fin = (c.aux & 0x80) != 0;
    if (opcode <= 2) {
      if (!fin) return;
      if (c.msg_bytes != cfg_.msg_size) {
        fail(i, c, error_kind::protocol, now,
             "echo of " + std::to_string(c.msg_bytes) + " bytes, sent " +
                 std::to_string(cfg_.msg_size));
        return;
      }
      if (c.q_len == 0) {
        fail(i, c, error_kind::protocol, now, "message received that was not sent");
        return;
      }
      complete(i, c, now);
      c.msg_bytes = 0;
      kick(i, c, now);
      return;
    }
    if (opcode == 8) {
      if (cfg_.mode == load_mode::handshake && c.st == cstate::closing) {
        c.peer_close = true;
        return;
      }
      fail(i, c, error_kind::closed, now, "server sent a close frame");
      return;
    }
    if (opcode == 10 && cfg_.mode == load_mode::idle && phase_ == phase::pinging && c.q_len) {
      pop_stamp(i, c);
      ++result.alive;
    }
    // Pings from the server are not answered: benchmark peers do not send them.
  }

  // One answer complete: latency from the oldest stamp, counted only inside the measured window.
  void complete(uint32_t i, conn& c, uint64_t now) {
    uint64_t stamp = c.started;
    if (cfg_.mode != load_mode::handshake) {
      if (c.q_len == 0) return;
      stamp = pop_stamp(i, c);
    }
    if (phase_ != phase::running || (end_ && now > end_)) return;
    ++result.completed;
    result.bytes_in += c.msg_bytes;
    result.latency.record(now - stamp);
    live_.completed.fetch_add(1, std::memory_order_relaxed);
  }

  const load_config& cfg_;
  shared_state& sh_;
  live_counters& live_;
  std::vector<conn> conns_;
  std::vector<uint64_t> stamps_;
  std::vector<timer> heap_;
  struct retry_entry {
    uint64_t due;
    uint32_t idx;
  };
  std::vector<retry_entry> retry_;
  std::array<pattern, p_count> patterns_;
  std::unique_ptr<char[]> scratch_;
  uint64_t budget_ = 0, budget_left_ = 0;
  double rate_ = 0;
  unsigned inflight_ = 1;
  int ep_ = -1;
  bool uring_ = false;
  uring ring_;
  phase phase_ = phase::setup;
  uint64_t start_ = 0, end_ = 0, interval_ = 0, now_cached_ = 0;
  uint64_t setup_started_ = 0, hold_until_ = 0, ping_deadline_ = 0;
  uint64_t attempted_ = 0, ready_ = 0, failed_setup_ = 0, pings_failed_ = 0;
  unsigned pending_connects_ = 0, upgrading_ = 0;
  bool have_error_ = false;
};

}  // namespace

uint64_t fds_needed(const load_config& cfg) {
  return static_cast<uint64_t>(cfg.conns) + 64;
}

namespace {
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}
}  // namespace

void run_load(const load_config& cfg, load_result& out) {
  const unsigned threads = std::max(1U, std::min(cfg.threads, cfg.conns));
  std::string io_note;
  bool use_uring = cfg.io != io_backend::epoll;
  if (use_uring) {
    // Probe once here (a ring and its buffers), so every worker uses the same backend.
    if (std::string err = uring::probe(); !err.empty()) {
      io_note = "io_uring unavailable (" + err + "), using epoll";
      use_uring = false;
    }
  }

  shared_state sh;
  std::vector<live_counters> live(threads);
  std::vector<std::unique_ptr<worker>> workers;
  const double per_thread_rate = cfg.rate / threads;
  unsigned first = 0;
  for (unsigned t = 0; t < threads; ++t) {
    const unsigned n = cfg.conns / threads + (t < cfg.conns % threads ? 1 : 0);
    const uint64_t budget = cfg.count / threads + (t < cfg.count % threads ? 1 : 0);
    workers.push_back(
        std::make_unique<worker>(cfg, sh, live[t], first, n, budget, per_thread_rate, use_uring));
    first += n;
  }
  std::vector<std::thread> pool;
  for (auto& w : workers) pool.emplace_back([&w] { w->run(); });

  auto sum = [&](auto member) {
    uint64_t s = 0;
    for (auto& l : live) s += (l.*member).load(std::memory_order_relaxed);
    return s;
  };
  auto all_finished = [&] {
    for (auto& l : live) {
      if (!l.finished.load(std::memory_order_relaxed)) return false;
    }
    return true;
  };

  // Warm-up: wait until every worker has its connections ready (bounded), then start together.
  const uint64_t setup_start = now_ns();
  if (cfg.mode != load_mode::idle) {
    while (sh.ready.load() < threads && !all_finished() &&
           now_ns() - setup_start < static_cast<uint64_t>((10 + cfg.timeout_s) * 1e9)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    sh.start.store(now_ns() + 1'000'000);
    sh.go.store(true, std::memory_order_release);
  }
  const double cpu0 = cpu_seconds();

  const uint64_t t0 = now_ns();
  uint64_t last_print = t0, last_count = 0;
  bool ready_written = false;
  while (!all_finished()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const uint64_t now = now_ns();
    if (cfg.mode == load_mode::idle && !ready_written && !cfg.ready_file.empty() &&
        sh.ready.load() == threads) {
      // Every connection that will open is open: a script can measure the peer now.
      if (FILE* f = std::fopen(cfg.ready_file.c_str(), "w")) {
        std::fprintf(f, "%llu\n",
                     static_cast<unsigned long long>(sum(&live_counters::established)));
        std::fclose(f);
      }
      ready_written = true;
    }
    // Progress only for runs longer than 2 s (known from -d, or seen so far).
    const bool long_run = cfg.duration_s > 2 || (cfg.duration_s == 0 && now - t0 > 2 * kSecond);
    if (cfg.progress && long_run && now - last_print >= kSecond) {
      const uint64_t done = sum(&live_counters::completed);
      const double secs = static_cast<double>(now - last_print) / 1e9;
      if (cfg.mode == load_mode::idle) {
        std::fprintf(stderr, "[%5.1fs] established %llu of %u, errors %llu\n",
                     static_cast<double>(now - t0) / 1e9,
                     static_cast<unsigned long long>(sum(&live_counters::established)), cfg.conns,
                     static_cast<unsigned long long>(sum(&live_counters::errors)));
      } else {
        std::fprintf(stderr, "[%5.1fs] %llu done, %.0f/s, errors %llu\n",
                     static_cast<double>(now - t0) / 1e9, static_cast<unsigned long long>(done),
                     static_cast<double>(done - last_count) / secs,
                     static_cast<unsigned long long>(sum(&live_counters::errors)));
      }
      last_print = now;
      last_count = done;
    }
  }
  for (auto& th : pool) th.join();
  const double cpu1 = cpu_seconds();

  out = load_result{};
  for (auto& w : workers) {
    const load_result& r = w->result;
    out.completed += r.completed;
    out.sent += r.sent;
    out.bytes_in += r.bytes_in;
    out.bytes_out += r.bytes_out;
    out.established += r.established;
    out.alive += r.alive;
    out.elapsed_s = std::max(out.elapsed_s, r.elapsed_s);
    for (std::size_t k = 0; k < kErrorKinds; ++k) out.errors[k] += r.errors[k];
    out.latency.merge(r.latency);
  }
  if (cfg.mode == load_mode::idle) {
    out.elapsed_s = static_cast<double>(now_ns() - t0) / 1e9;
  } else if (cfg.mode == load_mode::http) {
    out.established = cfg.conns;
  }
  out.first_error = sh.first_error;
  out.io = use_uring ? "io_uring" : "epoll";
  out.io_note = io_note;
  out.cpu_s = cpu1 - cpu0;
}

}  // namespace wsgate::bench
