// Helpers shared by the routing sources; not part of the routing contract.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "config/model.hpp"
#include "config/regex.hpp"

namespace wsgate::routing::detail {

// The regex compiled at load, or (for a model built by hand) compiled now; null when invalid.
std::shared_ptr<const config::regex> compiled(const std::shared_ptr<const config::regex>& re,
                                              std::string_view pattern, bool icase);

// Splits "text $var ${var}text" into template parts, as the loader does.
config::template_string make_template(std::string_view raw);

// True when some regex of the configuration defines the named capture `name`.
bool named_capture_defined(const config::snapshot& config, std::string_view name);

// Calls f(location&) for every location of every server, depth first in file order.
template <class F>
void for_each_location(const config::location& root, F&& f) {
  for (const auto& child : root.children) {
    f(*child);
    for_each_location(*child, f);
  }
}

// ASCII case-insensitive equality (header and variable names; no locale involved).
inline char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c;
}
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

}  // namespace wsgate::routing::detail
