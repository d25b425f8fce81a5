#include "config/values.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace wsgate::config {

std::optional<long long> parse_number(std::string_view text) {
  if (text.empty()) return std::nullopt;
  long long v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
    if (v > std::numeric_limits<int32_t>::max()) return std::nullopt;
  }
  return v;
}

std::optional<size_t> parse_size(std::string_view text) {
  if (text.empty()) return std::nullopt;
  size_t scale = 1;
  char last = text.back();
  if (last == 'k' || last == 'K') scale = 1024;
  if (last == 'm' || last == 'M') scale = 1024 * 1024;
  if (last == 'g' || last == 'G') scale = 1024 * 1024 * 1024;
  if (scale != 1) text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  unsigned long long v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
    if (v > (1ull << 40)) return std::nullopt;
  }
  return static_cast<size_t>(v) * scale;
}

std::optional<duration> parse_duration(std::string_view text) {
  // Steps in the order units must appear, as ngx_parse_time. nginx 1.22 does not bound the
  // result; wsgate saturates at 2^40 ms (~35 years) instead of wrapping.
  enum step_t {
    st_start,
    st_year,
    st_month,
    st_week,
    st_day,
    st_hour,
    st_min,
    st_sec,
    st_msec,
    st_last
  };
  constexpr long long cap = 1LL << 40;
  step_t step = st_month;  // milliseconds settings: no years or months
  long long value = 0, total = 0;
  bool valid = false;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i++];
    if (c >= '0' && c <= '9') {
      value = std::min(cap, value * 10 + (c - '0'));
      valid = true;
      continue;
    }
    long long scale_ms = 0;
    switch (c) {
      case 'w':
        if (step >= st_week) return std::nullopt;
        step = st_week;
        scale_ms = 7LL * 24 * 3600 * 1000;
        break;
      case 'd':
        if (step >= st_day) return std::nullopt;
        step = st_day;
        scale_ms = 24LL * 3600 * 1000;
        break;
      case 'h':
        if (step >= st_hour) return std::nullopt;
        step = st_hour;
        scale_ms = 3600LL * 1000;
        break;
      case 'm':
        if (i < text.size() && text[i] == 's') {
          if (step >= st_msec) return std::nullopt;
          ++i;
          step = st_msec;
          scale_ms = 1;
          break;
        }
        if (step >= st_min) return std::nullopt;
        step = st_min;
        scale_ms = 60LL * 1000;
        break;
      case 's':
        if (step >= st_sec) return std::nullopt;
        step = st_sec;
        scale_ms = 1000;
        break;
      case ' ':
        if (step >= st_sec) return std::nullopt;
        step = st_last;
        scale_ms = 1000;
        break;
      default:
        return std::nullopt;
    }
    total = std::min(cap, total + std::min(cap, value * scale_ms));
    value = 0;
    while (i < text.size() && text[i] == ' ') ++i;  // "1h 30m" is allowed
  }
  if (!valid) return std::nullopt;
  return duration(std::min(cap, total + std::min(cap, value * 1000)));  // bare number = seconds
}

}  // namespace wsgate::config
