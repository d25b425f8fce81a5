// run_tunnel: after a confirmed 101, the client and upstream connections relay bytes both ways
// until both sides close (half-closes passed on) or the tunnel idles past proxy_read_timeout.
// An idle tunnel owns no buffer: it waits for readability and borrows a worker buffer to move
// what is there.
//
// A WebSocket tunnel also follows frame boundaries (proxy/ws_frames.hpp), which lets wsgate put
// frames of its own between the peers' frames: keepalive pings (websocket_keepalive) whose
// pongs it swallows, and Close 1001 to both peers on QUIT.
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
  // websocket_keepalive: ping a peer silent this long, and measure proxy_read_timeout from what
  // each peer last sent (its pong included); zero: off, nginx's timer.
  config::duration keepalive = config::duration::zero();
  bool websocket = false;  // the upgrade is WebSocket: frames are tracked
};

// Takes both connections. `to_upstream` holds client bytes that arrived after the request
// head; upstream->in holds upstream bytes that arrived after the 101 head. `client_text` is the
// client's "address:port" ("" to ask the socket). A TLS client comes with `tls` (on `client`),
// an https upstream with upstream->tls; either relays through Asio, OpenSSL reading and writing.
void start_tunnel(worker_context& w, tcp::socket client, std::unique_ptr<upstream_conn> upstream,
                  std::string to_upstream, tunnel_limits limits, std::string client_text = {},
                  tls_connection_ptr tls = nullptr);

// QUIT: every open tunnel of this worker sends Close 1001 (going away) to both peers as soon as
// each stream is between frames, and closes once both answered or `wait` passed.
void quit_tunnels(worker_context& w, config::duration wait);

}  // namespace wsgate::proxy
