#include "proxy/tunnel.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>

#include "proxy/logs.hpp"
#include "proxy/relay_ring.hpp"
#include "proxy/tls_stream.hpp"
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

// A chunk of bytes read from one peer and not yet written to the other: in a ring buffer
// (`bid` >= 0, given back once written) or in memory of its own (`owned`).
struct chunk {
  const char* data = nullptr;
  uint32_t size = 0;
  int32_t bid = -1;
  std::unique_ptr<char[]> owned;
  std::unique_ptr<chunk> next;
};

// Moves a chunk's bytes (and the ring buffer slice or memory holding them) from `from` to `to`.
void move_chunk(chunk& to, chunk& from) {
  to.data = from.data;
  to.size = from.size;
  to.bid = from.bid;
  to.owned = std::move(from.owned);
  from.data = nullptr;
  from.size = 0;
  from.bid = -1;
}

// Chunks written by one send: what several receives in one turn delivered (a message split
// at the end of a ring buffer, messages that arrived together) goes out as one send, so the
// peer sees one TCP segment, not one per receive.
constexpr unsigned kBatch = relay_ring::kMaxIovs;

// What the io_uring relay keeps for one direction: the chunks of the next or current send,
// those queued behind them (only while the writing peer is slower than the reading one) and
// the receive's state.
struct lane {
  chunk cur[kBatch];  // cur[0..ncur): the send in flight, or the one the next flush submits
  uint8_t ncur = 0;
  bool sending = false;         // a send of cur[0..ncur) is in flight
  bool flushing = false;        // the ring calls on_flush before its next submit
  bool from_ring = false;       // the send in flight writes from a ring buffer
  uint32_t send_bytes = 0;      // what the send in flight writes
  std::unique_ptr<chunk> head;  // queued behind cur
  chunk* tail = nullptr;
  uint16_t queued = 0;
  bool recv_on = false;  // a multishot receive is armed
  bool paused = false;   // too much queued: the receive was cancelled until the queue drains
  bool eof = false;      // the reading peer finished sending (passed on once the queue drains)
  bool stalled = false;  // the peer did not take a write at once: queued bytes are copied out
};

// Queued chunks per direction before wsgate stops reading that peer (its socket buffer then
// fills and TCP pushes back, as with nginx's fixed buffer).
constexpr uint16_t kMaxQueued = 16;

// Both connections, the clocks of what each peer last sent, and the frame position of each
// stream. Directions: 0 reads the client and writes the upstream, 1 the reverse; peers: 0 is
// the client, 1 the upstream, so direction d reads peer d and writes peer 1 - d.
//
// Two ways to move the bytes: the worker's relay_ring (io_uring: multishot receives into the
// ring's buffers, and what one turn received for a peer goes out in one send; the tunnel owns
// the two descriptors) or, where io_uring is missing, two Asio coroutines that wait for
// readability and borrow a pool buffer. What an idle tunnel costs is this record, the
// watchdog's timer and its pending wait, and (Asio only) two relay coroutine frames.
struct tunnel final : tunnel_handle, ring_user, std::enable_shared_from_this<tunnel> {
  tunnel(worker_context& wc, tcp::socket c, std::unique_ptr<upstream_conn> u, tunnel_limits l,
         std::shared_ptr<relay_ring> r, std::string client_text, tls_connection_ptr tls_conn,
         std::shared_ptr<relay_ring> poll_ring)
      : w(wc), ring(std::move(r)), poller(std::move(poll_ring)), limits(l), timer(wc.io) {
    tls[0] = std::move(tls_conn);
    tls[1] = std::move(u->tls);
    stats.started = std::chrono::system_clock::now();
    stats.client = client_text.empty() ? endpoint_text(c, true) : std::move(client_text);
    stats.upstream = u->peer.empty() ? endpoint_text(u->socket, true) : u->peer;
    if (ring) {
      // The ring reads and writes the descriptors itself, out of Asio's reactor. O_NONBLOCK may
      // stay: io_uring's socket operations wait for readiness on their own either way.
      error_code ec;
      fd[0] = c.release(ec);
      fd[1] = u->socket.release(ec);
      ring->hold();
    } else {
      fd[0] = c.native_handle();
      fd[1] = u->socket.native_handle();
      sockets = std::make_unique<asio_sockets>(asio_sockets{std::move(c), std::move(u)});
      error_code ec;  // writes are tried at once (the relay's fast path): never blocking
      sockets->client.non_blocking(true, ec);
      sockets->upstream->socket.non_blocking(true, ec);
      if (tls[0]) tls[0]->attach(sockets->client);  // the socket object moved, not its fd
      if (tls[0] || tls[1]) tls_gate.emplace(wc.io);
      if (poller) {
        poller->hold();
        arm_poll(0);
        arm_poll(1);
      }
    }
    w.tunnels.add(this);
    // The request stays busy while the tunnel is open (nginx's "Writing").
    worker_counters::add(w.counters.writing, int64_t{1});
  }
  // The worker counted both sockets as connections; the count drops when the tunnel goes.
  // (The registry is left in close_all: when a stopping worker destroys its event loop,
  // pending tunnels are destroyed without closing, after the registry is gone.)
  ~tunnel() override {
    w.connections -= 2;
    worker_counters::add(w.counters.writing, int64_t{-1});
    worker_counters::add(w.counters.active, int64_t{-1});
    if (ring) {
      for (int f : fd)
        if (f >= 0) ::close(f);
      for (auto& l : lanes) {
        release_cur(l);
        drop_queue(l);
      }
      ring->unhold();
    }
    if (poller) poller->unhold();
  }

  struct asio_sockets {
    tcp::socket client;
    std::unique_ptr<upstream_conn> upstream;
  };

  std::chrono::steady_clock::time_point active_at() const override { return last_activity; }

  worker_context& w;
  // Null: the Asio relay. Shared: a worker tearing down destroys its loop's pending tunnels
  // after the worker's own reference to the ring is gone.
  std::shared_ptr<relay_ring> ring;
  std::unique_ptr<asio_sockets> sockets;  // the Asio relay's sockets
  // The Asio relay learns readability from the ring where there is one (multishot poll: no
  // epoll re-arm per message, as Asio's async_wait costs); null: from Asio.
  std::shared_ptr<relay_ring> poller;
  bool readable[2] = {false, false};  // a poll said so since the last read of peer p
  bool poll_on[2] = {false, false};
  std::optional<asio::any_completion_handler<void(error_code)>> waiter[2];
  // TLS on peer p (the Asio relay, OpenSSL in between). OpenSSL takes one write at a time: a
  // frame of wsgate's own toward such a peer is written by a coroutine of its own while the
  // relay waits at `tls_gate`.
  tls_connection_ptr tls[2];
  std::optional<asio::steady_timer> tls_gate;
  bool control_writing[2] = {false, false};
  int fd[2] = {-1, -1};  // client, upstream
  int inflight = 0;      // ring operations not completed yet
  lane lanes[2];
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

  tcp::socket& peer(int p) { return p == 0 ? sockets->client : sockets->upstream->socket; }

  void close_all(const char* reason) {
    if (closed) return;
    closed = true;
    if (stats.close_reason.empty()) stats.close_reason = reason;
    error_code ec;
    if (ring) {
      // Whatever the ring still does on these descriptors ends; they are closed with the
      // tunnel, once the last completion came back (the watchdog waits for it). shutdown()
      // ends a pending receive (with 0) and send at once; a cancel would search every request
      // of the ring, and 9,000 tunnels closing together took seconds that way. Descriptor d
      // has lane d's receive and lane 1 - d's send.
      for (int d = 0; d < 2; ++d)
        if (lanes[d].recv_on || lanes[1 - d].sending) ::shutdown(fd[d], SHUT_RDWR);
      for (auto& l : lanes) drop_queue(l);  // what waited for a write will not be written
    } else {
      if (poller)
        for (int p = 0; p < 2; ++p) {
          if (poll_on[p]) {
            io_uring_sqe* s = poller->sqe(nullptr, 0);
            io_uring_prep_poll_remove(s, reinterpret_cast<uint64_t>(static_cast<ring_user*>(this)) |
                                             (4 + static_cast<unsigned>(p)));
          }
          wake(p, asio::error::operation_aborted);
        }
      for (int p = 0; p < 2; ++p)
        if (tls[p]) tls[p]->shutdown_now();
      peer(0).close(ec);
      peer(1).close(ec);
      if (tls_gate) tls_gate->cancel();
    }
    timer.cancel();
    w.tunnels.remove(this);
    if (!error_log_enabled(log_level::info)) return;  // the line below costs more than the close
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
  }

  // --- the io_uring relay ----------------------------------------------------------------------
  // Tags: receive of direction d = d, send of direction d = 2 + d.
  void arm_recv(int d) {
    io_uring_sqe* s = ring->sqe(this, static_cast<unsigned>(d));
    io_uring_prep_recv_multishot(s, fd[d], nullptr, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = relay_ring::kGroup;
    lanes[d].recv_on = true;
    ++inflight;
  }
  void submit_send(int d) {
    lane& l = lanes[d];
    io_uring_sqe* s = ring->sqe(this, 2 + static_cast<unsigned>(d));
    l.from_ring = false;
    l.send_bytes = 0;
    for (unsigned i = 0; i < l.ncur; ++i) {
      l.from_ring |= l.cur[i].bid >= 0;
      l.send_bytes += l.cur[i].size;
    }
    if (l.ncur == 1) {
      io_uring_prep_send(s, fd[1 - d], l.cur[0].data, l.cur[0].size, 0);
    } else {
      iovec* iov = nullptr;
      msghdr* m = ring->msg_scratch(iov);
      for (unsigned i = 0; i < l.ncur; ++i)
        iov[i] = iovec{const_cast<char*>(l.cur[i].data), l.cur[i].size};
      m->msg_iovlen = l.ncur;
      io_uring_prep_sendmsg(s, fd[1 - d], m, 0);
    }
    // From a ring buffer: only what fits now (MSG_DONTWAIT), so that a slow peer never pins a
    // ring buffer; the rest is copied out and waits (MSG_WAITALL: the kernel retries a short
    // send itself).
    s->msg_flags = MSG_NOSIGNAL | (l.from_ring ? MSG_DONTWAIT : MSG_WAITALL);
    l.sending = true;
    ++inflight;
    ring->count_send(l.ncur);
    ring->check_at_turn_end(this, static_cast<unsigned>(d));
  }
  void release_cur(lane& l) {
    for (unsigned i = 0; i < l.ncur; ++i) release(l.cur[i]);
    l.ncur = 0;
  }
  void release(chunk& c) {
    if (c.bid >= 0) ring->give(static_cast<unsigned>(c.bid));
    c.bid = -1;
    c.owned.reset();
    c.data = nullptr;
    c.size = 0;
  }
  // Queued chunks go, their ring buffers back to the ring.
  void drop_queue(lane& l) {
    while (l.head) {
      release(*l.head);
      l.head = std::move(l.head->next);
    }
    l.tail = nullptr;
    l.queued = 0;
  }
  // The ring is about to submit: what direction d gathered in this turn goes as one send.
  void on_flush(unsigned tag) override {
    const int d = static_cast<int>(tag & 1);
    lane& l = lanes[d];
    l.flushing = false;
    --inflight;
    if (closed)
      release_cur(l);
    else if (l.ncur > 0 && !l.sending)
      submit_send(d);
    if (closed && inflight == 0) timer.cancel();
  }
  // A chunk in a ring buffer moves to memory of its own, and the buffer goes back.
  void copy_out(chunk& c) {
    if (c.bid < 0) return;
    auto copy = std::make_unique_for_overwrite<char[]>(c.size);
    std::memcpy(copy.get(), c.data, c.size);
    const uint32_t size = c.size;
    release(c);
    c.owned = std::move(copy);
    c.data = c.owned.get();
    c.size = size;
  }
  // Bytes for direction d, after the frame tracker: written now, or queued behind the write in
  // flight. Queued bytes stay in the ring's buffer while that write goes out at once; once the
  // peer stops taking them (stalled), they are copied out so that no ring buffer waits on it.
  void enqueue(int d, chunk&& c) {
    lane& l = lanes[d];
    if (!l.sending && !l.head && l.ncur < kBatch) {
      move_chunk(l.cur[l.ncur++], c);
      writing[d] = true;
      if (!l.flushing) {
        l.flushing = true;
        ++inflight;  // like an operation: the tunnel stays until the flush came
        ring->flush_before_submit(this, static_cast<unsigned>(d));
      }
      return;
    }
    auto q = std::make_unique<chunk>();
    move_chunk(*q, c);
    if (l.stalled) copy_out(*q);
    chunk* raw = q.get();
    if (l.tail)
      l.tail->next = std::move(q);
    else
      l.head = std::move(q);
    l.tail = raw;
    if (++l.queued >= kMaxQueued && l.recv_on && !l.paused) {
      l.paused = true;
      io_uring_prep_cancel64(
          ring->sqe(nullptr, 0),
          reinterpret_cast<uint64_t>(static_cast<ring_user*>(this)) | static_cast<unsigned>(d), 0);
    }
  }
  // Bytes read from peer d, through the frame tracker for a WebSocket.
  void on_data(int d, chunk&& c) {
    stats.bytes[d] += c.size;
    last_activity = last_heard[d] = ring->now();
    if (limits.websocket) {
      const auto& pieces = frames[d].feed(c.data, c.size);
      stats.frames[d] = frames[d].frames();
      stats.pongs_swallowed = frames[0].pongs_swallowed() + frames[1].pongs_swallowed();
      if (pieces.size() != 1 || pieces[0].data != c.data || pieces[0].size != c.size) {
        // Pongs cut out, or bytes held back or released by the tracker: a copy of what goes on.
        size_t total = 0;
        for (const auto& p : pieces) total += p.size;
        chunk out;
        if (total > 0) {
          out.owned = std::make_unique_for_overwrite<char[]>(total);
          size_t at = 0;
          for (const auto& p : pieces) {
            std::memcpy(out.owned.get() + at, p.data, p.size);
            at += p.size;
          }
          out.data = out.owned.get();
          out.size = static_cast<uint32_t>(total);
        }
        release(c);
        c = std::move(out);
      }
    }
    // After wsgate's Close went into this direction, nothing more may follow it.
    if (c.size == 0 || close_sent[d]) {
      release(c);
      return;
    }
    enqueue(d, std::move(c));
  }
  // Direction d's peer finished and everything it sent was written: pass the half-close on.
  void finish(int d) {
    ended[d] = true;
    if (!ended_by) ended_by = d == 0 ? "client closed" : "upstream closed";
    ::shutdown(fd[1 - d], SHUT_WR);
    if (leaving) timer.cancel();
    if (--open_directions == 0) close_all(leaving ? "going away" : ended_by);
  }
  void on_recv(int d, int res, unsigned flags) {
    lane& l = lanes[d];
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
      chunk c;
      c.bid = static_cast<int32_t>(flags >> IORING_CQE_BUFFER_SHIFT);
      c.data = ring->take(static_cast<unsigned>(c.bid), static_cast<unsigned>(res), flags);
      c.size = static_cast<uint32_t>(res);
      if (closed || l.eof)
        release(c);
      else
        on_data(d, std::move(c));
      if (leaving && !closed) timer.cancel();  // a Close may now fit
    }
    if (flags & IORING_CQE_F_MORE) return;
    l.recv_on = false;
    --inflight;
    if (closed) return;
    if (res == 0) {
      l.eof = true;
      if (l.ncur == 0) finish(d);
    } else if (res == -ENOBUFS) {
      ++inflight;  // the wait for buffers keeps the tunnel alive like an operation
      ring->wait_for_buffers(this, static_cast<unsigned>(d));
    } else if (res < 0 && res != -ECANCELED) {
      close_all(d == 0 ? "client error" : "upstream error");
    } else if (!l.paused) {
      arm_recv(d);  // the multishot receive stopped on its own (or a pause was lifted)
    }
  }
  // A send wrote `res` bytes, less than all: chunks written whole go back, the rest is sent
  // again (a chunk written in part keeps its rest at cur[0]).
  void resend_rest(int d, uint32_t res) {
    lane& l = lanes[d];
    unsigned done = 0;
    for (; res >= l.cur[done].size; ++done) {
      res -= l.cur[done].size;
      release(l.cur[done]);
    }
    l.cur[done].data += res;
    l.cur[done].size -= res;
    if (done > 0) {
      for (unsigned i = done; i < l.ncur; ++i) move_chunk(l.cur[i - done], l.cur[i]);
      l.ncur = static_cast<uint8_t>(l.ncur - done);
    }
    if (l.from_ring) {
      // The peer takes no more for now: what waits for it leaves the ring's buffers.
      for (unsigned i = 0; i < l.ncur; ++i) copy_out(l.cur[i]);
      for (chunk* q = l.head.get(); q; q = q->next.get()) copy_out(*q);
      l.stalled = true;
      ring->count_stall();
    }
    submit_send(d);
  }
  void on_send(int d, int res) {
    lane& l = lanes[d];
    --inflight;
    l.sending = false;
    if (closed) {
      release_cur(l);
      return;
    }
    if (res == -EAGAIN && l.from_ring) res = 0;
    if (res < 0) {
      release_cur(l);
      close_all(d == 0 ? "client error" : "upstream error");
      return;
    }
    if (static_cast<uint32_t>(res) < l.send_bytes) {
      resend_rest(d, static_cast<uint32_t>(res));
      return;
    }
    release_cur(l);
    write_deadline[d] = clock::time_point::max();
    last_activity = ring->now();
    if (l.head) {
      while (l.head && l.ncur < kBatch) {
        std::unique_ptr<chunk> next = std::move(l.head);
        l.head = std::move(next->next);
        move_chunk(l.cur[l.ncur++], *next);
        --l.queued;
      }
      if (!l.head) l.tail = nullptr;
      submit_send(d);
      return;
    }
    writing[d] = false;
    l.queued = 0;
    l.stalled = false;
    // A frame of wsgate's own that waited for this stream to reach a boundary goes now.
    if (frames[d].at_boundary()) {
      if (leaving)
        try_close(d);
      else if (ping_wanted[1 - d])
        try_ping(1 - d);
    }
    if (closed) return;
    if (l.eof) {
      finish(d);
    } else if (l.paused) {
      l.paused = false;
      if (!l.recv_on) arm_recv(d);  // else: re-armed when the cancelled receive reports
    }
  }
  // --- readiness through the ring (tags 4 + p: multishot poll of peer p) ----------------------
  void arm_poll(int p) {
    io_uring_sqe* s = poller->sqe(this, 4 + static_cast<unsigned>(p));
    io_uring_prep_poll_multishot(s, fd[p], POLLIN | POLLRDHUP);
    poll_on[p] = true;
    ++inflight;
  }
  void on_poll(int p, int res, unsigned flags) {
    if (!(flags & IORING_CQE_F_MORE)) {
      poll_on[p] = false;
      --inflight;
    }
    if (closed) return;
    readable[p] = true;  // events, or an error the next read reports
    if (!poll_on[p] && res != -ECANCELED) arm_poll(p);
    wake(p, {});
  }
  void wake(int p, error_code ec) {
    if (!waiter[p]) return;
    auto h = std::move(*waiter[p]);
    waiter[p].reset();
    std::move(h)(ec);
  }
  // Completes once peer p is readable (at once if a poll said so since the last read).
  template <class Token>
  auto async_readable(int p, Token&& token) {
    return asio::async_initiate<Token, void(error_code)>(
        [this, p](auto handler) {
          if (readable[p] || closed) {
            asio::post(w.io, [h = std::move(handler),
                              ec = closed ? error_code(asio::error::operation_aborted)
                                          : error_code{}]() mutable { std::move(h)(ec); });
            return;
          }
          waiter[p].emplace(std::move(handler));
        },
        token);
  }

  void on_completion(unsigned tag, int res, unsigned flags) override {
    const int d = static_cast<int>(tag & 1);
    if (tag >= 4)
      on_poll(d, res, flags);
    else if (tag < 2)
      on_recv(d, res, flags);
    else
      on_send(d, res);
    if (closed && inflight == 0) timer.cancel();  // the watchdog lets the tunnel go
  }
  void on_buffers(unsigned tag) override {
    --inflight;
    const int d = static_cast<int>(tag & 1);
    if (!closed && !lanes[d].paused && !lanes[d].eof && !lanes[d].recv_on) arm_recv(d);
    if (closed && inflight == 0) timer.cancel();
  }
  // A write still in flight when the turn ends waits for the peer: its send timeout starts.
  void on_turn_end(unsigned tag) override {
    const int d = static_cast<int>(tag & 1);
    if (closed || !lanes[d].sending || write_deadline[d] != clock::time_point::max()) return;
    write_deadline[d] = ring->now() + (d == 0 ? limits.upstream_send : limits.client_send);
    if (timer.expiry() > write_deadline[d]) timer.cancel();
  }
  // Starts the io_uring relay: bytes that came with the handshake first, then multishot
  // receives on both descriptors.
  void start_ring(std::string to_upstream, std::string to_client) {
    std::string* pending[2] = {&to_upstream, &to_client};
    for (int d = 0; d < 2; ++d) {
      if (pending[d]->empty()) continue;
      chunk c;
      c.size = static_cast<uint32_t>(pending[d]->size());
      c.owned = std::make_unique_for_overwrite<char[]>(c.size);
      std::memcpy(c.owned.get(), pending[d]->data(), c.size);
      c.data = c.owned.get();
      on_data(d, std::move(c));
    }
    for (int d = 0; d < 2; ++d) arm_recv(d);
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
    if (tls[1 - d]) return inject_tls(1 - d, std::string(buf, n));
    const ssize_t sent = ::send(fd[1 - d], buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent == static_cast<ssize_t>(n)) return true;
    if (sent > 0) close_all("error");  // half a frame in the stream: nothing sane can follow
    return false;
  }

  bool inject_tls(int p, std::string frame);

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

bool tunnel::inject_tls(int p, std::string frame) {
  if (control_writing[p]) return false;
  control_writing[p] = true;
  asio::co_spawn(
      w.io,
      [t = shared_from_this(), p, frame = std::move(frame)]() -> asio::awaitable<void> {
        auto [ec, n] = co_await t->tls[p]->write(asio::buffer(frame));
        (void)n;
        t->control_writing[p] = false;
        t->tls_gate->cancel();
        if (ec) t->close_all(p == 0 ? "client error" : "upstream error");
      },
      asio::detached);
  return true;
}

void tunnel_timed_out(tunnel& t) {
  log_error(log_level::info,
            "upstream timed out (110: Connection timed out) while proxying upgraded connection");
  t.close_all("idle timeout");
}

// The tunnel's timer: timeouts, keepalive pings, and the Close frames of a QUIT. A plain timer
// handler that arms itself again, not a coroutine: an idle tunnel then holds one small wait
// operation instead of a coroutine frame.
void tunnel_watchdog(std::shared_ptr<tunnel> t) {
  if (t->closed) {
    // The ring may still hold operations of this tunnel (their cancellation completes in the
    // next turn): the tunnel lives until the last one came back (which cancels the timer).
    if (t->inflight == 0) return;
    t->timer.expires_at(clock::time_point::max());
  } else {
    const auto now = clock::now();
    if (now >= t->leave_deadline) {
      t->close_all("going away");
      return tunnel_watchdog(std::move(t));
    }
    if (now >= t->read_deadline()) {
      tunnel_timed_out(*t);
      return tunnel_watchdog(std::move(t));
    }
    if (now >= std::min(t->write_deadline[0], t->write_deadline[1])) {
      log_error(log_level::info,
                "upstream timed out (110: Connection timed out) while proxying upgraded "
                "connection (send)");
      t->close_all("send timeout");
      return tunnel_watchdog(std::move(t));
    }
    auto next = t->deadline();
    if (t->leaving && t->limits.websocket) {
      // Close frames go out as each stream reaches a frame boundary (the relay tries too).
      const bool sent = t->try_close(0) & t->try_close(1);
      if (t->goodbye_done()) {
        t->close_all("going away");
        return tunnel_watchdog(std::move(t));
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
  }
  tunnel& tr = *t;
  tr.timer.async_wait(
      [t = std::move(t)](const error_code&) mutable { tunnel_watchdog(std::move(t)); });
}

// One direction: wait for readability without a buffer, then borrow one and move what is there.
// A TLS client is read through OpenSSL, which may hold bytes the socket no longer shows: that
// direction reads at once into a record-sized buffer of its own.
asio::awaitable<void> relay(std::shared_ptr<tunnel> t, int dir, std::string pending) {
  tcp::socket& from = t->peer(dir);
  tcp::socket& to = t->peer(1 - dir);
  tls_connection* const read_tls = t->tls[dir].get();
  tls_connection* const write_tls = t->tls[1 - dir].get();
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
    while (write_tls && t->control_writing[1 - dir] && !t->closed) {
      t->tls_gate->expires_at(clock::time_point::max());
      co_await t->tls_gate->async_wait(use_nothrow);
    }
    error_code ec;
    // Most pieces go whole into a socket with room: written at once, with no suspension and
    // no trip through the scheduler; the rest waits below.
    bool sent = false;
    std::vector<asio::const_buffer> rest;  // what a plain socket did not take at once
    if (t->closed) {
      ec = asio::error::operation_aborted;
      sent = true;
    } else if (!write_tls) {
      const auto bufs = several.empty() ? std::span<const asio::const_buffer>(&one, 1)
                                        : std::span<const asio::const_buffer>(several);
      sent = send_now(to, bufs, rest, ec) || ec;
    } else if (several.empty() && !t->control_writing[1 - dir]) {
      const auto st = write_tls->write_now(one.data(), one.size(), ec);
      sent = st != tls_connection::step::want_read && st != tls_connection::step::want_write;
      if (st == tls_connection::step::eof) ec = asio::error::broken_pipe;
      if (!sent) ec = {};
    }
    if (!sent) {
      if (!write_tls)
        std::tie(ec, std::ignore) = co_await asio::async_write(to, rest, use_nothrow);
      else if (several.empty())
        std::tie(ec, std::ignore) = co_await write_tls->write(one);
      else
        std::tie(ec, std::ignore) = co_await write_tls->write(several);
    }
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
  if (!read_tls) from.non_blocking(true, ec);
  for (;;) {
    // Bytes OpenSSL already holds do not make the socket readable: no wait for those.
    if (!read_tls || !read_tls->buffered()) {
      auto [wec] = t->poller ? co_await t->async_readable(dir, use_nothrow)
                             : co_await from.async_wait(tcp::socket::wait_read, use_nothrow);
      if (wec || t->closed) break;
      t->readable[dir] = false;  // what is there is read now; a new arrival polls again
    }
    auto buf = t->w.buffers.take();
    bool end = false, failed = false;
    for (;;) {
      size_t n = 0;
      if (read_tls) {
        const auto st = read_tls->read_now(buf.get(), buffer_pool::kSize, n, ec);
        if (st == tls_connection::step::want_read) break;
        if (st == tls_connection::step::want_write) {  // a TLS 1.3 key update to answer
          auto [wec] = co_await from.async_wait(tcp::socket::wait_write, use_nothrow);
          if (wec || t->closed) break;
          continue;
        }
        end = st == tls_connection::step::eof;
        failed = st == tls_connection::step::failed;
        if (end || failed) break;
      } else {
        n = from.read_some(asio::buffer(buf.get(), buffer_pool::kSize), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) break;
        end = ec == asio::error::eof;
        failed = ec && !end;
        if (end || failed) break;
      }
      t->last_activity = t->last_heard[dir] = clock::now();
      if (!co_await pass(buf.get(), n)) {
        failed = true;
        break;
      }
      // Most likely drained: wait again without a buffer. That shortcut needs a readiness wait
      // that reports what is already there (Asio's re-armed epoll). The ring's poll reports
      // new arrivals only, and may fold an end of stream into the event of the data before it:
      // then, as OpenSSL anyway (a record per read, the socket read a bounded amount at a
      // time), the socket is read until it is empty.
      if (!read_tls && !t->poller && n < buffer_pool::kSize) break;
    }
    t->w.buffers.give(std::move(buf));
    if (t->closed) break;
    if (failed) {
      t->close_all(dir == 0 ? "client error" : "upstream error");
      co_return;
    }
    if (t->leaving) t->timer.cancel();  // a Close may now fit, or the handshake is complete
    if (end) {
      // Half-close: the peer finished sending; the other direction may still run.
      t->ended[dir] = true;
      if (!t->ended_by) t->ended_by = dir == 0 ? "client closed" : "upstream closed";
      if (write_tls) write_tls->shutdown_now();  // TLS says so first: close_notify
      to.shutdown(tcp::socket::shutdown_send, ec);
      if (--t->open_directions == 0) t->close_all(t->leaving ? "going away" : t->ended_by);
      co_return;
    }
  }
  t->close_all("closed");
}

// The worker's relay_ring, made on its first tunnel; null where io_uring is unavailable (said
// once in the error log) or WSGATE_RELAY=asio asks for the Asio relay.
std::shared_ptr<relay_ring> worker_ring(worker_context& w) {
  if (!w.relay_ring_tried) {
    w.relay_ring_tried = true;
    const char* choice = std::getenv("WSGATE_RELAY");
    if (choice && std::string_view(choice) == "asio") return nullptr;
    std::string why;
    std::shared_ptr<relay_ring> r = relay_ring::create(w.io, why);
    if (r)
      w.relay_ring = std::move(r);
    else
      log_error(log_level::notice, "tunnels relay with Asio, io_uring is not available: " + why);
  }
  return std::static_pointer_cast<relay_ring>(w.relay_ring);
}

}  // namespace

void tls_connection_deleter::operator()(tls_connection* c) const {
  delete c;
}

void start_tunnel(worker_context& w, tcp::socket client, std::unique_ptr<upstream_conn> upstream,
                  std::string to_upstream, tunnel_limits limits, std::string client_text,
                  tls_connection_ptr tls) {
  std::string to_client(upstream->in.data());
  upstream->in.consume(upstream->in.size());
  upstream->in.release();
  // io_uring moves plain bytes only: a tunnel with TLS on a side relays through Asio and OpenSSL.
  const bool tls_side = tls || upstream->tls;
  auto ring = worker_ring(w);
  std::shared_ptr<relay_ring> poller;
  if (tls_side) poller = std::move(ring);  // the ring only tells readiness; OpenSSL moves bytes
  const bool use_ring = ring != nullptr;
  auto t =
      std::make_shared<tunnel>(w, std::move(client), std::move(upstream), limits, std::move(ring),
                               std::move(client_text), std::move(tls), std::move(poller));
  tunnel_watchdog(t);
  if (use_ring) {
    t->start_ring(std::move(to_upstream), std::move(to_client));
  } else {
    asio::co_spawn(w.io, relay(t, 0, std::move(to_upstream)), asio::detached);
    asio::co_spawn(w.io, relay(t, 1, std::move(to_client)), asio::detached);
  }
  // A QUIT that came while this tunnel's handshake was in flight applies to it too.
  if (w.draining) t->going_away(w.rt->config->main.worker_shutdown_timeout);
}

void quit_tunnels(worker_context& w, config::duration wait) {
  w.tunnels.going_away(wait);
}

}  // namespace wsgate::proxy
