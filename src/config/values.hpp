// nginx's value syntaxes: times ("1h30m", "500ms", "60" = seconds) and sizes ("8k", "1m").
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "config/model.hpp"

namespace wsgate::config {

// ngx_parse_time for millisecond settings: units w d h m s ms in decreasing order, each at most
// once, blanks allowed after a unit; a bare number is seconds ("y" and "M" are refused here, as
// nginx refuses them for millisecond settings).
std::optional<duration> parse_duration(std::string_view text);
// ngx_parse_size: a number with an optional k/K, m/M or g/G suffix.
std::optional<size_t> parse_size(std::string_view text);
// A plain non-negative decimal number (ngx_atoi); nullopt on anything else.
std::optional<long long> parse_number(std::string_view text);

}  // namespace wsgate::config
