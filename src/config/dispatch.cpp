// Applying one statement: find the directive, check where it is and how many arguments it has
// (ngx_conf_handler's order of checks and wording), then run its handler.
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "config/parser.hpp"
#include "config/regex.hpp"

namespace wsgate::config {
namespace {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// nginx directives wsgate knows but does not implement, with what to write instead.
const std::map<std::string_view, std::string_view>& unsupported() {
  static const std::map<std::string_view, std::string_view> m = {
      {"if", "wsgate does not support `if`: choose values with `map` and use the variable"},
      {"set", "wsgate does not support `set`: define the variable with `map`"},
      {"limit_except", "wsgate does not support `limit_except`"},
      {"fastcgi_pass", "wsgate proxies HTTP only: use proxy_pass http://..."},
      {"uwsgi_pass", "wsgate proxies HTTP only: use proxy_pass http://..."},
      {"grpc_pass", "wsgate proxies HTTP/1.1 only: use proxy_pass http://..."},
      {"scgi_pass", "wsgate proxies HTTP only: use proxy_pass http://..."},
      {"stream", "wsgate proxies HTTP only; a TCP stream block is not supported"},
      {"mail", "wsgate proxies HTTP only; a mail block is not supported"},
      {"alias", "wsgate does not serve files: proxy to a file server instead"},
      {"try_files", "wsgate does not serve files: proxy to a file server instead"},
      {"proxy_cache", "wsgate does not cache responses"},
      {"proxy_cache_path", "wsgate does not cache responses"},
      {"limit_req", "wsgate has no request rate limiting yet"},
      {"limit_req_zone", "wsgate has no request rate limiting yet"},
      {"limit_conn", "wsgate has no connection limiting yet"},
      {"limit_conn_zone", "wsgate has no connection limiting yet"},
      {"auth_basic", "wsgate has no basic authentication yet"},
      {"ssl", "write `listen PORT ssl;` instead of `ssl on;`"},
  };
  return m;
}

std::string unknown_hint(std::string_view name) {
  auto u = unsupported().find(name);
  if (u != unsupported().end()) return std::string(u->second);
  std::string_view best;
  size_t best_d = 100;
  for (const auto& d : directive_table()) {
    size_t e = edit_distance(name, d.name);
    if (e < best_d) {
      best_d = e;
      best = d.name;
    }
  }
  if (best_d <= std::max<size_t>(2, name.size() / 4))
    return fmt::format("did you mean \"{}\"?", best);
  return "remove it, or see README's directive list for what wsgate reads";
}

std::string context_name(context_flag c) {
  switch (c) {
    case ctx_main:
      return "the main level";
    case ctx_events:
      return "events";
    case ctx_http:
      return "http";
    case ctx_server:
      return "server";
    case ctx_location:
      return "location";
    case ctx_upstream:
      return "upstream";
    case ctx_map:
      return "map";
  }
  return "?";
}

bool arity_ok(unsigned arity, size_t args) {
  if (arity & take_any) return true;
  if (arity & take_1more) return args >= 1;
  if (arity & take_2more) return args >= 2;
  if (args > 7) return false;
  return (arity & (1u << args)) != 0;
}

}  // namespace

void dispatch(parse_state& st, const statement& s, context_flag ctx) {
  const std::string& name = s.words[0].text;
  const directive_spec* found = nullptr;
  const directive_spec* named = nullptr;
  for (const auto& d : directive_table()) {
    if (d.name != name) continue;
    if (!named) named = &d;
    if (d.contexts & ctx) {
      found = &d;
      break;
    }
  }
  if (!found) {
    if (named) {
      unsigned all = 0;
      for (const auto& d : directive_table())
        if (d.name == name) all |= d.contexts;
      st.fail(s.line, fmt::format("\"{}\" directive is not allowed here", name),
              fmt::format("\"{}\" belongs in {}, not in {}", name, describe_contexts(all),
                          context_name(ctx)));
    }
    st.fail(s.line, fmt::format("unknown directive \"{}\"", name), unknown_hint(name));
  }
  bool block = s.ends == statement::end::block_start;
  std::string usage = found->syntax.empty() ? std::string(name) : std::string(found->syntax);
  if (!(found->arity & is_block) && block)
    st.fail(s.line, fmt::format("directive \"{}\" is not terminated by \";\"", name),
            fmt::format("\"{}\" takes no block: write `{};`", name, usage));
  if ((found->arity & is_block) && !block)
    st.fail(s.line, fmt::format("directive \"{}\" has no opening \"{{\"", name),
            fmt::format("write `{}`", usage));
  if (!arity_ok(found->arity, s.words.size() - 1))
    st.fail(s.line, fmt::format("invalid number of arguments in \"{}\" directive", name),
            fmt::format("write `{}{}`", usage, block ? "" : ";"));
  try {
    found->handler(st, s);
  } catch (load_failure& f) {
    // A handler that has nothing better to say points at the directive's syntax.
    if (f.error.hint.empty() && !found->syntax.empty() && !(found->arity & is_block))
      f.error.hint = fmt::format("the syntax is `{};`", found->syntax);
    throw;
  }
}

void map_line(parse_state& st, const statement& s) {
  map_block& m = *st.top().map;
  if (s.ends == statement::end::block_start)
    st.fail(s.line, "unexpected \"{\"", "a map holds `KEY VALUE;` lines, not blocks");
  const auto& w = s.words;
  if (w.size() == 1 && w[0].text == "hostnames") {
    m.hostnames = true;
    return;
  }
  if (w.size() == 1 && w[0].text == "volatile") return;
  if (w.size() != 2)
    st.fail(s.line, "invalid number of the map parameters",
            "each map line is `KEY VALUE;` (quote a value with spaces)");
  if (w[0].text == "include") {
    st.include(w[1].text, s.line, ctx_map);
    return;
  }
  if (w[0].text == "default" && !w[0].quoted) {
    if (m.default_value)
      st.fail(s.line, "duplicate default map parameter", "keep one `default` line");
    m.default_value = st.tmpl(w[1].text, s.line);
    return;
  }
  map_block::entry e;
  e.value = st.tmpl(w[1].text, s.line);
  std::string key = w[0].text;
  if (key.size() > 1 && key[0] == '~') {
    e.is_regex = true;
    e.icase = key[1] == '*';
    e.key = key.substr(e.icase ? 2 : 1);
    auto r = regex::compile(e.key, e.icase);
    if (!r.re) st.fail(s.line, r.error, "check the regular expression's brackets and escapes");
    e.compiled = r.re;
  } else {
    if (!key.empty() && key[0] == '\\') key = key.substr(1);  // "\default" = the key "default"
    // nginx matches map keys without regard to case: keys are stored lower-cased.
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    e.key = key;
    for (const auto& other : m.entries)
      if (!other.is_regex && other.key == e.key)
        st.fail(s.line, fmt::format("conflicting parameter \"{}\"", e.key),
                "this key is already in the map: keep one line for it");
  }
  m.entries.push_back(std::move(e));
}

}  // namespace wsgate::config
