#include "routing/detail.hpp"

#include <cctype>

namespace wsgate::routing::detail {

std::shared_ptr<const config::regex> compiled(const std::shared_ptr<const config::regex>& re,
                                              std::string_view pattern, bool icase) {
  if (re) return re;
  return config::regex::compile(pattern, icase).re;
}

config::template_string make_template(std::string_view raw) {
  config::template_string t;
  t.raw = std::string(raw);
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) t.parts.push_back({false, literal});
    literal.clear();
  };
  for (size_t i = 0; i < raw.size();) {
    if (raw[i] != '$' || i + 1 >= raw.size()) {
      literal += raw[i++];
      continue;
    }
    if (raw[i + 1] == '{') {
      const size_t end = raw.find('}', i + 2);
      if (end == std::string_view::npos) {
        literal += raw.substr(i);
        break;
      }
      flush();
      t.parts.push_back({true, std::string(raw.substr(i + 2, end - i - 2))});
      i = end + 1;
      continue;
    }
    size_t j = i + 1;
    // $1..$9 is a single digit, as nginx reads "$10" as $1 followed by "0".
    if (std::isdigit(static_cast<unsigned char>(raw[j]))) {
      ++j;
    } else {
      while (j < raw.size() && (std::isalnum(static_cast<unsigned char>(raw[j])) || raw[j] == '_'))
        ++j;
    }
    if (j == i + 1) {
      literal += raw[i++];
      continue;
    }
    flush();
    t.parts.push_back({true, std::string(raw.substr(i + 1, j - i - 1))});
    i = j;
  }
  flush();
  return t;
}

namespace {
bool has_name(const std::shared_ptr<const config::regex>& re, std::string_view pattern, bool icase,
              std::string_view name) {
  auto r = compiled(re, pattern, icase);
  if (!r) return false;
  for (const auto& [n, group] : r->names())
    if (n == name) return true;
  return false;
}
}  // namespace

bool named_capture_defined(const config::snapshot& config, std::string_view name) {
  if (!config.http) return false;
  using k = config::location::match_kind;
  for (const auto& m : config.http->maps)
    for (const auto& e : m.entries)
      if (e.is_regex && has_name(e.compiled, e.key, e.icase, name)) return true;
  for (const auto& s : config.http->servers) {
    for (const auto& n : s->names)
      if (n.type == config::server_name_entry::kind::regex &&
          has_name(n.compiled, n.name, false, name))
        return true;
    bool found = false;
    auto visit = [&](const config::location& l) {
      if ((l.kind == k::regex || l.kind == k::regex_icase) &&
          has_name(l.compiled, l.pattern, l.kind == k::regex_icase, name))
        found = true;
      for (const auto& r : l.rewrites)
        if (has_name(r.compiled, r.regex, false, name)) found = true;
    };
    visit(s->root_location);
    for_each_location(s->root_location, visit);
    if (found) return true;
  }
  return false;
}

}  // namespace wsgate::routing::detail
