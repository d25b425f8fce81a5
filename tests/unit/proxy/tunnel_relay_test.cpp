// The tunnel's byte relay over real loopback sockets, with both relays: the io_uring one
// (relay_ring) and the Asio fallback (WSGATE_RELAY=asio). A worker_context runs on its own
// thread, as in the server; the test plays the client and the upstream with blocking sockets.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cstdlib>
#include <cstring>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "proxy/relay_ring.hpp"
#include "proxy/tunnel.hpp"

namespace wsgate::proxy {
namespace {

using namespace std::chrono_literals;

// A connected loopback TCP pair: {connecting end, accepted end}.
std::pair<int, int> tcp_pair() {
  const int l = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l, 1) != 0 ||
      ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return {-1, -1};
  const int c = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return {-1, -1};
  const int s = ::accept(l, nullptr, nullptr);
  ::close(l);
  // A stuck relay fails the test instead of hanging it.
  timeval tv{10, 0};
  for (int fd : {c, s}) ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return {c, s};
}

bool send_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

// Reads exactly n bytes (fewer on EOF, error or timeout).
std::string recv_n(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t k = ::recv(fd, out.data() + got, n - got, 0);
    if (k <= 0) break;
    got += static_cast<size_t>(k);
  }
  out.resize(got);
  return out;
}

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// One worker with its event loop on a thread; tunnels are opened on that thread.
class relay_worker {
 public:
  explicit relay_worker(bool ring) {
    if (ring)
      ::unsetenv("WSGATE_RELAY");
    else
      ::setenv("WSGATE_RELAY", "asio", 1);
    thread_ = std::thread([this] { w.io.run(); });
  }
  ~relay_worker() {
    guard_.reset();
    w.io.stop();
    thread_.join();
    ::unsetenv("WSGATE_RELAY");
  }
  // Returns the test's ends: {client, upstream}.
  std::pair<int, int> open(tunnel_limits limits, std::string early = {}) {
    auto [client, proxy_client] = tcp_pair();
    auto [proxy_upstream, upstream] = tcp_pair();
    std::promise<void> done;
    asio::post(w.io, [&] {
      w.connections += 2;
      tcp::socket c(w.io, tcp::v4(), proxy_client);
      auto u = std::make_unique<upstream_conn>(w.io);
      u->socket.assign(tcp::v4(), proxy_upstream);
      start_tunnel(w, std::move(c), std::move(u), std::move(early), limits);
      done.set_value();
    });
    done.get_future().wait();
    return {client, upstream};
  }
  // Runs f on the worker thread and waits for it.
  template <class F>
  auto on_worker(F f) {
    std::promise<decltype(f())> p;
    asio::post(w.io, [&] { p.set_value(f()); });
    return p.get_future().get();
  }

  worker_context w{0};

 private:
  asio::executor_work_guard<asio::io_context::executor_type> guard_{w.io.get_executor()};
  std::thread thread_;
};

tunnel_limits plain_limits() {
  return tunnel_limits{std::chrono::seconds(60), std::chrono::seconds(60),
                       std::chrono::seconds(60)};
}

class TunnelRelay : public testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      // The ring relay must really be in use: an environment without io_uring says so.
      relay_worker probe(true);
      auto [c, u] = probe.open(plain_limits());
      const bool ring = probe.on_worker([&] { return probe.w.relay_ring != nullptr; });
      ::close(c);
      ::close(u);
      if (!ring) GTEST_SKIP() << "io_uring is not available here: only the Asio relay runs";
    }
  }
};

// Megabytes both ways at once, with the upstream reading late so that the client's writes stall
// (the ring copies what its peer cannot take out of its buffers), and the bytes that came
// with the handshake first.
TEST_P(TunnelRelay, MovesLargeStreamsBothWaysInOrder) {
  relay_worker rw(GetParam());
  const std::string up = random_bytes(6 << 20, 1), down = random_bytes(5 << 20, 2);
  auto [client, upstream] = rw.open(plain_limits(), "early bytes ");
  // Small receive buffers at the test's ends: the relay's writes stall early.
  const int small = 16 * 1024;
  for (int fd : {client, upstream}) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  std::thread writer_up([&, fd = client] { send_all(fd, up.data(), up.size()); });
  std::thread writer_down([&, fd = upstream] { send_all(fd, down.data(), down.size()); });
  std::this_thread::sleep_for(300ms);  // socket buffers fill: the relay's writes stall
  std::string at_upstream;
  std::thread reader([&, fd = upstream] { at_upstream = recv_n(fd, 12 + up.size()); });
  const std::string at_client = recv_n(client, down.size());
  reader.join();
  writer_up.join();
  writer_down.join();
  EXPECT_EQ(at_upstream.size(), 12 + up.size());
  EXPECT_TRUE(at_upstream == "early bytes " + up) << "bytes to the upstream differ";
  EXPECT_EQ(at_client.size(), down.size());
  EXPECT_TRUE(at_client == down) << "bytes to the client differ";
  if (GetParam()) {
    const auto stalls = rw.on_worker(
        [&] { return std::static_pointer_cast<relay_ring>(rw.w.relay_ring)->stalls(); });
    EXPECT_GT(stalls, 0u) << "the writes never stalled: the copy-out path went untested";
  }
  ::close(client);
  ::close(upstream);
}

// What several receives deliver before the relay's turn (here: 300 KiB, more than one ring
// buffer takes, sent while the worker is busy) goes to the upstream in fewer sends than chunks,
// whole and in order.
TEST_P(TunnelRelay, BatchesReceivesOfOneTurnIntoOneSend) {
  if (!GetParam()) GTEST_SKIP() << "the Asio relay writes what each read returns";
  relay_worker rw(GetParam());
  auto [client, upstream] = rw.open(plain_limits());
  // A round trip first: the tunnel's receives are armed before the worker is held up.
  ASSERT_TRUE(send_all(client, "x", 1));
  ASSERT_EQ(recv_n(upstream, 1), "x");
  auto ring = rw.on_worker([&] { return std::static_pointer_cast<relay_ring>(rw.w.relay_ring); });
  const auto before = rw.on_worker([&] { return std::pair(ring->sends(), ring->chunks_sent()); });
  std::promise<void> go;
  std::promise<void> held;
  asio::post(rw.w.io, [&] {
    held.set_value();
    go.get_future().wait();
  });
  held.get_future().wait();
  const int big = 1 << 20;  // the whole blob fits into the proxy's receive buffer
  ::setsockopt(client, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  const std::string blob = random_bytes(300 * 1024, 4);
  std::thread writer([&] { send_all(client, blob.data(), blob.size()); });
  std::this_thread::sleep_for(300ms);
  go.set_value();
  EXPECT_TRUE(recv_n(upstream, blob.size()) == blob) << "bytes to the upstream differ";
  writer.join();
  const auto after = rw.on_worker([&] { return std::pair(ring->sends(), ring->chunks_sent()); });
  const auto sends = after.first - before.first, chunks = after.second - before.second;
  EXPECT_GE(chunks, 3u) << "300 KiB in 128 KiB ring buffers takes 3 receives at least";
  EXPECT_LT(sends, chunks) << "each receive went out in a send of its own";
  ::close(client);
  ::close(upstream);
}

// Many tunnels with small messages at once: with the ring they share its buffers (incremental
// consumption); no tunnel may see another's bytes.
TEST_P(TunnelRelay, ManyTunnelsKeepTheirOwnBytes) {
  relay_worker rw(GetParam());
  constexpr int kTunnels = 300, kRounds = 20;
  std::vector<std::pair<int, int>> ends;
  for (int i = 0; i < kTunnels; ++i) ends.push_back(rw.open(plain_limits()));
  auto message = [](int t, int r, char dir) {
    std::string m = std::to_string(t) + "/" + std::to_string(r) + dir;
    m.resize(64, static_cast<char>('a' + (t + r) % 26));
    return m;
  };
  for (int r = 0; r < kRounds; ++r) {
    for (int t = 0; t < kTunnels; ++t) {
      const auto m = message(t, r, '>');
      ASSERT_TRUE(send_all(ends[t].first, m.data(), m.size()));
    }
    for (int t = 0; t < kTunnels; ++t) {
      ASSERT_EQ(recv_n(ends[t].second, 64), message(t, r, '>'));
      const auto m = message(t, r, '<');
      ASSERT_TRUE(send_all(ends[t].second, m.data(), m.size()));
    }
    for (int t = 0; t < kTunnels; ++t) ASSERT_EQ(recv_n(ends[t].first, 64), message(t, r, '<'));
  }
  const auto open = rw.on_worker([&] { return rw.w.tunnels.open_count(); });
  EXPECT_EQ(open, static_cast<size_t>(kTunnels));
  for (auto [c, u] : ends) {
    ::close(c);
    ::close(u);
  }
}

// The client's half-close reaches the upstream, which can still answer; the tunnel ends when
// both sides finished, with its counters and reason in the registry.
TEST_P(TunnelRelay, PassesHalfCloseOnAndRecordsTheTunnel) {
  relay_worker rw(GetParam());
  auto [client, upstream] = rw.open(plain_limits());
  ASSERT_TRUE(send_all(client, "hello", 5));
  ::shutdown(client, SHUT_WR);
  EXPECT_EQ(recv_n(upstream, 6), "hello");  // 5 bytes, then EOF
  ASSERT_TRUE(send_all(upstream, "bye", 3));
  ::shutdown(upstream, SHUT_WR);
  EXPECT_EQ(recv_n(client, 4), "bye");
  std::string reason;
  for (int i = 0; i < 200 && reason.empty(); ++i) {
    reason = rw.on_worker([&] {
      const auto& recent = rw.w.tunnels.recent_closed();
      return recent.empty() ? std::string() : recent.back().close_reason;
    });
    if (reason.empty()) std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(reason, "client closed");
  const auto bytes = rw.on_worker([&] {
    const auto& s = rw.w.tunnels.recent_closed().back();
    return std::make_pair(s.bytes[0], s.bytes[1]);
  });
  EXPECT_EQ(bytes.first, 5u);
  EXPECT_EQ(bytes.second, 3u);
  // Both descriptors are gone once the tunnel is: the connection count is back to zero.
  int connections = -1;
  for (int i = 0; i < 200 && connections != 0; ++i) {
    connections = rw.on_worker([&] { return rw.w.connections; });
    if (connections != 0) std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(connections, 0);
  ::close(client);
  ::close(upstream);
}

// proxy_read_timeout: a tunnel with no byte either way closes both connections.
TEST_P(TunnelRelay, IdleTimeoutClosesBothPeers) {
  relay_worker rw(GetParam());
  auto limits = plain_limits();
  limits.idle = std::chrono::milliseconds(300);
  auto [client, upstream] = rw.open(limits);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(recv_n(client, 1), "");  // EOF when the tunnel closes
  EXPECT_EQ(recv_n(upstream, 1), "");
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 5s);
  ::close(client);
  ::close(upstream);
}

// A WebSocket tunnel counts frames each way (the tracker sees every byte, also with the ring
// handing it slices of shared buffers).
TEST_P(TunnelRelay, CountsWebSocketFrames) {
  relay_worker rw(GetParam());
  auto limits = plain_limits();
  limits.websocket = true;
  auto [client, upstream] = rw.open(limits);
  // Masked text frames from the client, unmasked ones from the upstream, 50 each.
  std::string to_up, to_client;
  for (int i = 0; i < 50; ++i) {
    to_up += std::string("\x81\x85\x01\x02\x03\x04", 6) + "abcde";
    to_client += std::string("\x81\x03", 2) + "xyz";
  }
  ASSERT_TRUE(send_all(client, to_up.data(), to_up.size()));
  ASSERT_TRUE(send_all(upstream, to_client.data(), to_client.size()));
  EXPECT_EQ(recv_n(upstream, to_up.size()), to_up);
  EXPECT_EQ(recv_n(client, to_client.size()), to_client);
  const auto frames = rw.on_worker([&] {
    const auto open = rw.w.tunnels.open_stats();
    return open.empty() ? std::make_pair(uint64_t{0}, uint64_t{0})
                        : std::make_pair(open[0]->frames[0], open[0]->frames[1]);
  });
  EXPECT_EQ(frames.first, 50u);
  EXPECT_EQ(frames.second, 50u);
  ::close(client);
  ::close(upstream);
}

// Peers that vanish while bytes flow both ways: every tunnel ends, and the ring gets every
// buffer slice back (none leaks with a write or a queue in flight).
TEST_P(TunnelRelay, ClosingMidStreamReturnsEverything) {
  relay_worker rw(GetParam());
  constexpr int kTunnels = 40;
  const std::string blob = random_bytes(1 << 20, 3);
  std::vector<std::pair<int, int>> ends;
  for (int i = 0; i < kTunnels; ++i) ends.push_back(rw.open(plain_limits()));
  std::vector<std::thread> writers;
  for (auto [c, u] : ends) {
    writers.emplace_back([&, fd = c] { send_all(fd, blob.data(), blob.size()); });
    writers.emplace_back([&, fd = u] { send_all(fd, blob.data(), blob.size() / 2); });
  }
  for (auto [c, u] : ends) recv_n(u, 64 * 1024);  // some bytes went through
  for (auto [c, u] : ends) {
    linger hard{1, 0};  // RST: the relay's writes fail
    ::setsockopt(c, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    ::close(c);
    ::close(u);
  }
  for (auto& t : writers) t.join();
  int connections = -1;
  for (int i = 0; i < 500 && connections != 0; ++i) {
    connections = rw.on_worker([&] { return rw.w.connections; });
    if (connections != 0) std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(connections, 0);
  const auto closed = rw.on_worker([&] { return rw.w.tunnels.recent_closed().size(); });
  EXPECT_EQ(closed, static_cast<size_t>(kTunnels));
  if (GetParam()) {
    const auto out = rw.on_worker(
        [&] { return std::static_pointer_cast<relay_ring>(rw.w.relay_ring)->slices_out(); });
    EXPECT_EQ(out, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Relays, TunnelRelay, testing::Values(true, false),
                         [](const testing::TestParamInfo<bool>& i) {
                           return i.param ? "IoUring" : "Asio";
                         });

}  // namespace
}  // namespace wsgate::proxy
