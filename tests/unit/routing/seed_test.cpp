// The seed's configurations: what each sends upstream for the voice-chat WebSocket and for the
// plain status endpoint, and what lint says about each.
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "helpers.hpp"
#include "routing/lint.hpp"

namespace wsgate::routing {
namespace {

using test::has_warning;
using test::header;

std::shared_ptr<const config::snapshot> example(const std::string& name) {
  config::load_options o;
  o.conf_file = std::string(WSGATE_SOURCE_DIR) + "/examples/configs/" + name;
  auto r = config::load_file(o);
  EXPECT_FALSE(r.error) << r.error->format();
  return r.config;
}

request_info handshake() {
  auto r = test::req("/api/v1/ws/simple-voice-chat?language=ar&voice_type=female",
                     {{"Host", "localhost:8080"},
                      {"Upgrade", "websocket"},
                      {"Connection", "Upgrade"},
                      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                      {"Sec-WebSocket-Version", "13"}});
  return r;
}

TEST(RoutingSeedConfigs, BothSeedConfigsSendTheSameUpstreamUri) {
  for (const char* name : {"seed-broken.conf", "seed-fixed.conf"}) {
    SCOPED_TRACE(name);
    auto c = example(name);
    ASSERT_TRUE(c);
    auto d = route(*c, handshake());
    ASSERT_EQ(d.what, action::proxy);
    EXPECT_EQ(d.upstream.uri, "/api/v1/ws/simple-voice-chat?language=ar&voice_type=female");
    EXPECT_EQ(d.normalized_uri, "/api/v1/ws/simple-voice-chat");
    EXPECT_EQ(d.upstream.version, "HTTP/1.1");
    EXPECT_EQ(header(d, "Upgrade"), "websocket");
    EXPECT_EQ(header(d, "Connection"), "upgrade");
    EXPECT_EQ(d.location->pattern, "/api/v1/ws/");
    EXPECT_TRUE(d.websocket);
    // The status endpoint: nginx sends "Connection: upgrade" (uvicorn: 400); wsgate drops it.
    auto status =
        route(*c, test::req("/api/v1/ws/simple-voice-chat/status", {{"Host", "localhost:8080"}}));
    EXPECT_EQ(header(status, "Connection"), "<none>");
    EXPECT_TRUE(has_warning(status.warnings, "connection-upgrade-dropped"));
    EXPECT_TRUE(has_warning(lint(*c), "connection-upgrade-literal"));
    EXPECT_FALSE(has_warning(lint(*c), "ws-upgrade-not-forwarded"));
  }
}

TEST(RoutingSeedConfigs, NoUpgradeSendsAPlainGet) {
  auto c = example("no-upgrade.conf");
  ASSERT_TRUE(c);
  auto d = route(*c, handshake());
  ASSERT_EQ(d.what, action::proxy);
  EXPECT_EQ(d.upstream.uri, "/api/v1/ws/simple-voice-chat?language=ar&voice_type=female");
  EXPECT_EQ(d.upstream.version, "HTTP/1.0");
  EXPECT_EQ(header(d, "Upgrade"), "<none>");
  EXPECT_EQ(header(d, "Connection"), "close");
  EXPECT_TRUE(has_warning(d.warnings, "ws-upgrade-not-forwarded"));
  EXPECT_TRUE(has_warning(lint(*c), "ws-upgrade-not-forwarded"));
}

TEST(RoutingSeedConfigs, RecommendedServesBoth) {
  auto c = example("recommended.conf");
  ASSERT_TRUE(c);
  auto ws = route(*c, handshake());
  ASSERT_EQ(ws.what, action::proxy);
  EXPECT_EQ(ws.upstream.uri, "/api/v1/ws/simple-voice-chat?language=ar&voice_type=female");
  EXPECT_EQ(ws.upstream.host, "voice_backend");
  EXPECT_TRUE(ws.upstream.via_upstream_block);
  EXPECT_EQ(header(ws, "Connection"), "upgrade");
  EXPECT_EQ(header(ws, "Host"), "localhost");
  auto status =
      route(*c, test::req("/api/v1/ws/simple-voice-chat/status", {{"Host", "localhost:8080"}}));
  EXPECT_EQ(header(status, "Connection"), "close");
  EXPECT_FALSE(has_warning(status.warnings, "connection-upgrade-dropped"));
  auto all = lint(*c);
  EXPECT_FALSE(has_warning(all, "ws-upgrade-not-forwarded"));
  EXPECT_FALSE(has_warning(all, "connection-upgrade-literal"));
  EXPECT_FALSE(has_warning(all, "ws-read-timeout"));
  // The configuration we recommend passes every lint rule.
  for (const auto& w : all) ADD_FAILURE() << w.id << ": " << w.text;
  // The bare prefix is proxied, not redirected: WebSocket clients do not follow a 301.
  auto bare = route(*c, test::req("/api/v1/ws", {{"Host", "localhost"}}));
  EXPECT_EQ(bare.what, action::proxy);
  EXPECT_EQ(bare.upstream.uri, "/api/v1/ws");
}

}  // namespace
}  // namespace wsgate::routing
