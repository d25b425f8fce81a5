// Request-target parsing and URI escaping, as nginx 1.22 does them (ngx_http_parse_request_line's
// target states, ngx_http_parse_complex_uri, ngx_http_validate_host, ngx_escape_uri).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wsgate::routing {

struct parsed_target {
  bool ok = false;
  std::string error;         // why the target is rejected (the request gets 400)
  std::string uri;           // $uri: decoded, dot segments resolved, slashes merged
  std::string args;          // $args: the raw query, without '?'
  bool has_args = false;     // a '?' was present (even with empty args)
  std::string unparsed_uri;  // $request_uri: path and query as received
  std::string host;          // host of an absolute-form target ("" otherwise), as written
  bool quoted_uri = false;   // the path held %XX escapes (nginx's r->quoted_uri)
  bool plus_in_uri = false;  // the path held '+' (nginx's r->plus_in_uri)
};

// Parses an origin-form ("/p?q") or absolute-form ("http://h:p/p?q") request-target.
parsed_target parse_target(std::string_view target, bool merge_slashes = true);
// The same into `out`, reusing its strings' capacity (no allocation once they are large enough).
void parse_target_into(std::string_view target, bool merge_slashes, parsed_target& out);

// Decodes and normalises a path as ngx_http_parse_complex_uri; nullopt when nginx answers 400
// (bad %XX, %00, "/.." above the root). Stops at '?' or '#' (the rest is not part of $uri).
std::optional<std::string> normalize_path(std::string_view path, bool merge_slashes,
                                          bool* quoted = nullptr);
// The same into `u` (cleared first, capacity kept); false where normalize_path gives nullopt.
bool normalize_path_into(std::string_view path, bool merge_slashes, std::string& u,
                         bool* quoted = nullptr);

enum class escape_kind {
  uri,   // NGX_ESCAPE_URI: space # % ? and control / non-ASCII bytes
  args,  // NGX_ESCAPE_ARGS: also & + ; (used for captures copied into arguments)
};
// Percent-encodes with upper-case hex, as ngx_escape_uri.
std::string escape(std::string_view s, escape_kind kind = escape_kind::uri);
// The same, appended to `out`.
void escape_into(std::string_view s, escape_kind kind, std::string& out);

// ngx_http_validate_host: lower-cases, strips the port and one trailing dot; nullopt when the
// host is invalid (nginx: "client sent invalid host header", 400).
std::optional<std::string> validate_host(std::string_view host);
// The same into `out` (replaced, capacity kept); false when the host is invalid.
bool validate_host_into(std::string_view host, std::string& out);

}  // namespace wsgate::routing
