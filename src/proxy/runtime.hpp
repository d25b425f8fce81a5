// What the data path needs beside a config snapshot: its listen sockets and the resolved
// addresses of every upstream, built once per (re)load so requests never block on DNS.
// Immutable once built; workers hold it by shared_ptr (a reload swaps the pointer).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/model.hpp"

namespace wsgate::proxy {

struct socket_address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  std::string text;  // "127.0.0.1:8000", "[::1]:8000"
};

// One address:port wsgate listens on (several `listen` lines may share it).
struct listen_point {
  socket_address address;
  std::string key;  // the text form, identifies the socket across reloads
  bool ipv6 = false;
  bool reuseport = false;
  int backlog = 511;
};

// The addresses a proxy_pass target or an upstream{} block resolves to, tried round-robin.
struct peer_group {
  std::string name;  // upstream name, or "host:port"
  std::vector<socket_address> peers;
  int keepalive = 0;  // idle connections kept per worker (upstream{} keepalive N)
  int keepalive_requests = 1000;
  config::duration keepalive_timeout = std::chrono::seconds(60);
  mutable std::atomic<unsigned> next{0};
};

// Looks up std::string keys by string_view, without a temporary string per request.
struct string_hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct runtime {
  std::shared_ptr<const config::snapshot> config;
  std::vector<listen_point> listens;
  // Keyed by upstream{} name, or "host:port" for a proxy_pass to a host.
  std::unordered_map<std::string, std::unique_ptr<peer_group>, string_hash, std::equal_to<>> groups;

  const peer_group* find(std::string_view key) const {
    auto it = groups.find(key);
    return it == groups.end() ? nullptr : it->second.get();
  }
};

struct runtime_result {
  std::shared_ptr<const runtime> value;
  std::string error;  // "host not found in upstream \"b:80\" in FILE:LINE", nginx's wording
};

// Resolves every listen address and upstream host of `config` (blocking; run at start and on
// reload, never on a worker thread).
runtime_result build_runtime(std::shared_ptr<const config::snapshot> config);

// Resolves host:port now (numeric addresses without DNS); empty on failure.
std::vector<socket_address> resolve(const std::string& host, uint16_t port, bool passive = false);

// True when host is an IPv4 or IPv6 literal ("[::1]" too): its address never changes.
bool is_numeric_host(std::string_view host);

}  // namespace wsgate::proxy
