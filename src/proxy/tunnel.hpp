// run_tunnel: after a confirmed 101, the client and upstream connections relay bytes both ways
// until both sides close (half-closes passed on) or the tunnel idles past proxy_read_timeout.
// An idle tunnel owns no buffer: it waits for readability and borrows a worker buffer to move
// what is there.
#pragma once

#include <memory>
#include <string>

#include "config/model.hpp"
#include "proxy/worker.hpp"

namespace wsgate::proxy {

struct tunnel_limits {
  config::duration idle;           // proxy_read_timeout: no byte either way for this long
  config::duration upstream_send;  // proxy_send_timeout: a write to the upstream stalls
  config::duration client_send;    // send_timeout: a write to the client stalls
};

// Takes both connections. `to_upstream` holds client bytes that arrived after the request
// head; upstream->in holds upstream bytes that arrived after the 101 head.
void start_tunnel(worker_context& w, tcp::socket client, std::unique_ptr<upstream_conn> upstream,
                  std::string to_upstream, tunnel_limits limits);

}  // namespace wsgate::proxy
