// The configurations shipped in examples/configs load, and mean what they say.
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "config/regex.hpp"

namespace wsgate::config {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<const snapshot> load_example(const std::string& name) {
  load_options o;
  o.conf_file = std::string(WSGATE_SOURCE_DIR) + "/examples/configs/" + name;
  auto r = load_file(o);
  EXPECT_FALSE(r.error) << r.error->format();
  return r.config;
}

TEST(SeedConfigs, AllExamplesLoad) {
  for (const char* name :
       {"seed-broken.conf", "seed-fixed.conf", "no-upgrade.conf", "recommended.conf"}) {
    SCOPED_TRACE(name);
    auto c = load_example(name);
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->http);
    ASSERT_EQ(c->http->servers.size(), 1u);
    const server& s = *c->http->servers[0];
    ASSERT_EQ(s.listens.size(), 1u);
    EXPECT_EQ(s.listens[0].addr, "127.0.0.1");
    EXPECT_EQ(s.listens[0].port, 8080);
    ASSERT_EQ(s.names.size(), 1u);
    EXPECT_EQ(s.names[0].name, "localhost");
  }
}

TEST(SeedConfigs, FixedConfigLocations) {
  auto c = load_example("seed-fixed.conf");
  ASSERT_TRUE(c);
  const server& s = *c->http->servers[0];
  ASSERT_EQ(s.root_location.children.size(), 3u);
  const location& ws = *s.root_location.children[0];
  EXPECT_EQ(ws.kind, location::match_kind::prefix);
  EXPECT_EQ(ws.pattern, "/api/v1/ws/");
  ASSERT_TRUE(ws.proxy_pass);
  EXPECT_EQ(ws.proxy_pass->scheme, "http");
  EXPECT_EQ(ws.proxy_pass->host, "localhost");
  EXPECT_EQ(ws.proxy_pass->port, 8000);
  EXPECT_TRUE(ws.proxy_pass->port_explicit);
  EXPECT_EQ(ws.proxy_pass->uri, "/api/v1/ws/");
  EXPECT_EQ(*ws.settings.proxy_http_version, "1.1");
  EXPECT_EQ(*ws.settings.proxy_read_timeout, 86400s);
  EXPECT_EQ(*ws.settings.proxy_connect_timeout, 60s);  // default
  EXPECT_FALSE(*ws.settings.proxy_buffering);
  ASSERT_EQ(ws.settings.proxy_set_header->size(), 6u);
  const header_setting& conn = ws.settings.proxy_set_header->back();
  EXPECT_EQ(conn.name, "Connection");
  EXPECT_EQ(conn.value.raw, "upgrade");
  EXPECT_FALSE(conn.value.has_variables());
  EXPECT_EQ(conn.where.line, 19);

  const location& root = *s.root_location.children[2];
  EXPECT_EQ(root.pattern, "/");
  EXPECT_FALSE(root.proxy_pass->uri);
  EXPECT_EQ(*root.settings.proxy_http_version, "1.0");
}

TEST(SeedConfigs, RecommendedUsesMapAndUpstream) {
  auto c = load_example("recommended.conf");
  ASSERT_TRUE(c);
  const http_block& h = *c->http;
  ASSERT_EQ(h.maps.size(), 1u);
  const map_block& m = h.maps[0];
  EXPECT_EQ(m.source.raw, "$http_upgrade");
  ASSERT_EQ(m.source.parts.size(), 1u);
  EXPECT_EQ(m.source.parts[0].text, "http_upgrade");
  EXPECT_EQ(m.result, "connection_upgrade");
  ASSERT_TRUE(m.default_value);
  EXPECT_EQ(m.default_value->raw, "upgrade");
  ASSERT_EQ(m.entries.size(), 1u);
  EXPECT_EQ(m.entries[0].key, "");
  EXPECT_EQ(m.entries[0].value.raw, "close");

  ASSERT_EQ(h.upstreams.count("voice_backend"), 1u);
  const upstream& u = h.upstreams.at("voice_backend");
  ASSERT_EQ(u.servers.size(), 1u);
  EXPECT_EQ(u.servers[0].host, "127.0.0.1");
  EXPECT_EQ(u.servers[0].port, 8000);
  EXPECT_EQ(u.keepalive, 16);

  const server& s = *h.servers[0];
  // Server-level proxy_set_header is inherited by locations that set none.
  for (const auto& loc : s.root_location.children) {
    ASSERT_TRUE(loc->proxy_pass);
    EXPECT_EQ(loc->proxy_pass->host, "voice_backend");
    EXPECT_EQ(loc->proxy_pass->port, 0);  // names an upstream block
    EXPECT_EQ(loc->settings.proxy_set_header->size(), 6u);
    EXPECT_EQ(*loc->settings.proxy_http_version, "1.1");
  }
}

TEST(Regex, CompileErrorReadsLikeNginx) {
  auto r = regex::compile("^/(a", false);
  EXPECT_FALSE(r.re);
  EXPECT_EQ(r.error, "pcre2_compile() failed: missing closing parenthesis in \"^/(a\"");
}

TEST(Regex, MatchWithCapturesAndIcase) {
  auto r = regex::compile("^/user/(\\d+)(/x)?(?<rest>/.*)?$", true);
  ASSERT_TRUE(r.re) << r.error;
  std::vector<std::string_view> caps;
  EXPECT_TRUE(r.re->match("/USER/42/tail", caps));
  ASSERT_EQ(caps.size(), 4u);
  EXPECT_EQ(caps[0], "/USER/42/tail");
  EXPECT_EQ(caps[1], "42");
  EXPECT_EQ(caps[2].data(), nullptr);  // (/x)? did not take part
  EXPECT_EQ(caps[3], "/tail");
  ASSERT_EQ(r.re->names().size(), 1u);
  EXPECT_EQ(r.re->names()[0].first, "rest");
  EXPECT_EQ(r.re->names()[0].second, 3);
  EXPECT_FALSE(r.re->match("/users/x"));
  std::vector<std::pair<int, int>> off;
  EXPECT_TRUE(r.re->match("/user/7", off));
  EXPECT_EQ(off[1], (std::pair<int, int>{6, 7}));
  EXPECT_EQ(off[2], (std::pair<int, int>{-1, -1}));

  auto cs = regex::compile("^/API", false);
  EXPECT_FALSE(cs.re->match("/api"));
  EXPECT_TRUE(cs.re->match("/API/x"));
}

}  // namespace
}  // namespace wsgate::config
