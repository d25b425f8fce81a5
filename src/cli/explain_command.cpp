// wsgate explain -c FILE URL [--ws] [-H 'Name: value']... [--json] [--method M] [--remote ADDR]
//
// Prints routing's decision for one request: the server and why, the locations considered, the
// action, the exact upstream request, the timeouts and the warnings that apply.
//
// The request: URL "http://host[:port]/path?q" (https:// for TLS) or just "/path".
//  - Local address and port (server selection): the URL's host when it is an IP address, and
//    its port; without either, the first listen of the configuration (port 80 is preferred
//    for a URL without a port when something listens on it).
//  - Host: from -H when given, else the URL's host[:port], else the first server's first name;
//    --no-host (and --http-version 1.0) sends none unless -H gives one (nginx answers an
//    HTTP/1.1 request without Host with 400).
//  - --target T sends T as the request-target exactly (origin- or absolute-form); the URL then
//    only names the local address and port. --http-version 1.0 makes an HTTP/1.0 request.
//    When -H Host differs from a URL host that is a name, the URL is sent as an absolute-form
//    target (as a proxy client would), so the URL's host selects the server, as in nginx.
//  - --remote ADDR[:PORT] is the client; default 127.0.0.1, port 0 ($remote_port then reads 0:
//    explain has no real client connection).
//  - --ws adds the handshake headers the request lacks: Upgrade: websocket, Connection: Upgrade,
//    Sec-WebSocket-Key, Sec-WebSocket-Version: 13.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "config/loader.hpp"
#include "routing/match.hpp"
#include "routing/route.hpp"

namespace wsgate::cli {

namespace {

using json = nlohmann::ordered_json;

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

bool is_ip_literal(std::string_view h) {
  if (h.starts_with("[")) return true;
  if (h.empty()) return false;
  for (char c : h)
    if (!(c >= '0' && c <= '9') && c != '.') return false;
  return true;
}

struct url_parts {
  bool absolute = false;
  bool tls = false;
  std::string host;  // as written, without brackets for IPv6
  std::string authority;
  int port = 0;  // 0: not given
  std::string target;
};

std::optional<url_parts> parse_url(const std::string& url, std::string& error) {
  url_parts u;
  if (url.starts_with("/")) {
    u.target = url;
    return u;
  }
  std::string_view rest = url;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
    u.tls = true;
  } else {
    error = "the URL must be http://host[:port]/path or /path, not \"" + url + "\"";
    return std::nullopt;
  }
  u.absolute = true;
  const size_t end = rest.find_first_of("/?");
  u.authority = std::string(rest.substr(0, end));
  u.target = end == std::string_view::npos ? "/" : std::string(rest.substr(end));
  if (u.target.front() == '?') u.target.insert(u.target.begin(), '/');
  std::string_view a = u.authority;
  size_t colon = a.rfind(':');
  if (a.starts_with("[")) {
    const size_t close = a.find(']');
    if (close == std::string_view::npos) {
      error = "unterminated IPv6 address in \"" + url + "\"";
      return std::nullopt;
    }
    u.host = std::string(a.substr(1, close - 1));
    colon = a.find(':', close);
  } else {
    u.host = std::string(a.substr(0, colon));
  }
  if (colon != std::string_view::npos) {
    try {
      u.port = std::stoi(std::string(a.substr(colon + 1)));
    } catch (...) {
      u.port = -1;
    }
    if (u.port <= 0 || u.port > 65535) {
      error = "invalid port in \"" + url + "\"";
      return std::nullopt;
    }
  }
  if (u.host.empty()) {
    error = "no host in \"" + url + "\"";
    return std::nullopt;
  }
  return u;
}

std::string listen_text(const config::listen_setting& l) {
  std::string addr = l.addr.empty() ? "*" : l.addr;
  if (l.ipv6 && addr.front() != '[') addr = "[" + addr + "]";
  std::string s = addr + ":" + std::to_string(l.port);
  if (l.default_server) s += " default_server";
  if (l.ssl) s += " ssl";
  return s;
}

std::string server_name_text(const config::server_name_entry& n) {
  return n.type == config::server_name_entry::kind::regex ? "~" + n.name : n.name;
}

const char* action_name(routing::action a) {
  switch (a) {
    case routing::action::proxy:
      return "proxy";
    case routing::action::respond:
      return "respond";
    case routing::action::redirect:
      return "redirect";
    case routing::action::not_found:
      return "not_found";
    case routing::action::status:
      return "status";
  }
  return "not_found";
}

std::string request_line(const routing::upstream_request& up) {
  return up.method + " " + up.uri + " " + up.version;
}

json to_json(const routing::request_info& rq, const routing::decision& d) {
  json j;
  json hdrs = json::array();
  for (const auto& [n, v] : rq.headers) hdrs.push_back({n, v});
  j["request"] = {{"method", rq.method}, {"target", rq.target}, {"headers", hdrs}};
  if (d.server) {
    json names = json::array(), listens = json::array();
    for (const auto& n : d.server->names) names.push_back(server_name_text(n));
    for (const auto& l : d.server->listens) listens.push_back(listen_text(l));
    j["server"] = {{"names", names},
                   {"listen", listens},
                   {"file", d.server->where.file},
                   {"line", d.server->where.line},
                   {"reason", d.server_reason}};
  } else {
    j["server"] = nullptr;
  }
  if (d.location) {
    j["location"] = {{"kind", routing::kind_name(d.location->kind)},
                     {"pattern", d.location->pattern},
                     {"file", d.location->where.file},
                     {"line", d.location->where.line}};
  } else {
    j["location"] = nullptr;
  }
  json cands = json::array();
  for (const auto& c : d.candidates)
    cands.push_back({{"kind", routing::kind_name(c.loc->kind)},
                     {"pattern", c.loc->pattern},
                     {"line", c.loc->where.line},
                     {"result", c.result}});
  j["candidates"] = cands;
  j["normalized_uri"] = d.normalized_uri;
  j["action"] = action_name(d.what);
  j["status"] = d.status;
  j["access_denied"] = d.access_denied;
  j["location_header"] = d.location_header.empty() ? json(nullptr) : json(d.location_header);
  if (d.what == routing::action::proxy) {
    const auto& up = d.upstream;
    json uh = json::array();
    for (const auto& [n, v] : up.headers) uh.push_back({n, v});
    j["upstream"] = {{"scheme", up.scheme},   {"host", up.host},
                     {"port", up.port},       {"request_line", request_line(up)},
                     {"method", up.method},   {"uri", up.uri},
                     {"version", up.version}, {"headers", uh}};
  } else {
    j["upstream"] = nullptr;
  }
  j["timeouts"] = {{"connect_ms", d.limits.connect.count()},
                   {"read_ms", d.limits.read.count()},
                   {"send_ms", d.limits.send.count()}};
  j["websocket"] = d.websocket;
  json warns = json::array();
  for (const auto& w : d.warnings)
    warns.push_back({{"id", w.id},
                     {"text", w.text},
                     {"fix", w.fix},
                     {"file", w.where.file},
                     {"line", w.where.line}});
  j["warnings"] = warns;
  return j;
}

std::string seconds_text(config::duration d) {
  const auto ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

void print_human(const routing::request_info& rq, const routing::decision& d) {
  std::printf("request:  %s %s HTTP/1.%d  (from %s:%u to %s:%u%s)\n", rq.method.c_str(),
              rq.target.c_str(), rq.http_minor, rq.remote_addr.c_str(), rq.remote_port,
              rq.local_addr.c_str(), rq.local_port, rq.tls ? ", TLS" : "");
  for (const auto& [n, v] : rq.headers) std::printf("          %s: %s\n", n.c_str(), v.c_str());
  if (d.server) {
    std::string names;
    for (const auto& n : d.server->names) names += (names.empty() ? "" : " ") + server_name_text(n);
    std::printf("\nserver:   %s  (%s:%d)\n          chosen by %s\n",
                names.empty() ? "(no server_name)" : names.c_str(), d.server->where.file.c_str(),
                d.server->where.line, d.server_reason.c_str());
  } else {
    std::printf("\nserver:   none: %s\n", d.server_reason.c_str());
  }
  std::printf("uri:      %s\n", d.normalized_uri.c_str());
  if (!d.candidates.empty()) {
    std::printf("\nlocations considered:\n");
    for (const auto& c : d.candidates)
      std::printf("  %-40s line %-4d %s\n", routing::describe(*c.loc).c_str(), c.loc->where.line,
                  c.result.c_str());
  }
  if (d.location)
    std::printf("\nlocation: %s  (%s:%d)\n", routing::describe(*d.location).c_str(),
                d.location->where.file.c_str(), d.location->where.line);
  else
    std::printf("\nlocation: none (the server level answers)\n");

  switch (d.what) {
    case routing::action::proxy: {
      const auto& up = d.upstream;
      std::printf("action:   proxy to %s://%s%s%s\n", up.scheme.c_str(), up.host.c_str(),
                  up.port ? (":" + std::to_string(up.port)).c_str() : "",
                  up.via_upstream_block ? " (upstream{} block)" : "");
      std::printf("\nupstream request:\n  %s\n", request_line(up).c_str());
      for (const auto& [n, v] : up.headers) std::printf("  %s: %s\n", n.c_str(), v.c_str());
      if (up.pending_content_length_at >= 0)
        std::printf("  (Content-Length: the body's size, once the chunked body is read)\n");
      break;
    }
    case routing::action::redirect:
      std::printf("action:   redirect %d  Location: %s\n", d.status, d.location_header.c_str());
      break;
    case routing::action::respond:
      if (!d.server)
        std::printf("action:   none: the connection is refused (no server listens there)\n");
      else if (d.status == 444)
        std::printf("action:   close the connection without a response (444)\n");
      else if (d.access_denied)
        std::printf(
            "action:   respond 403: access forbidden by allow/deny for this client "
            "address (--remote)\n");
      else
        std::printf("action:   respond %d%s%s\n", d.status,
                    d.body.empty() ? "" : "  body: ", d.body.c_str());
      break;
    case routing::action::not_found:
      std::printf("action:   404 (no proxy_pass or return here: nginx would look for a file)\n");
      break;
    case routing::action::status:
      std::printf("action:   status page (%s)\n",
                  d.status_page == config::location::status_page::stub
                      ? "stub_status: nginx's counters"
                      : "wsgate_status: open tunnels and counters; ?format=prometheus|html");
      break;
  }
  std::printf("\ntimeouts: connect %s, read %s, send %s\n", seconds_text(d.limits.connect).c_str(),
              seconds_text(d.limits.read).c_str(), seconds_text(d.limits.send).c_str());
  std::printf("websocket handshake: %s\n", d.websocket ? "yes" : "no");
  if (!d.warnings.empty()) {
    std::printf("\nwarnings:\n");
    for (const auto& w : d.warnings) {
      std::printf("  [%s] %s", w.id.c_str(), w.text.c_str());
      if (!w.where.file.empty()) std::printf(" (%s:%d)", w.where.file.c_str(), w.where.line);
      std::printf("\n    fix: %s\n", w.fix.c_str());
    }
  }
}

// The local address and port the request arrives on when the URL does not say.
const config::listen_setting* first_listen(const config::snapshot& snap, int prefer_port) {
  if (!snap.http) return nullptr;
  const config::listen_setting* first = nullptr;
  for (const auto& s : snap.http->servers)
    for (const auto& l : s->listens) {
      if (!first) first = &l;
      if (prefer_port && l.port == prefer_port) return &l;
    }
  return first;
}

}  // namespace

int explain(const std::vector<std::string>& args) {
  CLI::App app{"wsgate explain: how a request is routed and what the upstream receives",
               "wsgate explain"};
  std::string conf_file, prefix, url, method = "GET", remote = "127.0.0.1";
  std::string target, http_version = "1.1";
  std::vector<std::string> header_args;
  bool ws = false, as_json = false, no_host = false;
  app.add_option("-c,--conf", conf_file, "configuration file")->required();
  app.add_option("-p,--prefix", prefix, "prefix path (as wsgate -p)");
  app.add_option("url", url, "http://host[:port]/path?query, or /path")->required();
  app.add_flag("--ws", ws, "add the WebSocket handshake headers");
  app.add_option("-H,--header", header_args, "a request header, 'Name: value' (repeatable)");
  app.add_flag("--json", as_json, "print the decision as JSON");
  app.add_option("--method,-X", method, "request method (default GET)");
  app.add_option("--remote", remote, "client address[:port] (default 127.0.0.1, port 0)");
  app.add_option("--target", target,
                 "the request-target exactly as sent (e.g. an absolute-form http://h/p); the URL "
                 "then only says where the client connected");
  app.add_option("--http-version", http_version, "1.1 (default) or 1.0")
      ->check(CLI::IsMember({"1.0", "1.1"}));
  app.add_flag("--no-host", no_host, "send no Host header unless -H gives one");
  std::vector<std::string> argv_rev(args.rbegin(), args.rend());
  try {
    app.parse(argv_rev);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  config::load_options lo;
  lo.conf_file = conf_file;
  lo.prefix = prefix;
  const config::load_result r = config::load_file(lo);
  if (!r.config) {
    if (r.error) std::fprintf(stderr, "%s\n", r.error->format().c_str());
    return 1;
  }
  const config::snapshot& snap = *r.config;

  std::string error;
  auto u = parse_url(url, error);
  if (!u) {
    std::fprintf(stderr, "wsgate explain: %s\n", error.c_str());
    return 1;
  }
  routing::request_info rq;
  rq.method = method;
  rq.tls = u->tls;
  rq.http_minor = http_version == "1.0" ? 0 : 1;
  for (const auto& h : header_args) {
    const size_t colon = h.find(':');
    if (colon == std::string::npos || colon == 0) {
      std::fprintf(stderr, "wsgate explain: -H wants 'Name: value', not \"%s\"\n", h.c_str());
      return 1;
    }
    std::string value = h.substr(colon + 1);
    const size_t b = value.find_first_not_of(" \t");
    value = b == std::string::npos ? "" : value.substr(b);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    rq.headers.emplace_back(h.substr(0, colon), value);
  }
  auto has = [&](std::string_view name) {
    for (const auto& [n, v] : rq.headers)
      if (iequals(n, name)) return true;
    return false;
  };
  if (ws) {
    if (!has("Upgrade")) rq.headers.emplace_back("Upgrade", "websocket");
    if (!has("Connection")) rq.headers.emplace_back("Connection", "Upgrade");
    if (!has("Sec-WebSocket-Key"))
      rq.headers.emplace_back("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    if (!has("Sec-WebSocket-Version")) rq.headers.emplace_back("Sec-WebSocket-Version", "13");
  }

  // The remote end.
  {
    std::string addr = remote;
    const size_t colon = addr.rfind(':');
    if (colon != std::string::npos && addr.find(':') == colon) {  // IPv4:port
      rq.remote_port = static_cast<uint16_t>(std::stoi(addr.substr(colon + 1)));
      addr.resize(colon);
    } else if (addr.starts_with("[") && addr.find("]:") != std::string::npos) {
      const size_t close = addr.find("]:");
      rq.remote_port = static_cast<uint16_t>(std::stoi(addr.substr(close + 2)));
      addr = addr.substr(1, close - 1);
    }
    rq.remote_addr = addr;
  }

  // The local end and the target.
  const int default_port = u->tls ? 443 : 80;
  const config::listen_setting* fl = first_listen(snap, u->port ? u->port : default_port);
  rq.local_port = static_cast<uint16_t>(u->port ? u->port : (fl ? fl->port : default_port));
  if (u->absolute && is_ip_literal(u->host)) {
    rq.local_addr = u->host;
  } else if (fl && !fl->addr.empty() && fl->addr != "*" && fl->addr != "0.0.0.0" &&
             fl->addr != "::" && fl->port == rq.local_port) {
    rq.local_addr = fl->addr == "localhost" ? "127.0.0.1" : fl->addr;
  } else {
    rq.local_addr = "127.0.0.1";
  }
  rq.target = u->target;
  if (!target.empty()) {
    rq.target = target;  // as given; Host only from -H
  } else if (no_host || rq.http_minor == 0) {
    // HTTP/1.0 clients may omit Host: only -H gives one.
  } else if (u->absolute) {
    bool host_given = false;
    std::string given_host;
    for (const auto& [n, v] : rq.headers)
      if (iequals(n, "Host")) host_given = true, given_host = v;
    if (!host_given) {
      rq.headers.insert(rq.headers.begin(), {"Host", u->authority});
    } else if (!is_ip_literal(u->host) && !iequals(given_host, u->authority)) {
      rq.target = url;  // absolute-form: the URL's host selects the server
    }
  } else if (!has("Host")) {
    std::string host = "localhost";
    if (snap.http)
      for (const auto& s : snap.http->servers) {
        if (s->names.empty()) continue;
        const auto& n = s->names.front();
        if (n.type == config::server_name_entry::kind::exact && !n.name.empty()) host = n.name;
        break;
      }
    rq.headers.insert(rq.headers.begin(), {"Host", host});
  }

  const routing::decision d = routing::route(snap, rq);
  if (as_json) {
    std::printf("%s\n", to_json(rq, d).dump(2).c_str());
  } else {
    print_human(rq, d);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace wsgate::cli
