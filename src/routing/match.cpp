#include "routing/match.hpp"

#include <unistd.h>

#include "config/regex.hpp"
#include "routing/detail.hpp"

namespace wsgate::routing {

namespace {

bool is_wildcard(const config::listen_setting& l) {
  return l.addr.empty() || l.addr == "*" || l.addr == "0.0.0.0" || l.addr == "::" ||
         l.addr == "[::]";
}

std::string_view strip_brackets(std::string_view a) {
  if (a.size() >= 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  return a;
}

bool same_addr(const config::listen_setting& l, std::string_view local) {
  std::string_view a = strip_brackets(l.addr);
  if (a == "localhost") a = l.ipv6 ? "::1" : "127.0.0.1";
  return a == strip_brackets(local);
}

// nginx's implicit listen for a server without one: *:80 when run as root, *:8000 otherwise.
const config::listen_setting& implicit_listen() {
  static const config::listen_setting l = [] {
    config::listen_setting x;
    x.addr = "*";
    x.port = geteuid() == 0 ? 80 : 8000;
    return x;
  }();
  return l;
}

template <class F>
void for_each_listen(const config::server& s, F&& f) {
  if (s.listens.empty()) return f(implicit_listen());
  for (const auto& l : s.listens) f(l);
}

}  // namespace

void find_listen_group_into(const config::snapshot& config, std::string_view local_addr,
                            uint16_t local_port, listen_group& g, bool with_label) {
  g.servers.clear();
  g.default_server = nullptr;
  g.label.clear();
  g.default_marked = false;
  if (!config.http) return;
  const bool local_v6 = strip_brackets(local_addr).find(':') != std::string_view::npos;
  // A specific-address listen wins over *:port: the wildcard pass runs only when no server
  // listens on the address itself.
  for (const bool wildcard_pass : {false, true}) {
    for (const auto& s : config.http->servers) {
      bool in_group = false;
      for_each_listen(*s, [&](const config::listen_setting& l) {
        if (l.port != local_port || in_group) return;
        if (is_wildcard(l) != wildcard_pass) return;
        if (wildcard_pass) {
          const bool v6 = l.ipv6 || l.addr == "::" || l.addr == "[::]";
          if (v6 != local_v6) return;
        } else if (!same_addr(l, local_addr)) {
          return;
        }
        in_group = true;
        g.servers.push_back(s.get());
        if (l.default_server && !g.default_server) {
          g.default_server = s.get();
          g.default_marked = true;
        }
      });
    }
    if (!g.servers.empty()) {
      if (with_label) {
        const std::string port = std::to_string(local_port);
        if (!wildcard_pass)
          g.label = local_v6 ? "[" + std::string(strip_brackets(local_addr)) + "]:" + port
                             : std::string(local_addr) + ":" + port;
        else
          g.label = (local_v6 ? "[::]:" : "*:") + port;
      }
      break;
    }
  }
  if (with_label && g.servers.empty())
    g.label = (local_v6 ? "[::]:" : "*:") + std::to_string(local_port);
  if (!g.default_server && !g.servers.empty()) g.default_server = g.servers.front();
}

listen_group find_listen_group(const config::snapshot& config, std::string_view local_addr,
                               uint16_t local_port) {
  listen_group g;
  find_listen_group_into(config, local_addr, local_port, g, true);
  return g;
}

server_choice select_server(const listen_group& group, std::string_view host, eval_context* ctx,
                            bool explain) {
  using kind = config::server_name_entry::kind;
  if (group.servers.empty()) return {};
  // 1. exact name (the first server that lists it wins, as nginx warns on a conflict)
  for (const auto* s : group.servers)
    for (const auto& n : s->names)
      if (n.type == kind::exact && detail::iequals(n.name, host))
        return {s, explain ? "exact server_name \"" + n.name + "\"" : std::string()};
  if (!host.empty()) {
    // 2. the longest leading wildcard ("*.example.com", ".example.com")
    const config::server* best = nullptr;
    const config::server_name_entry* best_name = nullptr;
    size_t best_len = 0;
    for (const auto* s : group.servers)
      for (const auto& n : s->names) {
        if (n.type != kind::wildcard_front && !(n.type == kind::exact && n.name.starts_with(".")))
          continue;
        std::string_view suffix = n.name;  // ".example.com"
        if (suffix.starts_with("*")) suffix.remove_prefix(1);
        const bool hit = (host.size() > suffix.size() &&
                          detail::iequals(host.substr(host.size() - suffix.size()), suffix)) ||
                         (n.name.starts_with(".") && detail::iequals(host, suffix.substr(1)));
        if (hit && suffix.size() > best_len) best = s, best_name = &n, best_len = suffix.size();
      }
    if (best)
      return {best, explain ? "wildcard server_name \"" + best_name->name + "\"" : std::string()};
    // 3. the longest trailing wildcard ("www.example.*")
    for (const auto* s : group.servers)
      for (const auto& n : s->names) {
        if (n.type != kind::wildcard_back) continue;
        std::string_view prefix = n.name;
        prefix.remove_suffix(1);  // "www.example."
        if (host.size() > prefix.size() && detail::iequals(host.substr(0, prefix.size()), prefix) &&
            prefix.size() > best_len)
          best = s, best_name = &n, best_len = prefix.size();
      }
    if (best)
      return {best, explain ? "wildcard server_name \"" + best_name->name + "\"" : std::string()};
    // 4. regular expressions, in the order they appear
    for (const auto* s : group.servers)
      for (const auto& n : s->names) {
        if (n.type != kind::regex) continue;
        auto re = detail::compiled(n.compiled, n.name, false);
        if (re && re->match(host)) {
          if (ctx) set_captures(*ctx, *re, host);
          return {s, explain ? "regex server_name \"~" + n.name + "\"" : std::string()};
        }
      }
  }
  if (!explain) return {group.default_server, {}};
  std::string why =
      host.empty() ? "no Host" : "no server_name matches \"" + std::string(host) + "\"";
  if (group.default_marked)
    return {group.default_server, "default_server for " + group.label + " (" + why + ")"};
  return {group.default_server, "first server for " + group.label + ", the default (" + why + ")"};
}

const char* kind_name(config::location::match_kind kind) {
  using k = config::location::match_kind;
  switch (kind) {
    case k::prefix:
      return "prefix";
    case k::exact:
      return "exact";
    case k::prefix_no_regex:
      return "prefix_no_regex";
    case k::regex:
      return "regex";
    case k::regex_icase:
      return "regex_icase";
    case k::named:
      return "named";
  }
  return "prefix";
}

std::string describe(const config::location& loc) {
  using k = config::location::match_kind;
  switch (loc.kind) {
    case k::prefix:
      return "location " + loc.pattern;
    case k::exact:
      return "location = " + loc.pattern;
    case k::prefix_no_regex:
      return "location ^~ " + loc.pattern;
    case k::regex:
      return "location ~ " + loc.pattern;
    case k::regex_icase:
      return "location ~* " + loc.pattern;
    case k::named:
      return "location @" + loc.pattern;
  }
  return "location " + loc.pattern;
}

namespace {

using k = config::location::match_kind;

enum class rc { ok, done, again, declined };

bool is_static(const config::location& l) {
  return l.kind == k::prefix || l.kind == k::exact || l.kind == k::prefix_no_regex;
}
bool is_regex(const config::location& l) {
  return l.kind == k::regex || l.kind == k::regex_icase;
}

// nginx sets auto_redirect on a location whose name ends in '/' and which has proxy_pass.
bool auto_redirect(const config::location& l) {
  return l.proxy_pass.has_value() && !l.pattern.empty() && l.pattern.back() == '/';
}

// ngx_http_core_find_static_location, over one level's exact and prefix locations.
rc find_static(const config::location& parent, std::string_view uri, const config::location*& loc,
               std::vector<candidate>* cands) {
  const config::location* exact = nullptr;
  const config::location* longest = nullptr;
  const config::location* redirect = nullptr;
  for (const auto& c : parent.children) {
    if (!is_static(*c)) continue;
    if (c->kind == k::exact) {
      if (c->pattern == uri) exact = c.get();
    } else if (uri.starts_with(c->pattern) &&
               (!longest || c->pattern.size() > longest->pattern.size())) {
      longest = c.get();
    }
    if (auto_redirect(*c) && c->pattern.size() == uri.size() + 1 && c->pattern.starts_with(uri))
      redirect = c.get();
  }
  // A prefix location equal to the URI is reached before "uri/" in nginx's tree and wins.
  const bool prefix_equal = longest && longest->pattern.size() == uri.size();
  for (const auto& c : parent.children) {
    if (!cands || !is_static(*c)) continue;
    std::string result;
    if (c.get() == exact) {
      result = "exact match";
    } else if (c->kind == k::exact) {
      result = redirect == c.get() && !exact && !prefix_equal
                   ? "auto redirect: URI lacks the trailing '/'"
                   : "exact: does not equal the URI";
    } else if (exact) {
      result = uri.starts_with(c->pattern) ? "prefix matches; an exact match wins"
                                           : "prefix does not match";
    } else if (c.get() == redirect && !prefix_equal) {
      result = "auto redirect: URI lacks the trailing '/' (301)";
    } else if (c.get() == longest) {
      result = "longest prefix";
    } else if (uri.starts_with(c->pattern)) {
      result = "shorter prefix";
    } else {
      result = "prefix does not match";
    }
    cands->push_back({c.get(), std::move(result)});
  }
  if (exact) {
    loc = exact;
    return rc::ok;
  }
  if (redirect && !prefix_equal) {
    loc = redirect;
    return rc::done;
  }
  if (longest) {
    loc = longest;
    return rc::again;
  }
  return rc::declined;
}

rc find(const config::location& parent, eval_context& ctx, const config::location*& loc,
        std::vector<candidate>* cands) {
  bool noregex = false;
  rc r = find_static(parent, ctx.uri, loc, cands);
  if (r == rc::again) {
    noregex = loc->kind == k::prefix_no_regex;
    const config::location* prefix = loc;
    r = find(*prefix, ctx, loc, cands);  // nested locations of the longest prefix
  }
  if (r == rc::ok || r == rc::done) return r;
  bool matched = false;
  auto note = [cands](const config::location* l, const char* why) {
    if (cands) cands->push_back({l, why});
  };
  for (const auto& c : parent.children) {
    if (!is_regex(*c)) continue;
    if (noregex) {
      note(c.get(), "skipped: the longest prefix is ^~");
      continue;
    }
    if (matched) {
      if (!cands) break;
      note(c.get(), "not tried: an earlier regex matched");
      continue;
    }
    auto re = detail::compiled(c->compiled, c->pattern, c->kind == k::regex_icase);
    if (re && re->match(ctx.uri)) {
      set_captures(ctx, *re, ctx.uri);
      note(c.get(), "regex matched");
      matched = true;
      loc = c.get();
      const config::location* outer = loc;
      find(*outer, ctx, loc, cands);  // nested locations of the regex location
    } else {
      note(c.get(), re ? "regex did not match" : "regex failed to compile");
    }
  }
  return matched ? rc::ok : r;
}

}  // namespace

location_match find_location(const config::location& root, eval_context& ctx, bool record) {
  location_match m;
  const config::location* loc = nullptr;
  const rc r = find(root, ctx, loc, record ? &m.candidates : nullptr);
  m.loc = loc;
  if (r == rc::done)
    m.result = location_result::auto_redirect;
  else if (loc)
    m.result = location_result::matched;
  return m;
}

}  // namespace wsgate::routing
