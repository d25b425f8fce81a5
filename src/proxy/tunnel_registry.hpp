// Per-worker accounting of upgrade tunnels, for metrics and a status page: the open ones with
// their live counters, the last closed ones, and totals. Touched only from the worker's own
// thread (read it by posting to the worker's io_context).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace wsgate::proxy {

struct tunnel_stats {
  uint64_t id = 0;
  std::chrono::system_clock::time_point started;
  std::string client;    // "127.0.0.1:51234"
  std::string upstream;  // "127.0.0.1:8000"
  // [0]: client to upstream, [1]: upstream to client. Frames count WebSocket frame headers seen
  // (0 when the upgraded protocol is not WebSocket).
  uint64_t bytes[2] = {0, 0};
  uint64_t frames[2] = {0, 0};
  uint64_t pings_sent = 0;       // keepalive pings wsgate sent (both peers)
  uint64_t pongs_swallowed = 0;  // their answers, kept from the other peer
  std::string close_reason;      // empty while open: "client closed", "upstream closed",
                                 // "idle timeout", "send timeout", "error", "going away", ...
};

// Something the registry can ask to go away (QUIT): the tunnel sends Close 1001 to both peers
// and closes once they answered or `wait` passed.
class tunnel_handle {
 public:
  virtual ~tunnel_handle() = default;
  virtual void going_away(std::chrono::steady_clock::duration wait) = 0;
  // When a byte last went through, either way.
  virtual std::chrono::steady_clock::time_point active_at() const = 0;
  tunnel_stats stats;
};

class tunnel_registry {
 public:
  static constexpr size_t kRecentClosed = 256;

  // Counts since the worker started; bytes and frames of the tunnels closed so far (the open
  // ones carry their own).
  struct totals {
    uint64_t opened = 0;
    uint64_t open = 0;
    std::map<std::string, uint64_t> closed_by_reason;
    uint64_t closed_bytes[2] = {0, 0};
    uint64_t closed_frames[2] = {0, 0};
  };

  void add(tunnel_handle* t) {
    t->stats.id = ++opened_;
    open_.emplace(t->stats.id, t);
  }
  // The tunnel ended (stats.close_reason set): its record moves to the recent list.
  void remove(tunnel_handle* t) {
    if (open_.erase(t->stats.id) == 0) return;
    ++closed_by_reason_[t->stats.close_reason];
    for (int d = 0; d < 2; ++d) {
      closed_bytes_[d] += t->stats.bytes[d];
      closed_frames_[d] += t->stats.frames[d];
    }
    recent_.push_back(t->stats);
    if (recent_.size() > kRecentClosed) recent_.pop_front();
  }
  size_t open_count() const { return open_.size(); }
  uint64_t opened_total() const { return opened_; }
  const std::map<std::string, uint64_t>& closed_by_reason() const { return closed_by_reason_; }
  const std::deque<tunnel_stats>& recent_closed() const { return recent_; }
  std::vector<const tunnel_stats*> open_stats() const {
    std::vector<const tunnel_stats*> out;
    out.reserve(open_.size());
    for (const auto& [id, t] : open_) out.push_back(&t->stats);
    return out;
  }
  std::vector<const tunnel_handle*> open_tunnels() const {
    std::vector<const tunnel_handle*> out;
    out.reserve(open_.size());
    for (const auto& [id, t] : open_) out.push_back(t);
    return out;
  }
  totals get_totals() const {
    totals t;
    t.opened = opened_;
    t.open = open_.size();
    t.closed_by_reason = closed_by_reason_;
    for (int d = 0; d < 2; ++d) {
      t.closed_bytes[d] = closed_bytes_[d];
      t.closed_frames[d] = closed_frames_[d];
    }
    return t;
  }
  // QUIT: every open tunnel says goodbye to its peers.
  void going_away(std::chrono::steady_clock::duration wait) {
    std::vector<tunnel_handle*> all;
    for (const auto& [id, t] : open_) all.push_back(t);
    for (auto* t : all) t->going_away(wait);
  }

 private:
  std::map<uint64_t, tunnel_handle*> open_;
  std::map<std::string, uint64_t> closed_by_reason_;
  std::deque<tunnel_stats> recent_;
  uint64_t opened_ = 0;
  uint64_t closed_bytes_[2] = {0, 0};
  uint64_t closed_frames_[2] = {0, 0};
};

}  // namespace wsgate::proxy
