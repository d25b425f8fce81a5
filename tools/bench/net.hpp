// Small socket helpers shared by wsgate-bench and wsgate-echo: URLs, non-blocking connect with an
// optional source address, the monotonic clock, fd limits and the WebSocket bits both ends need.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace wsgate::bench {

inline uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// A parsed http:// or ws:// URL with its address resolved once.
struct target {
  bool websocket = false;
  std::string host;  // as written in the URL
  uint16_t port = 80;
  std::string host_header;  // host[:port], sent as Host
  std::string path = "/";   // path and query
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  bool loopback() const;
};

// Returns an empty string on success, otherwise what is wrong with the URL and what to write.
std::string parse_target(std::string_view url, target& out);

// "HOST:PORT" (IPv4 literal or name) to a socket address; empty string on success.
std::string parse_listen(std::string_view spec, sockaddr_storage& addr, socklen_t& len);
std::string format_addr(const sockaddr_storage& addr);

// Raises RLIMIT_NOFILE to at least `want` (up to the hard limit, raising the hard limit too when
// running as root). Returns the soft limit in force afterwards.
uint64_t raise_nofile(uint64_t want);

// Starts a non-blocking TCP connect. `source` (IPv4, host order, 0 = any) binds the local address
// first without reserving a port, so every 127.0.0.x source gets its own ephemeral port range.
// Returns the fd, or -errno.
int start_connect(const target& t, uint32_t source_ipv4 = 0);
// The socket of start_connect, bound but not yet connected (io_uring connects it).
int open_socket(const target& t, uint32_t source_ipv4 = 0);
void set_nodelay(int fd);

// RFC 6455 section 1.3's sample key and the accept value a server must answer with.
inline constexpr std::string_view kWsKey = "dGhlIHNhbXBsZSBub25jZQ==";
inline constexpr std::string_view kWsAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// A complete client frame (FIN set), masked with a fixed non-zero key so the server really has to
// unmask. opcode: 1 text, 2 binary, 8 close, 9 ping.
std::string masked_frame(uint8_t opcode, std::string_view payload);
// The payload of a data message of `size` bytes: printable text, valid UTF-8 for text frames.
std::string message_payload(std::size_t size);

// Case-insensitive search for a header's value in a header block ("Name: value\r\n" lines).
// Returns an empty view when absent.
std::string_view header_value(std::string_view headers, std::string_view name);

}  // namespace wsgate::bench
