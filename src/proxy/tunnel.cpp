#include "proxy/tunnel.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "proxy/logs.hpp"

namespace wsgate::proxy {

namespace {

using clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// Both connections and the clock of the last byte; what an idle tunnel costs is this record,
// two sockets and three small coroutine frames.
struct tunnel {
  tunnel(worker_context& wc, tcp::socket c, std::unique_ptr<upstream_conn> u, tunnel_limits l)
      : w(wc), client(std::move(c)), upstream(std::move(u)), limits(l), timer(wc.io) {}
  worker_context& w;
  tcp::socket client;
  std::unique_ptr<upstream_conn> upstream;
  tunnel_limits limits;
  asio::steady_timer timer;
  clock::time_point last_activity = clock::now();
  clock::time_point write_deadline[2] = {clock::time_point::max(), clock::time_point::max()};
  int open_directions = 2;
  bool closed = false;
  // The worker counted both sockets as connections; the count drops when the tunnel goes.
  ~tunnel() { w.connections -= 2; }

  void close_all() {
    if (closed) return;
    closed = true;
    error_code ec;
    client.close(ec);
    upstream->socket.close(ec);
    timer.cancel();
  }
  clock::time_point deadline() const {
    return std::min({last_activity + limits.idle, write_deadline[0], write_deadline[1]});
  }
};

// nginx's upgraded-connection timer: proxy_read_timeout since the last byte in either
// direction, and the send timeouts while a write stalls.
asio::awaitable<void> tunnel_watchdog(std::shared_ptr<tunnel> t) {
  while (!t->closed) {
    t->timer.expires_at(t->deadline());
    co_await t->timer.async_wait(use_nothrow);
    if (t->closed) break;
    if (clock::now() >= t->deadline()) {
      log_error(
          log_level::info,
          "upstream timed out (110: Connection timed out) while proxying upgraded connection");
      t->close_all();
    }
  }
}

// One direction: wait for readability without a buffer, then borrow one and move what is there.
asio::awaitable<void> relay(std::shared_ptr<tunnel> t, tcp::socket& from, tcp::socket& to, int dir,
                            std::string pending) {
  const auto send_timeout = dir == 0 ? t->limits.upstream_send : t->limits.client_send;
  auto write = [&](const char* data, size_t n) -> asio::awaitable<bool> {
    t->write_deadline[dir] = clock::now() + send_timeout;
    if (t->timer.expiry() > t->write_deadline[dir]) t->timer.cancel();
    auto [ec, written] = co_await asio::async_write(to, asio::buffer(data, n), use_nothrow);
    (void)written;
    t->write_deadline[dir] = clock::time_point::max();
    t->last_activity = clock::now();
    co_return !ec;
  };
  if (!pending.empty() && !co_await write(pending.data(), pending.size())) {
    t->close_all();
    co_return;
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
      t->last_activity = clock::now();
      if (!co_await write(buf.get(), n)) {
        failed = true;
        break;
      }
      if (n < buffer_pool::kSize) break;  // most likely drained: wait again without a buffer
    }
    t->w.buffers.give(std::move(buf));
    if (failed) {
      t->close_all();
      co_return;
    }
    if (end) {
      // Half-close: the peer finished sending; the other direction may still run.
      to.shutdown(tcp::socket::shutdown_send, ec);
      if (--t->open_directions == 0) t->close_all();
      co_return;
    }
  }
  t->close_all();
}

}  // namespace

void start_tunnel(worker_context& w, tcp::socket client, std::unique_ptr<upstream_conn> upstream,
                  std::string to_upstream, tunnel_limits limits) {
  std::string to_client(upstream->in.data());
  upstream->in.consume(upstream->in.size());
  upstream->in.release();
  auto t = std::make_shared<tunnel>(w, std::move(client), std::move(upstream), limits);
  asio::co_spawn(w.io, tunnel_watchdog(t), asio::detached);
  asio::co_spawn(w.io, relay(t, t->client, t->upstream->socket, 0, std::move(to_upstream)),
                 asio::detached);
  asio::co_spawn(w.io, relay(t, t->upstream->socket, t->client, 1, std::move(to_client)),
                 asio::detached);
}

}  // namespace wsgate::proxy
