#include "proxy/runtime.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <cstring>
#include <functional>

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
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  char name[INET6_ADDRSTRLEN + 1];
  if (host.empty() || host.size() >= sizeof name) return false;
  std::memcpy(name, host.data(), host.size());
  name[host.size()] = '\0';
  in6_addr a6;
  in_addr a4;
  return ::inet_pton(AF_INET, name, &a4) == 1 || ::inet_pton(AF_INET6, name, &a6) == 1;
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
            if (l.backlog != 511) p.backlog = l.backlog;
          }
        }
        if (seen) continue;
        listen_point p;
        p.key = a.text;
        p.ipv6 = a.storage.ss_family == AF_INET6;
        p.address = std::move(a);
        p.reuseport = l.reuseport;
        p.backlog = l.backlog;
        rt->listens.push_back(std::move(p));
      }
    }
  }

  // upstream{} blocks.
  for (const auto& [name, up] : http.upstreams) {
    auto g = std::make_unique<peer_group>();
    g->name = name;
    g->keepalive = up.keepalive;
    g->keepalive_requests = up.keepalive_requests;
    g->keepalive_timeout = up.keepalive_timeout;
    for (const auto& s : up.servers) {
      if (s.down || s.backup) continue;
      auto addrs = resolve(s.host, s.port);
      if (addrs.empty()) {
        result.error = "host not found in upstream \"" + s.host + ":" + std::to_string(s.port) +
                       "\"" + where(s.where);
        return result;
      }
      // weight N: the address appears N times in the rotation.
      for (int i = 0; i < std::max(1, s.weight); ++i)
        for (const auto& a : addrs) g->peers.push_back(a);
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
          g->peers = std::move(addrs);
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
