// wsgate-echo: the fast upstream for benchmarks. HTTP/1.1 keep-alive answers every request with a
// fixed small body; a WebSocket upgrade is accepted and every frame is unmasked and echoed (ping
// answered with pong, close echoed then the connection closed). One event loop per thread
// (-t N, SO_REUSEPORT): io_uring by default (multishot accept and receive into provided buffers,
// the sends of a loop turn submitted with its wait in one system call), epoll with --io epoll or
// where io_uring is not allowed. No allocation per message: frames are unmasked and compacted in
// place in the receive buffer and sent from there (epoll) or from a per-connection output buffer
// that keeps its capacity (io_uring).
//   wsgate-echo [--listen 127.0.0.1:PORT]... [-t N] [--body-size N] [--io auto|uring|epoll]
// Prints "listening ADDR:PORT" per address once it accepts.
#include <openssl/evp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "net.hpp"
#include "uring.hpp"

namespace {

using namespace wsgate::bench;

constexpr std::size_t kHeadroom = 16;  // room for a server frame header split across reads
constexpr std::size_t kReadSize = 256 * 1024;
constexpr std::size_t kMaxHead = 64 * 1024;

std::string websocket_accept(std::string_view key) {
  std::string in(key);
  in += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(in.data(), in.size(), digest, &len, EVP_sha1(), nullptr);
  unsigned char b64[64] = {};
  const int n = EVP_EncodeBlock(b64, digest, static_cast<int>(len));
  return std::string(reinterpret_cast<char*>(b64), static_cast<std::size_t>(n));
}

struct econn {
  int fd = -1;
  bool ws = false;
  bool close_after = false;  // close once the output is flushed
  bool in_payload = false;
  bool closing = false;  // a close frame is being echoed; nothing after it is read
  uint8_t hdr_have = 0;
  uint8_t mask_pos = 0;
  uint8_t hdr[14] = {};
  uint8_t mask[4] = {};
  uint64_t payload_left = 0;
  uint64_t body_left = 0;  // HTTP request body still to skip
  std::string head;        // request head split across reads (rare)
  std::string out;         // output the socket did not take yet (backpressure)
  // io_uring only: the send in flight (from a receive buffer held until it completes, or from
  // `sending`), while `out` collects what comes meanwhile; and the operations that still refer to
  // this record, which is freed once the last one completes.
  std::string sending;
  const char* send_ptr = nullptr;
  std::size_t send_left = 0;
  int held_buffer = -1;
  bool send_busy = false;
  bool recv_armed = false;
  bool dead = false;
  bool paused = false;  // receiving stopped until the queued output drains (backpressure)
};

// XOR with the mask while moving forward from src to dst (dst <= src): 8 bytes at a time.
void unmask_move(char* dst, const char* src, std::size_t n, const uint8_t mask[4], uint8_t pos) {
  uint8_t m8[8];
  for (int k = 0; k < 8; ++k) m8[k] = mask[(pos + k) & 3];
  uint64_t m64 = 0;
  std::memcpy(&m64, m8, 8);
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    uint64_t v = 0;
    std::memcpy(&v, src + k, 8);
    v ^= m64;
    std::memcpy(dst + k, &v, 8);
  }
  for (; k < n; ++k) dst[k] = static_cast<char>(src[k] ^ static_cast<char>(m8[k & 7]));
}

constexpr unsigned kRingBuffers = 512;
constexpr unsigned kRingBufferSize = 64 * 1024;
constexpr std::size_t kKeepOutput = 64 * 1024;  // larger output buffers are freed when drained
constexpr std::size_t kMaxQueued = 4 << 20;     // output queued beyond this pauses receiving

// io_uring user data: a connection pointer (8-byte aligned) or a listener fd, tagged below.
enum op_tag : uint64_t { tag_accept = 1, tag_recv = 2, tag_send = 3, tag_cancel = 4 };

class loop {
 public:
  loop(std::vector<int> listeners, std::string response, bool use_uring)
      : listeners_(std::move(listeners)), response_(std::move(response)), uring_(use_uring) {
    if (!uring_) buf_ = std::make_unique<char[]>(kHeadroom + kReadSize);
    httpout_.reserve(64 * 1024);
  }

  void run() {
    if (uring_) {
      run_uring();
      return;
    }
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    for (int l : listeners_) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = nullptr;
      ev.data.u64 = static_cast<uint64_t>(l);  // listeners: small integers, conns: pointers
      epoll_ctl(ep_, EPOLL_CTL_ADD, l, &ev);
    }
    epoll_event evs[256];
    for (;;) {
      const int n = epoll_wait(ep_, evs, 256, -1);
      for (int i = 0; i < n; ++i) {
        const uint64_t tag = evs[i].data.u64;
        if (tag < 65536) {
          accept_all(static_cast<int>(tag));
          continue;
        }
        auto* c = static_cast<econn*>(evs[i].data.ptr);
        if (evs[i].events & EPOLLOUT) {
          if (!drain(c)) continue;
        }
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
      }
    }
  }

 private:
  // ---------------------------------------------------------------- io_uring
  void run_uring() {
    if (const std::string err = ring_.init(1024, kRingBuffers, kRingBufferSize, kHeadroom);
        !err.empty()) {
      std::fprintf(stderr, "wsgate-echo: io_uring: %s\n", err.c_str());
      std::exit(1);
    }
    for (int l : listeners_) {
      ring_.accept_multishot(l, (static_cast<uint64_t>(l) << 3) | tag_accept);
    }
    for (;;) {
      ring_.submit_and_wait(1'000'000'000ULL);
      ring_.drain([this](uint64_t ud, int res, uint32_t flags) { on_completion(ud, res, flags); });
    }
  }

  void on_completion(uint64_t ud, int res, uint32_t flags) {
    const bool more = (flags & IORING_CQE_F_MORE) != 0;
    switch (ud & 7U) {
      case tag_accept: {
        const int l = static_cast<int>(ud >> 3);
        if (res >= 0) {
          set_nodelay(res);
          auto* c = new econn;
          c->fd = res;
          arm_recv(c);
        } else if ((res == -EMFILE || res == -ENFILE) && !warned_fds_) {
          std::fprintf(stderr, "wsgate-echo: out of file descriptors (%s): raise ulimit -n\n",
                       std::strerror(-res));
          warned_fds_ = true;
        }
        if (!more) {
          // Out of descriptors: new connections wait in the backlog until one closes.
          if (res == -EMFILE || res == -ENFILE) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
          ring_.accept_multishot(l, ud);
        }
        return;
      }
      case tag_send:
        send_done(reinterpret_cast<econn*>(ud & ~uint64_t{7}), res);
        return;
      case tag_cancel:
        return;  // the cancelled receive reports on its own
      default:
        break;
    }
    auto* c = reinterpret_cast<econn*>(ud & ~uint64_t{7});
    bool alive = !c->dead;
    if (flags & IORING_CQE_F_BUFFER) {
      const unsigned id = uring::buffer_id(flags);
      bool taken = false;
      if (alive && res > 0) {
        char* data = ring_.buffer(id);
        const auto n = static_cast<std::size_t>(res);
        current_ = {id, data - kHeadroom, data + n, false};
        alive = c->ws ? on_ws(c, data - kHeadroom, kHeadroom, n) : on_http(c, data, n);
        taken = current_.taken;
        current_ = {};
      }
      if (!taken) ring_.recycle(id);
    }
    if (more) return;
    c->recv_armed = false;
    const bool can_go_on = res > 0 || res == -ENOBUFS || res == -ECANCELED;
    if (!c->dead && c->paused && can_go_on) return;  // send_done resumes once the output drains
    if (alive && !c->dead && can_go_on) {
      arm_recv(c);  // the kernel ended the multishot (or every buffer was busy): go on
      return;
    }
    if (!c->dead && res <= 0 && res != -ENOBUFS) {
      destroy(c);  // EOF or error; frees the record unless a send is still in flight
      return;
    }
    release(c);
  }

  void arm_recv(econn* c) {
    c->recv_armed = true;
    ring_.recv_multishot(c->fd, reinterpret_cast<uint64_t>(c) | tag_recv);
  }

  void submit_send(econn* c, const char* p, std::size_t n) {
    c->send_ptr = p;
    c->send_left = n;
    c->send_busy = true;
    ring_.send(c->fd, p, n, reinterpret_cast<uint64_t>(c) | tag_send);
  }

  // Sends what `out` collected while the previous send was in flight.
  void start_send(econn* c) {
    c->sending.swap(c->out);
    c->out.clear();
    submit_send(c, c->sending.data(), c->sending.size());
  }

  void send_done(econn* c, int res) {
    c->send_busy = false;
    const bool finished = res >= 0 && static_cast<std::size_t>(res) == c->send_left;
    if (c->held_buffer >= 0 && (finished || res < 0 || c->dead)) {
      ring_.recycle(static_cast<unsigned>(c->held_buffer));
      c->held_buffer = -1;
    }
    if (c->dead) {
      release(c);
      return;
    }
    if (res < 0) {
      destroy(c);
      return;
    }
    if (!finished) {
      // A short send: the rest goes first, what came meanwhile stays queued behind it.
      submit_send(c, c->send_ptr + res, c->send_left - static_cast<std::size_t>(res));
      return;
    }
    c->sending.clear();
    if (c->sending.capacity() > kKeepOutput) std::string().swap(c->sending);
    if (!c->out.empty()) {
      start_send(c);
    } else if (c->close_after) {
      destroy(c);
    } else if (c->paused) {
      c->paused = false;
      if (!c->recv_armed) arm_recv(c);
    }
  }

  // Frees the record once no operation refers to it any more.
  void release(econn* c) {
    if (!c->dead || c->recv_armed || c->send_busy) return;
    close(c->fd);
    delete c;
  }

  bool flushed(const econn* c) const { return c->out.empty() && !c->send_busy; }

  // ---------------------------------------------------------------- epoll
  void accept_all(int l) {
    for (;;) {
      const int fd = accept4(l, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
          // Say it once; new connections wait in the backlog until one closes.
          if (!warned_fds_) {
            std::fprintf(stderr, "wsgate-echo: out of file descriptors (%s): raise ulimit -n\n",
                         std::strerror(errno));
            warned_fds_ = true;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return;
      }
      set_nodelay(fd);
      auto* c = new econn;
      c->fd = fd;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = c;
      epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    }
  }

  void destroy(econn* c) {
    if (uring_) {
      if (c->dead) return;
      c->dead = true;
      // Ends the armed receive and any send; the record goes once they have completed.
      shutdown(c->fd, SHUT_RDWR);
      release(c);
      return;
    }
    close(c->fd);
    delete c;
  }

  void set_events(econn* c, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = c;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
  }

  // Writes, keeping what the socket does not take; false if the connection was closed.
  bool write_out(econn* c, const char* p, std::size_t n) {
    if (uring_) {
      if (!c->send_busy && c->out.empty() && !current_.taken && p >= current_.begin &&
          p + n <= current_.end) {
        // Echoed frames compacted in the receive buffer: send from there and keep the buffer
        // until the send completes (no copy).
        current_.taken = true;
        c->held_buffer = static_cast<int>(current_.id);
        submit_send(c, p, n);
        return true;
      }
      c->out.append(p, n);
      if (!c->send_busy) start_send(c);
      if (c->out.size() > kMaxQueued && c->recv_armed && !c->paused) {
        // The peer sends faster than it reads: stop receiving (as the epoll loop does) so the
        // queue stays bounded.
        c->paused = true;
        ring_.cancel(reinterpret_cast<uint64_t>(c) | tag_recv, tag_cancel);
      }
      return true;
    }
    if (!c->out.empty()) {
      c->out.append(p, n);
      return true;
    }
    while (n > 0) {
      const ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        p += w;
        n -= static_cast<std::size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // Stop reading until the peer takes what it asked for.
        c->out.assign(p, n);
        set_events(c, EPOLLOUT);
        return true;
      }
      destroy(c);
      return false;
    }
    return true;
  }

  bool drain(econn* c) {
    while (!c->out.empty()) {
      const ssize_t w = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        c->out.erase(0, static_cast<std::size_t>(w));
        continue;
      }
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return false;
      destroy(c);
      return false;
    }
    std::string().swap(c->out);  // an idle connection keeps no buffer
    if (c->close_after) {
      destroy(c);
      return false;
    }
    set_events(c, EPOLLIN);
    return true;
  }

  void on_readable(econn* c) {
    for (;;) {
      if (!c->out.empty()) return;
      char* data = buf_.get() + kHeadroom;
      const ssize_t n = recv(c->fd, data, kReadSize, MSG_DONTWAIT);
      if (n > 0) {
        const bool alive = c->ws ? on_ws(c, buf_.get(), kHeadroom, static_cast<std::size_t>(n))
                                 : on_http(c, data, static_cast<std::size_t>(n));
        if (!alive) return;
        if (static_cast<std::size_t>(n) < kReadSize) return;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      destroy(c);  // EOF or reset
      return;
    }
  }

  // Frames in base[start, start+n) are unmasked and compacted towards base[0] as server frames,
  // then written in one call. Returns false if the connection was closed.
  bool on_ws(econn* c, char* base, std::size_t start, std::size_t n) {
    std::size_t r = start, w = 0;
    const std::size_t end = start + n;
    while (r < end && !(c->closing && !c->in_payload)) {
      if (!c->in_payload) {
        while (c->hdr_have < 2 && r < end) c->hdr[c->hdr_have++] = static_cast<uint8_t>(base[r++]);
        if (c->hdr_have < 2) break;
        const uint8_t len7 = c->hdr[1] & 0x7f;
        const std::size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        const std::size_t need = 2 + ext + 4;
        while (c->hdr_have < need && r < end)
          c->hdr[c->hdr_have++] = static_cast<uint8_t>(base[r++]);
        if (c->hdr_have < need) break;
        if (!(c->hdr[1] & 0x80)) {  // RFC 6455 5.1: a client frame must be masked
          destroy(c);
          return false;
        }
        uint64_t len = len7;
        if (len7 == 126) len = (uint64_t{c->hdr[2]} << 8) | c->hdr[3];
        if (len7 == 127) {
          len = 0;
          for (int k = 0; k < 8; ++k) len = (len << 8) | c->hdr[2 + k];
        }
        std::memcpy(c->mask, c->hdr + 2 + ext, 4);
        uint8_t op = c->hdr[0];
        if ((op & 0x0f) == 9) op = static_cast<uint8_t>((op & 0xf0) | 10);  // ping -> pong
        if ((op & 0x0f) == 8) c->closing = true;
        base[w++] = static_cast<char>(op);
        if (len < 126) {
          base[w++] = static_cast<char>(len);
        } else if (len <= 0xffff) {
          base[w++] = static_cast<char>(126);
          base[w++] = static_cast<char>(len >> 8);
          base[w++] = static_cast<char>(len & 0xff);
        } else {
          base[w++] = static_cast<char>(127);
          for (int k = 7; k >= 0; --k) base[w++] = static_cast<char>((len >> (8 * k)) & 0xff);
        }
        c->hdr_have = 0;
        c->payload_left = len;
        c->mask_pos = 0;
        c->in_payload = true;
      }
      const auto take = static_cast<std::size_t>(std::min<uint64_t>(c->payload_left, end - r));
      unmask_move(base + w, base + r, take, c->mask, c->mask_pos);
      w += take;
      r += take;
      c->mask_pos = static_cast<uint8_t>((c->mask_pos + take) & 3);
      c->payload_left -= take;
      if (c->payload_left == 0) c->in_payload = false;
    }
    if (c->closing && !c->in_payload) c->close_after = true;  // the whole close frame is echoed
    if (w > 0 && !write_out(c, base, w)) return false;
    if (c->close_after && flushed(c)) {
      destroy(c);
      return false;
    }
    return true;
  }

  bool on_http(econn* c, const char* p, std::size_t n) {
    if (!c->head.empty()) {
      std::string joined;
      joined.swap(c->head);
      joined.append(p, n);
      return on_http_data(c, joined.data(), joined.size());
    }
    return on_http_data(c, p, n);
  }

  bool on_http_data(econn* c, const char* p, std::size_t n) {
    httpout_.clear();
    while (n > 0) {
      if (c->body_left > 0) {
        const auto skip = static_cast<std::size_t>(std::min<uint64_t>(c->body_left, n));
        c->body_left -= skip;
        p += skip;
        n -= skip;
        continue;
      }
      const std::string_view in(p, n);
      const auto end = in.find("\r\n\r\n");
      if (end == std::string_view::npos) {
        if (n > kMaxHead) {
          static constexpr std::string_view kTooLarge =
              "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n";
          c->close_after = true;
          httpout_.append(kTooLarge);
          break;
        }
        c->head.assign(p, n);
        break;
      }
      const std::string_view head = in.substr(0, end + 4);
      p += end + 4;
      n -= end + 4;
      const auto key = header_value(head, "Sec-WebSocket-Key");
      const auto upgrade = header_value(head, "Upgrade");
      if (!key.empty() && upgrade.size() == 9 && (upgrade[0] == 'w' || upgrade[0] == 'W')) {
        httpout_ +=
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Accept: ";
        httpout_ += websocket_accept(key);
        httpout_ += "\r\n\r\n";
        if (!write_out(c, httpout_.data(), httpout_.size())) return false;
        c->ws = true;
        if (n == 0) return true;
        // Frames sent right behind the upgrade request: give them the headroom on_ws needs.
        std::vector<char> rest(kHeadroom + n);
        std::memcpy(rest.data() + kHeadroom, p, n);
        return on_ws(c, rest.data(), kHeadroom, n);
      }
      const auto cl = header_value(head, "Content-Length");
      uint64_t len = 0;
      for (char ch : cl)
        len = len * 10 + static_cast<uint64_t>(ch >= '0' && ch <= '9' ? ch - '0' : 0);
      c->body_left = len;
      const auto connection = header_value(head, "Connection");
      if (connection.size() == 5 && (connection[0] == 'c' || connection[0] == 'C')) {
        c->close_after = true;
      }
      httpout_ += response_;
      if (c->close_after) break;
    }
    if (!httpout_.empty() && !write_out(c, httpout_.data(), httpout_.size())) return false;
    if (c->close_after && flushed(c)) {
      destroy(c);
      return false;
    }
    return true;
  }

  std::vector<int> listeners_;
  std::string response_;
  std::unique_ptr<char[]> buf_;
  std::string httpout_;
  int ep_ = -1;
  bool warned_fds_ = false;
  bool uring_ = false;
  uring ring_;
  // The receive buffer being parsed, so write_out can send from it.
  struct {
    unsigned id = 0;
    const char* begin = nullptr;
    const char* end = nullptr;
    bool taken = false;
  } current_;
};

int make_listener(const sockaddr_storage& addr, socklen_t len, std::string& err) {
  const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0 || listen(fd, 4096) != 0) {
    err = std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wsgate-echo: HTTP keep-alive and WebSocket echo upstream for benchmarks"};
  std::vector<std::string> listens;
  unsigned threads = 1;
  std::size_t body_size = 13;
  std::string io = "auto";
  app.add_option("--listen", listens, "HOST:PORT to listen on (repeatable; port 0 = ephemeral)");
  app.add_option("--io", io,
                 "socket backend: auto (io_uring when the kernel allows it), uring or epoll")
      ->check(CLI::IsMember({"auto", "uring", "epoll"}));
  app.add_option("-t,--threads", threads, "event loops (default 1)")->check(CLI::PositiveNumber);
  app.add_option("--body-size", body_size, "HTTP response body bytes (default 13)");
  CLI11_PARSE(app, argc, argv);
  if (listens.empty()) listens.push_back("127.0.0.1:0");
  std::signal(SIGPIPE, SIG_IGN);
  raise_nofile(1 << 20);

  std::string body = body_size == 13 ? std::string("hello, world\n") : std::string(body_size, 'x');
  const std::string response =
      "HTTP/1.1 200 OK\r\nServer: wsgate-echo\r\nContent-Type: text/plain\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;

  // The first loop binds (resolving port 0); the others bind the same ports with SO_REUSEPORT.
  std::vector<sockaddr_storage> addrs(listens.size());
  std::vector<socklen_t> lens(listens.size());
  std::vector<std::vector<int>> per_thread(threads);
  for (std::size_t k = 0; k < listens.size(); ++k) {
    if (const auto err = parse_listen(listens[k], addrs[k], lens[k]); !err.empty()) {
      std::cerr << "wsgate-echo: " << err << "\n";
      return 2;
    }
    for (unsigned t = 0; t < threads; ++t) {
      std::string err;
      const int fd = make_listener(addrs[k], lens[k], err);
      if (fd < 0) {
        std::cerr << "wsgate-echo: cannot listen on " << listens[k] << ": " << err << "\n";
        return 1;
      }
      if (t == 0) {
        lens[k] = sizeof addrs[k];
        getsockname(fd, reinterpret_cast<sockaddr*>(&addrs[k]), &lens[k]);
      }
      per_thread[t].push_back(fd);
    }
  }
  bool use_uring = io != "epoll";
  if (use_uring) {
    if (const std::string err = uring::probe(); !err.empty()) {
      if (io == "uring") {
        std::cerr << "wsgate-echo: --io uring: " << err << "; use --io epoll\n";
        return 2;
      }
      std::cerr << "wsgate-echo: io_uring unavailable (" << err << "), using epoll\n";
      use_uring = false;
    }
  }
  std::fprintf(stderr, "wsgate-echo: %s, %u thread(s)\n", use_uring ? "io_uring" : "epoll",
               threads);
  for (const auto& a : addrs) std::printf("listening %s\n", format_addr(a).c_str());
  std::fflush(stdout);

  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) {
    pool.emplace_back([&, t] { loop(per_thread[t], response, use_uring).run(); });
  }
  loop(per_thread[0], response, use_uring).run();
}
