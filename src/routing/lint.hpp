// Lint: the WebSocket and proxy_pass pitfalls of a configuration, each with a stable id, what is
// wrong, the fix, and where. `wsgate -t` prints them; `wsgate explain` shows those that apply to
// the request's location.
//
// Rules (ids are stable; tests and docs refer to them):
//   ws-upgrade-not-forwarded    a location that receives WebSocket handshakes does not send
//                               Upgrade/Connection upstream, or speaks HTTP/1.0 to it
//   connection-upgrade-literal  Connection "upgrade" set literally where plain requests also pass
//   ws-read-timeout             proxy_read_timeout <= 60s where WebSockets pass
//   proxy-pass-slash-mismatch   the URI part of proxy_pass and the location disagree on the
//                               trailing '/'
//   proxy-set-header-dropped    an inner proxy_set_header list silently drops the outer ones
//   ws-trailing-slash-only      a WebSocket location "/ws/" answers "/ws" with a 301
//   unknown-variable            a $variable nginx does not know (nginx refuses to load)
//   busy-polling-oversubscribed busy_polling on with more workers than online CPUs: polling
//                               workers take each other's CPU time
//   connection-upgrade-dropped  (notice) wsgate drops a Connection: upgrade sent without Upgrade
//   proxy-pass-uri-redundant    (notice) the proxy_pass URI part equals the location prefix, so
//                               it changes nothing (the seed report's supposed fix)
//
// "Receives WebSocket handshakes" (ws_location() below) means any of: the location sets
// proxy_set_header Upgrade, its path or proxy_pass URI has a segment mentioning ws / wss /
// websocket / socket / socket.io, or its proxy_read_timeout exceeds 5 minutes (only long-lived
// connections need that).
#pragma once

#include <vector>

#include "config/model.hpp"
#include "routing/route.hpp"

namespace wsgate::routing {

// Every warning of the configuration, in file order. Notices have ids ending in "-notice" or
// severity text starting with "notice:"; see is_notice().
std::vector<warning> lint(const config::snapshot& config);

// The warnings that concern one location (its own and its server's), for explain.
std::vector<warning> lint_location(const config::snapshot& config, const config::server& server,
                                   const config::location& loc);

// True for informational findings that `-t` prints as [notice], not [warn].
bool is_notice(const warning& w);

// The heuristic above, exposed for tests.
bool ws_location(const config::location& loc);

}  // namespace wsgate::routing
