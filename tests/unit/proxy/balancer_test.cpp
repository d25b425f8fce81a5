// peer_group's round robin, as ngx_http_upstream_round_robin: smooth weighted order, max_fails
// within fail_timeout, backup servers, the peers one request has tried, and a single server that
// is never taken out.
#include <gtest/gtest.h>

#include <string>

#include "proxy/runtime.hpp"

namespace wsgate::proxy {
namespace {

using clock = std::chrono::steady_clock;
using std::chrono::seconds;

void add(std::vector<peer>& list, const std::string& name, int weight = 1, int max_fails = 1,
         seconds fail_timeout = seconds(10)) {
  peer p;
  p.addr.text = name;
  p.weight = p.effective_weight = weight;
  p.max_fails = max_fails;
  p.fail_timeout = fail_timeout;
  list.push_back(p);
}

// One request: the first peer picked, reported as a success (or "-" when none).
std::string one_request(const peer_group& g, clock::time_point now) {
  peer_group::pick_state tried;
  bool live = false;
  const peer* p = g.pick(tried, now, live);
  if (!p) return "-";
  g.report(p, false, now);
  return p->addr.text;
}

TEST(Balancer, SmoothWeightedOrderAsNginx) {
  peer_group g;
  add(g.primary, "a", 5);
  add(g.primary, "b");
  add(g.primary, "c");
  const auto now = clock::now();
  std::string seq;
  for (int i = 0; i < 14; ++i) seq += one_request(g, now);
  // nginx's documented order for weights 5, 1, 1, twice round.
  EXPECT_EQ(seq, "aabacaaaabacaa");
}

// Requests where every connect to "a" fails and the others succeed, each retrying the next
// peer as nginx does: who served each, and how often a failure disabled a peer.
std::string serve(const peer_group& g, clock::time_point now, int requests, int& disabled) {
  std::string served;
  for (int i = 0; i < requests; ++i) {
    peer_group::pick_state tried;
    bool live = false;
    for (const peer* p; (p = g.pick(tried, now, live));) {
      const bool fails = p->addr.text == "a";
      if (g.report(p, fails, now)) ++disabled;
      if (!fails) {
        served += p->addr.text;
        break;
      }
    }
  }
  return served;
}

TEST(Balancer, MaxFailsWithinFailTimeoutTakesAPeerOutForFailTimeout) {
  peer_group g;
  add(g.primary, "a", 1, 2, seconds(10));
  add(g.primary, "b", 1, 2, seconds(10));
  const auto t = clock::now();
  int disabled = 0;
  // Every request is served (by b); a is tried until its second failure, then left out.
  EXPECT_EQ(serve(g, t, 6, disabled), "bbbbbb");
  EXPECT_EQ(disabled, 1);
  EXPECT_EQ(g.primary[0].fails, 2);
  const int tried_a = g.primary[0].fails;
  serve(g, t + seconds(5), 6, disabled);
  EXPECT_EQ(g.primary[0].fails, tried_a) << "a was tried within fail_timeout";
  // After fail_timeout a is tried again (and fails again here: out for another fail_timeout).
  serve(g, t + seconds(11), 6, disabled);
  EXPECT_GT(g.primary[0].fails, tried_a);
}

TEST(Balancer, ASuccessAfterFailTimeoutClearsTheFailures) {
  peer_group g;
  add(g.primary, "a", 1, 1, seconds(10));
  add(g.primary, "b", 1, 1, seconds(10));
  const auto t = clock::now();
  peer_group::pick_state tried;
  bool live = false;
  const peer* p = g.pick(tried, t, live);
  ASSERT_EQ(p->addr.text, "a");
  EXPECT_TRUE(g.report(p, true, t));  // max_fails 1: out at once
  EXPECT_EQ(one_request(g, t + seconds(1)), "b");
  EXPECT_EQ(one_request(g, t + seconds(2)), "b");
  std::string later;
  for (int i = 0; i < 4; ++i) later += one_request(g, t + seconds(11));
  EXPECT_NE(later.find('a'), std::string::npos) << later;
  EXPECT_EQ(g.primary[0].fails, 0);
}

TEST(Balancer, OneRequestTriesEachPeerOnceThenBackupThenNothing) {
  peer_group g;
  add(g.primary, "a");
  add(g.primary, "b");
  add(g.backup, "z");
  const auto t = clock::now();
  peer_group::pick_state tried;
  bool live = false;
  std::string seq;
  for (const peer* p; (p = g.pick(tried, t, live));) {
    seq += p->addr.text;
    g.report(p, true, t);  // every connect fails
  }
  EXPECT_EQ(seq, "abz");
  // Everything failed within fail_timeout: the next request finds no live upstream.
  tried.reset(g, {});
  EXPECT_EQ(g.pick(tried, t + seconds(1), live), nullptr);
  EXPECT_FALSE(live);
  // The backup alone comes back first when only it has recovered... all recover together here.
  tried.reset(g, {});
  EXPECT_NE(g.pick(tried, t + seconds(11), live), nullptr);
  EXPECT_TRUE(live);
}

TEST(Balancer, BackupOnlyWhilePrimariesAreOut) {
  peer_group g;
  add(g.primary, "a");
  add(g.backup, "z");
  const auto t = clock::now();
  EXPECT_EQ(one_request(g, t), "a");
  peer_group::pick_state tried;
  bool live = false;
  const peer* a = g.pick(tried, t, live);
  g.report(a, true, t);
  EXPECT_EQ(one_request(g, t + seconds(1)), "z");
  EXPECT_EQ(one_request(g, t + seconds(11)), "a");
}

TEST(Balancer, ASingleServerIsNeverTakenOut) {
  peer_group g;
  add(g.primary, "only", 1, 1, seconds(10));
  const auto t = clock::now();
  peer_group::pick_state tried;
  bool live = false;
  const peer* p = g.pick(tried, t, live);
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(g.report(p, true, t));
  EXPECT_EQ(g.pick(tried, t, live), nullptr);  // tried in this request
  EXPECT_EQ(one_request(g, t), "only");        // but the next request tries it again
}

TEST(Balancer, MaxFailsZeroNeverTakesAPeerOut) {
  peer_group g;
  add(g.primary, "a", 1, 0);
  add(g.primary, "b", 1, 0);
  const auto t = clock::now();
  for (int i = 0; i < 5; ++i) {
    peer_group::pick_state tried;
    bool live = false;
    const peer* p = g.pick(tried, t, live);
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(g.report(p, true, t));
  }
  std::string seq;
  for (int i = 0; i < 4; ++i) seq += one_request(g, t);
  EXPECT_EQ(seq, "baba");  // still alternating after a, b, a, b, a
}

}  // namespace
}  // namespace wsgate::proxy
