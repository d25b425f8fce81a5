#include "proxy/tunnel.hpp"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <random>

#include "proxy/logs.hpp"
#include "proxy/ws_frames.hpp"

namespace wsgate::proxy {

namespace {

using clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
// How soon wsgate tries again to put a frame in a stream that is inside a peer's frame.
constexpr auto kRetry = std::chrono::milliseconds(50);
// QUIT with worker_shutdown_timeout unset: how long the peers get to answer the Close.
constexpr auto kDefaultCloseWait = std::chrono::seconds(10);

uint32_t mask_key() {
  thread_local std::mt19937 rng{std::random_device{}()};
  uint32_t k = 0;
  while (k == 0) k = static_cast<uint32_t>(rng());
  return k;
}

std::string endpoint_text(const tcp::socket& s, bool remote) {
  error_code ec;
  const auto ep = remote ? s.remote_endpoint(ec) : s.local_endpoint(ec);
  if (ec) return "-";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// Both connections, the clocks of what each peer last sent, and the frame position of each
// stream. Directions: 0 reads the client and writes the upstream, 1 the reverse; peers: 0 is
// the client, 1 the upstream, so direction d reads peer d and writes peer 1 - d. What an idle
// tunnel costs is this record, two sockets and three small coroutine frames.
struct tunnel final : tunnel_handle {
  tunnel(worker_context& wc, tcp::socket c, std::unique_ptr<upstream_conn> u, tunnel_limits l)
      : w(wc), client(std::move(c)), upstream(std::move(u)), limits(l), timer(wc.io) {
    stats.started = std::chrono::system_clock::now();
    stats.client = endpoint_text(client, true);
    stats.upstream =
        upstream->peer.empty() ? endpoint_text(upstream->socket, true) : upstream->peer;
    w.tunnels.add(this);
  }
  // The worker counted both sockets as connections; the count drops when the tunnel goes.
  // (The registry is left in close_all: when a stopping worker destroys its event loop,
  // pending tunnels are destroyed without closing, after the registry is gone.)
  ~tunnel() override { w.connections -= 2; }

  worker_context& w;
  tcp::socket client;
  std::unique_ptr<upstream_conn> upstream;
  tunnel_limits limits;
  asio::steady_timer timer;
  clock::time_point last_activity = clock::now();
  clock::time_point last_heard[2] = {last_activity, last_activity};
  clock::time_point ping_sent[2] = {clock::time_point::min(), clock::time_point::min()};
  clock::time_point write_deadline[2] = {clock::time_point::max(), clock::time_point::max()};
  bool writing[2] = {false, false};
  frame_tracker frames[2];
  // QUIT: Close 1001 sent into direction d; the peer's answer is counted by frames[1 - d].
  bool leaving = false;
  bool close_sent[2] = {false, false};
  uint64_t closes_before[2] = {0, 0};
  uint64_t closes_at_leave[2] = {0, 0};
  clock::time_point leave_deadline = clock::time_point::max();
  bool ping_wanted[2] = {false, false};  // a ping to peer p waits for a frame boundary
  bool ended[2] = {false, false};        // direction d's peer finished sending (EOF)
  int open_directions = 2;
  const char* ended_by = nullptr;  // the peer that closed its side first
  bool closed = false;

  tcp::socket& peer(int p) { return p == 0 ? client : upstream->socket; }

  void close_all(const char* reason) {
    if (closed) return;
    closed = true;
    if (stats.close_reason.empty()) stats.close_reason = reason;
    error_code ec;
    client.close(ec);
    upstream->socket.close(ec);
    timer.cancel();
    const auto lasted = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now() - stats.started);
    log_error(log_level::info,
              "tunnel " + std::to_string(stats.id) + " closed (" + stats.close_reason +
                  "), client: " + stats.client + ", upstream: " + stats.upstream +
                  ", to upstream " + std::to_string(stats.bytes[0]) + " bytes " +
                  std::to_string(stats.frames[0]) + " frames, to client " +
                  std::to_string(stats.bytes[1]) + " bytes " + std::to_string(stats.frames[1]) +
                  " frames, pings " + std::to_string(stats.pings_sent) + ", pongs swallowed " +
                  std::to_string(stats.pongs_swallowed) + ", " + std::to_string(lasted.count()) +
                  " ms");
    w.tunnels.remove(this);
  }
  // Keepalive needs both streams to be WebSocket framing wsgate can follow.
  bool keepalive() const {
    return limits.websocket && limits.keepalive.count() > 0 && !frames[0].broken() &&
           !frames[1].broken();
  }
  // nginx's timer: proxy_read_timeout since the last byte either way. With keepalive, each
  // peer must have sent something (a pong at least) within proxy_read_timeout.
  clock::time_point read_deadline() const {
    const auto since = keepalive() ? std::min(last_heard[0], last_heard[1]) : last_activity;
    return since + limits.idle;
  }
  clock::time_point deadline() const {
    return std::min({read_deadline(), write_deadline[0], write_deadline[1], leave_deadline});
  }

  // Writes one frame of wsgate's own into direction d, only between two frames of the peer and
  // with no relay write in flight. A frame this small goes out whole into an idle socket buffer;
  // if the buffer is full the frame waits for the next try.
  bool inject(int d, uint8_t opcode, std::string_view payload) {
    if (closed || !limits.websocket || writing[d] || close_sent[d] || !frames[d].at_boundary())
      return false;
    char buf[kMaxControlFrame];
    // Toward the upstream wsgate acts as a client, whose frames are masked.
    const size_t n = write_control_frame(buf, opcode, payload, d == 0 ? mask_key() : 0);
    const ssize_t sent = ::send(peer(1 - d).native_handle(), buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent == static_cast<ssize_t>(n)) return true;
    if (sent > 0) close_all("error");  // half a frame in the stream: nothing sane can follow
    return false;
  }

  // A keepalive ping to peer p; it goes into direction 1 - p and its pong comes back in p.
  bool try_ping(int p) {
    if (!inject(1 - p, 0x9, kKeepaliveToken)) {
      ping_wanted[p] = true;
      return false;
    }
    ping_wanted[p] = false;
    frames[p].expect_pong();
    ping_sent[p] = clock::now();
    ++stats.pings_sent;
    return true;
  }

  // QUIT: Close 1001 into direction d, once; true when direction d needs nothing more.
  bool try_close(int d) {
    if (close_sent[d]) return true;
    if (ended[d] || frames[d].broken()) {
      // Nothing can be written to peer 1 - d any more (its sender ended) or it does not speak
      // WebSocket: only its own close or the deadline help.
      close_sent[d] = true;
    } else if (frames[d].closes() > closes_at_leave[d]) {
      // The peer's own Close went through into this direction: a second one is not sent.
      close_sent[d] = true;
    } else if (inject(d, 0x8, std::string_view("\x03\xe9", 2))) {  // 1001, going away
      close_sent[d] = true;
    } else {
      return false;
    }
    closes_before[1 - d] = frames[1 - d].closes();
    return true;
  }
  // Both peers answered the Close (or ended): the Close handshake is complete.
  bool goodbye_done() const {
    for (int p = 0; p < 2; ++p)
      if (!close_sent[1 - p] || !(ended[p] || frames[p].closes() > closes_before[p])) return false;
    return true;
  }

  void going_away(clock::duration wait) override {
    if (leaving || closed) return;
    leaving = true;
    closes_at_leave[0] = frames[0].closes();
    closes_at_leave[1] = frames[1].closes();
    leave_deadline = clock::now() + (wait.count() > 0 ? wait : clock::duration(kDefaultCloseWait));
    timer.cancel();  // the watchdog sends the Close frames
  }
};

void tunnel_timed_out(tunnel& t) {
  log_error(log_level::info,
            "upstream timed out (110: Connection timed out) while proxying upgraded connection");
  t.close_all("idle timeout");
}

// The tunnel's timer: timeouts, keepalive pings, and the Close frames of a QUIT.
asio::awaitable<void> tunnel_watchdog(std::shared_ptr<tunnel> t) {
  while (!t->closed) {
    const auto now = clock::now();
    if (now >= t->leave_deadline) {
      t->close_all("going away");
      break;
    }
    if (now >= t->read_deadline()) {
      tunnel_timed_out(*t);
      break;
    }
    if (now >= std::min(t->write_deadline[0], t->write_deadline[1])) {
      log_error(log_level::info,
                "upstream timed out (110: Connection timed out) while proxying upgraded "
                "connection (send)");
      t->close_all("send timeout");
      break;
    }
    auto next = t->deadline();
    if (t->leaving && t->limits.websocket) {
      // Close frames go out as each stream reaches a frame boundary (the relay tries too).
      const bool sent = t->try_close(0) & t->try_close(1);
      if (t->goodbye_done()) {
        t->close_all("going away");
        break;
      }
      if (!sent) next = std::min(next, now + kRetry);
    } else if (t->keepalive()) {
      for (int p = 0; p < 2; ++p) {
        auto due = std::max(t->last_heard[p], t->ping_sent[p]) + t->limits.keepalive;
        if (now >= due) due = t->try_ping(p) ? now + t->limits.keepalive : now + kRetry;
        next = std::min(next, due);
      }
    }
    t->timer.expires_at(next);
    co_await t->timer.async_wait(use_nothrow);
  }
}

// One direction: wait for readability without a buffer, then borrow one and move what is there.
asio::awaitable<void> relay(std::shared_ptr<tunnel> t, int dir, std::string pending) {
  tcp::socket& from = t->peer(dir);
  tcp::socket& to = t->peer(1 - dir);
  const auto send_timeout = dir == 0 ? t->limits.upstream_send : t->limits.client_send;
  frame_tracker& frames = t->frames[dir];
  std::vector<asio::const_buffer> several;  // only when pongs were cut out of a chunk
  // Moves n bytes read from the peer on, through the frame tracker for a WebSocket.
  auto pass = [&](const char* data, size_t n) -> asio::awaitable<bool> {
    t->stats.bytes[dir] += n;
    asio::const_buffer one(data, n);
    several.clear();
    if (t->limits.websocket) {
      const auto& pieces = frames.feed(data, n);
      if (pieces.size() == 1) {
        one = asio::const_buffer(pieces[0].data, pieces[0].size);
      } else {
        one = asio::const_buffer();
        for (const auto& p : pieces) several.emplace_back(p.data, p.size);
      }
      t->stats.frames[dir] = frames.frames();
      t->stats.pongs_swallowed = t->frames[0].pongs_swallowed() + t->frames[1].pongs_swallowed();
    }
    // After wsgate's Close went into this direction, nothing more may follow it.
    if ((one.size() == 0 && several.empty()) || t->close_sent[dir]) co_return true;
    t->write_deadline[dir] = clock::now() + send_timeout;
    if (t->timer.expiry() > t->write_deadline[dir]) t->timer.cancel();
    t->writing[dir] = true;
    error_code ec;
    if (several.empty())
      std::tie(ec, std::ignore) = co_await asio::async_write(to, one, use_nothrow);
    else
      std::tie(ec, std::ignore) = co_await asio::async_write(to, several, use_nothrow);
    t->writing[dir] = false;
    t->write_deadline[dir] = clock::time_point::max();
    t->last_activity = clock::now();
    // A frame of wsgate's own that waited for this stream to reach a boundary goes now.
    if (!ec && frames.at_boundary()) {
      if (t->leaving)
        t->try_close(dir);
      else if (t->ping_wanted[1 - dir])
        t->try_ping(1 - dir);
    }
    co_return !ec;
  };
  if (!pending.empty()) {
    t->last_heard[dir] = clock::now();
    if (!co_await pass(pending.data(), pending.size())) {
      t->close_all("error");
      co_return;
    }
  }
  pending = std::string();
  error_code ec;
  from.non_blocking(true, ec);
  for (;;) {
    auto [wec] = co_await from.async_wait(tcp::socket::wait_read, use_nothrow);
    if (wec || t->closed) break;
    auto buf = t->w.buffers.take();
    bool end = false, failed = false;
    for (;;) {
      const size_t n = from.read_some(asio::buffer(buf.get(), buffer_pool::kSize), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec == asio::error::eof) {
        end = true;
        break;
      }
      if (ec) {
        failed = true;
        break;
      }
      t->last_activity = t->last_heard[dir] = clock::now();
      if (!co_await pass(buf.get(), n)) {
        failed = true;
        break;
      }
      if (n < buffer_pool::kSize) break;  // most likely drained: wait again without a buffer
    }
    t->w.buffers.give(std::move(buf));
    if (failed) {
      t->close_all(dir == 0 ? "client error" : "upstream error");
      co_return;
    }
    if (t->leaving) t->timer.cancel();  // a Close may now fit, or the handshake is complete
    if (end) {
      // Half-close: the peer finished sending; the other direction may still run.
      t->ended[dir] = true;
      if (!t->ended_by) t->ended_by = dir == 0 ? "client closed" : "upstream closed";
      to.shutdown(tcp::socket::shutdown_send, ec);
      if (--t->open_directions == 0) t->close_all(t->leaving ? "going away" : t->ended_by);
      co_return;
    }
  }
  t->close_all("closed");
}

}  // namespace

void start_tunnel(worker_context& w, tcp::socket client, std::unique_ptr<upstream_conn> upstream,
                  std::string to_upstream, tunnel_limits limits) {
  std::string to_client(upstream->in.data());
  upstream->in.consume(upstream->in.size());
  upstream->in.release();
  auto t = std::make_shared<tunnel>(w, std::move(client), std::move(upstream), limits);
  asio::co_spawn(w.io, tunnel_watchdog(t), asio::detached);
  asio::co_spawn(w.io, relay(t, 0, std::move(to_upstream)), asio::detached);
  asio::co_spawn(w.io, relay(t, 1, std::move(to_client)), asio::detached);
  // A QUIT that came while this tunnel's handshake was in flight applies to it too.
  if (w.draining) t->going_away(w.rt->config->main.worker_shutdown_timeout);
}

void quit_tunnels(worker_context& w, config::duration wait) {
  w.tunnels.going_away(wait);
}

}  // namespace wsgate::proxy
