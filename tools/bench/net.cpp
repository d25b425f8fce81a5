#include "net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace wsgate::bench {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) {
             return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
           };
           return lower(x) == lower(y);
         });
}

std::string resolve(const std::string& host, uint16_t port, sockaddr_storage& addr,
                    socklen_t& len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0 || !res) {
    return "cannot resolve host '" + host + "': " + gai_strerror(rc);
  }
  std::memcpy(&addr, res->ai_addr, res->ai_addrlen);
  len = res->ai_addrlen;
  freeaddrinfo(res);
  return {};
}

}  // namespace

bool target::loopback() const {
  if (addr.ss_family != AF_INET) return false;
  const auto* sin = reinterpret_cast<const sockaddr_in*>(&addr);
  return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
}

std::string parse_target(std::string_view url, target& out) {
  const auto sep = url.find("://");
  if (sep == std::string_view::npos) {
    return "URL '" + std::string(url) + "' has no scheme: write http://HOST:PORT/PATH or ws://...";
  }
  const std::string_view scheme = url.substr(0, sep);
  if (scheme == "http") {
    out.websocket = false;
  } else if (scheme == "ws") {
    out.websocket = true;
  } else {
    return "scheme '" + std::string(scheme) +
           "' is not supported: wsgate-bench speaks plain http:// and ws:// only";
  }
  std::string_view rest = url.substr(sep + 3);
  const auto slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (authority.empty()) return "URL '" + std::string(url) + "' has no host";
  std::string_view host = authority;
  out.port = 80;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos)
      return "unterminated IPv6 address in '" + std::string(url) + "'";
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') {
      const auto p = authority.substr(close + 2);
      out.port = static_cast<uint16_t>(std::stoul(std::string(p)));
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    const std::string p(authority.substr(colon + 1));
    char* end = nullptr;
    const unsigned long v = std::strtoul(p.c_str(), &end, 10);
    if (p.empty() || *end != '\0' || v == 0 || v > 65535) {
      return "bad port '" + p + "' in '" + std::string(url) + "'";
    }
    out.port = static_cast<uint16_t>(v);
  }
  out.host = std::string(host);
  out.host_header = std::string(authority);
  return resolve(out.host, out.port, out.addr, out.addr_len);
}

std::string parse_listen(std::string_view spec, sockaddr_storage& addr, socklen_t& len) {
  const auto colon = spec.rfind(':');
  if (colon == std::string_view::npos) {
    return "listen address '" + std::string(spec) + "' needs a port: write 127.0.0.1:PORT";
  }
  std::string host(spec.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const std::string p(spec.substr(colon + 1));
  char* end = nullptr;
  const unsigned long v = std::strtoul(p.c_str(), &end, 10);
  if (p.empty() || *end != '\0' || v > 65535) return "bad port '" + p + "'";
  if (host.empty() || host == "*") host = "0.0.0.0";
  return resolve(host, static_cast<uint16_t>(v), addr, len);
}

std::string format_addr(const sockaddr_storage& addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(sin->sin_port));
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&addr);
  inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(sin6->sin6_port));
}

uint64_t raise_nofile(uint64_t want) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur >= want) return rl.rlim_cur;
  if (rl.rlim_max < want) {
    rlimit raised{want, want};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return want;
  }
  rl.rlim_cur = std::min<rlim_t>(want, rl.rlim_max);
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int open_socket(const target& t, uint32_t source_ipv4) {
  const int fd = socket(t.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  set_nodelay(fd);
  if (source_ipv4 != 0 && t.addr.ss_family == AF_INET) {
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(source_ipv4);
    if (bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) {
      const int err = errno;
      close(fd);
      return -err;
    }
  }
  return fd;
}

int start_connect(const target& t, uint32_t source_ipv4) {
  const int fd = open_socket(t, source_ipv4);
  if (fd < 0) return fd;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.addr_len) != 0 &&
      errno != EINPROGRESS) {
    const int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

std::string masked_frame(uint8_t opcode, std::string_view payload) {
  static constexpr uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};
  std::string f;
  f.reserve(payload.size() + 14);
  f.push_back(static_cast<char>(0x80 | opcode));
  const uint64_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xffff) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xff));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
  for (uint8_t m : kMask) f.push_back(static_cast<char>(m));
  for (std::size_t i = 0; i < payload.size(); ++i) {
    f.push_back(static_cast<char>(static_cast<uint8_t>(payload[i]) ^ kMask[i % 4]));
  }
  return f;
}

std::string message_payload(std::size_t size) {
  std::string p(size, 'x');
  for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<char>('a' + i % 26);
  return p;
}

std::string_view header_value(std::string_view headers, std::string_view name) {
  std::size_t pos = 0;
  while (pos < headers.size()) {
    auto eol = headers.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = headers.size();
    const std::string_view line = headers.substr(pos, eol - pos);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos && iequals(line.substr(0, colon), name)) {
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return v;
    }
    pos = eol + 2;
  }
  return {};
}

}  // namespace wsgate::bench
