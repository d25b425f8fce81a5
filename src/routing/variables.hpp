// nginx variables ($host, $http_NAME, $uri, map results, $1..$9, ...) evaluated for one request.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "routing/route.hpp"

namespace wsgate::routing {

// The per-request state variables read. route() fills it as routing proceeds (the URI changes
// with rewrites, captures with each matching regex, $proxy_host once proxy_pass is known).
struct eval_context {
  const config::snapshot* config = nullptr;
  const request_info* request = nullptr;
  const config::server* server = nullptr;
  // The client's headers nginx keeps (invalid names dropped): views into request_info.
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string host;          // $host
  std::string request_host;  // the request's own host (target or Host header), "" if none
  std::string uri;           // $uri (decoded, current)
  std::string args;          // $args
  std::string request_uri;   // $request_uri (as received)
  // $0..$N of the last regex that matched, and its (?<name>...) groups: the first ncaptures and
  // nnamed entries are in use; the rest keep their capacity for the next request.
  std::vector<std::string> captures;
  std::vector<std::pair<std::string, std::string>> named_captures;
  size_t ncaptures = 0, nnamed = 0;
  std::string proxy_host, proxy_port;  // $proxy_host, $proxy_port ("" before proxy_pass)
  int map_depth = 0;                   // guards a map whose value refers to itself
};

// The value of $name, or nullopt when the variable is not found (nginx: "not found" = empty).
std::optional<std::string> variable(std::string_view name, eval_context& ctx);

// A template evaluated: literals copied, variables substituted (unknown or missing: empty).
std::string evaluate(const config::template_string& t, eval_context& ctx);

// The same appended to `out`. The variables the data path reads per request ($host,
// $remote_addr, $scheme, $http_*, $arg_*, $proxy_add_x_forwarded_for, $uri, map results,
// captures, ...) are copied straight into `out`, so a reused `out` makes no allocation; the
// others go through variable().
void evaluate_into(const config::template_string& t, eval_context& ctx, std::string& out);
// variable() appended to `out`; false when not found (nothing appended).
bool append_variable(std::string_view name, eval_context& ctx, std::string& out);

// True when nginx knows $name for this configuration (built-in, a prefix family such as
// $http_*, a map result, a named capture, or $0..$9). Unknown names fail nginx's load with
// `unknown "name" variable`.
bool is_known_variable(std::string_view name, const config::snapshot& config);

// Records the captures of a successful regex match as nginx does for $1..$9 and named groups.
void set_captures(eval_context& ctx, const config::regex& re, std::string_view subject);

// ngx_http_arg: the raw value of the first "name=" argument (case-insensitive name).
std::optional<std::string> find_arg(std::string_view args, std::string_view name);

// Evaluates map $source $result (exact, hostnames wildcards, regex in order, default).
std::string evaluate_map(const config::map_block& map, eval_context& ctx);
// The same appended to `out`; the key is built in per-thread scratch (no allocation once warm).
void evaluate_map_into(const config::map_block& map, eval_context& ctx, std::string& out);

}  // namespace wsgate::routing
