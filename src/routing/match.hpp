// The two lookups of routing, exposed for tests and tools: server selection (listen address,
// then server_name) and location matching (nginx's ngx_http_core_find_location).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"
#include "routing/route.hpp"
#include "routing/variables.hpp"

namespace wsgate::routing {

// The servers listening on local addr:port (a specific-address listen wins over *:port) and
// the default among them.
struct listen_group {
  std::vector<const config::server*> servers;
  const config::server* default_server = nullptr;
  std::string label;  // "127.0.0.1:8080" or "*:80", for reasons
  bool default_marked = false;
};
listen_group find_listen_group(const config::snapshot& config, std::string_view local_addr,
                               uint16_t local_port);
// The same into `g`, reusing its vector; the label (for reasons) only when with_label is set.
void find_listen_group_into(const config::snapshot& config, std::string_view local_addr,
                            uint16_t local_port, listen_group& g, bool with_label);

struct server_choice {
  const config::server* server = nullptr;
  std::string reason;
};
// Picks by server_name among the group (host already validated and lower-cased; "" when the
// request has none). Regex names that match record their captures in ctx when given.
// With explain false the reason is left empty (the data path never prints it).
server_choice select_server(const listen_group& group, std::string_view host,
                            eval_context* ctx = nullptr, bool explain = true);

enum class location_result {
  matched,        // a location (exact, prefix or regex) answers
  auto_redirect,  // nginx's 301 to the location name with '/' appended
  none,           // no location matched: the server level answers
};
struct location_match {
  location_result result = location_result::none;
  const config::location* loc = nullptr;
  std::vector<candidate> candidates;
};
// Matches ctx.uri among root's nested locations; regex captures go to ctx. Candidates are
// recorded only when `record` is set.
location_match find_location(const config::location& root, eval_context& ctx, bool record = true);

// The "kind" names used by explain's output: prefix, exact, prefix_no_regex, regex, ...
const char* kind_name(config::location::match_kind kind);
// How a location reads in nginx syntax: "location ^~ /x", "location @name".
std::string describe(const config::location& loc);

}  // namespace wsgate::routing
