// Status lines and the error pages wsgate writes itself, in nginx's exact shape.
#pragma once

#include <string>
#include <string_view>

namespace wsgate::http {

// The reason phrase nginx writes in its status line ("Moved Temporarily" for 302); empty for a
// code nginx has no phrase for (the status line is then "HTTP/1.1 418 ").
std::string_view reason_phrase(int status);

// nginx's built-in page for `status`, or an empty string when nginx has none (the response then
// has no body). `too_large_header` selects the 400 "Request Header Or Cookie Too Large" page.
// 497 is nginx's page for a plain HTTP request on a TLS port (sent with status 400).
// `signature` is "wsgate/VERSION" with server_tokens on, "wsgate" with it off.
std::string error_page(int status, std::string_view signature, bool too_large_header = false);

// The Server header value and page signature for a server_tokens setting.
std::string_view server_signature(bool server_tokens);

}  // namespace wsgate::http
