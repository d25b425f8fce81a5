// Small ASCII helpers shared by the HTTP parsers and writers (no locale, no allocation).
#pragma once

#include <cstddef>
#include <string_view>

#include "common/ascii.hpp"

namespace wsgate::http {

constexpr bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
constexpr bool is_alpha(char c) {
  return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}
using ascii::has_token;
using ascii::iequals;
using ascii::lower;

}  // namespace wsgate::http
