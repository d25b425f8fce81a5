#include "proxy/status.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/ascii.hpp"
#include "routing/variables.hpp"

namespace wsgate::proxy {

namespace {

namespace asio = boost::asio;
using json = nlohmann::json;

bool contains_icase(std::string_view s, std::string_view part) {
  if (part.size() > s.size()) return false;
  for (size_t i = 0; i + part.size() <= s.size(); ++i)
    if (ascii::iequals(s.substr(i, part.size()), part)) return true;
  return false;
}

worker_snapshot take_snapshot(const worker_context& w) {
  worker_snapshot s;
  s.worker = w.index;
  s.counters = w.counters.read();
  s.tunnels = w.tunnels.get_totals();
  const auto now = std::chrono::steady_clock::now();
  for (const tunnel_handle* t : w.tunnels.open_tunnels())
    s.open.push_back({t->stats, std::chrono::duration<double>(now - t->active_at()).count()});
  return s;
}

struct sums : worker_counters::values {
  uint64_t opened = 0, open = 0;
  uint64_t bytes[2] = {0, 0}, frames[2] = {0, 0};
  std::map<std::string, uint64_t> closed_by_reason;
};

sums add_up(const std::vector<worker_snapshot>& parts) {
  sums t;
  for (const auto& p : parts) {
    t += p.counters;
    t.opened += p.tunnels.opened;
    t.open += p.tunnels.open;
    for (const auto& [why, n] : p.tunnels.closed_by_reason) t.closed_by_reason[why] += n;
    for (int d = 0; d < 2; ++d) {
      t.bytes[d] += p.tunnels.closed_bytes[d];
      t.frames[d] += p.tunnels.closed_frames[d];
      for (const auto& o : p.open) {
        t.bytes[d] += o.stats.bytes[d];
        t.frames[d] += o.stats.frames[d];
      }
    }
  }
  return t;
}

// The upstream{} blocks' servers as they stand, by upstream name (proxy_pass host:port groups
// have one server, never taken out: left out).
std::vector<std::pair<std::string, std::vector<peer_group::peer_view>>> upstream_views(
    const runtime* rt) {
  std::vector<std::pair<std::string, std::vector<peer_group::peer_view>>> out;
  if (!rt || !rt->config || !rt->config->http) return out;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [name, up] : rt->config->http->upstreams)
    if (const peer_group* g = rt->find(name)) out.emplace_back(name, g->view(now));
  return out;
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double seconds_since(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::system_clock::now() - t).count();
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Prometheus label values: backslash, double quote and newline escaped.
std::string label_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string to_json(const std::vector<worker_snapshot>& parts, const std::vector<int>& missing,
                    std::chrono::system_clock::time_point started, const runtime* rt) {
  const sums t = add_up(parts);
  json tunnels = json::array();
  for (const auto& p : parts)
    for (const auto& o : p.open) {
      const auto& s = o.stats;
      tunnels.push_back({{"id", s.id},
                         {"worker", p.worker},
                         {"client", s.client},
                         {"upstream", s.upstream},
                         {"started", iso_time(s.started)},
                         {"age_s", seconds_since(s.started)},
                         {"idle_s", o.idle_s},
                         {"bytes_to_upstream", s.bytes[0]},
                         {"bytes_to_client", s.bytes[1]},
                         {"frames_to_upstream", s.frames[0]},
                         {"frames_to_client", s.frames[1]},
                         {"pings_sent", s.pings_sent},
                         {"pongs_swallowed", s.pongs_swallowed}});
    }
  json j = {
      {"version", WSGATE_VERSION},
      {"pid", ::getpid()},
      {"started", iso_time(started)},
      {"uptime_s", seconds_since(started)},
      {"workers", parts.size() + missing.size()},
      {"workers_not_answering", missing},
      {"connections",
       {{"active", t.active},
        {"reading", t.reading},
        {"writing", t.writing},
        {"waiting", t.waiting()},
        {"accepted", t.accepted},
        {"handled", t.handled}}},
      {"requests", t.requests},
      {"tunnels",
       {{"open", t.open},
        {"opened_total", t.opened},
        {"closed_by_reason", t.closed_by_reason},
        {"bytes_to_upstream_total", t.bytes[0]},
        {"bytes_to_client_total", t.bytes[1]},
        {"frames_to_upstream_total", t.frames[0]},
        {"frames_to_client_total", t.frames[1]},
        {"list", tunnels}}},
  };
  json ups = json::object();
  for (const auto& [name, servers] : upstream_views(rt)) {
    json list = json::array();
    for (const auto& v : servers)
      list.push_back({{"server", v.server},
                      {"weight", v.weight},
                      {"backup", v.backup},
                      {"down", v.down},
                      {"fails", v.fails},
                      {"available", v.available}});
    ups[name] = list;
  }
  j["upstreams"] = ups;
  return j.dump(2) + "\n";
}

std::string to_prometheus(const std::vector<worker_snapshot>& parts,
                          std::chrono::system_clock::time_point started, const runtime* rt) {
  const sums t = add_up(parts);
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
  };
  auto sample = [&out](const std::string& name, auto value) {
    out += name;
    out += ' ';
    out += std::to_string(value);
    out += '\n';
  };
  metric("wsgate_start_time_seconds", "gauge", "When wsgate started (Unix time).");
  sample("wsgate_start_time_seconds",
         std::chrono::duration_cast<std::chrono::seconds>(started.time_since_epoch()).count());
  metric("wsgate_connections", "gauge",
         "Client connections open, by state (reading a request head, busy with a request or a "
         "tunnel, waiting for a request).");
  sample("wsgate_connections{state=\"reading\"}", t.reading);
  sample("wsgate_connections{state=\"writing\"}", t.writing);
  sample("wsgate_connections{state=\"waiting\"}", t.waiting());
  metric("wsgate_connections_accepted_total", "counter", "Client connections accepted.");
  sample("wsgate_connections_accepted_total", t.accepted);
  metric("wsgate_connections_handled_total", "counter",
         "Client connections handled (accepted and not refused for worker_connections).");
  sample("wsgate_connections_handled_total", t.handled);
  metric("wsgate_requests_total", "counter", "Client requests.");
  sample("wsgate_requests_total", t.requests);
  metric("wsgate_tunnels_open", "gauge", "Upgraded connections (WebSocket tunnels) open.");
  sample("wsgate_tunnels_open", t.open);
  metric("wsgate_tunnels_opened_total", "counter", "Upgraded connections opened.");
  sample("wsgate_tunnels_opened_total", t.opened);
  metric("wsgate_tunnels_closed_total", "counter", "Upgraded connections closed, by reason.");
  for (const auto& [why, n] : t.closed_by_reason)
    sample("wsgate_tunnels_closed_total{reason=\"" + label_escape(why) + "\"}", n);
  metric("wsgate_tunnel_bytes_total", "counter", "Bytes relayed through tunnels, by direction.");
  sample("wsgate_tunnel_bytes_total{direction=\"to_upstream\"}", t.bytes[0]);
  sample("wsgate_tunnel_bytes_total{direction=\"to_client\"}", t.bytes[1]);
  metric("wsgate_tunnel_frames_total", "counter",
         "WebSocket frames relayed through tunnels, by direction.");
  sample("wsgate_tunnel_frames_total{direction=\"to_upstream\"}", t.frames[0]);
  sample("wsgate_tunnel_frames_total{direction=\"to_client\"}", t.frames[1]);
  const auto ups = upstream_views(rt);
  if (!ups.empty()) {
    metric("wsgate_upstream_server_available", "gauge",
           "1 when the upstream{} server can be picked (not down, not out after max_fails).");
    for (const auto& [name, servers] : ups)
      for (const auto& v : servers)
        sample("wsgate_upstream_server_available{upstream=\"" + label_escape(name) +
                   "\",server=\"" + label_escape(v.server) + "\"}",
               v.available ? 1 : 0);
    metric("wsgate_upstream_server_fails", "gauge",
           "Failed attempts counted towards the server's max_fails.");
    for (const auto& [name, servers] : ups)
      for (const auto& v : servers)
        sample("wsgate_upstream_server_fails{upstream=\"" + label_escape(name) + "\",server=\"" +
                   label_escape(v.server) + "\"}",
               v.fails);
  }
  return out;
}

std::string to_html(const std::vector<worker_snapshot>& parts, const std::vector<int>& missing,
                    std::chrono::system_clock::time_point started, const runtime* rt) {
  const sums t = add_up(parts);
  std::string out =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" "
      "content=\"5\"><title>wsgate status</title><style>body{font-family:sans-serif}"
      "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
      "text-align:right}td.t,th.t{text-align:left}</style></head><body>\n";
  out += "<h1>wsgate " WSGATE_VERSION "</h1>\n<p>started " + iso_time(started) + ", pid " +
         std::to_string(::getpid()) + ", " + std::to_string(parts.size()) + " worker(s)";
  if (!missing.empty()) out += ", " + std::to_string(missing.size()) + " not answering";
  out += "</p>\n<p>connections: " + std::to_string(t.active) + " active (" +
         std::to_string(t.reading) + " reading, " + std::to_string(t.writing) + " writing, " +
         std::to_string(t.waiting()) + " waiting); " + std::to_string(t.accepted) + " accepted, " +
         std::to_string(t.handled) + " handled, " + std::to_string(t.requests) + " requests</p>\n";
  out += "<p>tunnels: " + std::to_string(t.open) + " open, " + std::to_string(t.opened) +
         " opened since start";
  for (const auto& [why, n] : t.closed_by_reason)
    out += "; " + std::to_string(n) + " " + html_escape(why);
  out +=
      "</p>\n<table><tr><th>id</th><th>worker</th><th class=t>client</th><th "
      "class=t>upstream</th><th>age s</th><th>idle s</th><th>bytes to upstream</th><th>bytes "
      "to client</th><th>frames to upstream</th><th>frames to client</th><th>pings</th></tr>\n";
  char num[32];
  for (const auto& p : parts)
    for (const auto& o : p.open) {
      const auto& s = o.stats;
      out += "<tr><td>" + std::to_string(s.id) + "</td><td>" + std::to_string(p.worker) +
             "</td><td class=t>" + html_escape(s.client) + "</td><td class=t>" +
             html_escape(s.upstream) + "</td><td>";
      std::snprintf(num, sizeof num, "%.0f", seconds_since(s.started));
      out += num;
      out += "</td><td>";
      std::snprintf(num, sizeof num, "%.1f", o.idle_s);
      out += num;
      out += "</td><td>" + std::to_string(s.bytes[0]) + "</td><td>" + std::to_string(s.bytes[1]) +
             "</td><td>" + std::to_string(s.frames[0]) + "</td><td>" + std::to_string(s.frames[1]) +
             "</td><td>" + std::to_string(s.pings_sent) + "</td></tr>\n";
    }
  out += "</table>\n";
  const auto ups = upstream_views(rt);
  if (!ups.empty()) {
    out +=
        "<h2>upstreams</h2>\n<table><tr><th class=t>upstream</th><th class=t>server</th>"
        "<th>weight</th><th class=t>state</th><th>fails</th></tr>\n";
    for (const auto& [name, servers] : ups)
      for (const auto& v : servers)
        out +=
            "<tr><td class=t>" + html_escape(name) + "</td><td class=t>" + html_escape(v.server) +
            "</td><td>" + std::to_string(v.weight) + "</td><td class=t>" +
            (v.down        ? "down"
             : v.available ? "up"
                           : "out (max_fails)") +
            (v.backup ? ", backup" : "") + "</td><td>" + std::to_string(v.fails) + "</td></tr>\n";
    out += "</table>\n";
  }
  out += "</body></html>\n";
  return out;
}

}  // namespace

std::optional<status_format> pick_status_format(std::string_view target, std::string_view accept) {
  const size_t q = target.find('?');
  const auto arg = q == std::string_view::npos ? std::nullopt
                                               : routing::find_arg(target.substr(q + 1), "format");
  const std::string_view f = arg ? std::string_view(*arg) : std::string_view{};
  if (!f.empty()) {
    if (ascii::iequals(f, "json")) return status_format::json;
    if (ascii::iequals(f, "prometheus")) return status_format::prometheus;
    if (ascii::iequals(f, "html")) return status_format::html;
    return std::nullopt;
  }
  if (contains_icase(accept, "openmetrics") || contains_icase(accept, "version=0.0.4"))
    return status_format::prometheus;
  if (contains_icase(accept, "text/html")) return status_format::html;
  return status_format::json;
}

std::string stub_status_text(const worker_context& self) {
  worker_counters::values v;
  for (const worker_context* w : self.peers) v += w->counters.read();
  // ngx_http_stub_status_handler's layout, trailing spaces included.
  return "Active connections: " + std::to_string(v.active) +
         " \nserver accepts handled requests\n " + std::to_string(v.accepted) + " " +
         std::to_string(v.handled) + " " + std::to_string(v.requests) +
         " \nReading: " + std::to_string(v.reading) + " Writing: " + std::to_string(v.writing) +
         " Waiting: " + std::to_string(v.waiting()) + " \n";
}

asio::awaitable<std::vector<worker_snapshot>> collect_status(worker_context& self,
                                                             std::vector<int>& missing) {
  // Each worker takes its own snapshot on its thread and posts it back here; `done` wakes this
  // coroutine when the last one arrives (or after a second, without the slow ones).
  struct collection {
    explicit collection(asio::io_context& io) : done(io) {}
    std::vector<worker_snapshot> parts;
    std::vector<bool> answered;
    size_t pending = 0;
    asio::steady_timer done;
  };
  auto c = std::make_shared<collection>(self.io);
  const std::vector<worker_context*> peers =
      self.peers.empty() ? std::vector<worker_context*>{&self} : self.peers;
  c->pending = peers.size();
  c->answered.assign(peers.size(), false);
  c->done.expires_after(std::chrono::seconds(1));
  for (size_t i = 0; i < peers.size(); ++i) {
    worker_context* w = peers[i];
    asio::post(w->io, [c, w, i, home = &self.io] {
      auto snap = take_snapshot(*w);
      asio::post(*home, [c, i, snap = std::move(snap)]() mutable {
        c->parts.push_back(std::move(snap));
        c->answered[i] = true;
        if (--c->pending == 0) c->done.cancel();
      });
    });
  }
  co_await c->done.async_wait(asio::as_tuple(asio::use_awaitable));
  missing.clear();
  for (size_t i = 0; i < peers.size(); ++i)
    if (!c->answered[i]) missing.push_back(peers[i]->index);
  auto parts = std::move(c->parts);
  std::sort(parts.begin(), parts.end(),
            [](const auto& a, const auto& b) { return a.worker < b.worker; });
  co_return parts;
}

std::pair<std::string, std::string_view> format_status(
    const std::vector<worker_snapshot>& parts, const std::vector<int>& missing,
    std::chrono::system_clock::time_point started, status_format format, const runtime* rt) {
  switch (format) {
    case status_format::prometheus:
      return {to_prometheus(parts, started, rt), "text/plain; version=0.0.4; charset=utf-8"};
    case status_format::html:
      return {to_html(parts, missing, started, rt), "text/html; charset=utf-8"};
    case status_format::json:
      break;
  }
  return {to_json(parts, missing, started, rt), "application/json"};
}

}  // namespace wsgate::proxy
