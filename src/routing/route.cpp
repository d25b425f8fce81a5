#include "routing/route.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

#include "common/ip.hpp"
#include "config/regex.hpp"
#include "routing/detail.hpp"
#include "routing/lint.hpp"
#include "routing/match.hpp"
#include "routing/uri.hpp"
#include "routing/variables.hpp"

namespace wsgate::routing {

namespace {

using detail::iequals;
using std::chrono::seconds;

// nginx's r->uri_changes: the 11th re-search after a rewrite is a 500.
constexpr int kMaxUriChanges = 11;

// The request state that rewrites change and proxy_pass mapping reads (nginx's flags).
struct uri_state {
  bool valid_unparsed_uri = true;  // no rewrite touched the URI: send $request_uri as received
  bool valid_location = true;      // cleared by "rewrite ... break": the URI part is ignored
  bool internal = false;           // a rewrite changed the URI: it is escaped when sent
  bool quoted_uri = false;         // the request's path held %XX
  bool plus_in_uri = false;        // ... or '+'
  bool uri_changed = false;
};

using ascii::has_token;

template <class List>
auto find_header(const List& h, std::string_view name) -> decltype(&h.front().second) {
  for (const auto& [n, v] : h)
    if (iequals(n, name)) return &v;
  return nullptr;
}

// ngx_http_parse_header_line's name check: [A-Za-z0-9-] (and '_' when allowed) or the line
// is ignored (ignore_invalid_headers on).
bool valid_header_name(std::string_view name, bool underscores) {
  if (name.empty()) return false;
  for (char c : name) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')
      continue;
    if (c == '_' && underscores) continue;
    return false;
  }
  return true;
}

template <class T>
T setting(const std::optional<T>& v, T dflt) {
  return v ? *v : dflt;
}

void absolutize(decision& d, const request_info& rq, const eval_context& ctx) {
  // ngx_http_header_filter with absolute_redirect and port_in_redirect on (the defaults).
  if (d.location_header.empty() || d.location_header.front() != '/') return;
  // The request's host, else the local address (not $host's fallback to server_name).
  std::string host = ctx.request_host.empty() ? rq.local_addr : ctx.request_host;
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  const bool default_port = rq.tls ? rq.local_port == 443 : rq.local_port == 80;
  std::string url = std::string(rq.tls ? "https://" : "http://") + host;
  if (!default_port) url += ":" + std::to_string(rq.local_port);
  d.location_header = url + d.location_header;
}

bool is_redirect_code(int code) {
  return code == 301 || code == 302 || code == 303 || code == 307 || code == 308;
}

void do_return(decision& d, const config::return_setting& r, const request_info& rq,
               eval_context& ctx) {
  d.status = r.code;
  if (r.code == 444) {
    d.what = action::respond;  // close the connection without a response
    return;
  }
  // Evaluated straight into the decision's string (a reused decision keeps its capacity).
  if (is_redirect_code(r.code)) {
    d.what = action::redirect;
    if (r.text_or_url) evaluate_into(*r.text_or_url, ctx, d.location_header);
    absolutize(d, rq, ctx);
  } else {
    d.what = action::respond;
    if (r.text_or_url) evaluate_into(*r.text_or_url, ctx, d.body);
  }
}

// ngx_unescape_uri(NGX_UNESCAPE_REDIRECT), which nginx runs over a rewrite's redirect target:
// %XX of a printable character above '%' is decoded, others kept; a '?' (literal or %3F) ends
// the work and the rest is kept as is; a '%' followed by a non-hex character is dropped.
std::string unescape_redirect(std::string_view s) {
  std::string d;
  enum { usual, quoted, quoted_second } state = usual;
  int decoded = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    switch (state) {
      case usual:
        if (ch == '?') {
          d.append(s.substr(i));
          return d;
        }
        if (ch == '%')
          state = quoted;
        else
          d += ch;
        break;
      case quoted: {
        const char c = static_cast<char>(ch | 0x20);
        if (ch >= '0' && ch <= '9') {
          decoded = ch - '0';
          state = quoted_second;
        } else if (c >= 'a' && c <= 'f') {
          decoded = c - 'a' + 10;
          state = quoted_second;
        } else {
          state = usual;
          d += ch;
        }
        break;
      }
      case quoted_second: {
        state = usual;
        const char c = static_cast<char>(ch | 0x20);
        const bool digit = ch >= '0' && ch <= '9';
        if (!digit && !(c >= 'a' && c <= 'f')) break;  // invalid: both dropped
        const int v = (decoded << 4) + (digit ? ch - '0' : c - 'a' + 10);
        if (!digit && v == '?') {
          d += '?';
          d.append(s.substr(i + 1));
          return d;
        }
        if (v > '%' && v < 0x7f) {
          d += static_cast<char>(v);
        } else {
          d += '%';
          d += s[i - 1];
          d += ch;
        }
        break;
      }
    }
  }
  return d;
}

enum class script_result { next, restart, stop_rewrites, responded };

// The rewrite module's script for one level (server or location): rewrite and return, in the
// order written.
script_result run_script(const config::location& level, decision& d, const request_info& rq,
                         eval_context& ctx, uri_state& st) {
  // Most levels have neither: no step list to build (this runs for every request).
  if (level.rewrites.empty()) {
    if (!level.ret) return script_result::next;
    do_return(d, *level.ret, rq, ctx);
    return script_result::responded;
  }
  struct step {
    int line;
    const config::rewrite_setting* rw;
    const config::return_setting* ret;
  };
  std::vector<step> steps;
  for (const auto& r : level.rewrites) steps.push_back({r.where.line, &r, nullptr});
  if (level.ret) steps.push_back({level.ret->where.line, nullptr, &*level.ret});
  std::stable_sort(steps.begin(), steps.end(),
                   [](const step& a, const step& b) { return a.line < b.line; });

  for (const auto& s : steps) {
    if (s.ret) {
      do_return(d, *s.ret, rq, ctx);
      return script_result::responded;
    }
    const auto& rw = *s.rw;
    auto re = detail::compiled(rw.compiled, rw.regex, false);
    if (!re || !re->match(ctx.uri)) continue;
    set_captures(ctx, *re, ctx.uri);

    const std::string& raw = rw.replacement.raw;
    // A trailing '?' drops the request's arguments.
    const bool add_args = raw.empty() || raw.back() != '?';
    const bool absolute =
        raw.starts_with("http://") || raw.starts_with("https://") || raw.starts_with("$scheme");
    const bool redirect = absolute || rw.flag == config::rewrite_flag::redirect ||
                          rw.flag == config::rewrite_flag::permanent;
    // The first literal '?' of the replacement starts the new arguments; a '?' that comes from
    // a capture or variable is data. Captures copied into arguments (or into a redirect) are
    // escaped when the request's path was escaped, as ngx_http_script_copy_capture_code.
    const config::template_string parts =
        rw.replacement.parts.empty() && !raw.empty() ? detail::make_template(raw) : rw.replacement;
    std::string result;
    size_t args_at = std::string::npos;
    for (const auto& p : parts.parts) {
      if (!p.is_variable) {
        std::string text = p.text;
        if (args_at == std::string::npos) {
          const size_t q = text.find('?');
          if (q != std::string::npos) args_at = result.size() + q;
        }
        result += text;
        continue;
      }
      std::string v = variable(p.text, ctx).value_or("");
      const bool capture = !p.text.empty() && std::isdigit(static_cast<unsigned char>(p.text[0]));
      if (capture && (args_at != std::string::npos || redirect) &&
          (st.quoted_uri || st.plus_in_uri))
        v = escape(v, escape_kind::args);
      result += v;
    }
    if (!add_args && !result.empty() && result.back() == '?') {
      result.pop_back();
      if (args_at == result.size()) args_at = std::string::npos;
    }
    if (redirect) {
      d.what = action::redirect;
      d.status = rw.flag == config::rewrite_flag::permanent ? 301 : 302;
      result = unescape_redirect(result);
      if (add_args && !ctx.args.empty())
        result += (args_at != std::string::npos ? "&" : "?") + ctx.args;
      d.location_header = result;
      absolutize(d, rq, ctx);
      return script_result::responded;
    }
    const size_t q = args_at;
    if (q != std::string::npos) {
      std::string new_args = result.substr(q + 1);
      if (add_args && !ctx.args.empty()) new_args += "&" + ctx.args;
      ctx.args = new_args;
      result.resize(q);
    } else if (!add_args) {
      ctx.args.clear();
    }
    ctx.uri = result;
    st.internal = true;
    st.valid_unparsed_uri = false;
    if (rw.flag == config::rewrite_flag::break_) {
      st.valid_location = false;
      st.uri_changed = false;
      return script_result::stop_rewrites;
    }
    st.uri_changed = true;
    if (rw.flag == config::rewrite_flag::last) return script_result::stop_rewrites;
  }
  return script_result::next;
}

// Warnings taken off decisions by route_into, their strings kept for the next ones (per thread).
std::vector<warning>& warning_pool() {
  thread_local std::vector<warning> pool;
  return pool;
}

// Appends a warning to d, reusing a recycled one's strings when there is one.
warning& add_warning(decision& d) {
  auto& pool = warning_pool();
  if (pool.empty()) return d.warnings.emplace_back();
  d.warnings.push_back(std::move(pool.back()));
  pool.pop_back();
  return d.warnings.back();
}

// Views into the evaluated URL (which the caller keeps), so parsing makes no allocation.
struct parsed_url {
  std::string_view scheme, host, port_text, uri;
  bool has_uri = false;
  uint16_t port = 0;
  bool ok = false;
};

// ngx_parse_url on an evaluated proxy_pass URL.
parsed_url parse_proxy_url(std::string_view url) {
  parsed_url p;
  if (url.starts_with("http://")) {
    p.scheme = "http";
    url.remove_prefix(7);
  } else if (url.starts_with("https://")) {
    p.scheme = "https";
    url.remove_prefix(8);
  } else {
    return p;
  }
  size_t end = url.find_first_of("/?");
  std::string_view authority = url.substr(0, end);
  if (end != std::string_view::npos) {
    p.has_uri = true;
    p.uri = url.substr(end);  // "?a" stands for "/?a": the caller adds the '/'
  }
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    p.port_text = authority.substr(colon + 1);
    authority = authority.substr(0, colon);
    int port = 0;
    for (char c : p.port_text) {
      if (c < '0' || c > '9') return p;
      port = port * 10 + (c - '0');
      if (port > 65535) return p;
    }
    if (p.port_text.empty() || port == 0) return p;
    p.port = static_cast<uint16_t>(port);
  }
  p.host = authority;
  p.ok = !p.host.empty();
  return p;
}

// ngx_http_access_handler: the rules of the client's address family (and `all`), in order; the
// first that matches decides; none: allowed. An IPv4-mapped IPv6 client is checked as IPv4.
bool access_denied(const config::location_settings& s, std::string_view remote) {
  if (!s.access || s.access->empty()) return false;
  using k = config::access_rule::kind;
  unsigned char a[16] = {};
  const int af = ip::parse(remote, a);
  k family = k::unix_socket;
  if (af == AF_INET) {
    family = k::ipv4;
  } else if (af == AF_INET6) {
    family = k::ipv6;
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a, kMapped, 12) == 0) {
      std::memmove(a, a + 12, 4);
      family = k::ipv4;
    }
  }
  const int len = family == k::ipv4 ? 4 : 16;
  for (const auto& r : *s.access) {
    bool hit = r.type == k::all;
    if (r.type == family && family != k::unix_socket) {
      hit = true;
      for (int i = 0; i < len && hit; ++i) hit = (a[i] & r.mask[i]) == r.addr[i];
    } else if (r.type == family) {
      hit = true;  // unix: matches every client of a unix listen
    }
    if (hit) return !r.allow;
  }
  return false;
}

void assign_number(std::string& out, unsigned v) {
  char buf[16];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.assign(buf, r.ptr);
}

void set_proxy_vars(eval_context& ctx, std::string_view scheme, std::string_view host,
                    uint16_t port, bool port_explicit) {
  // ngx_http_proxy_set_vars: the port shows in $proxy_host only when not the scheme's default.
  const uint16_t dflt = scheme == "https" ? 443 : 80;
  ctx.proxy_host.assign(host);
  if (!port_explicit || port == dflt) {
    assign_number(ctx.proxy_port, dflt);
  } else {
    assign_number(ctx.proxy_port, port);
    ctx.proxy_host += ':';
    ctx.proxy_host += ctx.proxy_port;
  }
}

// ngx_http_proxy_headers: appended after the proxy_set_header list unless it names them.
const std::vector<std::pair<std::string, config::template_string>>& default_headers() {
  static const auto* list = [] {
    auto* l = new std::vector<std::pair<std::string, config::template_string>>;
    for (const auto& [n, v] : {std::pair<const char*, const char*>{"Host", "$proxy_host"},
                               {"Connection", "close"},
                               {"Content-Length", "$proxy_internal_body_length"},
                               {"Transfer-Encoding", "$proxy_internal_chunked"},
                               {"TE", ""},
                               {"Keep-Alive", ""},
                               {"Expect", ""},
                               {"Upgrade", ""}})
      l->emplace_back(n, detail::make_template(v));
    return l;
  }();
  return *list;
}

void build_upstream(decision& d, const config::location& loc, const request_info& rq,
                    eval_context& ctx, const uri_state& st, bool underscores) {
  const auto& pp = *loc.proxy_pass;
  const auto& set = loc.settings;
  upstream_request& up = d.upstream;
  d.what = action::proxy;
  up.method.assign(rq.method);
  up.version.assign("HTTP/");
  up.version += set.proxy_http_version ? std::string_view(*set.proxy_http_version) : "1.0";

  // Where to: the static URL parsed at load, or the URL evaluated now.
  std::string_view uri_part;  // nginx's ctx->vars.uri
  bool has_uri_part = false;
  const bool variable_url = pp.url.has_variables();
  if (variable_url) {
    // Evaluated into per-thread strings that the views of parsed_url and uri_part point into.
    thread_local std::string url, variable_uri_part;
    url.clear();
    evaluate_into(pp.url, ctx, url);
    parsed_url p = parse_proxy_url(url);
    if (!p.ok) {
      d.what = action::respond;
      d.status = 500;
      d.warnings.push_back({"proxy-pass-invalid-url",
                            "proxy_pass evaluated to \"" + url + "\", which is not http(s)://host",
                            "make the variables in proxy_pass produce http://host[:port][/uri]",
                            pp.where});
      return;
    }
    up.scheme.assign(p.scheme);
    up.host.assign(p.host);
    up.port = p.port ? p.port : (p.scheme == "https" ? 443 : 80);
    const bool names_upstream =
        !p.port && ctx.config->http && ctx.config->http->upstreams.count(p.host);
    if (names_upstream) {
      up.via_upstream_block = true;
      up.port = 0;
    }
    set_proxy_vars(ctx, p.scheme, p.host, p.port, p.port != 0);
    has_uri_part = p.has_uri;
    uri_part = p.uri;
    if (uri_part.starts_with('?')) {  // "http://h?a" sends "/?a"
      variable_uri_part.assign("/").append(p.uri);
      uri_part = variable_uri_part;
    }
  } else {
    up.scheme.assign(pp.scheme.empty() ? std::string_view("http") : std::string_view(pp.scheme));
    up.host.assign(pp.host);
    const bool names_upstream = pp.port == 0 || (!pp.port_explicit && ctx.config->http &&
                                                 ctx.config->http->upstreams.count(pp.host));
    if (!pp.unix_path.empty()) {
      up.host.assign("unix:");
      up.host += pp.unix_path;
      up.port = 0;
      ctx.proxy_host = "localhost";
      ctx.proxy_port.clear();
    } else {
      up.via_upstream_block = names_upstream;
      up.port = names_upstream ? 0 : pp.port;
      const uint16_t dflt = up.scheme == "https" ? 443 : 80;
      set_proxy_vars(ctx, up.scheme, pp.host, pp.port ? pp.port : dflt, pp.port_explicit);
    }
    has_uri_part = pp.uri.has_value();
    if (pp.uri) uri_part = *pp.uri;
  }

  // https: the name sent as SNI and verified (ngx_http_upstream_ssl_name: the port is dropped).
  up.ssl_name.clear();
  if (up.scheme == "https" && loc.settings.proxy_ssl_name) {
    evaluate_into(*loc.settings.proxy_ssl_name, ctx, up.ssl_name);
    std::string_view n = up.ssl_name;
    size_t colon = n.starts_with('[') ? n.find("]:") : n.find(':');
    if (colon != std::string_view::npos) up.ssl_name.resize(colon + (n.starts_with('[') ? 1 : 0));
  }

  // The URI (ngx_http_proxy_create_request).
  if (variable_url && has_uri_part && !uri_part.empty()) {
    up.uri.assign(uri_part);  // used as is; the request's arguments are not added
  } else if (uri_part.empty() && st.valid_unparsed_uri) {
    up.uri.assign(ctx.request_uri);
  } else {
    size_t loc_len = st.valid_location && !uri_part.empty() ? loc.pattern.size() : 0;
    loc_len = std::min(loc_len, ctx.uri.size());
    std::string& out = up.uri;  // built in place: a reused decision keeps its capacity
    out.clear();
    std::string_view rest = std::string_view(ctx.uri).substr(loc_len);
    out.reserve((st.valid_location ? uri_part.size() : 0) + rest.size() + 1 + ctx.args.size());
    if (st.valid_location) out += uri_part;
    if (st.quoted_uri || st.internal)
      escape_into(rest, escape_kind::uri, out);
    else
      out += rest;
    if (!ctx.args.empty()) {
      out += '?';
      out += ctx.args;
    }
  }
  if (up.uri.empty()) up.uri.assign("/");

  // The headers: proxy_set_header in effect, then nginx's defaults it does not name, then the
  // client's headers that none of those names.
  struct entry {
    std::string_view name;
    const config::template_string* value;
  };
  // At most the set list plus the eight defaults. Kept per thread so that a worker allocates it
  // once, not per request (build_upstream does not recurse).
  thread_local std::vector<entry> list;
  list.clear();
  list.reserve((set.proxy_set_header ? set.proxy_set_header->size() : 0) + 8);
  if (set.proxy_set_header)
    for (const auto& h : *set.proxy_set_header) list.push_back({h.name, &h.value});
  for (const auto& dh : default_headers()) {
    const bool named = std::any_of(list.begin(), list.end(),
                                   [&](const entry& e) { return iequals(e.name, dh.first); });
    if (!named) list.push_back({dh.first, &dh.second});
  }

  const auto* content_length = find_header(ctx.headers, "Content-Length");
  const auto* te = find_header(ctx.headers, "Transfer-Encoding");
  const bool chunked = te && has_token(*te, "chunked");
  const bool pass_body = setting(set.proxy_pass_request_body, true);
  const bool http11 = up.version == "HTTP/1.1";
  const bool streaming_chunked =
      chunked && !setting(set.proxy_request_buffering, true) && pass_body && http11;
  up.pass_body = pass_body;

  // The headers are written over the strings a reused decision already holds (slot by slot, in
  // the same order for the same request), so a warm decision allocates nothing here.
  header_list& out = up.headers;
  size_t n = 0;
  auto slot = [&]() -> std::pair<std::string, std::string>& {
    if (n == out.size()) out.emplace_back();
    return out[n];
  };
  for (const auto& e : list) {
    auto& h = slot();
    h.second.clear();
    if (e.value->raw == "$proxy_internal_body_length") {
      if (!pass_body) continue;
      if (chunked && !streaming_chunked) {
        up.pending_content_length_at = static_cast<int>(n);
        continue;
      }
      if (content_length && !chunked) h.second.assign(*content_length);
    } else if (e.value->raw == "$proxy_internal_chunked") {
      if (streaming_chunked) h.second.assign("chunked");
    } else {
      evaluate_into(*e.value, ctx, h.second);
    }
    if (h.second.empty()) continue;  // nginx drops a header whose value is empty
    h.first.assign(e.name);
    ++n;
  }

  // wsgate's deliberate difference: "Connection: upgrade" without an Upgrade header makes
  // servers such as uvicorn reject a plain request (400), so it is not sent. Both headers can
  // only come from the list above (the client's own are always named there).
  const auto sent = out.begin() + static_cast<std::ptrdiff_t>(n);
  const auto conn =
      std::find_if(out.begin(), sent, [](const auto& h) { return iequals(h.first, "Connection"); });
  const bool has_upgrade =
      std::any_of(out.begin(), sent, [](const auto& h) { return iequals(h.first, "Upgrade"); });
  if (conn != sent && has_token(conn->second, "upgrade") && !has_upgrade) {
    // Kept with diagnostics off (a notice about this request, not an explanation); written
    // into recycled strings, since every plain request on the seed's configs gets it.
    warning& w = add_warning(d);
    w.where = pp.where;
    if (set.proxy_set_header)
      for (const auto& h : *set.proxy_set_header)
        if (iequals(h.name, "Connection")) w.where = h.where;
    w.id.assign("connection-upgrade-dropped");
    w.text.assign("notice: \"Connection: ");
    w.text += conn->second;
    w.text +=
        "\" would go upstream without an Upgrade header; wsgate does not send it (nginx "
        "would, and servers such as uvicorn answer 400)";
    w.fix.assign(
        "use map $http_upgrade $connection_upgrade { default upgrade; '' close; } and "
        "proxy_set_header Connection $connection_upgrade;");
    if (up.pending_content_length_at > conn - out.begin()) --up.pending_content_length_at;
    // Moved behind the sent headers rather than erased: its strings stay for the next request.
    std::rotate(conn, conn + 1, sent);
    --n;
  }

  if (setting(set.proxy_pass_request_headers, true)) {
    for (const auto& [name, value] : ctx.headers) {
      const bool named = std::any_of(list.begin(), list.end(),
                                     [&](const entry& e) { return iequals(e.name, name); });
      if (named) continue;
      auto& h = slot();
      h.first.assign(name);
      h.second.assign(value);
      ++n;
    }
  }
  (void)underscores;
  out.resize(n);
}

void bad_request(decision& d, const std::string& why) {
  d.what = action::respond;
  d.status = 400;
  if (d.server_reason.empty()) d.server_reason = why;
  d.warnings.push_back({"bad-request", why, "send a valid request", {}});
}

}  // namespace

void reset(decision& d) {
  d.server = nullptr;
  d.server_reason.clear();
  d.location = nullptr;
  d.candidates.clear();
  d.normalized_uri.clear();
  d.what = action::not_found;
  d.status_page = config::location::status_page::none;
  d.access_denied = false;
  d.status = 0;
  d.body.clear();
  d.location_header.clear();
  upstream_request& up = d.upstream;
  up.scheme.clear();
  up.host.clear();
  up.port = 0;
  up.via_upstream_block = false;
  up.method.clear();
  up.balance_key.clear();
  up.uri.clear();
  up.version.clear();
  // up.headers is overwritten slot by slot by build_upstream and emptied where it is not run.
  up.pass_body = true;
  up.pending_content_length_at = -1;
  d.limits = {};
  d.websocket = false;
  auto& pool = warning_pool();
  for (auto& w : d.warnings)
    if (pool.size() < 8) pool.push_back(std::move(w));  // bounded: most warnings are rare
  d.warnings.clear();
}

namespace {

// route()'s working state, kept per thread so that its strings and vectors keep their capacity
// from one request to the next (route_into does not recurse).
struct scratch {
  eval_context ctx;
  parsed_target target;
  listen_group group;
  std::string host;

  void reset(const config::snapshot& config, const request_info& rq) {
    ctx.config = &config;
    ctx.request = &rq;
    ctx.server = nullptr;
    ctx.headers.clear();
    ctx.host.clear();
    ctx.request_host.clear();
    ctx.uri.clear();
    ctx.args.clear();
    ctx.request_uri.clear();
    ctx.ncaptures = ctx.nnamed = 0;
    ctx.proxy_host.clear();
    ctx.proxy_port.clear();
    ctx.map_depth = 0;
    host.clear();
  }
};

void route_impl(const config::snapshot& config, const request_info& rq, decision& d);

}  // namespace

decision route(const config::snapshot& config, const request_info& rq) {
  decision d;
  route_into(config, rq, d);
  return d;
}

void route_into(const config::snapshot& config, const request_info& rq, decision& d) {
  reset(d);
  route_impl(config, rq, d);
  if (d.what != action::proxy) d.upstream.headers.clear();
}

namespace {

void route_impl(const config::snapshot& config, const request_info& rq, decision& d) {
  thread_local scratch sc;
  sc.reset(config, rq);
  eval_context& ctx = sc.ctx;

  find_listen_group_into(config, rq.local_addr, rq.local_port, sc.group, rq.diagnostics);
  const listen_group& group = sc.group;
  if (!group.default_server) {
    d.what = action::respond;
    d.status = 0;
    d.server_reason = "no server listens on " + rq.local_addr + ":" + std::to_string(rq.local_port);
    return;
  }
  // Before Host is read nginx uses the default server's settings (merge_slashes, headers).
  const config::server& dflt = *group.default_server;
  const bool underscores = setting(dflt.underscores_in_headers, false);
  ctx.headers.reserve(rq.headers.size());
  for (const auto& h : rq.headers)
    if (valid_header_name(h.first, underscores)) ctx.headers.emplace_back(h.first, h.second);

  parsed_target& target = sc.target;
  parse_target_into(rq.target, setting(dflt.merge_slashes, true), target);
  d.server = &dflt;
  ctx.server = &dflt;
  if (!target.ok) return bad_request(d, "client sent invalid request: " + target.error);
  // Swapped: route() reads only target's host and flags from here on (the swap keeps both
  // sides' capacity for the next request).
  ctx.uri.swap(target.uri);
  ctx.args.swap(target.args);
  ctx.request_uri.swap(target.unparsed_uri);
  d.normalized_uri.assign(ctx.uri);

  // Host: the absolute-form target's, else the Host header (validated, lower-cased, no port).
  std::string& host = sc.host;
  host.assign(target.host);
  int host_headers = 0;
  for (const auto& [n, v] : ctx.headers)
    if (iequals(n, "Host")) ++host_headers;
  if (host_headers > 1) return bad_request(d, "client sent duplicate host header");
  if (host.empty()) {
    if (const auto* h = find_header(ctx.headers, "Host")) {
      if (!validate_host_into(*h, host)) return bad_request(d, "client sent invalid host header");
    } else if (rq.http_minor >= 1) {
      return bad_request(d, "client sent HTTP/1.1 request without \"Host\" header");
    }
  }
  if (find_header(ctx.headers, "Content-Length") && find_header(ctx.headers, "Transfer-Encoding"))
    return bad_request(d,
                       "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the "
                       "same time");

  const server_choice chosen = select_server(group, host, &ctx, rq.diagnostics);
  d.server = chosen.server;
  d.server_reason.assign(chosen.reason);
  ctx.server = chosen.server;
  const config::server& srv = *chosen.server;
  // $host is the request's host, or the server's first name when the request has none.
  ctx.request_host.assign(host);
  if (!host.empty())
    ctx.host.assign(host);
  else if (!srv.names.empty())
    ctx.host.assign(srv.names.front().name);

  if (const auto* up = find_header(ctx.headers, "Upgrade")) {
    const auto* conn = find_header(ctx.headers, "Connection");
    d.websocket = !up->empty() && conn && has_token(*conn, "upgrade");
  }

  uri_state st;
  st.quoted_uri = target.quoted_uri;
  st.plus_in_uri = target.plus_in_uri;
  auto finish = [&](const config::location& loc) {
    const auto& s = loc.settings;
    d.limits = {setting<config::duration>(s.proxy_connect_timeout, seconds(60)),
                setting<config::duration>(s.proxy_read_timeout, seconds(60)),
                setting<config::duration>(s.proxy_send_timeout, seconds(60))};
    d.normalized_uri.assign(ctx.uri);
  };

  const config::location* named = nullptr;
  if (!rq.named_location.empty()) {
    for (const auto& c : srv.root_location.children)
      if (c->kind == config::location::match_kind::named && c->pattern == rq.named_location) {
        named = c.get();
        break;
      }
    if (!named) {
      finish(srv.root_location);
      d.what = action::respond;
      d.status = 500;
      d.warnings.push_back({"named-location-missing",
                            "could not find named location \"@" + rq.named_location + "\"",
                            "define `location @" + rq.named_location +
                                " { ... }` in this server, or name an existing one",
                            {}});
      return;
    }
  }

  // Server-level rewrite and return run once, before any location is looked up (not again for
  // a named location).
  finish(srv.root_location);
  if (!named && run_script(srv.root_location, d, rq, ctx, st) == script_result::responded) {
    finish(srv.root_location);
    return;
  }

  int uri_changes = kMaxUriChanges;
  for (;;) {
    st.uri_changed = false;
    location_match m;
    if (named) {
      m.result = location_result::matched;
      m.loc = named;
      if (rq.diagnostics) m.candidates.push_back({named, "named location (error_page)"});
      named = nullptr;
    } else {
      m = find_location(srv.root_location, ctx, rq.diagnostics);
    }
    d.candidates.insert(d.candidates.end(), m.candidates.begin(), m.candidates.end());
    d.location = m.loc;
    const config::location& loc = m.loc ? *m.loc : srv.root_location;
    finish(loc);
    if (m.loc && rq.diagnostics) {
      auto lw = lint_location(config, srv, loc);
      d.warnings.insert(d.warnings.end(), lw.begin(), lw.end());
    }
    if (m.result == location_result::auto_redirect) {
      d.what = action::redirect;
      d.status = 301;
      d.location_header = escape(m.loc->pattern, escape_kind::uri);
      if (!ctx.args.empty()) d.location_header += "?" + ctx.args;
      absolutize(d, rq, ctx);
      return;
    }
    if (m.loc) {
      const script_result r = run_script(loc, d, rq, ctx, st);
      if (r == script_result::responded) return;
      if (st.uri_changed) {
        if (--uri_changes == 0) {
          d.what = action::respond;
          d.status = 500;
          d.warnings.push_back(
              {"rewrite-cycle",
               "rewrite or internal redirection cycle while processing \"" + ctx.uri + "\"",
               "make the rewrite rules stop (flag break, or a regex that the "
               "new URI no longer matches)",
               loc.where});
          return;
        }
        // The warnings of a location left behind by a rewrite do not apply.
        d.warnings.clear();
        if (rq.diagnostics)
          d.candidates.push_back({m.loc, "rewritten to \"" + ctx.uri + "\": searching again"});
        continue;
      }
    }
    // The access phase (allow/deny) comes after the rewrite phase: a `return` answers anyone.
    if (access_denied(loc.settings, rq.remote_addr)) {
      d.what = action::respond;
      d.status = 403;
      d.access_denied = true;
      return;
    }
    if (loc.status != config::location::status_page::none) {
      // A content handler as proxy_pass; on the server level it answers what no location
      // matched (ngx_http_stub_status sets the server's default handler too).
      d.what = action::status;
      d.status = 200;
      d.status_page = loc.status;
    } else if (m.loc && loc.proxy_pass) {
      build_upstream(d, loc, rq, ctx, st, underscores);
      if (d.what == action::proxy && d.upstream.via_upstream_block && config.http) {
        const auto u = config.http->upstreams.find(d.upstream.host);
        if (u != config.http->upstreams.end() && u->second.balancer == "hash")
          evaluate_into(u->second.hash_key, ctx, d.upstream.balance_key);
      }
    } else {
      d.what = action::not_found;
      d.status = 404;
    }
    return;
  }
}

}  // namespace

}  // namespace wsgate::routing
