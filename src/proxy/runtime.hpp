// What the data path needs beside a config snapshot: its listen sockets and the resolved
// addresses of every upstream, built once per (re)load so requests never block on DNS.
// Immutable once built; workers hold it by shared_ptr (a reload swaps the pointer).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/model.hpp"
#include "tls/context.hpp"

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
  bool ssl = false;  // any `listen` on this address:port says ssl (nginx ORs them)
  int backlog = 511;
};

// One address of an upstream{} server (a name may resolve to several), with nginx's
// round-robin state: smooth weighted round robin and passive health (max_fails within
// fail_timeout makes a peer unavailable for fail_timeout).
struct peer {
  socket_address addr;
  int weight = 1;
  int max_fails = 1;
  config::duration fail_timeout = std::chrono::seconds(10);
  bool down = false;  // kept in the list: ip_hash and hash map keys over every server
  // Guarded by peer_group::mu; shared by all workers (as nginx's upstream zone).
  int current_weight = 0;
  int effective_weight = 1;
  int fails = 0;
  std::chrono::steady_clock::time_point accessed{}, checked{};
};

// The addresses a proxy_pass target or an upstream{} block resolves to, and how one is picked:
// ngx_http_upstream_round_robin, backup servers once every primary one is unavailable.
struct peer_group {
  std::string name;  // upstream name, or "host:port"
  // ip_hash: by the client's address; hash: by `hash KEY` (the request's balance_key); both
  // fall back to round robin after 20 picks that found the server out (as nginx).
  enum class method { round_robin, ip_hash, hash } balance = method::round_robin;
  mutable std::vector<peer> primary, backup;
  int total_weight = 0;  // of primary, `down` ones included
  int keepalive = 0;     // idle connections kept per worker (upstream{} keepalive N)
  int keepalive_requests = 1000;
  config::duration keepalive_timeout = std::chrono::seconds(60);
  mutable std::mutex mu;

  // What one request has tried (indexes into primary, then backup at primary.size() + i) and
  // where its hashing stands.
  struct pick_state {
    std::vector<bool> tried;
    std::string_view key;  // ip_hash: the address bytes (3 of IPv4, 16 of IPv6); hash: the key
    uint32_t hash = 0;
    int tries = 0, rehash = 0;
    void reset(const peer_group& g, std::string_view k) {
      tried.assign(g.size(), false);
      key = k;
      hash = g.balance == method::ip_hash ? 89 : 0;
      tries = rehash = 0;
    }
  };
  // The next peer to try, nullptr when none is left (all tried, down or failed too often).
  // `any_live` says whether some peer was available at all ("no live upstreams" otherwise).
  const peer* pick(pick_state& st, std::chrono::steady_clock::time_point now, bool& any_live) const;
  // After a connect to `p`: failed counts towards max_fails; a success clears the count.
  // True when this failure made the peer unavailable (nginx logs it).
  bool report(const peer* p, bool failed, std::chrono::steady_clock::time_point now) const;
  size_t size() const { return primary.size() + backup.size(); }

  // Each server's state now, for the status page.
  struct peer_view {
    std::string server;
    int weight = 1;
    bool backup = false, down = false;
    int fails = 0;
    bool available = true;  // not down, and not out for max_fails within fail_timeout
  };
  std::vector<peer_view> view(std::chrono::steady_clock::time_point now) const;
};

// Looks up std::string keys by string_view, without a temporary string per request.
struct string_hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// A TLS handshake asks its connection, through the SSL's app data, for the context of the
// server{} the client named (SNI); null keeps the listen's default server's.
class tls_server_picker {
 public:
  virtual SSL_CTX* pick_tls_context(std::string_view server_name) = 0;

 protected:
  virtual ~tls_server_picker() = default;
};

struct runtime {
  std::shared_ptr<const config::snapshot> config;
  std::vector<listen_point> listens;
  // Keyed by upstream{} name, or "host:port" for a proxy_pass to a host.
  std::unordered_map<std::string, std::unique_ptr<peer_group>, string_hash, std::equal_to<>> groups;

  // Each server{} with an ssl_certificate: its TLS context (SNI picks among them).
  std::unordered_map<const config::server*, tls::context> tls_contexts;

  // Each location that proxies to https (or to a URL with variables, which may be https): the
  // TLS context its upstream connections use.
  std::unordered_map<const config::location_settings*, tls::context> upstream_tls;

  const tls::context* upstream_tls_for(const config::location_settings* s) const {
    auto it = upstream_tls.find(s);
    return it == upstream_tls.end() ? nullptr : &it->second;
  }
  const tls::context* tls_for(const config::server* srv) const {
    auto it = tls_contexts.find(srv);
    return it == tls_contexts.end() ? nullptr : &it->second;
  }
  const listen_point* find_listen(std::string_view key) const {
    for (const auto& p : listens)
      if (p.key == key) return &p;
    return nullptr;
  }

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

// Loads every TLS context the configuration names (servers' certificates, https upstreams'
// trusted CAs) into `rt`, or only checks them when `rt` is null (wsgate -t); the error, in
// nginx's words with the directive's line, or "".
std::string load_tls(const config::snapshot& config, runtime* rt);

// Resolves host:port now (numeric addresses without DNS); empty on failure.
std::vector<socket_address> resolve(const std::string& host, uint16_t port, bool passive = false);

// True when host is an IPv4 or IPv6 literal ("[::1]" too): its address never changes.
bool is_numeric_host(std::string_view host);

}  // namespace wsgate::proxy
