// The directive table and its handlers. A handler reads one statement and writes the model;
// the parse loop (dispatch) has already checked the context and the number of arguments.
#include "config/directives.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "config/parser.hpp"
#include "config/regex.hpp"
#include "config/values.hpp"

namespace wsgate::config {
namespace {

using S = parse_state;
using T = statement;

const std::string& arg(const T& s, size_t i) {
  return s.words[i].text;
}
const std::string& dname(const T& s) {
  return s.words[0].text;
}
size_t nargs(const T& s) {
  return s.words.size() - 1;
}

std::string lower(std::string v) {
  std::transform(v.begin(), v.end(), v.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return v;
}

// nginx's ngx_conf_full_name: a relative path is taken from a prefix. Logs and the pid file use
// the prefix (-p), certificates the main file's directory; "stderr", "syslog:..." and paths
// with variables stay as written.
std::string full_name(const std::string& prefix, const std::string& path) {
  if (path.empty() || path[0] == '/' || path == "stderr" || path.starts_with("syslog:") ||
      path.find('$') != std::string::npos || prefix.empty())
    return path;
  return prefix + (prefix.ends_with("/") ? "" : "/") + path;
}

[[noreturn]] void fail_directive(const S& st, const T& s, std::string_view what,
                                 std::string hint = {}) {
  st.fail(s.line, fmt::format("\"{}\" directive {}", dname(s), what), std::move(hint));
}
[[noreturn]] void duplicate(const S& st, const T& s) {
  fail_directive(st, s, "is duplicate",
                 fmt::format("\"{}\" may appear once per block: keep one of them", dname(s)));
}
[[noreturn]] void invalid_value(const S& st, const T& s, std::string hint) {
  fail_directive(st, s, "invalid value", std::move(hint));
}

bool flag_arg(const S& st, const T& s) {
  const std::string& v = arg(s, 1);
  if (lower(v) == "on") return true;
  if (lower(v) == "off") return false;
  st.fail(s.line,
          fmt::format("invalid value \"{}\" in \"{}\" directive, it must be \"on\" or \"off\"", v,
                      dname(s)),
          fmt::format("write `{} on;` or `{} off;`", dname(s), dname(s)));
}
duration time_arg(const S& st, const T& s, size_t i) {
  auto d = parse_duration(arg(s, i));
  if (!d)
    invalid_value(st, s,
                  fmt::format("write a time such as 60s, 500ms, 1h30m or 86400 (seconds), at most "
                              "24d; \"{}\" is not one",
                              arg(s, i)));
  return *d;
}
size_t size_arg(const S& st, const T& s, size_t i) {
  auto v = parse_size(arg(s, i));
  if (!v)
    invalid_value(
        st, s,
        fmt::format("write a size such as 4096, 8k, 1m or 1g; \"{}\" is not one", arg(s, i)));
  return *v;
}
int number_arg(const S& st, const T& s, size_t i) {
  auto v = parse_number(arg(s, i));
  if (!v)
    st.fail(s.line, fmt::format("invalid number \"{}\"", arg(s, i)),
            "write a whole number, e.g. 1024");
  return static_cast<int>(*v);
}

location_settings& settings(S& st) {
  return *st.top().settings;
}

// Generic setters, one per value kind, over a member of location_settings or server.
template <std::optional<bool> location_settings::*M>
void set_flag(S& st, const T& s) {
  auto& slot = settings(st).*M;
  if (slot) duplicate(st, s);
  slot = flag_arg(st, s);
}
template <std::optional<duration> location_settings::*M>
void set_time(S& st, const T& s) {
  auto& slot = settings(st).*M;
  if (slot) duplicate(st, s);
  slot = time_arg(st, s, 1);
}
template <std::optional<size_t> location_settings::*M>
void set_size(S& st, const T& s) {
  auto& slot = settings(st).*M;
  if (slot) duplicate(st, s);
  slot = size_arg(st, s, 1);
}
template <std::optional<std::vector<std::string>> location_settings::*M>
void add_lower_name(S& st, const T& s) {
  auto& slot = settings(st).*M;
  if (!slot) slot.emplace();
  slot->push_back(lower(arg(s, 1)));
}
template <std::optional<bool> server::*M>
void set_srv_flag(S& st, const T& s) {
  auto& slot = st.top().srv->*M;
  if (slot) duplicate(st, s);
  slot = flag_arg(st, s);
}
template <std::optional<duration> server::*M>
void set_srv_time(S& st, const T& s) {
  auto& slot = st.top().srv->*M;
  if (slot) duplicate(st, s);
  slot = time_arg(st, s, 1);
}
template <std::optional<size_t> server::*M>
void set_srv_size(S& st, const T& s) {
  auto& slot = st.top().srv->*M;
  if (slot) duplicate(st, s);
  slot = size_arg(st, s, 1);
}

void ignored(S& st, const T& s) {
  st.notice_ignored(s);
}
void ignored_block(S& st, const T& s) {
  st.notice_ignored(s);
  st.skip_block();
}

// ---- main and events -------------------------------------------------------------------------

bool once_in_main(S& st, const T& s) {
  return st.main_set.insert(dname(s)).second;
}

void h_daemon(S& st, const T& s) {
  if (!once_in_main(st, s)) duplicate(st, s);
  st.snap->main.daemon = flag_arg(st, s);
}
void h_worker_processes(S& st, const T& s) {
  if (!once_in_main(st, s)) duplicate(st, s);
  if (arg(s, 1) == "auto") {
    unsigned n = std::thread::hardware_concurrency();
    st.snap->main.worker_processes = n ? static_cast<int>(n) : 1;
    return;
  }
  auto n = parse_number(arg(s, 1));
  if (!n) invalid_value(st, s, "write `worker_processes auto;` or a number, e.g. 2");
  st.snap->main.worker_processes = static_cast<int>(*n);
}
void h_pid(S& st, const T& s) {
  if (!once_in_main(st, s)) duplicate(st, s);
  st.snap->main.pid_path = full_name(st.snap->prefix, arg(s, 1));
}
void h_user(S& st, const T& s) {
  if (!once_in_main(st, s)) duplicate(st, s);
  st.snap->main.user = arg(s, 1);
}
void h_worker_shutdown_timeout(S& st, const T& s) {
  if (!once_in_main(st, s)) duplicate(st, s);
  st.snap->main.worker_shutdown_timeout = time_arg(st, s, 1);
}
void h_busy_polling(S& st, const T& s) {
  if (!once_in_main(st, s)) duplicate(st, s);
  st.snap->main.busy_polling = flag_arg(st, s);
  st.snap->main.busy_polling_where = st.here(s.line);
}
void h_worker_connections(S& st, const T& s) {
  if (!once_in_main(st, s)) duplicate(st, s);
  st.snap->main.worker_connections = number_arg(st, s, 1);
}

log_setting parse_error_log(S& st, const T& s) {
  log_setting l;
  l.path = full_name(st.snap->prefix, arg(s, 1));
  l.level = "error";
  l.where = st.here(s.line);
  static const char* levels[] = {"debug", "info", "notice", "warn",
                                 "error", "crit", "alert",  "emerg"};
  for (size_t i = 2; i <= nargs(s); ++i) {
    if (std::find(std::begin(levels), std::end(levels), arg(s, i)) == std::end(levels))
      st.fail(s.line, fmt::format("invalid log level \"{}\"", arg(s, i)),
              "use one of debug, info, notice, warn, error, crit, alert, emerg");
    l.level = arg(s, i);
  }
  return l;
}
void h_error_log(S& st, const T& s) {
  log_setting l = parse_error_log(st, s);
  // nginx writes to every error_log given; wsgate keeps the first one of a level.
  if (st.top().ctx == ctx_main) {
    if (!st.snap->main.error_log) st.snap->main.error_log = l;
  } else if (!settings(st).error_log) {
    settings(st).error_log = l;
  }
}

void h_include(S& st, const T& s) {
  st.include(arg(s, 1), s.line, st.top().ctx);
}

void h_events(S& st, const T& s) {
  if (st.events_seen) duplicate(st, s);
  st.events_seen = true;
  st.frames.push_back({ctx_events});
  st.parse(ctx_events, true);
  st.frames.pop_back();
}

void check_duplicate_locations(S& st, const location& parent);
void check_upstream_ports(const location& loc, const http_block& http);
void check_server_names(S& st, const http_block& http);

void h_http(S& st, const T& s) {
  if (st.snap->http) duplicate(st, s);
  auto& http = st.snap->http.emplace();
  http.where = st.here(s.line);
  // "combined" is predefined, as in nginx.
  log_format combined;
  combined.name = "combined";
  combined.format = st.tmpl(
      "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent "
      "\"$http_referer\" \"$http_user_agent\"",
      s.line);
  http.log_formats.push_back(std::move(combined));
  frame f{ctx_http};
  f.settings = &http.settings;
  f.srv = &st.http_server_defaults;
  st.frames.push_back(f);
  st.parse(ctx_http, true);
  st.frames.pop_back();
  // As nginx, these are found once the http block is read.
  for (const auto& srv : http.servers) check_upstream_ports(srv->root_location, http);
  for (const auto& srv : http.servers) check_duplicate_locations(st, srv->root_location);
  for (auto& srv : http.servers) {
    if (srv->listens.empty()) {  // nginx, run as root, listens on *:80
      listen_setting l;
      l.addr = "*";
      l.port = 80;
      l.where = srv->where;
      srv->listens.push_back(l);
    }
  }
  check_server_names(st, http);
}

// proxy_pass http://NAME:PORT where NAME is an upstream{} block: nginx refuses the port.
void check_upstream_ports(const location& loc, const http_block& http) {
  if (loc.proxy_pass && loc.proxy_pass->port_explicit &&
      http.upstreams.count(loc.proxy_pass->host)) {
    const auto& p = *loc.proxy_pass;
    throw load_failure{
        {p.where, fmt::format("upstream \"{}\" may not have port {}", p.host, p.port),
         fmt::format("\"{}\" names an upstream block, whose servers carry the ports: write "
                     "`proxy_pass {}://{}{};`",
                     p.host, p.scheme, p.host, p.uri.value_or(""))}};
  }
  for (const auto& child : loc.children) check_upstream_ports(*child, http);
}

std::string listen_display(const listen_setting& l) {
  return l.ipv6 ? fmt::format("[{}]:{}", l.addr, l.port)
                : fmt::format("{}:{}", l.addr == "*" ? "0.0.0.0" : l.addr, l.port);
}

// nginx builds the server-name table of an address:port only when several servers share it
// (or the default one has a regex with captures); only then does it refuse a bad wildcard and
// warn about a name given twice. Same here, so wsgate accepts exactly what nginx accepts.
void check_server_names(S& st, const http_block& http) {
  std::map<std::string, std::vector<const server*>> by_addr;
  std::vector<std::string> order;
  for (const auto& srv : http.servers)
    for (const auto& l : srv->listens) {
      auto key = listen_display(l);
      auto& v = by_addr[key];
      if (v.empty()) order.push_back(key);
      if (std::find(v.begin(), v.end(), srv.get()) == v.end()) v.push_back(srv.get());
    }
  for (const auto& key : order) {
    const auto& servers = by_addr[key];
    const server* def = servers.front();
    for (const server* srv : servers)
      for (const auto& l : srv->listens)
        if (l.default_server && listen_display(l) == key) def = srv;
    bool captures = false;
    for (const auto& n : def->names)
      if (n.compiled && n.compiled->capture_count() > 0) captures = true;
    if (servers.size() < 2 && !captures) continue;
    std::set<std::string> seen;
    for (const server* srv : servers)
      for (const auto& n : srv->names) {
        if (n.type == server_name_entry::kind::exact && n.name.find('*') != std::string::npos)
          throw load_failure{
              {n.where, fmt::format("invalid server name or wildcard \"{}\" on {}", n.name, key),
               "a wildcard is only \"*.example.com\" or \"www.example.*\"; use a regex "
               "(~...) for anything else"}};
        if (n.type == server_name_entry::kind::regex) continue;
        if (!seen.insert(n.name).second)
          st.snap->notices.push_back(
              {n.where, fmt::format("conflicting server name \"{}\" on {}, ignored", n.name, key)});
      }
  }
}

// ---- server ----------------------------------------------------------------------------------

void h_server(S& st, const T& s) {
  auto& http = *st.snap->http;
  auto& srv = *http.servers.emplace_back(std::make_unique<server>());
  srv.where = st.here(s.line);
  srv.root_location.where = srv.where;
  srv.root_location.pattern = "";
  frame f{ctx_server};
  f.settings = &srv.root_location.settings;
  f.loc = &srv.root_location;
  f.srv = &srv;
  st.frames.push_back(f);
  st.parse(ctx_server, true);
  st.frames.pop_back();
}

bool all_digits(std::string_view v) {
  return !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
}

uint16_t listen_port(S& st, const T& s, std::string_view port) {
  auto n = parse_number(port);
  if (!n || *n < 1 || *n > 65535)
    st.fail(s.line, fmt::format("invalid port in \"{}\" of the \"listen\" directive", arg(s, 1)),
            "a port is a number from 1 to 65535");
  return static_cast<uint16_t>(*n);
}

std::string listen_display(const listen_setting& l);

void h_listen(S& st, const T& s) {
  listen_setting l;
  l.where = st.here(s.line);
  std::string a = arg(s, 1);
  if (a.starts_with("unix:"))
    st.fail(s.line,
            fmt::format(
                "wsgate does not listen on unix sockets: \"{}\" of the \"listen\" directive", a),
            "listen on a loopback port instead, e.g. `listen 127.0.0.1:8080;`");
  std::string host;
  if (a.starts_with("[")) {
    size_t close = a.find(']');
    if (close == std::string::npos)
      st.fail(s.line, fmt::format("invalid IPv6 address in \"{}\" of the \"listen\" directive", a),
              "write IPv6 addresses in brackets, e.g. `listen [::]:8080;`");
    host = a.substr(1, close - 1);
    l.ipv6 = true;
    std::string rest = a.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') st.fail(s.line, fmt::format("invalid host in \"{}\"", a));
      l.port = listen_port(st, s, rest.substr(1));
    }
    in6_addr a6{};
    if (inet_pton(AF_INET6, host.c_str(), &a6) != 1)
      st.fail(s.line, fmt::format("invalid IPv6 address in \"{}\" of the \"listen\" directive", a));
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &a6, buf, sizeof buf);
    l.addr = buf;
  } else if (all_digits(a)) {
    l.addr = "*";
    l.port = listen_port(st, s, a);
  } else {
    size_t colon = a.rfind(':');
    if (colon != std::string::npos) {
      host = a.substr(0, colon);
      l.port = listen_port(st, s, a.substr(colon + 1));
    } else {
      host = a;
    }
    if (host == "*" || host == "0.0.0.0") {
      l.addr = "*";
    } else if (host == "localhost") {
      l.addr = "127.0.0.1";
    } else {
      in_addr a4{};
      if (inet_pton(AF_INET, host.c_str(), &a4) != 1)
        st.fail(s.line, fmt::format("host not found in \"{}\" of the \"listen\" directive", a),
                "listen on an IP address (e.g. `listen 127.0.0.1:8080;`): wsgate does not "
                "resolve host names in listen");
      l.addr = host;
    }
  }

  bool socket_options = false;
  for (size_t i = 2; i <= nargs(s); ++i) {
    const std::string& p = arg(s, i);
    if (p == "default_server" || p == "default") {
      l.default_server = true;
    } else if (p == "ssl") {
      l.ssl = true;
    } else if (p == "http2") {
      st.snap->notices.push_back(
          {st.here(s.line), "\"http2\" in \"listen\": wsgate serves HTTP/1.1 on this port"});
    } else if (p == "reuseport") {
      l.reuseport = true;
      socket_options = true;
    } else if (p.starts_with("backlog=")) {
      auto n = parse_number(std::string_view(p).substr(8));
      if (!n || *n == 0)
        st.fail(s.line, fmt::format("invalid backlog \"{}\"", p.substr(8)),
                "write a positive number, e.g. backlog=511");
      l.backlog = static_cast<int>(*n);
      socket_options = true;
    } else if (p.starts_with("ipv6only=") || p.starts_with("rcvbuf=") || p.starts_with("sndbuf=") ||
               p.starts_with("so_keepalive=") || p.starts_with("fastopen=") ||
               p.starts_with("accept_filter=") || p == "deferred" || p == "bind") {
      socket_options = true;
      st.snap->notices.push_back(
          {st.here(s.line), fmt::format("\"{}\" in \"listen\": wsgate ignores it", p)});
    } else if (p == "proxy_protocol") {
      st.fail(s.line, "wsgate does not support the PROXY protocol on \"listen\"",
              "remove proxy_protocol; $remote_addr is then the load balancer's address");
    } else {
      st.fail(s.line, fmt::format("invalid parameter \"{}\"", p),
              "listen takes ADDRESS:PORT then default_server, ssl, reuseport, backlog=N");
    }
  }

  std::string display = listen_display(l);
  server& srv = *st.top().srv;
  for (const auto& other : srv.listens)
    if (other.addr == l.addr && other.port == l.port && other.ipv6 == l.ipv6)
      st.fail(s.line, fmt::format("a duplicate listen {}", display),
              fmt::format("this server already listens on {}: remove one of the two", display));
  auto& seen = st.listen_seen[display];
  if (l.default_server && seen.first)
    st.fail(s.line, fmt::format("a duplicate default server for {}", display),
            "only one server per address:port may be default_server");
  if (socket_options && seen.second)
    st.fail(s.line, fmt::format("duplicate listen options for {}", display),
            "give backlog=/reuseport/... on one listen of this address:port only");
  seen.first = seen.first || l.default_server;
  seen.second = seen.second || socket_options;
  srv.listens.push_back(std::move(l));
}

void h_server_name(S& st, const T& s) {
  server& srv = *st.top().srv;
  for (size_t i = 1; i <= nargs(s); ++i) {
    const std::string& raw = arg(s, i);
    server_name_entry e;
    e.where = st.here(s.line);
    if (raw.starts_with("~")) {
      e.type = server_name_entry::kind::regex;
      e.name = raw.substr(1);
      auto r = regex::compile(e.name, true);
      if (!r.re) st.fail(s.line, r.error, "check the regular expression's brackets and escapes");
      e.compiled = r.re;
      srv.names.push_back(std::move(e));
      continue;
    }
    std::string name = lower(raw);
    if (name.starts_with("*") && (name.size() < 3 || name[1] != '.'))
      st.fail(s.line, fmt::format("server name \"{}\" is invalid", raw),
              "a leading wildcard is written \"*.example.com\"");
    if (name.find('/') != std::string::npos)  // nginx warns only
      st.snap->notices.push_back(
          {st.here(s.line), fmt::format("server name \"{}\" has suspicious symbols", raw)});
    size_t star = name.find('*');
    if (name.starts_with(".")) {  // ".example.com" = "example.com" and "*.example.com"
      e.name = name.substr(1);
      srv.names.push_back(e);
      e.type = server_name_entry::kind::wildcard_front;
      e.name = "*" + name;
    } else if (star == std::string::npos) {
      e.name = name;
    } else if (name.starts_with("*.") && name.find('*', 1) == std::string::npos) {
      e.type = server_name_entry::kind::wildcard_front;
      e.name = name;
    } else if (name.ends_with(".*") && star == name.size() - 1) {
      e.type = server_name_entry::kind::wildcard_back;
      e.name = name;
    } else {  // refused or taken literally by check_server_names(), as nginx does
      e.name = name;
    }
    srv.names.push_back(std::move(e));
  }
}

// ---- location --------------------------------------------------------------------------------

std::string display_name(const location& l) {
  return l.kind == location::match_kind::named ? "@" + l.pattern : l.pattern;
}

void h_location(S& st, const T& s) {
  auto loc = std::make_unique<location>();
  loc->where = st.here(s.line);
  using mk = location::match_kind;
  std::string name;
  if (nargs(s) == 2) {
    const std::string& mod = arg(s, 1);
    name = arg(s, 2);
    if (mod == "=")
      loc->kind = mk::exact;
    else if (mod == "^~")
      loc->kind = mk::prefix_no_regex;
    else if (mod == "~")
      loc->kind = mk::regex;
    else if (mod == "~*")
      loc->kind = mk::regex_icase;
    else
      st.fail(s.line, fmt::format("invalid location modifier \"{}\"", mod),
              "a location modifier is one of =, ^~, ~, ~*");
  } else {
    name = arg(s, 1);
    if (name.starts_with("=")) {
      loc->kind = mk::exact;
      name = name.substr(1);
    } else if (name.starts_with("~*")) {
      loc->kind = mk::regex_icase;
      name = name.substr(2);
    } else if (name.starts_with("~")) {
      loc->kind = mk::regex;
      name = name.substr(1);
    } else if (name.starts_with("@")) {
      loc->kind = mk::named;
      name = name.substr(1);
    }
  }
  loc->pattern = name;
  bool is_regex = loc->kind == mk::regex || loc->kind == mk::regex_icase;
  if (is_regex) {
    auto r = regex::compile(name, loc->kind == mk::regex_icase);
    if (!r.re) st.fail(s.line, r.error, "check the regular expression's brackets and escapes");
    loc->compiled = r.re;
  }

  frame& parent_frame = st.top();
  location& parent = *parent_frame.loc;
  if (parent_frame.ctx == ctx_location) {
    std::string shown = display_name(*loc);
    if (parent.kind == mk::exact)
      st.fail(s.line,
              fmt::format("location \"{}\" cannot be inside the exact location \"{}\"", shown,
                          parent.pattern),
              "an exact location matches one URI only: move the inner location out of it");
    if (parent.kind == mk::named)
      st.fail(s.line,
              fmt::format("location \"{}\" cannot be inside the named location \"@{}\"", shown,
                          parent.pattern),
              "move the inner location to the server level");
    if (loc->kind == mk::named)
      st.fail(s.line, fmt::format("named location \"{}\" can be on the server level only", shown),
              "move the named location directly inside server { }");
    if (!is_regex && !name.starts_with(parent.pattern))
      st.fail(s.line,
              fmt::format("location \"{}\" is outside location \"{}\"", name, parent.pattern),
              fmt::format("a nested prefix location must start with its parent's prefix, e.g. "
                          "\"{}...\"; or move it out of the block",
                          parent.pattern));
  }
  loc->parent = &parent;
  location& ref = *parent.children.emplace_back(std::move(loc));
  frame f{ctx_location};
  f.settings = &ref.settings;
  f.loc = &ref;
  f.srv = parent_frame.srv;
  st.frames.push_back(f);
  st.parse(ctx_location, true);
  st.frames.pop_back();
}

// Same name and both exact, or both non-exact: nginx's ngx_http_join_exact_locations rule, which
// compares prefix and ^~ locations by name; regex and named locations may repeat.
void check_duplicate_locations(S& st, const location& parent) {
  using mk = location::match_kind;
  for (size_t i = 0; i < parent.children.size(); ++i) {
    const location& a = *parent.children[i];
    for (size_t j = 0; j < i; ++j) {
      const location& b = *parent.children[j];
      bool a_regex = a.kind == mk::regex || a.kind == mk::regex_icase;
      bool b_regex = b.kind == mk::regex || b.kind == mk::regex_icase;
      if (a_regex || b_regex) continue;  // nginx keeps regex locations apart
      if (a.kind == mk::named || b.kind == mk::named) continue;  // nginx 1.22 allows these
      if (a.pattern != b.pattern) continue;
      if ((a.kind == mk::exact) != (b.kind == mk::exact)) continue;
      throw load_failure{{a.where, fmt::format("duplicate location \"{}\"", display_name(a)),
                          fmt::format("\"{}\" is already defined at {}:{}: merge the two blocks",
                                      display_name(a), b.where.file, b.where.line)}};
    }
    check_duplicate_locations(st, a);
  }
}

// ---- handlers (not inherited) ----------------------------------------------------------------

bool starts_with_icase(std::string_view s, std::string_view p) {
  if (s.size() < p.size()) return false;
  for (size_t i = 0; i < p.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != p[i]) return false;
  return true;
}

void h_proxy_pass(S& st, const T& s) {
  location& loc = *st.top().loc;
  if (loc.proxy_pass) duplicate(st, s);
  proxy_pass_setting p;
  p.where = st.here(s.line);
  const std::string& url = arg(s, 1);
  p.url = st.tmpl(url, s.line);
  if (p.url.has_variables()) {  // resolved per request, as nginx does
    loc.proxy_pass = std::move(p);
    return;
  }
  size_t skip = 0;
  if (starts_with_icase(url, "http://")) {
    p.scheme = "http";
    p.port = 80;
    skip = 7;
  } else if (starts_with_icase(url, "https://")) {
    p.scheme = "https";
    p.port = 443;
    skip = 8;
  } else {
    st.fail(s.line, "invalid URL prefix",
            fmt::format("write the scheme: `proxy_pass http://{};`", url));
  }
  std::string rest = url.substr(skip);
  std::string authority;
  if (rest.starts_with("unix:")) {  // http://unix:/path/to.sock:/uri
    size_t colon = rest.find(':', 5);
    p.unix_path = rest.substr(5, colon == std::string::npos ? std::string::npos : colon - 5);
    p.host = "unix:" + p.unix_path;
    p.port = 0;
    if (colon != std::string::npos) p.uri = rest.substr(colon + 1);
    if (p.unix_path.empty()) st.fail(s.line, fmt::format("no path in the unix domain socket"));
  } else {
    size_t slash = rest.find('/');
    authority = rest.substr(0, slash);
    if (slash != std::string::npos) p.uri = rest.substr(slash);
    if (authority.starts_with("[")) {
      size_t close = authority.find(']');
      if (close == std::string::npos) st.fail(s.line, fmt::format("invalid host in \"{}\"", url));
      p.host = authority.substr(0, close + 1);
      std::string tail = authority.substr(close + 1);
      if (tail.starts_with(":")) {
        auto n = parse_number(std::string_view(tail).substr(1));
        if (!n || *n < 1 || *n > 65535)
          st.fail(s.line, fmt::format("invalid port in upstream \"{}\"", rest));
        p.port = static_cast<uint16_t>(*n);
        p.port_explicit = true;
      }
    } else {
      size_t colon = authority.rfind(':');
      p.host = authority.substr(0, colon);
      if (colon != std::string::npos) {
        auto n = parse_number(std::string_view(authority).substr(colon + 1));
        if (!n || *n < 1 || *n > 65535)
          st.fail(s.line, fmt::format("invalid port in upstream \"{}\"", rest),
                  "a port is a number from 1 to 65535");
        p.port = static_cast<uint16_t>(*n);
        p.port_explicit = true;
      }
    }
    if (p.host.empty())
      st.fail(s.line, fmt::format("no host in upstream \"{}\"", rest),
              "write `proxy_pass http://HOST:PORT;`");
  }
  using mk = location::match_kind;
  bool regex_like = loc.kind == mk::regex || loc.kind == mk::regex_icase || loc.kind == mk::named;
  if (regex_like && p.uri && !p.uri->empty()) {
    std::string base = fmt::format("{}://{}", p.scheme, p.unix_path.empty() ? authority : p.host);
    st.fail(s.line,
            "\"proxy_pass\" cannot have URI part in location given by regular expression, or "
            "inside named location, or inside \"if\" statement, or inside \"limit_except\" block",
            fmt::format("drop the URI part (`proxy_pass {};`) and change the URI with rewrite "
                        "first if needed, e.g. `rewrite ^/old/(.*)$ {}$1 break;`",
                        base, *p.uri));
  }
  loc.proxy_pass = std::move(p);
}

void set_status_page(S& st, const T& s, location::status_page kind) {
  location& loc = *st.top().loc;
  if (loc.status != location::status_page::none) duplicate(st, s);
  loc.status = kind;
  loc.status_where = st.here(s.line);
}
void h_stub_status(S& st, const T& s) {
  // "stub_status on;" is the form before nginx 1.7.5; the argument is ignored there too.
  set_status_page(st, s, location::status_page::stub);
}
void h_wsgate_status(S& st, const T& s) {
  set_status_page(st, s, location::status_page::wsgate);
}

void h_return(S& st, const T& s) {
  location& loc = *st.top().loc;
  return_setting r;
  r.where = st.here(s.line);
  const std::string& first = arg(s, 1);
  auto code = parse_number(first);
  if (!code) {
    if (nargs(s) == 1 && (first.starts_with("http://") || first.starts_with("https://") ||
                          first.starts_with("$scheme"))) {
      r.code = 302;
      r.text_or_url = st.tmpl(first, s.line);
    } else {
      st.fail(s.line, fmt::format("invalid return code \"{}\"", first),
              "write `return CODE [TEXT];` or `return http://URL;`");
    }
  } else {
    if (*code > 999)
      st.fail(s.line, fmt::format("invalid return code \"{}\"", first),
              "a status code has three digits");
    r.code = static_cast<int>(*code);
    if (nargs(s) == 2) r.text_or_url = st.tmpl(arg(s, 2), s.line);
  }
  // The first return ends the rewrite phase; later ones never run, as in nginx.
  if (loc.ret) {
    st.snap->notices.push_back(
        {st.here(s.line), fmt::format("\"return\" never runs: the \"return\" at line {} comes "
                                      "first",
                                      loc.ret->where.line)});
    return;
  }
  loc.ret = std::move(r);
}

void h_rewrite(S& st, const T& s) {
  location& loc = *st.top().loc;
  rewrite_setting r;
  r.where = st.here(s.line);
  r.regex = arg(s, 1);
  auto c = regex::compile(r.regex, false);
  if (!c.re) st.fail(s.line, c.error, "check the regular expression's brackets and escapes");
  r.compiled = c.re;
  r.replacement = st.tmpl(arg(s, 2), s.line);
  if (nargs(s) == 3) {
    const std::string& f = arg(s, 3);
    if (f == "last")
      r.flag = rewrite_flag::last;
    else if (f == "break")
      r.flag = rewrite_flag::break_;
    else if (f == "redirect")
      r.flag = rewrite_flag::redirect;
    else if (f == "permanent")
      r.flag = rewrite_flag::permanent;
    else
      st.fail(s.line, fmt::format("invalid parameter \"{}\"", f),
              "the flag is one of last, break, redirect, permanent");
  }
  // nginx runs rewrite and return in file order and stops at a return, so a rewrite written
  // after the level's return is dead; dropping it keeps "rewrites, then return" exact.
  if (loc.ret) {
    st.snap->notices.push_back(
        {st.here(s.line),
         fmt::format("\"rewrite\" never runs: the \"return\" at line {} comes first",
                     loc.ret->where.line)});
    return;
  }
  loc.rewrites.push_back(std::move(r));
}

// ---- lists -----------------------------------------------------------------------------------

void h_proxy_set_header(S& st, const T& s) {
  auto& ls = settings(st);
  if (!ls.proxy_set_header) {
    ls.proxy_set_header.emplace();
    ls.proxy_set_header_where = st.here(s.line);
  }
  ls.proxy_set_header->push_back({arg(s, 1), st.tmpl(arg(s, 2), s.line), st.here(s.line)});
}

void h_add_header(S& st, const T& s) {
  auto& ls = settings(st);
  add_header_setting h{arg(s, 1), st.tmpl(arg(s, 2), s.line), false, st.here(s.line)};
  if (nargs(s) == 3) {
    if (arg(s, 3) != "always")
      st.fail(s.line, fmt::format("invalid parameter \"{}\"", arg(s, 3)),
              "the only parameter after the value is `always`");
    h.always = true;
  }
  if (!ls.add_header) ls.add_header.emplace();
  ls.add_header->push_back(std::move(h));
}

// ngx_http_access_rule: "all", "unix:", ADDRESS or ADDRESS/BITS (IPv4 or IPv6).
void h_access(S& st, const T& s) {
  access_rule r;
  r.allow = dname(s) == "allow";
  r.where = st.here(s.line);
  const std::string& value = arg(s, 1);
  if (value == "all") {
    r.type = access_rule::kind::all;
  } else if (value == "unix:") {
    r.type = access_rule::kind::unix_socket;
  } else {
    const size_t slash = value.find('/');
    const std::string addr = value.substr(0, slash);
    const bool v6 = addr.find(':') != std::string::npos;
    r.type = v6 ? access_rule::kind::ipv6 : access_rule::kind::ipv4;
    const int max_bits = v6 ? 128 : 32;
    int bits = max_bits;
    bool ok = ::inet_pton(v6 ? AF_INET6 : AF_INET, addr.c_str(), r.addr) == 1;
    if (ok && slash != std::string::npos) {
      const auto n = parse_number(value.substr(slash + 1));
      ok = n && *n >= 0 && *n <= max_bits && slash + 1 < value.size();
      if (ok) bits = static_cast<int>(*n);
    }
    if (!ok)
      st.fail(s.line, fmt::format("invalid parameter \"{}\"", value),
              fmt::format("write `{} ADDRESS;`, `{} ADDRESS/BITS;`, `{} unix:;` or `{} all;`",
                          dname(s), dname(s), dname(s), dname(s)));
    bool low_bits = false;
    for (int i = 0; i < max_bits / 8; ++i) {
      const int take = std::clamp(bits - i * 8, 0, 8);
      r.mask[i] = static_cast<unsigned char>(take == 0 ? 0 : (0xff << (8 - take)) & 0xff);
      if (r.addr[i] & ~r.mask[i]) low_bits = true;
      r.addr[i] &= r.mask[i];
    }
    if (low_bits)
      st.snap->notices.push_back(
          {r.where, fmt::format("low address bits of {} are meaningless", value)});
  }
  auto& rules = settings(st).access;
  if (!rules) rules.emplace();
  rules->push_back(r);
}

void h_error_page(S& st, const T& s) {
  error_page_setting e;
  e.where = st.here(s.line);
  size_t last_code = nargs(s) - 1;  // the last argument is the URI
  const std::string& before_uri = arg(s, nargs(s) - 1);
  if (before_uri.starts_with("=")) {
    --last_code;
    if (before_uri.size() == 1) {
      e.response_code = 0;
    } else {
      auto n = parse_number(std::string_view(before_uri).substr(1));
      if (!n)
        st.fail(s.line, fmt::format("invalid value \"{}\"", before_uri),
                "write `=CODE` (e.g. =200) or a bare `=` before the URI");
      e.response_code = static_cast<int>(*n);
    }
  }
  if (last_code < 1)
    st.fail(s.line, "invalid number of arguments in \"error_page\" directive",
            "write `error_page CODE... [=[RESPONSE]] URI;`");
  for (size_t i = 1; i <= last_code; ++i) {
    auto n = parse_number(arg(s, i));
    if (!n)
      st.fail(s.line, fmt::format("invalid value \"{}\"", arg(s, i)),
              "write `error_page CODE... [=[RESPONSE]] URI;`");
    if (*n < 300 || *n > 599)
      st.fail(s.line, fmt::format("value \"{}\" must be between 300 and 599", arg(s, i)),
              "error_page applies to error and redirect codes only");
    e.codes.push_back(static_cast<int>(*n));
  }
  e.uri = st.tmpl(arg(s, nargs(s)), s.line);
  auto& ls = settings(st);
  if (!ls.error_page) ls.error_page.emplace();
  ls.error_page->push_back(std::move(e));
}

void h_access_log(S& st, const T& s) {
  auto& ls = settings(st);
  log_setting l;
  l.where = st.here(s.line);
  if (arg(s, 1) == "off") {
    l.off = true;
  } else {
    l.path = full_name(st.snap->prefix, arg(s, 1));
    l.format = nargs(s) >= 2 ? arg(s, 2) : "combined";
    const auto& formats = st.snap->http->log_formats;
    bool known = std::any_of(formats.begin(), formats.end(),
                             [&](const log_format& f) { return f.name == l.format; });
    if (!known)
      st.fail(s.line, fmt::format("unknown log format \"{}\"", l.format),
              fmt::format("define `log_format {} ...;` in http {{ }} before this access_log",
                          l.format));
    for (size_t i = 3; i <= nargs(s); ++i) {
      const std::string& p = arg(s, i);
      if (!(p.starts_with("buffer=") || p.starts_with("flush=") || p.starts_with("gzip") ||
            p.starts_with("if=")))
        st.fail(s.line, fmt::format("invalid parameter \"{}\"", p));
    }
  }
  if (!ls.access_log) ls.access_log.emplace();
  ls.access_log->push_back(std::move(l));
}

void h_log_format(S& st, const T& s) {
  auto& http = *st.snap->http;
  log_format f;
  f.name = arg(s, 1);
  for (const auto& other : http.log_formats)
    if (other.name == f.name)
      st.fail(s.line, fmt::format("duplicate \"log_format\" name \"{}\"", f.name),
              "give this format another name");
  size_t i = 2;
  if (arg(s, 2).starts_with("escape=")) {
    f.escape = arg(s, 2).substr(7);
    if (f.escape != "default" && f.escape != "json" && f.escape != "none")
      st.fail(s.line, fmt::format("unknown log format escaping \"{}\"", f.escape),
              "escape= takes default, json or none");
    ++i;
  }
  std::string text;
  for (; i <= nargs(s); ++i) text += arg(s, i);
  f.format = st.tmpl(text, s.line);
  http.log_formats.push_back(std::move(f));
}

void h_proxy_http_version(S& st, const T& s) {
  auto& slot = settings(st).proxy_http_version;
  if (slot) duplicate(st, s);
  if (arg(s, 1) != "1.0" && arg(s, 1) != "1.1")
    st.fail(s.line, fmt::format("invalid value \"{}\"", arg(s, 1)),
            "proxy_http_version is 1.0 or 1.1 (WebSockets need 1.1)");
  slot = arg(s, 1);
}

void h_proxy_redirect(S& st, const T& s) {
  auto& ls = settings(st);
  proxy_redirect_setting r;
  r.where = st.here(s.line);
  // As nginx: nothing may follow "off" at a level, and "off" may not follow anything.
  using rk = proxy_redirect_setting::kind;
  bool has_off = ls.proxy_redirect && !ls.proxy_redirect->empty() &&
                 ls.proxy_redirect->front().type == rk::off;
  if (has_off || (nargs(s) == 1 && arg(s, 1) == "off" && ls.proxy_redirect))
    fail_directive(st, s, "is duplicate",
                   "`proxy_redirect off;` stands alone: remove it or the other proxy_redirect");
  if (nargs(s) == 1) {
    if (arg(s, 1) == "default") {
      // "default" derives from this location's proxy_pass, so nginx wants that first.
      const location* loc = st.top().ctx == ctx_location ? st.top().loc : nullptr;
      if (!loc || !loc->proxy_pass)
        st.fail(s.line,
                "\"proxy_redirect default\" should be placed after the \"proxy_pass\" directive",
                "write it after proxy_pass in the same location, or drop it: it is the default");
      if (loc->proxy_pass->url.has_variables())
        st.fail(s.line,
                "\"proxy_redirect default\" cannot be used with \"proxy_pass\" directive with "
                "variables",
                "write `proxy_redirect REDIRECT REPLACEMENT;` for the URLs the backend sends");
      r.type = rk::default_;
    } else if (arg(s, 1) == "off")
      r.type = rk::off;
    else
      st.fail(s.line, fmt::format("invalid parameter \"{}\"", arg(s, 1)),
              "write `proxy_redirect default;`, `proxy_redirect off;` or "
              "`proxy_redirect REDIRECT REPLACEMENT;`");
  } else {
    r.type = rk::replace;
    r.from = st.tmpl(arg(s, 1), s.line);
    r.to = st.tmpl(arg(s, 2), s.line);
  }
  if (!ls.proxy_redirect) ls.proxy_redirect.emplace();
  ls.proxy_redirect->push_back(std::move(r));
}

void h_proxy_next_upstream(S& st, const T& s) {
  auto& ls = settings(st);  // repeated lines add up, as nginx's bitmask
  static const char* allowed[] = {"error",    "timeout",  "invalid_header", "http_500",
                                  "http_502", "http_503", "http_504",       "http_403",
                                  "http_404", "http_429", "non_idempotent", "off"};
  if (!ls.proxy_next_upstream) ls.proxy_next_upstream.emplace();
  std::vector<std::string>& v = *ls.proxy_next_upstream;
  for (size_t i = 1; i <= nargs(s); ++i) {
    if (std::find(std::begin(allowed), std::end(allowed), arg(s, i)) == std::end(allowed))
      st.fail(s.line, fmt::format("invalid value \"{}\"", arg(s, i)),
              "use error, timeout, invalid_header, http_500, http_502, http_503, http_504, "
              "http_403, http_404, http_429, non_idempotent or off");
    if (std::find(v.begin(), v.end(), arg(s, i)) == v.end()) v.push_back(arg(s, i));
  }
}

void h_proxy_buffers(S& st, const T& s) {
  auto& ls = settings(st);
  if (ls.proxy_buffers_size) duplicate(st, s);
  auto n = parse_number(arg(s, 1));
  if (!n || *n == 0) st.fail(s.line, fmt::format("invalid value \"{}\"", arg(s, 1)));
  ls.proxy_buffers_size = static_cast<size_t>(*n) * size_arg(st, s, 2);
}

void h_keepalive_timeout(S& st, const T& s) {
  auto& ls = settings(st);
  if (ls.keepalive_timeout) duplicate(st, s);
  ls.keepalive_timeout = time_arg(st, s, 1);
  if (nargs(s) == 2) time_arg(st, s, 2);  // the "Keep-Alive: timeout=" header value: checked only
}

void h_keepalive_requests(S& st, const T& s) {
  auto& ls = settings(st);
  if (ls.keepalive_requests) duplicate(st, s);
  ls.keepalive_requests = number_arg(st, s, 1);
}

void h_large_client_header_buffers(S& st, const T& s) {
  auto& slot = st.top().srv->large_client_header_buffers;
  if (slot) duplicate(st, s);
  auto n = parse_number(arg(s, 1));
  if (!n || *n == 0) invalid_value(st, s, "write `large_client_header_buffers 4 8k;`");
  slot = std::make_pair(static_cast<int>(*n), size_arg(st, s, 2));
}

// ---- ssl -------------------------------------------------------------------------------------

void h_ssl_certificate(S& st, const T& s) {
  st.top().srv->ssl.certificate = full_name(st.conf_prefix, arg(s, 1));
  st.top().srv->ssl.where = st.here(s.line);
}
void h_ssl_certificate_key(S& st, const T& s) {
  st.top().srv->ssl.certificate_key = full_name(st.conf_prefix, arg(s, 1));
}
void h_ssl_ciphers(S& st, const T& s) {
  if (!st.top().srv->ssl.ciphers.empty()) duplicate(st, s);
  st.top().srv->ssl.ciphers = arg(s, 1);
}
void h_ssl_prefer_server_ciphers(S& st, const T& s) {
  st.top().srv->ssl.prefer_server_ciphers = flag_arg(st, s);
}
// ssl_protocols and proxy_ssl_protocols: the names nginx knows, each once.
void add_protocols(S& st, const T& s, std::vector<std::string>& v) {
  static const char* known[] = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};
  for (size_t i = 1; i <= nargs(s); ++i) {
    if (std::find(std::begin(known), std::end(known), arg(s, i)) == std::end(known))
      st.fail(s.line, fmt::format("invalid value \"{}\"", arg(s, i)), "use TLSv1.2 and/or TLSv1.3");
    if (std::find(v.begin(), v.end(), arg(s, i)) == v.end()) v.push_back(arg(s, i));
  }
}
void h_ssl_protocols(S& st, const T& s) {
  add_protocols(st, s, st.top().srv->ssl.protocols);  // repeated lines add up (nginx's bitmask)
}

void h_proxy_ssl_name(S& st, const T& s) {
  auto& slot = settings(st).proxy_ssl_name;
  if (slot) duplicate(st, s);
  slot = st.tmpl(arg(s, 1), s.line);
}
void h_proxy_ssl_verify_depth(S& st, const T& s) {
  auto& slot = settings(st).proxy_ssl_verify_depth;
  if (slot) duplicate(st, s);
  auto n = parse_number(arg(s, 1));
  if (!n || *n > 100)
    invalid_value(st, s, "write a small number, e.g. `proxy_ssl_verify_depth 2;`");
  slot = static_cast<int>(*n);
}
void h_proxy_ssl_trusted_certificate(S& st, const T& s) {
  auto& ls = settings(st);
  if (ls.proxy_ssl_trusted_certificate) duplicate(st, s);
  ls.proxy_ssl_trusted_certificate = full_name(st.conf_prefix, arg(s, 1));
  ls.proxy_ssl_trusted_certificate_where = st.here(s.line);
}
void h_proxy_ssl_certificate(S& st, const T& s) {
  auto& ls = settings(st);
  if (ls.proxy_ssl_certificate) duplicate(st, s);
  ls.proxy_ssl_certificate = full_name(st.conf_prefix, arg(s, 1));
  ls.proxy_ssl_certificate_where = st.here(s.line);
}
void h_proxy_ssl_certificate_key(S& st, const T& s) {
  auto& ls = settings(st);
  if (ls.proxy_ssl_certificate_key) duplicate(st, s);
  ls.proxy_ssl_certificate_key = full_name(st.conf_prefix, arg(s, 1));
}
void h_proxy_ssl_protocols(S& st, const T& s) {
  auto& slot = settings(st).proxy_ssl_protocols;
  if (slot) duplicate(st, s);
  add_protocols(st, s, slot.emplace());
}
void h_proxy_ssl_ciphers(S& st, const T& s) {
  auto& slot = settings(st).proxy_ssl_ciphers;
  if (slot) duplicate(st, s);
  slot = arg(s, 1);
}

// ---- upstream --------------------------------------------------------------------------------

void h_upstream(S& st, const T& s) {
  auto& http = *st.snap->http;
  const std::string& name = arg(s, 1);
  if (http.upstreams.count(name))
    st.fail(s.line, fmt::format("duplicate upstream \"{}\"", name),
            "give each upstream block its own name");
  upstream& up = http.upstreams[name];
  up.name = name;
  up.where = st.here(s.line);
  frame f{ctx_upstream};
  f.ups = &up;
  st.frames.push_back(f);
  st.parse(ctx_upstream, true);
  st.frames.pop_back();
  if (up.servers.empty())  // nginx reports it at the closing brace
    st.fail(st.lex->line(), "no servers are inside upstream",
            fmt::format("add `server HOST:PORT;` inside `upstream {} {{ }}`", name));
}

void h_upstream_server(S& st, const T& s) {
  upstream& up = *st.top().ups;
  upstream_server u;
  u.where = st.here(s.line);
  const std::string& a = arg(s, 1);
  if (a.starts_with("unix:")) {
    u.host = a;
    u.port = 0;
  } else {
    size_t colon = a.rfind(':');
    bool bracketed = a.starts_with("[");
    if (colon != std::string::npos && (!bracketed || a.find(']') < colon)) {
      u.host = a.substr(0, colon);
      auto n = parse_number(std::string_view(a).substr(colon + 1));
      if (!n || *n < 1 || *n > 65535)
        st.fail(s.line, fmt::format("invalid port in upstream \"{}\"", a),
                "a port is a number from 1 to 65535");
      u.port = static_cast<uint16_t>(*n);
    } else {
      u.host = a;
    }
    if (u.host.empty()) st.fail(s.line, fmt::format("no host in upstream \"{}\"", a));
  }
  for (size_t i = 2; i <= nargs(s); ++i) {
    const std::string& p = arg(s, i);
    auto num = [&](size_t skip) {
      auto n = parse_number(std::string_view(p).substr(skip));
      if (!n)
        st.fail(s.line, fmt::format("invalid parameter \"{}\"", p),
                "the value after = is a whole number, e.g. weight=2");
      return static_cast<int>(*n);
    };
    if (p.starts_with("weight=")) {
      u.weight = num(7);
      if (u.weight == 0)
        st.fail(s.line, fmt::format("invalid parameter \"{}\"", p), "weight is at least 1");
    } else if (p.starts_with("max_fails=")) {
      u.max_fails = num(10);
    } else if (p.starts_with("max_conns=")) {
      num(10);
      st.snap->notices.push_back(
          {st.here(s.line), "wsgate ignores max_conns: connections per server are not limited"});
    } else if (p.starts_with("fail_timeout=")) {
      auto d = parse_duration(std::string_view(p).substr(13));
      if (!d) st.fail(s.line, fmt::format("invalid parameter \"{}\"", p));
      u.fail_timeout = *d;
    } else if (p == "backup") {
      u.backup = true;
    } else if (p == "down") {
      u.down = true;
    } else {
      st.fail(s.line, fmt::format("invalid parameter \"{}\"", p),
              "an upstream server takes weight=, max_fails=, fail_timeout=, max_conns=, backup, "
              "down");
    }
  }
  up.servers.push_back(std::move(u));
}

// keepalive, keepalive_requests, keepalive_timeout: once per upstream block, as nginx.
void once_in_upstream(S& st, const T& s) {
  if (!st.main_set.insert(st.top().ups->name + "\n" + dname(s)).second) duplicate(st, s);
}

void h_upstream_keepalive(S& st, const T& s) {
  once_in_upstream(st, s);
  auto n = parse_number(arg(s, 1));
  if (!n || *n == 0)
    st.fail(s.line, fmt::format("invalid value \"{}\" in \"keepalive\" directive", arg(s, 1)));
  st.top().ups->keepalive = static_cast<int>(*n);
}
void h_upstream_keepalive_requests(S& st, const T& s) {
  once_in_upstream(st, s);
  st.top().ups->keepalive_requests = number_arg(st, s, 1);
}
void h_upstream_keepalive_timeout(S& st, const T& s) {
  once_in_upstream(st, s);
  st.top().ups->keepalive_timeout = time_arg(st, s, 1);
}
void h_balancer(S& st, const T& s) {
  upstream& up = *st.top().ups;
  if (up.balancer != "round_robin")
    st.snap->notices.push_back({st.here(s.line), "load balancing method redefined"});
  up.balancer = dname(s);
  if (dname(s) == "least_conn")
    st.snap->notices.push_back(
        {st.here(s.line),
         "wsgate balances this upstream round robin: least_conn is not implemented yet"});
  if (dname(s) == "hash") {
    up.hash_key = st.tmpl(arg(s, 1), s.line);
    if (nargs(s) == 2) {
      if (arg(s, 2) != "consistent")
        st.fail(s.line, fmt::format("invalid parameter \"{}\"", arg(s, 2)),
                "write `hash KEY;` or `hash KEY consistent;`");
      up.hash_consistent = true;
      st.snap->notices.push_back(
          {st.here(s.line),
           "wsgate maps keys to servers with plain `hash KEY` (as nginx without consistent): "
           "more keys move to other servers when one is added or removed"});
    }
  }
}

// ---- map -------------------------------------------------------------------------------------

void h_map(S& st, const T& s) {
  auto& http = *st.snap->http;
  map_block& m = http.maps.emplace_back();
  m.where = st.here(s.line);
  m.source = st.tmpl(arg(s, 1), s.line);
  const std::string& result = arg(s, 2);
  if (!result.starts_with("$") || result.size() < 2)
    st.fail(s.line, fmt::format("invalid variable name \"{}\"", result),
            "the second argument names the variable to set, e.g. `$connection_upgrade`");
  m.result = result.substr(1);
  frame f{ctx_map};
  f.map = &m;
  st.frames.push_back(f);
  st.parse(ctx_map, true);
  st.frames.pop_back();
}

// ---- wsgate's own ----------------------------------------------------------------------------

void h_proxy_upgrade_allow(S& st, const T& s) {
  auto& slot = settings(st).upgrade_allow;
  if (slot) duplicate(st, s);
  slot.emplace();
  for (size_t i = 1; i <= nargs(s); ++i) slot->push_back(lower(arg(s, i)));
}

constexpr unsigned ctx_hs = ctx_http | ctx_server;
constexpr unsigned ctx_sl = ctx_server | ctx_location;
constexpr unsigned ctx_any_level = ctx_main | ctx_events | ctx_hsl | ctx_upstream;

std::vector<directive_spec> make_table() {
  using L = location_settings;
  using V = server;
  std::vector<directive_spec> t = {
      // main and events
      {"daemon", "daemon on|off", ctx_main, take1, h_daemon, "run in the background (on)"},
      {"worker_processes", "worker_processes N|auto", ctx_main, take1, h_worker_processes,
       "event-loop threads; auto = one per CPU"},
      {"pid", "pid FILE", ctx_main, take1, h_pid, "where the master's process id is written"},
      {"user", "user USER [GROUP]", ctx_main, take12, h_user, "the user workers run as"},
      {"worker_shutdown_timeout", "worker_shutdown_timeout TIME", ctx_main, take1,
       h_worker_shutdown_timeout, "how long a graceful stop waits for open connections"},
      {"error_log", "error_log FILE [LEVEL]", ctx_main | ctx_hsl, take12, h_error_log,
       "where errors are logged, and from which level"},
      {"include", "include FILE|GLOB", ctx_any_level, take1, h_include,
       "read more configuration here; relative paths from the main file's directory"},
      {"events", "events { ... }", ctx_main, take0 | is_block, h_events,
       "connection processing settings"},
      {"worker_connections", "worker_connections N", ctx_events, take1, h_worker_connections,
       "open connections per worker, both sides counted"},
      {"http", "http { ... }", ctx_main, take0 | is_block, h_http, "the HTTP proxy"},
      // http, server, location
      {"server", "server { ... }", ctx_http, take0 | is_block, h_server, "a virtual server"},
      {"listen", "listen ADDRESS[:PORT] [default_server] [ssl] [reuseport] [backlog=N]", ctx_server,
       take_1more, h_listen, "the address and port a server accepts on"},
      {"server_name", "server_name NAME...", ctx_server, take_1more, h_server_name,
       "host names of a server: exact, *.example.com, www.example.*, ~regex"},
      {"location", "location [=|^~|~|~*] URI { ... } | location @NAME { ... }", ctx_sl,
       take12 | is_block, h_location, "settings for request URIs that match"},
      {"upstream", "upstream NAME { ... }", ctx_http, take1 | is_block, h_upstream,
       "a group of backend servers"},
      {"map", "map SOURCE $VARIABLE { ... }", ctx_http, take2 | is_block, h_map,
       "a variable whose value depends on another"},
      {"return", "return CODE [TEXT|URL] | return URL", ctx_sl, take12, h_return,
       "answer directly, or redirect"},
      {"rewrite", "rewrite REGEX REPLACEMENT [last|break|redirect|permanent]", ctx_sl, take23,
       h_rewrite, "change the request URI"},
      {"add_header", "add_header NAME VALUE [always]", ctx_hsl, take23, h_add_header,
       "add a response header (on 2xx/3xx unless always)"},
      {"allow", "allow ADDRESS[/BITS] | unix: | all", ctx_hsl, take1, h_access,
       "let these clients in (the first allow or deny that matches decides)"},
      {"deny", "deny ADDRESS[/BITS] | unix: | all", ctx_hsl, take1, h_access,
       "answer these clients 403 (the first allow or deny that matches decides)"},
      {"error_page", "error_page CODE... [=[RESPONSE]] URI", ctx_hsl, take_2more, h_error_page,
       "the URI shown for error codes"},
      {"access_log", "access_log PATH [FORMAT [buffer=SIZE] [flush=TIME] [if=COND]] | off", ctx_hsl,
       take_1more, h_access_log, "where requests are logged"},
      {"log_format", "log_format NAME [escape=default|json|none] STRING...", ctx_http, take_2more,
       h_log_format, "a named access log line format"},
      {"keepalive_timeout", "keepalive_timeout TIME [HEADER_TIME]", ctx_hsl, take12,
       h_keepalive_timeout, "how long an idle client connection stays open (75s)"},
      {"client_max_body_size", "client_max_body_size SIZE", ctx_hsl, take1,
       set_size<&L::client_max_body_size>, "largest request body; 0 = no limit (1m)"},
      {"client_body_buffer_size", "client_body_buffer_size SIZE", ctx_hsl, take1,
       set_size<&L::client_body_buffer_size>,
       "memory for a buffered request body; beyond it, an unlinked temp file (16k)"},
      {"keepalive_requests", "keepalive_requests N", ctx_hsl, take1, h_keepalive_requests,
       "requests on one client connection before it closes (1000)"},
      {"keepalive_time", "keepalive_time TIME", ctx_hsl, take1, set_time<&L::keepalive_time>,
       "no new request on a client connection open longer than this (1h)"},
      {"client_header_timeout", "client_header_timeout TIME", ctx_hs, take1,
       set_srv_time<&V::client_header_timeout>, "time to receive the request header (60s)"},
      {"client_body_timeout", "client_body_timeout TIME", ctx_hsl, take1,
       set_time<&L::client_body_timeout>, "time between two reads of the request body (60s)"},
      {"send_timeout", "send_timeout TIME", ctx_hsl, take1, set_time<&L::send_timeout>,
       "time between two writes to the client (60s)"},
      {"client_header_buffer_size", "client_header_buffer_size SIZE", ctx_hs, take1,
       set_srv_size<&V::client_header_buffer_size>, "buffer for a request header (1k)"},
      {"large_client_header_buffers", "large_client_header_buffers NUMBER SIZE", ctx_hs, take2,
       h_large_client_header_buffers, "buffers for long request headers (4 8k)"},
      {"merge_slashes", "merge_slashes on|off", ctx_hs, take1, set_srv_flag<&V::merge_slashes>,
       "collapse // in URIs before matching (on)"},
      {"underscores_in_headers", "underscores_in_headers on|off", ctx_hs, take1,
       set_srv_flag<&V::underscores_in_headers>, "accept _ in request header names (off)"},
      {"server_tokens", "server_tokens on|off", ctx_hsl, take1, set_flag<&L::server_tokens>,
       "show the version in Server: and error pages (on)"},
      {"ssl_certificate", "ssl_certificate FILE", ctx_hs, take1, h_ssl_certificate,
       "PEM certificate chain for ssl listens"},
      {"ssl_certificate_key", "ssl_certificate_key FILE", ctx_hs, take1, h_ssl_certificate_key,
       "PEM private key for ssl listens"},
      {"ssl_protocols", "ssl_protocols PROTOCOL...", ctx_hs, take_1more, h_ssl_protocols,
       "TLS versions offered (TLSv1.2 TLSv1.3)"},
      {"ssl_prefer_server_ciphers", "ssl_prefer_server_ciphers on|off", ctx_hs, take1,
       h_ssl_prefer_server_ciphers,
       "the server's ssl_ciphers order wins over the client's (TLSv1.2; default off)"},
      {"ssl_ciphers", "ssl_ciphers CIPHERS", ctx_hs, take1, h_ssl_ciphers,
       "OpenSSL cipher list (HIGH:!aNULL:!MD5)"},
      // proxy_*
      {"proxy_ssl_server_name", "proxy_ssl_server_name on|off", ctx_hsl, take1,
       set_flag<&L::proxy_ssl_server_name>, "send SNI to an https upstream (off)"},
      {"proxy_ssl_name", "proxy_ssl_name NAME", ctx_hsl, take1, h_proxy_ssl_name,
       "the name sent as SNI and verified ($proxy_host)"},
      {"proxy_ssl_verify", "proxy_ssl_verify on|off", ctx_hsl, take1,
       set_flag<&L::proxy_ssl_verify>, "verify the https upstream's certificate (off)"},
      {"proxy_ssl_verify_depth", "proxy_ssl_verify_depth N", ctx_hsl, take1,
       h_proxy_ssl_verify_depth, "longest certificate chain accepted (1)"},
      {"proxy_ssl_trusted_certificate", "proxy_ssl_trusted_certificate FILE", ctx_hsl, take1,
       h_proxy_ssl_trusted_certificate, "PEM CA certificates for proxy_ssl_verify"},
      {"proxy_ssl_certificate", "proxy_ssl_certificate FILE", ctx_hsl, take1,
       h_proxy_ssl_certificate, "PEM client certificate for https upstreams that ask for one"},
      {"proxy_ssl_certificate_key", "proxy_ssl_certificate_key FILE", ctx_hsl, take1,
       h_proxy_ssl_certificate_key, "the private key of proxy_ssl_certificate (PEM)"},
      {"proxy_ssl_protocols", "proxy_ssl_protocols PROTOCOL...", ctx_hsl, take_1more,
       h_proxy_ssl_protocols, "TLS versions offered to an https upstream (TLSv1.2 TLSv1.3)"},
      {"proxy_ssl_ciphers", "proxy_ssl_ciphers CIPHERS", ctx_hsl, take1, h_proxy_ssl_ciphers,
       "OpenSSL cipher list for https upstreams (DEFAULT)"},
      {"proxy_ssl_session_reuse", "proxy_ssl_session_reuse on|off", ctx_hsl, take1,
       set_flag<&L::proxy_ssl_session_reuse>, "resume TLS sessions with an upstream (on)"},
      {"stub_status", "stub_status", ctx_sl, take0 | take1, h_stub_status,
       "answer with nginx's connection and request counters, in nginx's format"},
      {"proxy_pass", "proxy_pass URL", ctx_location, take1, h_proxy_pass,
       "send requests to this backend; a URI part replaces the matched prefix"},
      {"proxy_set_header", "proxy_set_header FIELD VALUE", ctx_hsl, take2, h_proxy_set_header,
       "set a header sent upstream; a level with any replaces the outer list"},
      {"proxy_http_version", "proxy_http_version 1.0|1.1", ctx_hsl, take1, h_proxy_http_version,
       "HTTP version to the backend (1.0; WebSockets need 1.1)"},
      {"proxy_connect_timeout", "proxy_connect_timeout TIME", ctx_hsl, take1,
       set_time<&L::proxy_connect_timeout>, "time to connect to the backend (60s)"},
      {"proxy_read_timeout", "proxy_read_timeout TIME", ctx_hsl, take1,
       set_time<&L::proxy_read_timeout>,
       "time between two reads from the backend; idle WebSockets close after it (60s)"},
      {"proxy_send_timeout", "proxy_send_timeout TIME", ctx_hsl, take1,
       set_time<&L::proxy_send_timeout>, "time between two writes to the backend (60s)"},
      {"proxy_buffering", "proxy_buffering on|off", ctx_hsl, take1, set_flag<&L::proxy_buffering>,
       "read the response ahead of a slow client and free the backend early (on)"},
      {"proxy_request_buffering", "proxy_request_buffering on|off", ctx_hsl, take1,
       set_flag<&L::proxy_request_buffering>, "read the whole request body first (on)"},
      {"proxy_redirect", "proxy_redirect default|off|REDIRECT REPLACEMENT", ctx_hsl, take12,
       h_proxy_redirect, "rewrite Location/Refresh from the backend (default)"},
      {"proxy_pass_request_headers", "proxy_pass_request_headers on|off", ctx_hsl, take1,
       set_flag<&L::proxy_pass_request_headers>, "forward the client's headers (on)"},
      {"proxy_pass_request_body", "proxy_pass_request_body on|off", ctx_hsl, take1,
       set_flag<&L::proxy_pass_request_body>, "forward the client's body (on)"},
      {"proxy_next_upstream", "proxy_next_upstream error|timeout|http_502|...|off", ctx_hsl,
       take_1more, h_proxy_next_upstream, "when to try the next server (error timeout)"},
      {"proxy_buffer_size", "proxy_buffer_size SIZE", ctx_hsl, take1,
       set_size<&L::proxy_buffer_size>, "buffer for the response header (4k)"},
      {"proxy_buffers", "proxy_buffers NUMBER SIZE", ctx_hsl, take2, h_proxy_buffers,
       "memory that reads a response ahead of a slow client (8 4k)"},
      {"proxy_max_temp_file_size", "proxy_max_temp_file_size SIZE", ctx_hsl, take1,
       set_size<&L::proxy_max_temp_file_size>,
       "response read ahead into an unlinked temp file beyond proxy_buffers; 0 = none (1024m)"},
      {"proxy_hide_header", "proxy_hide_header FIELD", ctx_hsl, take1,
       add_lower_name<&L::proxy_hide_header>, "do not pass this backend header to the client"},
      {"proxy_pass_header", "proxy_pass_header FIELD", ctx_hsl, take1,
       add_lower_name<&L::proxy_pass_header>, "pass a header nginx hides by default"},
      // upstream { }
      {"server",
       "server ADDRESS[:PORT] [weight=N] [max_fails=N] [fail_timeout=TIME] [backup] "
       "[down]",
       ctx_upstream, take_1more, h_upstream_server, "a backend server of the group"},
      {"keepalive", "keepalive N", ctx_upstream, take1, h_upstream_keepalive,
       "idle backend connections kept per worker"},
      {"keepalive_requests", "keepalive_requests N", ctx_upstream, take1,
       h_upstream_keepalive_requests, "requests per kept backend connection (1000)"},
      {"keepalive_timeout", "keepalive_timeout TIME", ctx_upstream, take1,
       h_upstream_keepalive_timeout, "idle time of a kept backend connection (60s)"},
      {"least_conn", "least_conn", ctx_upstream, take0, h_balancer,
       "accepted, balanced round robin for now (wsgate -t says so)"},
      {"ip_hash", "ip_hash", ctx_upstream, take0, h_balancer,
       "pick the server by the client's address (its first three bytes for IPv4), as nginx"},
      {"hash", "hash KEY [consistent]", ctx_upstream, take12, h_balancer,
       "pick the server by a key, as nginx (consistent: plain hashing, wsgate -t says so)"},
      // wsgate's own
      {"busy_polling", "busy_polling on|off", ctx_main, take1, h_busy_polling,
       "an idle worker polls 1ms for the next event before it sleeps: lower latency, more "
       "CPU; read at start (off)",
       support::wsgate_only},
      {"websocket_keepalive", "websocket_keepalive TIME", ctx_hsl, take1,
       set_time<&L::websocket_keepalive>,
       "send a WebSocket ping on a tunnel idle this long; 0 = off (0)", support::wsgate_only},
      {"proxy_upgrade_allow", "proxy_upgrade_allow PROTOCOL...", ctx_hsl, take_1more,
       h_proxy_upgrade_allow, "Upgrade protocols passed to the backend (websocket)",
       support::wsgate_only},
      {"wsgate_status", "wsgate_status", ctx_sl, take0, h_wsgate_status,
       "answer with every open tunnel of every worker and the counters: JSON, ?format=prometheus "
       "or ?format=html (also chosen by Accept)",
       support::wsgate_only},
  };
  // nginx-internal tuning: accepted and ignored, with a notice.
  struct ign {
    std::string_view name;
    unsigned ctx;
    bool block;
  };
  static const ign ignored_list[] = {
      {"worker_rlimit_nofile", ctx_main, false},
      {"worker_cpu_affinity", ctx_main, false},
      {"worker_priority", ctx_main, false},
      {"pcre_jit", ctx_main, false},
      {"timer_resolution", ctx_main, false},
      {"load_module", ctx_main, false},
      {"env", ctx_main, false},
      {"lock_file", ctx_main, false},
      {"thread_pool", ctx_main, false},
      {"multi_accept", ctx_events, false},
      {"use", ctx_events, false},
      {"accept_mutex", ctx_events, false},
      {"accept_mutex_delay", ctx_events, false},
      {"worker_aio_requests", ctx_events, false},
      {"sendfile", ctx_hsl, false},
      {"tcp_nopush", ctx_hsl, false},
      {"tcp_nodelay", ctx_hsl, false},
      {"types", ctx_hsl, true},
      {"default_type", ctx_hsl, false},
      {"types_hash_max_size", ctx_hsl, false},
      {"types_hash_bucket_size", ctx_hsl, false},
      {"server_names_hash_bucket_size", ctx_http, false},
      {"server_names_hash_max_size", ctx_http, false},
      {"variables_hash_bucket_size", ctx_http, false},
      {"variables_hash_max_size", ctx_http, false},
      {"map_hash_bucket_size", ctx_http, false},
      {"map_hash_max_size", ctx_http, false},
      {"proxy_headers_hash_max_size", ctx_hsl, false},
      {"proxy_headers_hash_bucket_size", ctx_hsl, false},
      {"gzip", ctx_hsl, false},
      {"gzip_types", ctx_hsl, false},
      {"gzip_vary", ctx_hsl, false},
      {"gzip_proxied", ctx_hsl, false},
      {"gzip_comp_level", ctx_hsl, false},
      {"gzip_min_length", ctx_hsl, false},
      {"gzip_http_version", ctx_hsl, false},
      {"gzip_disable", ctx_hsl, false},
      {"gzip_buffers", ctx_hsl, false},
      {"ssl_session_cache", ctx_hs, false},
      {"ssl_session_timeout", ctx_hs, false},
      {"ssl_session_tickets", ctx_hs, false},
      {"ssl_dhparam", ctx_hs, false},
      {"ssl_ecdh_curve", ctx_hs, false},
      {"ssl_stapling", ctx_hs, false},
      {"ssl_stapling_verify", ctx_hs, false},
      {"ssl_buffer_size", ctx_hs, false},
      {"ssl_trusted_certificate", ctx_hs, false},
      {"root", ctx_hsl, false},
      {"index", ctx_hsl, false},
      {"charset", ctx_hsl, false},
      {"autoindex", ctx_hsl, false},
      {"open_file_cache", ctx_hsl, false},
      {"open_file_cache_valid", ctx_hsl, false},
      {"open_file_cache_min_uses", ctx_hsl, false},
      {"open_file_cache_errors", ctx_hsl, false},
      {"reset_timedout_connection", ctx_hsl, false},
      {"lingering_close", ctx_hsl, false},
      {"lingering_time", ctx_hsl, false},
      {"lingering_timeout", ctx_hsl, false},
      {"client_body_temp_path", ctx_hsl, false},
      {"proxy_temp_path", ctx_hsl, false},
      {"proxy_busy_buffers_size", ctx_hsl, false},
      {"proxy_temp_file_write_size", ctx_hsl, false},
      {"output_buffers", ctx_hsl, false},
      {"postpone_output", ctx_hsl, false},
      {"aio", ctx_hsl, false},
      {"directio", ctx_hsl, false},
      {"server_name_in_redirect", ctx_hsl, false},
      {"port_in_redirect", ctx_hsl, false},
      {"absolute_redirect", ctx_hsl, false},
      {"log_not_found", ctx_hsl, false},
      {"send_lowat", ctx_hsl, false},
      {"resolver", ctx_hsl, false},
      {"resolver_timeout", ctx_hsl, false},
      {"http2_max_field_size", ctx_hs, false},
      {"http2_max_header_size", ctx_hs, false},
      {"http2_recv_buffer_size", ctx_http, false},
      {"proxy_ignore_client_abort", ctx_hsl, false},
      {"proxy_intercept_errors", ctx_hsl, false},
  };
  for (const auto& i : ignored_list)
    t.push_back({i.name, "", i.ctx, i.block ? take_any | is_block : take_any,
                 i.block ? ignored_block : ignored, "nginx tuning; accepted and ignored",
                 support::ignored});
  return t;
}

}  // namespace

const std::vector<directive_spec>& directive_table() {
  static const std::vector<directive_spec> table = make_table();
  return table;
}

namespace {
// A '|' ends a Markdown table cell, even inside a code span, unless escaped.
std::string table_cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}
}  // namespace

std::string directive_reference_markdown() {
  std::string out;
  auto table = [&](support kind) {
    out += "| Directive | Contexts | What it does |\n|---|---|---|\n";
    for (const auto& d : directive_table())
      if (d.kind == kind)
        out += fmt::format("| `{}` | {} | {} |\n", table_cell(d.syntax),
                           describe_contexts(d.contexts), table_cell(d.doc));
  };
  out += "### nginx directives wsgate applies\n\n";
  table(support::full);
  out += "\n### wsgate's own directives (nginx does not know them)\n\n";
  table(support::wsgate_only);
  out += "\n### nginx tuning directives accepted and ignored (`wsgate -t` prints a notice)\n\n";
  std::vector<std::string> names;
  for (const auto& d : directive_table())
    if (d.kind == support::ignored) names.push_back(fmt::format("`{}`", d.name));
  out += fmt::format("{}\n", fmt::join(names, ", "));
  return out;
}

std::string describe_contexts(unsigned c) {
  std::vector<std::string> names;
  if (c & ctx_main) names.push_back("main");
  if (c & ctx_events) names.push_back("events");
  if (c & ctx_http) names.push_back("http");
  if (c & ctx_server) names.push_back("server");
  if (c & ctx_location) names.push_back("location");
  if (c & ctx_upstream) names.push_back("upstream");
  return fmt::format("{}", fmt::join(names, ", "));
}

std::string describe_arity(unsigned a) {
  if (a & take_any) return "any number of arguments";
  if (a & take_1more) return "1 or more arguments";
  if (a & take_2more) return "2 or more arguments";
  std::vector<std::string> counts;
  for (unsigned n = 0; n <= 7; ++n)
    if (a & (1u << n)) counts.push_back(std::to_string(n));
  std::string out;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (i) out += i + 1 == counts.size() ? " or " : ", ";
    out += counts[i];
  }
  return out + (counts.size() == 1 && counts[0] == "1" ? " argument" : " arguments");
}

}  // namespace wsgate::config
