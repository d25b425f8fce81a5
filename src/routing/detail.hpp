// Helpers shared by the routing sources; not part of the routing contract.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/ascii.hpp"
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
using ascii::iequals;
constexpr char ascii_lower(char c) {
  return ascii::lower(c);
}

}  // namespace wsgate::routing::detail
