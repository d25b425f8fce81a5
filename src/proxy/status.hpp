// The status pages: stub_status (nginx's counters in nginx's format, for the tools that parse it)
// and wsgate_status (every open WebSocket tunnel of every worker, with the counters, as JSON,
// Prometheus text or an HTML page).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/tunnel_registry.hpp"
#include "proxy/worker.hpp"

namespace wsgate::proxy {

// One worker's part, taken on its own thread.
struct worker_snapshot {
  int worker = 0;
  worker_counters::values counters;
  tunnel_registry::totals tunnels;
  struct open_tunnel {
    tunnel_stats stats;
    double idle_s = 0;  // since the last byte either way
  };
  std::vector<open_tunnel> open;
};

enum class status_format { json, prometheus, html };

// The format a status request asks for: ?format=json|prometheus|html, else from Accept (a
// Prometheus scraper's text/plain;version=0.0.4 or openmetrics, a browser's text/html), else JSON.
// nullopt when ?format= names something else.
std::optional<status_format> pick_status_format(std::string_view target, std::string_view accept);

// nginx's stub_status body, from every worker's counters (read without stopping them).
std::string stub_status_text(const worker_context& self);

// Every worker's snapshot; a worker that does not answer within a second is left out (its index
// in `missing`).
boost::asio::awaitable<std::vector<worker_snapshot>> collect_status(worker_context& self,
                                                                    std::vector<int>& missing);

// The body and its Content-Type; `rt` adds its upstream{} servers' state (may be null).
std::pair<std::string, std::string_view> format_status(
    const std::vector<worker_snapshot>& parts, const std::vector<int>& missing,
    std::chrono::system_clock::time_point started, status_format format, const runtime* rt);

}  // namespace wsgate::proxy
