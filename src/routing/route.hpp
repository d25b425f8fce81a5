// Routing: for one request, which server and location answer it and what the upstream receives.
// No I/O: the data path calls route() per request and carries out the decision; `wsgate
// explain` prints the same decision.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/model.hpp"

namespace wsgate::routing {

using header_list = std::vector<std::pair<std::string, std::string>>;

// The parts of a client request routing reads. Headers keep client order and case.
struct request_info {
  std::string method = "GET";
  std::string target;  // request-target as received: origin-form or absolute-form
  int http_minor = 1;  // HTTP/1.x
  header_list headers;
  std::string remote_addr = "127.0.0.1";
  uint16_t remote_port = 0;
  std::string local_addr = "127.0.0.1";
  uint16_t local_port = 80;
  bool tls = false;
  // Set (name without '@') when error_page sends the request to a named location: the server's
  // rewrites are not run again and that location answers first, the URI unchanged (nginx's
  // ngx_http_named_location).
  std::string named_location;
  // Fill decision::candidates, server_reason and the lint warnings of the chosen location
  // (explain, tests).
  // The data path may turn this off: it costs string work per request and changes no action.
  bool diagnostics = true;
};

// One location considered while matching, in the order nginx considers them.
struct candidate {
  const config::location* loc = nullptr;
  std::string result;  // "exact match", "longest prefix", "shorter prefix", "regex matched",
                       // "regex did not match", "skipped: ^~ prefix won", ...
};

struct timeouts {
  config::duration connect, read, send;
};

struct upstream_request {
  std::string scheme;  // http | https
  std::string host;    // upstream{} name or host
  uint16_t port = 0;   // 0 for an upstream{} name
  bool via_upstream_block = false;
  std::string method;
  std::string uri;      // exactly what goes in the request line
  std::string version;  // "HTTP/1.0" or "HTTP/1.1"
  header_list headers;  // exactly what is sent, in order
  bool pass_body = true;
  // A chunked client body that nginx buffers before sending: insert "Content-Length: <size of
  // the body>" at this index of `headers` once the body is read (-1: nothing to insert).
  int pending_content_length_at = -1;
  // upstream{} with `hash KEY`: the key evaluated for this request.
  std::string balance_key;
  // https: proxy_ssl_name evaluated ($proxy_host by default), without a port.
  std::string ssl_name;
};

// What the data path must do with the request.
enum class action {
  proxy,      // send `upstream` and relay the response
  respond,    // answer `status` with `body` (return CODE TEXT, or an error page)
  redirect,   // answer `status` with Location: `location_header`
  not_found,  // no handler: nginx would serve static files; wsgate answers 404
  status,     // stub_status / wsgate_status: the worker's counters and tunnels (`status_page`)
};

struct warning {
  std::string id;    // stable lint rule id, e.g. "ws-upgrade-not-forwarded"
  std::string text;  // what is wrong, for this request
  std::string fix;   // what to write instead
  config::source_loc where;
};

struct decision {
  const config::server* server = nullptr;
  std::string server_reason;  // "default_server for 0.0.0.0:80", "exact server_name", ...
  const config::location* location = nullptr;
  std::vector<candidate> candidates;
  std::string normalized_uri;  // $uri after decoding, dot resolution, merge_slashes, rewrites

  action what = action::not_found;
  config::location::status_page status_page = config::location::status_page::none;
  bool access_denied = false;  // the 403 comes from allow/deny (logged as nginx does)
  int status = 0;
  std::string body;
  std::string location_header;
  upstream_request upstream;  // when what == proxy
  timeouts limits{};
  bool websocket = false;  // the request asks for an upgrade (Upgrade + Connection: upgrade)
  std::vector<warning> warnings;
};

decision route(const config::snapshot& config, const request_info& request);

// The same decision written into `d`, reusing the capacity of its strings and vectors: the data
// path keeps one decision per connection, and a warm one makes no heap allocation for the
// common requests (proxy_pass with or without a URI part, return, the seed's configs) when
// request.diagnostics is off.
void route_into(const config::snapshot& config, const request_info& request, decision& d);

// `d` as a fresh decision reads (no server, location or action), its strings and vectors
// emptied but their capacity kept. The upstream header list keeps its entries for route_into to
// write over: read it only after route_into.
void reset(decision& d);

}  // namespace wsgate::routing
