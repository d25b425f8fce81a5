#include "routing/lint.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "common/ip.hpp"
#include "routing/detail.hpp"
#include "routing/match.hpp"
#include "routing/variables.hpp"

namespace wsgate::routing {

namespace {

using detail::iequals;
using k = config::location::match_kind;
using std::chrono::seconds;

const std::vector<config::header_setting>* headers_of(const config::location_settings& s) {
  return s.proxy_set_header ? &*s.proxy_set_header : nullptr;
}

const config::header_setting* find_set_header(const config::location& loc, std::string_view name) {
  if (const auto* list = headers_of(loc.settings))
    for (const auto& h : *list)
      if (iequals(h.name, name)) return &h;
  return nullptr;
}

// The settings a location inherits from: its enclosing location, or its server's level.
const config::location_settings* enclosing(const config::server& srv, const config::location& loc) {
  if (&loc == &srv.root_location) return nullptr;
  return loc.parent ? &loc.parent->settings : &srv.root_location.settings;
}

bool same_list(const std::vector<config::header_setting>& a,
               const std::vector<config::header_setting>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].name != b[i].name || a[i].where.line != b[i].where.line ||
        a[i].where.file != b[i].where.file)
      return false;
  return true;
}

// True when the location's proxy_set_header list is written in it (not inherited).
bool own_headers(const config::server& srv, const config::location& loc) {
  const auto* mine = headers_of(loc.settings);
  if (!mine || mine->empty()) return false;
  const auto* outer = enclosing(srv, loc);
  const auto* theirs = outer ? headers_of(*outer) : nullptr;
  return !theirs || !same_list(*mine, *theirs);
}

bool segment_names_ws(std::string_view path) {
  std::string low(path);
  for (auto& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t pos = 0;
  while (pos < low.size()) {
    size_t end = low.find_first_of("/.-_?^$()|\\", pos);
    if (end == std::string::npos) end = low.size();
    const std::string_view seg = std::string_view(low).substr(pos, end - pos);
    if (seg == "ws" || seg == "wss" || seg == "websocket" || seg == "websockets" ||
        seg == "socket" || seg == "sockets" || seg == "socketio")
      return true;
    if (low.compare(pos, 9, "socket.io") == 0) return true;
    pos = end + 1;
  }
  return false;
}

config::duration read_timeout(const config::location& loc) {
  return loc.settings.proxy_read_timeout.value_or(seconds(60));
}

bool forwards_upgrade(const config::location& loc) {
  const auto* up = find_set_header(loc, "Upgrade");
  return up && !up->value.raw.empty();
}

bool forwards_connection_upgrade(const config::location& loc, const config::snapshot& config) {
  const auto* c = find_set_header(loc, "Connection");
  if (!c) return false;
  const auto& t = c->value;
  for (const auto& p : t.parts) {
    if (!p.is_variable) {
      std::string low = p.text;
      for (auto& ch : low) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (low.find("upgrade") != std::string::npos) return true;
    } else if (iequals(p.text, "http_connection")) {
      return true;
    } else if (config.http) {
      for (const auto& m : config.http->maps)
        if (iequals(m.result, p.text)) return true;
    }
  }
  if (t.parts.empty()) {
    std::string low = t.raw;
    for (auto& ch : low) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return low.find("upgrade") != std::string::npos;
  }
  return false;
}

bool literal_connection_upgrade(const config::location& loc) {
  const auto* c = find_set_header(loc, "Connection");
  if (!c || c->value.has_variables()) return false;
  std::string low = c->value.raw;
  for (auto& ch : low) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return low.find("upgrade") != std::string::npos;
}

std::string name_of(const config::location& loc) {
  return describe(loc);
}

std::string fmt_duration(config::duration d) {
  const auto ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

void lint_one(const config::snapshot& config, const config::server& srv,
              const config::location& loc, std::vector<warning>& out) {
  const bool is_root = &loc == &srv.root_location;

  // proxy-set-header-dropped: a level's own list replaces every outer one.
  if (own_headers(srv, loc)) {
    const auto* outer =
        is_root ? (config.http ? &config.http->settings : nullptr) : enclosing(srv, loc);
    const auto* outer_list = outer ? headers_of(*outer) : nullptr;
    if (outer_list && !outer_list->empty()) {
      std::vector<std::string> lost;
      for (const auto& h : *outer_list) {
        const bool kept = std::any_of(loc.settings.proxy_set_header->begin(),
                                      loc.settings.proxy_set_header->end(),
                                      [&](const auto& mine) { return iequals(mine.name, h.name); });
        if (!kept) lost.push_back(h.name);
      }
      if (!lost.empty()) {
        std::string names;
        for (const auto& n : lost) names += (names.empty() ? "" : ", ") + n;
        const auto& first = loc.settings.proxy_set_header->front();
        out.push_back({"proxy-set-header-dropped",
                       (is_root ? std::string("server") : name_of(loc)) +
                           " sets its own proxy_set_header list, which replaces the outer one: " +
                           names + (lost.size() == 1 ? " is" : " are") + " no longer sent",
                       "repeat the outer proxy_set_header lines for " + names +
                           " here, or move the inner ones to the outer level",
                       loc.settings.proxy_set_header_where.value_or(first.where)});
      }
    }
  }
  if (is_root || !loc.proxy_pass) return;
  const auto& pp = *loc.proxy_pass;

  // proxy-pass-slash-mismatch
  if ((loc.kind == k::prefix || loc.kind == k::prefix_no_regex) && pp.uri && !pp.uri->empty() &&
      !pp.url.has_variables() && !loc.pattern.empty()) {
    const bool loc_slash = loc.pattern.back() == '/';
    const bool uri_slash = pp.uri->back() == '/';
    if (loc_slash != uri_slash) {
      const std::string sample = loc.pattern + (loc_slash ? "x" : "/x");
      const std::string sent = *pp.uri + sample.substr(loc.pattern.size());
      out.push_back({"proxy-pass-slash-mismatch",
                     name_of(loc) + " and proxy_pass URI \"" + *pp.uri +
                         "\" disagree on the trailing '/': a request for " + sample +
                         " goes upstream as " + sent,
                     loc_slash
                         ? "end the proxy_pass URI with '/': proxy_pass " + pp.scheme + "://" +
                               pp.host + (pp.port_explicit ? ":" + std::to_string(pp.port) : "") +
                               *pp.uri + "/;"
                         : "end the location with '/' as well: location " + loc.pattern + "/",
                     pp.where});
    }
  }

  // proxy-pass-uri-redundant: the URI part replaces the matched prefix with itself, so the
  // upstream gets the same URI as without it. The seed's report took this for the fix.
  if ((loc.kind == k::prefix || loc.kind == k::prefix_no_regex) && pp.uri &&
      !pp.url.has_variables() && *pp.uri == loc.pattern && loc.pattern != "/") {
    out.push_back({"proxy-pass-uri-redundant",
                   name_of(loc) + ": the proxy_pass URI part \"" + *pp.uri +
                       "\" replaces the matched prefix with itself, so the upstream receives the "
                       "same URI as with no URI part (a request for " +
                       loc.pattern + "x goes upstream as " + loc.pattern +
                       "x either way); it is not what makes WebSockets work",
                   "proxy_pass " + pp.scheme + "://" + pp.host +
                       (pp.port_explicit ? ":" + std::to_string(pp.port) : "") +
                       "; is equivalent; for WebSockets what matters is proxy_http_version 1.1 "
                       "and the Upgrade/Connection headers",
                   pp.where});
  }

  if (!ws_location(loc)) return;
  const bool up = forwards_upgrade(loc);
  const bool conn = forwards_connection_upgrade(loc, config);
  const std::string version = loc.settings.proxy_http_version.value_or("1.0");

  // ws-upgrade-not-forwarded
  if (!up || !conn || version != "1.1") {
    std::vector<std::string> missing;
    if (version != "1.1") missing.push_back("proxy_http_version 1.1;");
    if (!up) missing.push_back("proxy_set_header Upgrade $http_upgrade;");
    if (!conn) missing.push_back("proxy_set_header Connection $connection_upgrade;");
    std::string fix;
    for (const auto& m : missing) fix += (fix.empty() ? "" : " ") + m;
    if (!conn)
      fix += " with map $http_upgrade $connection_upgrade { default upgrade; '' close; } in http{}";
    out.push_back({"ws-upgrade-not-forwarded",
                   name_of(loc) + " looks like a WebSocket endpoint but " +
                       (version != "1.1"
                            ? "speaks HTTP/" + version + " upstream" + (!up || !conn ? " and " : "")
                            : "") +
                       (!up || !conn ? "does not forward Upgrade/Connection" : "") +
                       ": the upstream sees a plain GET and a WebSocket-only route answers 404",
                   fix, loc.where});
  }

  // ws-read-timeout
  const auto keepalive = loc.settings.websocket_keepalive.value_or(config::duration::zero());
  const auto rt = read_timeout(loc);
  if (rt <= seconds(60) && (keepalive == config::duration::zero() || keepalive >= rt)) {
    out.push_back({"ws-read-timeout",
                   name_of(loc) + " passes WebSockets with proxy_read_timeout " + fmt_duration(rt) +
                       ": an idle WebSocket is closed after " + fmt_duration(rt) +
                       " without traffic",
                   "proxy_read_timeout 3600s; (or wsgate's websocket_keepalive 30s; which pings "
                   "idle tunnels)",
                   loc.where});
  }

  // ws-trailing-slash-only
  if ((loc.kind == k::prefix || loc.kind == k::prefix_no_regex || loc.kind == k::exact) &&
      loc.pattern.size() > 1 && loc.pattern.back() == '/') {
    const std::string bare = loc.pattern.substr(0, loc.pattern.size() - 1);
    const config::location& level = loc.parent ? *loc.parent : srv.root_location;
    const bool covered =
        std::any_of(level.children.begin(), level.children.end(), [&](const auto& c) {
          return (c->kind == k::prefix || c->kind == k::prefix_no_regex || c->kind == k::exact) &&
                 c->pattern == bare;
        });
    if (!covered)
      out.push_back({"ws-trailing-slash-only",
                     name_of(loc) + " answers " + bare + " with a 301 to " + loc.pattern +
                         ": WebSocket clients do not follow redirects, so ws://host" + bare +
                         " fails",
                     "add location = " + bare +
                         " { ... } with the same proxy settings, or use "
                         "the path with the trailing '/' in clients",
                     loc.where});
  }
}

void lint_connection_literal(const config::snapshot&, const config::server&,
                             const config::location& loc, std::vector<warning>& out) {
  if (!loc.proxy_pass || !literal_connection_upgrade(loc)) return;
  const auto* c = find_set_header(loc, "Connection");
  out.push_back({"connection-upgrade-literal",
                 name_of(loc) + " sends \"Connection: " + c->value.raw +
                     "\" on every request, also plain HTTP ones (such as a status endpoint): "
                     "servers like uvicorn answer those with 400",
                 "map $http_upgrade $connection_upgrade { default upgrade; '' close; } in http{}, "
                 "then proxy_set_header Connection $connection_upgrade;",
                 c->where});
  out.push_back({"connection-upgrade-dropped",
                 "wsgate differs from nginx here on purpose: for a request without an Upgrade "
                 "header it does not send \"Connection: " +
                     c->value.raw + "\" upstream",
                 "use the map idiom to get the same behaviour from nginx and wsgate", c->where});
}

void collect_templates(
    const config::location& loc,
    std::vector<std::pair<const config::template_string*, config::source_loc>>& t) {
  if (loc.proxy_pass) t.emplace_back(&loc.proxy_pass->url, loc.proxy_pass->where);
  if (loc.ret && loc.ret->text_or_url) t.emplace_back(&*loc.ret->text_or_url, loc.ret->where);
  for (const auto& r : loc.rewrites) t.emplace_back(&r.replacement, r.where);
  if (loc.settings.proxy_set_header)
    for (const auto& h : *loc.settings.proxy_set_header) t.emplace_back(&h.value, h.where);
  if (loc.settings.add_header)
    for (const auto& h : *loc.settings.add_header) t.emplace_back(&h.value, h.where);
}

void lint_variables(const config::snapshot& config, std::vector<warning>& out) {
  if (!config.http) return;
  std::vector<std::pair<const config::template_string*, config::source_loc>> t;
  for (const auto& m : config.http->maps) {
    t.emplace_back(&m.source, m.where);
    if (m.default_value) t.emplace_back(&*m.default_value, m.where);
    for (const auto& e : m.entries) t.emplace_back(&e.value, m.where);
  }
  for (const auto& s : config.http->servers) {
    collect_templates(s->root_location, t);
    detail::for_each_location(s->root_location,
                              [&](const config::location& l) { collect_templates(l, t); });
  }
  std::vector<std::pair<std::string, int>> seen;
  for (const auto& [tmpl, where] : t) {
    const config::template_string parts =
        tmpl->parts.empty() ? detail::make_template(tmpl->raw) : *tmpl;
    for (const auto& p : parts.parts) {
      if (!p.is_variable || is_known_variable(p.text, config)) continue;
      if (std::find(seen.begin(), seen.end(), std::make_pair(p.text, where.line)) != seen.end())
        continue;
      seen.emplace_back(p.text, where.line);
      out.push_back({"unknown-variable", "unknown \"" + p.text + "\" variable",
                     "define it with map or set, or use a built-in such as $http_" + p.text +
                         " for a request header",
                     where});
    }
  }
}

}  // namespace

bool ws_location(const config::location& loc) {
  if (loc.kind == k::named) return false;
  if (segment_names_ws(loc.pattern)) return true;
  if (loc.proxy_pass && loc.proxy_pass->uri && segment_names_ws(*loc.proxy_pass->uri)) return true;
  // Upgrade set in this location itself (inherited lists are written for every location).
  if (const auto* up = find_set_header(loc, "Upgrade")) {
    const bool inherited =
        loc.parent
            ? (loc.parent->settings.proxy_set_header &&
               same_list(*loc.settings.proxy_set_header, *loc.parent->settings.proxy_set_header))
            : false;
    if (!inherited && up->where.line >= loc.where.line) return true;
  }
  return read_timeout(loc) > std::chrono::minutes(5);
}

// TLS: a certificate with no `ssl` on any listen of its server (wss:// clients then fail with
// "wrong version number"), port 443 served in plain text, a plain listen that turns TLS because
// another on its address says ssl, and proxy_ssl_verify checking an IP address as a name.
void lint_tls(const config::snapshot& config, std::vector<warning>& out) {
  const auto& servers = config.http->servers;
  auto wild = [](const std::string& a) { return a.empty() || a == "*"; };
  auto port_is_ssl = [&](const config::listen_setting& l) {
    for (const auto& other : servers)
      for (const auto& o : other->listens)
        if (o.ssl && o.port == l.port && o.ipv6 == l.ipv6 &&
            (o.addr == l.addr || (wild(o.addr) && wild(l.addr))))
          return true;
    return false;
  };
  for (const auto& srv : servers) {
    bool any_ssl = false;
    for (const auto& l : srv->listens) any_ssl = any_ssl || port_is_ssl(l);
    if (!any_ssl && !srv->ssl.certificate.empty() && !srv->ssl.inherited && !srv->listens.empty())
      out.push_back({"ssl-certificate-without-ssl",
                     "this server has ssl_certificate but no `listen ... ssl`: it answers TLS "
                     "clients in plain text (browsers fail, wss:// gives \"wrong version "
                     "number\")",
                     "add ssl to the listen line, e.g. `listen 443 ssl;`", srv->ssl.where});
    for (const auto& l : srv->listens) {
      if (l.ssl) continue;
      if (port_is_ssl(l)) {
        out.push_back({"ssl-listen-shared",
                       "listen " + l.addr + ":" + std::to_string(l.port) +
                           " has no ssl, but another listen on that address does: this server "
                           "speaks TLS there too (nginx applies ssl to the address)",
                       "write `ssl` on this listen too, to say so", l.where});
      } else if (l.port == 443 && !any_ssl) {
        out.push_back({"ssl-port-plain",
                       "listen on port 443 without ssl: https:// and wss:// clients get plain "
                       "text",
                       "write `listen 443 ssl;` with ssl_certificate and ssl_certificate_key",
                       l.where});
      }
    }
    detail::for_each_location(srv->root_location, [&](const config::location& loc) {
      const auto& pp = loc.proxy_pass;
      const auto& set = loc.settings;
      if (!pp || pp->scheme != "https" || !set.proxy_ssl_verify.value_or(false)) return;
      const bool default_name = !set.proxy_ssl_name || set.proxy_ssl_name->raw == "$proxy_host";
      unsigned char bytes[16];
      std::string host = pp->host;
      if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
      if (default_name && !pp->url.has_variables() && ip::parse(host, bytes) != 0)
        out.push_back({"proxy-ssl-verify-ip",
                       "proxy_ssl_verify checks the upstream certificate's name against \"" +
                           pp->host +
                           "\", an IP address: unless the certificate lists that text as a DNS "
                           "name, every request gets 502",
                       "proxy_ssl_name NAME-IN-THE-CERTIFICATE; (and proxy_ssl_server_name on; "
                       "if the upstream serves several names)",
                       pp->where});
    });
  }
}

// A polling worker keeps its CPU busy while it waits; two of them on one CPU take turns at it,
// and each waits for the other's time slice instead of for its sockets.
void lint_busy_polling(const config::snapshot& config, std::vector<warning>& out) {
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (!config.main.busy_polling || cpus <= 0 || config.main.worker_processes <= cpus) return;
  out.push_back({"busy-polling-oversubscribed",
                 "busy_polling on with " + std::to_string(config.main.worker_processes) +
                     " worker threads on " + std::to_string(cpus) +
                     " online CPUs: polling workers take each other's CPU time, and latency "
                     "gets worse, not better",
                 "worker_processes auto; (one per CPU) or fewer, or busy_polling off;",
                 config.main.busy_polling_where});
}

bool is_notice(const warning& w) {
  return w.id == "connection-upgrade-dropped" || w.id == "proxy-pass-uri-redundant" ||
         w.id == "ssl-listen-shared";
}

std::vector<warning> lint_location(const config::snapshot& config, const config::server& server,
                                   const config::location& loc) {
  std::vector<warning> out;
  lint_one(config, server, loc, out);
  lint_connection_literal(config, server, loc, out);
  return out;
}

std::vector<warning> lint(const config::snapshot& config) {
  std::vector<warning> out;
  lint_busy_polling(config, out);
  if (!config.http) return out;
  for (const auto& s : config.http->servers) {
    lint_one(config, *s, s->root_location, out);
    detail::for_each_location(s->root_location, [&](const config::location& l) {
      lint_one(config, *s, l, out);
      lint_connection_literal(config, *s, l, out);
    });
  }
  lint_variables(config, out);
  lint_tls(config, out);
  auto file_index = [&](const std::string& f) {
    for (size_t i = 0; i < config.files.size(); ++i)
      if (config.files[i].first == f) return i;
    return config.files.size();
  };
  std::stable_sort(out.begin(), out.end(), [&](const warning& a, const warning& b) {
    return std::make_pair(file_index(a.where.file), a.where.line) <
           std::make_pair(file_index(b.where.file), b.where.line);
  });
  return out;
}

}  // namespace wsgate::routing
