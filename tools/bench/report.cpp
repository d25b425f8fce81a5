#include "report.hpp"

#include <fmt/format.h>

namespace wsgate::bench {
namespace {

double us(uint64_t ns) {
  return static_cast<double>(ns) / 1000.0;
}

std::string human_latency(uint64_t ns) {
  if (ns < 1'000'000) return fmt::format("{:.1f}us", us(ns));
  if (ns < 1'000'000'000) return fmt::format("{:.2f}ms", static_cast<double>(ns) / 1e6);
  return fmt::format("{:.2f}s", static_cast<double>(ns) / 1e9);
}

std::string_view unit_name(load_mode m) {
  switch (m) {
    case load_mode::http:
      return "requests";
    case load_mode::ws:
      return "messages";
    case load_mode::handshake:
      return "handshakes";
    case load_mode::idle:
      return "connections";
  }
  return "";
}

}  // namespace

nlohmann::json to_json(const load_config& cfg, const std::string& url, const load_result& r) {
  nlohmann::json j;
  const double secs = r.elapsed_s > 0 ? r.elapsed_s : 1;
  j["mode"] = mode_name(cfg.mode);
  j["url"] = url;
  j["connections"] = cfg.conns;
  j["threads"] = cfg.threads;
  j["duration_s"] = r.elapsed_s;
  j["unit"] = unit_name(cfg.mode);
  j["completed"] = r.completed;
  j["sent"] = r.sent;
  j["per_second"] = static_cast<double>(r.completed) / secs;
  j["target_rate"] = cfg.rate;
  j["bytes_in"] = r.bytes_in;
  j["bytes_out"] = r.bytes_out;
  // Payload received per second: the echoed message bytes (ws) or response bodies (http).
  j["mb_per_s"] = static_cast<double>(r.bytes_in) / secs / 1e6;
  if (cfg.mode == load_mode::ws) {
    j["message_size"] = cfg.msg_size;
    j["inflight"] = cfg.inflight;
  }
  if (cfg.mode == load_mode::http) j["body_size"] = cfg.body_size;
  j["established"] = r.established;
  if (cfg.mode == load_mode::idle) {
    j["requested"] = cfg.conns;
    j["alive"] = r.alive;
    j["pinged"] = cfg.ping;
  }
  const histogram& h = r.latency;
  j["latency_us"] = {{"count", h.count()},
                     {"min", us(h.min())},
                     {"mean", h.mean() / 1000.0},
                     {"p50", us(h.percentile(50))},
                     {"p90", us(h.percentile(90))},
                     {"p99", us(h.percentile(99))},
                     {"p99_9", us(h.percentile(99.9))},
                     {"max", us(h.max())}};
  nlohmann::json e;
  for (std::size_t k = 0; k < kErrorKinds; ++k) {
    e[std::string(error_name(static_cast<error_kind>(k)))] = r.errors[k];
  }
  e["total"] = r.error_total();
  j["errors"] = e;
  if (!r.first_error.empty()) j["first_error"] = r.first_error;
  j["io"] = r.io;
  if (!r.io_note.empty()) j["io_note"] = r.io_note;
  // The load generator's own cost, so a benchmark can tell whether it was the bottleneck.
  j["cpu_s"] = r.cpu_s;
  if (cfg.mode != load_mode::idle && r.completed > 0) {
    j["cpu_us_per_op"] = r.cpu_s * 1e6 / static_cast<double>(r.completed);
  }
  return j;
}

std::string to_table(const load_config& cfg, const std::string& url, const load_result& r) {
  const double secs = r.elapsed_s > 0 ? r.elapsed_s : 1;
  std::string out;
  out += fmt::format("{} {}  connections {}  threads {}  {:.2f} s\n", mode_name(cfg.mode), url,
                     cfg.conns, cfg.threads, r.elapsed_s);
  if (cfg.mode == load_mode::idle) {
    out += fmt::format("  established   {} of {}\n", r.established, cfg.conns);
    if (cfg.ping) out += fmt::format("  alive (ping)  {} of {}\n", r.alive, r.established);
  } else {
    out += fmt::format("  {:<12}  {}  ({} sent)\n", unit_name(cfg.mode), r.completed, r.sent);
    out += fmt::format("  per second    {:.1f}", static_cast<double>(r.completed) / secs);
    if (cfg.rate > 0) out += fmt::format("  (target {:.1f})", cfg.rate);
    out += "\n";
    out += fmt::format("  payload MB/s  {:.2f}\n", static_cast<double>(r.bytes_in) / secs / 1e6);
  }
  const histogram& h = r.latency;
  if (h.count() > 0) {
    out += fmt::format("  latency       p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n",
                       human_latency(h.percentile(50)), human_latency(h.percentile(90)),
                       human_latency(h.percentile(99)), human_latency(h.percentile(99.9)),
                       human_latency(h.max()));
  }
  out += "  errors       ";
  for (std::size_t k = 0; k < kErrorKinds; ++k) {
    out += fmt::format(" {} {}", error_name(static_cast<error_kind>(k)), r.errors[k]);
  }
  out += "\n";
  if (!r.first_error.empty()) out += "  first error   " + r.first_error + "\n";
  out += fmt::format("  load CPU      {:.2f} s", r.cpu_s);
  if (cfg.mode != load_mode::idle && r.completed > 0) {
    out += fmt::format(" ({:.2f} us per {})", r.cpu_s * 1e6 / static_cast<double>(r.completed),
                       unit_name(cfg.mode).substr(0, unit_name(cfg.mode).size() - 1));
  }
  out += fmt::format(", {}\n", r.io);
  if (!r.io_note.empty()) out += "  note          " + r.io_note + "\n";
  return out;
}

}  // namespace wsgate::bench
