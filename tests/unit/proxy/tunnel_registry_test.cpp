// tunnel_registry: ids, open/closed bookkeeping, the bounded recent list, and QUIT reaching
// every open tunnel.
#include "proxy/tunnel_registry.hpp"

#include <gtest/gtest.h>

#include <memory>

namespace wsgate::proxy {
namespace {

struct fake_tunnel : tunnel_handle {
  std::chrono::steady_clock::duration asked{-1};
  void going_away(std::chrono::steady_clock::duration wait) override { asked = wait; }
  std::chrono::steady_clock::time_point active_at() const override { return {}; }
};

TEST(TunnelRegistry, TracksOpenAndClosedTunnels) {
  tunnel_registry r;
  fake_tunnel a, b;
  r.add(&a);
  r.add(&b);
  EXPECT_EQ(a.stats.id, 1u);
  EXPECT_EQ(b.stats.id, 2u);
  EXPECT_EQ(r.open_count(), 2u);
  a.stats.bytes[0] = 10;
  a.stats.close_reason = "client closed";
  r.remove(&a);
  r.remove(&a);  // twice: counted once
  EXPECT_EQ(r.open_count(), 1u);
  ASSERT_EQ(r.recent_closed().size(), 1u);
  EXPECT_EQ(r.recent_closed().front().bytes[0], 10u);
  EXPECT_EQ(r.closed_by_reason().at("client closed"), 1u);
  ASSERT_EQ(r.open_stats().size(), 1u);
  EXPECT_EQ(r.open_stats()[0]->id, 2u);
  EXPECT_EQ(r.opened_total(), 2u);
  // The totals keep what the closed tunnel moved.
  const auto t = r.get_totals();
  EXPECT_EQ(t.opened, 2u);
  EXPECT_EQ(t.open, 1u);
  EXPECT_EQ(t.closed_bytes[0], 10u);
  EXPECT_EQ(t.closed_bytes[1], 0u);
  EXPECT_EQ(t.closed_by_reason.at("client closed"), 1u);
}

TEST(TunnelRegistry, RecentListIsBounded) {
  tunnel_registry r;
  for (size_t i = 0; i < tunnel_registry::kRecentClosed + 10; ++i) {
    fake_tunnel t;
    r.add(&t);
    t.stats.close_reason = "idle timeout";
    r.remove(&t);
  }
  EXPECT_EQ(r.recent_closed().size(), tunnel_registry::kRecentClosed);
  EXPECT_EQ(r.recent_closed().back().id, tunnel_registry::kRecentClosed + 10);
  EXPECT_EQ(r.closed_by_reason().at("idle timeout"), tunnel_registry::kRecentClosed + 10);
}

TEST(TunnelRegistry, GoingAwayReachesEveryOpenTunnel) {
  tunnel_registry r;
  fake_tunnel a, b, c;
  r.add(&a);
  r.add(&b);
  r.add(&c);
  c.stats.close_reason = "upstream closed";
  r.remove(&c);
  r.going_away(std::chrono::seconds(3));
  EXPECT_EQ(a.asked, std::chrono::seconds(3));
  EXPECT_EQ(b.asked, std::chrono::seconds(3));
  EXPECT_EQ(c.asked, std::chrono::steady_clock::duration(-1));
}

}  // namespace
}  // namespace wsgate::proxy
