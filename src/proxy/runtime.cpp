#include "proxy/runtime.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <cstring>
#include <functional>

#include "common/ip.hpp"
#include "proxy/worker.hpp"

namespace wsgate::proxy {

namespace {

std::string address_text(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
  inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(in4->sin_port));
}

std::string where(const config::source_loc& loc) {
  return loc.file.empty() ? std::string() : " in " + loc.file + ":" + std::to_string(loc.line);
}

}  // namespace

std::vector<socket_address> resolve(const std::string& host, uint16_t port, bool passive) {
  std::vector<socket_address> out;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  if (passive) hints.ai_flags = AI_PASSIVE;
  std::string name = host;
  if (name.size() > 2 && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (getaddrinfo(name.empty() ? nullptr : name.c_str(), service.c_str(), &hints, &res) != 0)
    return out;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    socket_address a;
    std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
    a.length = ai->ai_addrlen;
    a.text = address_text(ai->ai_addr);
    bool dup = false;
    for (const auto& o : out) dup = dup || o.text == a.text;
    if (!dup) out.push_back(std::move(a));
  }
  freeaddrinfo(res);
  return out;
}

bool is_numeric_host(std::string_view host) {
  unsigned char bytes[16];
  return ip::parse(host, bytes) != 0;
}

namespace {

// SNI: the context of the server{} the client named, as nginx's ngx_http_ssl_servername. Without
// a name (or a server without a certificate) the default server's context stays.
int servername(SSL* ssl, int* /*alert*/, void* /*arg*/) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  auto* picker = static_cast<tls_server_picker*>(SSL_get_app_data(ssl));
  if (!name || !*name || !picker) return SSL_TLSEXT_ERR_NOACK;
  SSL_CTX* ctx = picker->pick_tls_context(name);
  if (ctx && ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

// proxy_ssl_session_reuse: a new session with an upstream replaces the one kept for that
// context and peer (ownership passes to the store).
int save_session(SSL* ssl, SSL_SESSION* sess) {
  auto* slot = static_cast<upstream_tls_session*>(SSL_get_app_data(ssl));
  if (!slot || !slot->store) return 0;
  (*slot->store)[slot->key] =
      std::shared_ptr<void>(sess, [](void* p) { SSL_SESSION_free(static_cast<SSL_SESSION*>(p)); });
  return 1;
}

bool failed_out(const peer& p, std::chrono::steady_clock::time_point now) {
  return p.max_fails && p.fails >= p.max_fails && now - p.checked <= p.fail_timeout;
}

// ngx_http_upstream_get_peer over one list; `base` offsets its indexes in `tried`.
peer* pick_from(std::vector<peer>& list, size_t base, std::vector<bool>& tried,
                std::chrono::steady_clock::time_point now, bool& any_live) {
  peer* best = nullptr;
  int total = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    peer& p = list[i];
    if (p.down || failed_out(p, now)) continue;
    any_live = true;
    if (tried[base + i]) continue;
    p.current_weight += p.effective_weight;
    total += p.effective_weight;
    if (p.effective_weight < p.weight) ++p.effective_weight;
    if (!best || p.current_weight > best->current_weight) best = &p;
  }
  if (!best) return nullptr;
  best->current_weight -= total;
  if (now - best->checked > best->fail_timeout) best->checked = now;
  tried[base + static_cast<size_t>(best - list.data())] = true;
  return best;
}

}  // namespace

// ngx_http_upstream_get_ip_hash_peer / get_hash_peer (not consistent): the key picks a point
// in the servers' weights; a server that is out, or tried, rehashes; null after 20 of those.
peer* pick_hashed(std::vector<peer>& list, int total_weight, peer_group::method m,
                  peer_group::pick_state& st, std::chrono::steady_clock::time_point now) {
  if (total_weight <= 0) return nullptr;
  for (;;) {
    if (m == peer_group::method::ip_hash) {
      for (unsigned char b : st.key) st.hash = (st.hash * 113 + b) % 6271;
    } else {
      // Cache::Memcached's ((crc32([REHASH] KEY) >> 16) & 0x7fff) + PREV_HASH.
      boost::crc_32_type crc;
      if (st.rehash > 0) {
        const std::string r = std::to_string(st.rehash);
        crc.process_bytes(r.data(), r.size());
      }
      crc.process_bytes(st.key.data(), st.key.size());
      st.hash += (crc.checksum() >> 16) & 0x7fff;
      ++st.rehash;
    }
    uint32_t w = st.hash % static_cast<uint32_t>(total_weight);
    size_t i = 0;
    while (w >= static_cast<uint32_t>(list[i].weight)) w -= static_cast<uint32_t>(list[i++].weight);
    peer& p = list[i];
    if (!st.tried[i] && !p.down && !failed_out(p, now)) {
      if (now - p.checked > p.fail_timeout) p.checked = now;
      st.tried[i] = true;
      return &p;
    }
    if (++st.tries > 20) return nullptr;
  }
}

const peer* peer_group::pick(pick_state& st, std::chrono::steady_clock::time_point now,
                             bool& any_live) const {
  auto& tried = st.tried;
  if (tried.size() != size()) tried.assign(size(), false);
  any_live = false;
  // A single server is never considered unavailable (nginx ignores max_fails there).
  if (primary.size() == 1 && backup.empty() && !primary[0].down) {
    any_live = true;
    if (tried[0]) return nullptr;
    tried[0] = true;
    return &primary[0];
  }
  std::lock_guard lock(mu);
  const bool hashed = balance == method::ip_hash || (balance == method::hash && !st.key.empty());
  if (hashed && st.tries <= 20) {
    if (peer* p = pick_hashed(primary, total_weight, balance, st, now)) {
      any_live = true;
      return p;
    }
  }
  if (peer* p = pick_from(primary, 0, tried, now, any_live)) return p;
  bool backup_live = false;
  peer* p = pick_from(backup, primary.size(), tried, now, backup_live);
  any_live = any_live || backup_live;
  return p;
}

bool peer_group::report(const peer* cp, bool failed,
                        std::chrono::steady_clock::time_point now) const {
  if (primary.size() == 1 && backup.empty()) return false;
  std::lock_guard lock(mu);
  peer& p = *const_cast<peer*>(cp);  // one of ours: the lists are mutable state
  if (!failed) {
    if (p.accessed < p.checked) p.fails = 0;
    return false;
  }
  ++p.fails;
  p.accessed = p.checked = now;
  if (p.max_fails) {
    p.effective_weight -= p.weight / p.max_fails;
    if (p.effective_weight < 0) p.effective_weight = 0;
    return p.fails >= p.max_fails;
  }
  return false;
}

std::vector<peer_group::peer_view> peer_group::view(
    std::chrono::steady_clock::time_point now) const {
  std::vector<peer_view> out;
  std::lock_guard lock(mu);
  for (const auto* list : {&primary, &backup})
    for (const peer& p : *list)
      out.push_back({p.addr.text, p.weight, list == &backup, p.down, p.fails,
                     !p.down && !failed_out(p, now)});
  return out;
}

std::string load_tls(const config::snapshot& config, runtime* rt) {
  if (!config.http) return {};
  std::string error;
  for (const auto& srv : config.http->servers) {
    if (srv->ssl.certificate.empty()) continue;
    auto ctx = tls::make_server_context(*srv, error);
    if (!ctx) return error;
    // SSL_CTX_set_tlsext_servername_callback() without its C cast.
    SSL_CTX_callback_ctrl(ctx.get(), SSL_CTRL_SET_TLSEXT_SERVERNAME_CB,
                          reinterpret_cast<void (*)()>(servername));
    if (rt) rt->tls_contexts.emplace(srv.get(), std::move(ctx));
  }
  // https upstreams: a context per location that may proxy to one (as nginx: https, or a URL
  // with variables).
  auto client_contexts = [&](auto& self, const config::location& loc) -> bool {
    const auto& pp = loc.proxy_pass;
    if (pp && (pp->scheme == "https" || pp->url.has_variables())) {
      auto ctx = tls::make_client_context(loc.settings, error);
      if (!ctx) {
        if (!pp->where.file.empty()) error += " (for proxy_pass" + where(pp->where) + ")";
        return false;
      }
      if (loc.settings.proxy_ssl_session_reuse.value_or(true)) {
        SSL_CTX_set_session_cache_mode(ctx.get(),
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx.get(), save_session);
      }
      if (rt) rt->upstream_tls.emplace(&loc.settings, std::move(ctx));
    }
    for (const auto& child : loc.children)
      if (!self(self, *child)) return false;
    return true;
  };
  for (const auto& srv : config.http->servers)
    if (!client_contexts(client_contexts, srv->root_location)) return error;
  return {};
}

runtime_result build_runtime(std::shared_ptr<const config::snapshot> config) {
  auto rt = std::make_shared<runtime>();
  rt->config = config;
  runtime_result result;
  if (!config->http) {
    result.value = rt;
    return result;
  }
  const auto& http = *config->http;

  // Listen points, one per distinct address:port.
  for (const auto& srv : http.servers) {
    std::vector<config::listen_setting> listens = srv->listens;
    if (listens.empty()) {
      config::listen_setting dflt;
      dflt.port = geteuid() == 0 ? 80 : 8000;
      listens.push_back(dflt);
    }
    for (const auto& l : listens) {
      std::string host = l.addr == "*" ? "" : l.addr;
      if (host.empty()) host = l.ipv6 ? "::" : "0.0.0.0";
      auto addrs = resolve(host, l.port, true);
      if (addrs.empty()) {
        result.error = "host not found in \"" + l.addr + ":" + std::to_string(l.port) +
                       "\" of the \"listen\" directive" + where(l.where);
        return result;
      }
      for (auto& a : addrs) {
        bool seen = false;
        for (auto& p : rt->listens) {
          if (p.key == a.text) {
            seen = true;
            p.reuseport = p.reuseport || l.reuseport;
            p.ssl = p.ssl || l.ssl;
            if (l.backlog != 511) p.backlog = l.backlog;
          }
        }
        if (seen) continue;
        listen_point p;
        p.key = a.text;
        p.ipv6 = a.storage.ss_family == AF_INET6;
        p.address = std::move(a);
        p.reuseport = l.reuseport;
        p.ssl = l.ssl;
        p.backlog = l.backlog;
        rt->listens.push_back(std::move(p));
      }
    }
  }

  // TLS contexts: loaded now, so that a bad certificate fails the (re)load and not a handshake.
  if (std::string error = load_tls(*config, rt.get()); !error.empty()) {
    result.error = error;
    return result;
  }

  // upstream{} blocks.
  for (const auto& [name, up] : http.upstreams) {
    auto g = std::make_unique<peer_group>();
    g->name = name;
    g->keepalive = up.keepalive;
    g->keepalive_requests = up.keepalive_requests;
    g->keepalive_timeout = up.keepalive_timeout;
    if (up.balancer == "ip_hash") g->balance = peer_group::method::ip_hash;
    if (up.balancer == "hash") g->balance = peer_group::method::hash;
    for (const auto& s : up.servers) {
      auto addrs = resolve(s.host, s.port);
      if (addrs.empty()) {
        result.error = "host not found in upstream \"" + s.host + ":" + std::to_string(s.port) +
                       "\"" + where(s.where);
        return result;
      }
      for (auto& a : addrs) {
        peer p;
        p.addr = std::move(a);
        p.weight = p.effective_weight = std::max(1, s.weight);
        p.max_fails = s.max_fails;
        p.fail_timeout = s.fail_timeout;
        p.down = s.down;
        if (!s.backup) g->total_weight += p.weight;
        (s.backup ? g->backup : g->primary).push_back(std::move(p));
      }
    }
    rt->groups.emplace(name, std::move(g));
  }

  // proxy_pass host:port targets without variables.
  std::function<void(const config::location&)> walk = [&](const config::location& loc) {
    if (!result.error.empty()) return;
    if (loc.proxy_pass && !loc.proxy_pass->url.has_variables() &&
        loc.proxy_pass->unix_path.empty()) {
      const auto& pp = *loc.proxy_pass;
      const bool upstream_name =
          pp.port == 0 || (!pp.port_explicit && http.upstreams.count(pp.host));
      if (!upstream_name || !http.upstreams.count(pp.host)) {
        const uint16_t port = pp.port ? pp.port : (pp.scheme == "https" ? 443 : 80);
        const std::string key = pp.host + ":" + std::to_string(port);
        if (!rt->groups.count(key)) {
          auto addrs = resolve(pp.host, port);
          if (addrs.empty()) {
            result.error = "host not found in upstream \"" + key + "\"" + where(pp.where);
            return;
          }
          auto g = std::make_unique<peer_group>();
          g->name = key;
          for (auto& a : addrs) {
            peer p;
            p.addr = std::move(a);
            g->total_weight += p.weight;
            g->primary.push_back(std::move(p));
          }
          rt->groups.emplace(key, std::move(g));
        }
      }
    }
    for (const auto& child : loc.children) walk(*child);
  };
  for (const auto& srv : http.servers) walk(srv->root_location);
  if (!result.error.empty()) return result;
  result.value = rt;
  return result;
}

}  // namespace wsgate::proxy
