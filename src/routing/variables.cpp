#include "routing/variables.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include "config/regex.hpp"
#include "routing/detail.hpp"

namespace wsgate::routing {

namespace {

using detail::ascii_lower;
using detail::iequals;

// "$http_x_real_ip" names the header "X-Real-IP": lower-case, '-' read as '_'.
bool header_matches_variable(std::string_view header, std::string_view var_suffix) {
  if (header.size() != var_suffix.size()) return false;
  for (size_t i = 0; i < header.size(); ++i) {
    char c = ascii_lower(header[i]);
    if (c == '-') c = '_';
    if (c != ascii_lower(var_suffix[i])) return false;
  }
  return true;
}

std::optional<std::string> header_variable(const eval_context& ctx, std::string_view suffix) {
  // nginx 1.22 joins repeated Cookie lines with "; " and X-Forwarded-For lines with ", ";
  // any other header gives its first line.
  std::string sep;
  if (iequals(suffix, "cookie")) sep = "; ";
  if (iequals(suffix, "x_forwarded_for")) sep = ", ";
  std::optional<std::string> out;
  for (const auto& [name, value] : ctx.headers) {
    if (!header_matches_variable(name, suffix)) continue;
    if (!out) {
      out = std::string(value);
      if (sep.empty()) return out;
    } else {
      *out += sep;
      *out += value;
    }
  }
  return out;
}

std::optional<std::string> cookie_variable(const eval_context& ctx, std::string_view name) {
  for (const auto& [hname, value] : ctx.headers) {
    if (!iequals(hname, "cookie")) continue;
    std::string_view v = value;
    while (!v.empty()) {
      size_t end = v.find(';');
      std::string_view item = v.substr(0, end);
      v = end == std::string_view::npos ? std::string_view{} : v.substr(end + 1);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      const size_t eq = item.find('=');
      if (eq == std::string_view::npos) continue;
      if (iequals(item.substr(0, eq), name)) return std::string(item.substr(eq + 1));
    }
  }
  return std::nullopt;
}

std::string first_server_name(const config::server* s) {
  if (!s || s->names.empty()) return "";
  const auto& n = s->names.front();
  return n.type == config::server_name_entry::kind::regex ? "~" + n.name : n.name;
}

constexpr std::array kBuiltins = {"host",
                                  "remote_addr",
                                  "remote_port",
                                  "scheme",
                                  "https",
                                  "request_uri",
                                  "uri",
                                  "document_uri",
                                  "args",
                                  "query_string",
                                  "is_args",
                                  "request_method",
                                  "request",
                                  "server_protocol",
                                  "server_name",
                                  "server_port",
                                  "server_addr",
                                  "proxy_host",
                                  "proxy_port",
                                  "proxy_add_x_forwarded_for",
                                  "content_length",
                                  "content_type",
                                  "hostname",
                                  "nginx_version",
                                  "binary_remote_addr",
                                  "body_bytes_sent",
                                  "bytes_sent",
                                  "connection",
                                  "connection_requests",
                                  "connection_time",
                                  "document_root",
                                  "realpath_root",
                                  "limit_rate",
                                  "msec",
                                  "pid",
                                  "pipe",
                                  "proxy_protocol_addr",
                                  "proxy_protocol_port",
                                  "proxy_protocol_server_addr",
                                  "proxy_protocol_server_port",
                                  "request_body",
                                  "request_body_file",
                                  "request_completion",
                                  "request_filename",
                                  "request_id",
                                  "request_length",
                                  "request_time",
                                  "status",
                                  "time_iso8601",
                                  "time_local",
                                  "tcpinfo_rtt",
                                  "tcpinfo_rttvar",
                                  "tcpinfo_snd_cwnd",
                                  "tcpinfo_rcv_space",
                                  "ssl_protocol",
                                  "ssl_cipher",
                                  "ssl_server_name",
                                  "ssl_session_id",
                                  "ssl_client_verify",
                                  "upstream_addr",
                                  "upstream_status",
                                  "upstream_response_time",
                                  "upstream_connect_time",
                                  "upstream_header_time",
                                  "upstream_response_length",
                                  "upstream_bytes_received",
                                  "upstream_bytes_sent",
                                  "upstream_cache_status",
                                  "proxy_internal_body_length",
                                  "proxy_internal_chunked",
                                  "realip_remote_addr",
                                  "realip_remote_port",
                                  "gzip_ratio",
                                  "http_host",
                                  "http_user_agent",
                                  "http_referer",
                                  "http_via",
                                  "http_x_forwarded_for",
                                  "http_cookie",
                                  "cookie",
                                  "server_port"};
constexpr std::array kPrefixes = {
    "http_",         "arg_",           "cookie_",          "sent_http_",
    "sent_trailer_", "upstream_http_", "upstream_cookie_", "upstream_trailer_"};

bool starts_with_icase(std::string_view s, std::string_view prefix) {
  return s.size() > prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

}  // namespace

namespace {

constexpr int kMaxMapDepth = 16;

// The raw value of the first "name=" argument, as a view into args.
std::optional<std::string_view> arg_view(std::string_view args, std::string_view name) {
  size_t pos = 0;
  while (pos < args.size()) {
    size_t end = args.find('&', pos);
    if (end == std::string_view::npos) end = args.size();
    std::string_view item = args.substr(pos, end - pos);
    if (item.size() > name.size() && item[name.size()] == '=' &&
        iequals(item.substr(0, name.size()), name))
      return item.substr(name.size() + 1);
    pos = end + 1;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> find_arg(std::string_view args, std::string_view name) {
  if (auto v = arg_view(args, name)) return std::string(*v);
  return std::nullopt;
}

void set_captures(eval_context& ctx, const config::regex& re, std::string_view subject) {
  thread_local std::vector<std::string_view> caps;  // kept: no allocation per match
  caps.clear();
  if (!re.match(subject, caps)) return;
  // Assigned over the strings already there: a reused context keeps their capacity.
  if (ctx.captures.size() < caps.size()) ctx.captures.resize(caps.size());
  for (size_t i = 0; i < caps.size(); ++i) ctx.captures[i].assign(caps[i]);
  ctx.ncaptures = caps.size();
  ctx.nnamed = 0;
  for (const auto& [name, group] : re.names()) {
    if (group < 0 || static_cast<size_t>(group) >= caps.size()) continue;
    if (ctx.nnamed == ctx.named_captures.size()) ctx.named_captures.emplace_back();
    ctx.named_captures[ctx.nnamed].first.assign(name);
    ctx.named_captures[ctx.nnamed].second.assign(caps[static_cast<size_t>(group)]);
    ++ctx.nnamed;
  }
}

void evaluate_map_into(const config::map_block& map, eval_context& ctx, std::string& out) {
  // The key and its lower-case copy live in per-thread scratch, one pair per nesting level (a
  // map's source or value may name another map): a reused string makes no allocation per request.
  thread_local std::array<std::pair<std::string, std::string>, kMaxMapDepth> scratch;
  if (ctx.map_depth < 0 || ctx.map_depth >= kMaxMapDepth) return;  // a map that refers to itself
  auto& [key, low] = scratch[static_cast<size_t>(ctx.map_depth)];
  struct depth_guard {
    int& depth;
    explicit depth_guard(int& d) : depth(d) { ++depth; }
    ~depth_guard() { --depth; }
    depth_guard(const depth_guard&) = delete;
    depth_guard& operator=(const depth_guard&) = delete;
  } guard(ctx.map_depth);
  key.clear();
  evaluate_into(map.source, ctx, key);
  if (map.hostnames && !key.empty() && key.back() == '.') key.pop_back();
  low.assign(key);
  for (auto& c : low) c = ascii_lower(c);

  const config::template_string* found = nullptr;
  // Exact keys first, then (hostnames) the longest "*.x"/".x", then the longest "x.*".
  for (const auto& e : map.entries)
    if (!e.is_regex && !found && iequals(e.key, low)) found = &e.value;
  if (!found && map.hostnames) {
    size_t best = 0;
    for (const auto& e : map.entries) {
      if (e.is_regex) continue;
      std::string_view k = e.key;
      if (k.starts_with("*."))
        k.remove_prefix(1);
      else if (!k.starts_with("."))
        continue;
      // ".example.com" also matches "example.com" itself.
      const bool hit = (low.size() > k.size() && iequals(low.substr(low.size() - k.size()), k)) ||
                       (e.key.front() == '.' && iequals(low, k.substr(1)));
      if (hit && k.size() > best) best = k.size(), found = &e.value;
    }
    if (!found) {
      for (const auto& e : map.entries) {
        std::string_view k = e.key;
        if (e.is_regex || !k.ends_with(".*")) continue;
        k.remove_suffix(1);
        if (low.size() > k.size() && iequals(low.substr(0, k.size()), k) && k.size() > best)
          best = k.size(), found = &e.value;
      }
    }
  }
  if (!found && !key.empty()) {
    for (const auto& e : map.entries) {
      if (!e.is_regex) continue;
      auto re = detail::compiled(e.compiled, e.key, e.icase);
      if (re && re->match(key)) {
        set_captures(ctx, *re, key);
        found = &e.value;
        break;
      }
    }
  }
  if (!found && map.default_value) found = &*map.default_value;
  if (found) evaluate_into(*found, ctx, out);
}

std::string evaluate_map(const config::map_block& map, eval_context& ctx) {
  std::string out;
  evaluate_map_into(map, ctx, out);
  return out;
}

std::optional<std::string> variable(std::string_view name, eval_context& ctx) {
  if (ctx.config && ctx.config->http)
    for (const auto& m : ctx.config->http->maps)
      if (iequals(m.result, name)) return evaluate_map(m, ctx);

  if (!name.empty() &&
      std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    size_t n = 0;
    const auto r = std::from_chars(name.data(), name.data() + name.size(), n);
    if (r.ec == std::errc{} && n < ctx.ncaptures) return ctx.captures[n];
    return std::nullopt;
  }
  for (size_t i = 0; i < ctx.nnamed; ++i)
    if (ctx.named_captures[i].first == name) return ctx.named_captures[i].second;

  const request_info& rq = *ctx.request;
  if (name == "host") return ctx.host;
  if (starts_with_icase(name, "http_")) return header_variable(ctx, name.substr(5));
  if (starts_with_icase(name, "arg_")) return find_arg(ctx.args, name.substr(4));
  if (starts_with_icase(name, "cookie_")) return cookie_variable(ctx, name.substr(7));
  if (name == "remote_addr") return rq.remote_addr;
  if (name == "remote_port") return std::to_string(rq.remote_port);
  if (name == "scheme") return std::string(rq.tls ? "https" : "http");
  if (name == "https") return std::string(rq.tls ? "on" : "");
  if (name == "request_uri") return ctx.request_uri;
  if (name == "uri" || name == "document_uri") return ctx.uri;
  if (name == "args" || name == "query_string") return ctx.args;
  if (name == "is_args") return std::string(ctx.args.empty() ? "" : "?");
  if (name == "request_method") return rq.method;
  if (name == "server_protocol") return "HTTP/1." + std::to_string(rq.http_minor);
  if (name == "request")
    return rq.method + " " + ctx.request_uri + " HTTP/1." + std::to_string(rq.http_minor);
  if (name == "server_name") return first_server_name(ctx.server);
  if (name == "server_port") return std::to_string(rq.local_port);
  if (name == "server_addr") return rq.local_addr;
  if (name == "proxy_host") return ctx.proxy_host;
  if (name == "proxy_port") return ctx.proxy_port;
  if (name == "proxy_add_x_forwarded_for") {
    auto xff = header_variable(ctx, "x_forwarded_for");
    return xff ? *xff + ", " + rq.remote_addr : rq.remote_addr;
  }
  if (name == "content_length") return header_variable(ctx, "content_length");
  if (name == "content_type") return header_variable(ctx, "content_type");
  if (name == "nginx_version") return std::string("1.22.1");
  if (name == "hostname") {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) == 0) return std::string(buf);
    return std::nullopt;
  }
  return std::nullopt;
}

namespace {

// header_variable appended to out: no copy of the value on the way.
bool append_header_variable(const eval_context& ctx, std::string_view suffix, std::string& out) {
  const char* sep = nullptr;
  if (iequals(suffix, "cookie")) sep = "; ";
  if (iequals(suffix, "x_forwarded_for")) sep = ", ";
  bool found = false;
  for (const auto& [name, value] : ctx.headers) {
    if (!header_matches_variable(name, suffix)) continue;
    if (found) out += sep;
    out += value;
    found = true;
    if (!sep) break;
  }
  return found;
}

void append_number(std::string& out, unsigned v) {
  char buf[16];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace

bool append_variable(std::string_view name, eval_context& ctx, std::string& out) {
  // The order of variable(): a map result or a capture shadows the built-in of the same name.
  if (ctx.config && ctx.config->http)
    for (const auto& m : ctx.config->http->maps)
      if (iequals(m.result, name)) return evaluate_map_into(m, ctx, out), true;
  if (!name.empty() &&
      std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    size_t n = 0;
    const auto r = std::from_chars(name.data(), name.data() + name.size(), n);
    if (r.ec != std::errc{} || n >= ctx.ncaptures) return false;
    return out += ctx.captures[n], true;
  }
  for (size_t i = 0; i < ctx.nnamed; ++i)
    if (ctx.named_captures[i].first == name) return out += ctx.named_captures[i].second, true;

  const request_info& rq = *ctx.request;
  if (name == "host") return out += ctx.host, true;
  if (starts_with_icase(name, "http_")) return append_header_variable(ctx, name.substr(5), out);
  if (starts_with_icase(name, "arg_")) {
    auto v = arg_view(ctx.args, name.substr(4));
    if (v) out += *v;
    return v.has_value();
  }
  if (name == "remote_addr") return out += rq.remote_addr, true;
  if (name == "scheme") return out += rq.tls ? "https" : "http", true;
  if (name == "proxy_add_x_forwarded_for") {
    if (append_header_variable(ctx, "x_forwarded_for", out)) out += ", ";
    out += rq.remote_addr;
    return true;
  }
  if (name == "request_uri") return out += ctx.request_uri, true;
  if (name == "uri" || name == "document_uri") return out += ctx.uri, true;
  if (name == "args" || name == "query_string") return out += ctx.args, true;
  if (name == "is_args") return out += ctx.args.empty() ? "" : "?", true;
  if (name == "proxy_host") return out += ctx.proxy_host, true;
  if (name == "proxy_port") return out += ctx.proxy_port, true;
  if (name == "remote_port") return append_number(out, rq.remote_port), true;
  if (name == "server_port") return append_number(out, rq.local_port), true;
  if (name == "server_addr") return out += rq.local_addr, true;
  if (name == "request_method") return out += rq.method, true;
  if (name == "content_length") return append_header_variable(ctx, "content_length", out);
  if (name == "content_type") return append_header_variable(ctx, "content_type", out);
  // The rest (rarely on a per-request path) the general way.
  auto v = variable(name, ctx);
  if (!v) return false;
  out += *v;
  return true;
}

void evaluate_into(const config::template_string& t, eval_context& ctx, std::string& out) {
  if (t.parts.empty() && !t.raw.empty()) {
    out += evaluate(t, ctx);  // built by hand: split (and allocate) as evaluate does
    return;
  }
  for (const auto& p : t.parts) {
    if (!p.is_variable)
      out += p.text;
    else
      append_variable(p.text, ctx, out);
  }
}

std::string evaluate(const config::template_string& t, eval_context& ctx) {
  // A template built by hand (tests, tools) may carry only `raw`: split it here.
  if (t.parts.empty() && !t.raw.empty()) {
    if (t.raw.find('$') == std::string::npos) return t.raw;
    return evaluate(detail::make_template(t.raw), ctx);
  }
  // A lone variable ("$host", "$http_upgrade"): its value as is, without a second copy.
  if (t.parts.size() == 1 && t.parts.front().is_variable)
    return variable(t.parts.front().text, ctx).value_or(std::string());
  std::string out;
  for (const auto& p : t.parts) {
    if (!p.is_variable) {
      out += p.text;
    } else if (auto v = variable(p.text, ctx)) {
      out += *v;
    }
  }
  return out;
}

bool is_known_variable(std::string_view name, const config::snapshot& config) {
  if (name.empty()) return false;
  if (std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return true;
  for (const char* b : kBuiltins)
    if (iequals(name, b)) return true;
  for (const char* p : kPrefixes)
    if (starts_with_icase(name, p)) return true;
  if (config.http) {
    for (const auto& m : config.http->maps)
      if (iequals(m.result, name)) return true;
  }
  return detail::named_capture_defined(config, name);
}

}  // namespace wsgate::routing
