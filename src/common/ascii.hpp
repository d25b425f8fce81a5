// ASCII helpers for protocol text (header names, tokens, variable names): no locale, no
// allocation. Header-only and below every stage, so routing/ and http/ share one definition.
#pragma once

#include <cstddef>
#include <string_view>

namespace wsgate::ascii {

constexpr char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}

constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// True when the comma-separated list `value` holds `token` (case-insensitive), as nginx reads
// Connection, Upgrade and Transfer-Encoding.
constexpr bool has_token(std::string_view value, std::string_view token) {
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t end = value.find(',', pos);
    if (end == std::string_view::npos) end = value.size();
    std::string_view t = value.substr(pos, end - pos);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (iequals(t, token)) return true;
    pos = end + 1;
  }
  return false;
}

}  // namespace wsgate::ascii
