// Numeric IP addresses as text ("127.0.0.1", "::1", "[::1]") to their bytes.
#pragma once

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>
#include <string_view>

namespace wsgate::ip {

// AF_INET (4 bytes written to `out`), AF_INET6 (16 bytes) or 0 when `text` is not a numeric
// address. Brackets around an IPv6 address are allowed.
inline int parse(std::string_view text, unsigned char (&out)[16]) {
  if (text.size() > 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buf) return 0;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (::inet_pton(AF_INET, buf, out) == 1) return AF_INET;
  if (::inet_pton(AF_INET6, buf, out) == 1) return AF_INET6;
  return 0;
}

}  // namespace wsgate::ip
