// Server selection and location matching, as nginx 1.22 (the cases mirror the differential
// corpus, which checks the same configs against Debian's nginx).
#include "routing/match.hpp"

#include <gtest/gtest.h>

#include "helpers.hpp"

namespace wsgate::routing {
namespace {

using test::load;
using test::req;
using test::server;

constexpr const char* kServers = R"(
events {}
http {
  server { listen 127.0.0.1:8080; server_name first.example;
           location / { return 200 first; } }
  server { listen 127.0.0.1:8080 default_server; server_name _;
           location / { return 200 explicit-default; } }
  server { listen 127.0.0.1:8080; server_name a.example www.a.example;
           location / { return 200 exact-a; } }
  server { listen 127.0.0.1:8080; server_name *.wild.example;
           location / { return 200 leading-wildcard; } }
  server { listen 127.0.0.1:8080; server_name *.example.wild.example;
           location / { return 200 longer-leading-wildcard; } }
  server { listen 127.0.0.1:8080; server_name www.wild.example;
           location / { return 200 exact-beats-wildcard; } }
  server { listen 127.0.0.1:8080; server_name www.trail.*;
           location / { return 200 trailing-wildcard; } }
  server { listen 127.0.0.1:8080; server_name ~^(?<sub>[a-z0-9]+)\.re\.example$;
           location / { return 200 regex-$sub; } }
  server { listen 127.0.0.1:8080; server_name ~^api\.;
           location / { return 200 regex-api-server; } }
  server { listen 8080; server_name wild-listen;
           location / { return 200 wildcard-listen; } }
  server { listen 127.0.0.2:8080; server_name first.example;
           location / { return 200 other-address; } }
}
)";

std::string body_for(const config::snapshot& c, std::string host, std::string addr = "127.0.0.1") {
  auto r = req("/", {{"Host", host}});
  r.local_addr = addr;
  return route(c, r).body;
}

TEST(ServerSelection, NameKindsInNginxOrder) {
  auto c = load(kServers);
  ASSERT_TRUE(c);
  EXPECT_EQ(body_for(*c, "a.example"), "exact-a");
  EXPECT_EQ(body_for(*c, "WWW.A.Example:8080"), "exact-a");
  EXPECT_EQ(body_for(*c, "x.y.wild.example"), "leading-wildcard");
  EXPECT_EQ(body_for(*c, "www.wild.example"), "exact-beats-wildcard");
  EXPECT_EQ(body_for(*c, "q.example.wild.example"), "longer-leading-wildcard");
  EXPECT_EQ(body_for(*c, "www.trail.org"), "trailing-wildcard");
  EXPECT_EQ(body_for(*c, "shop.re.example"), "regex-shop");
  EXPECT_EQ(body_for(*c, "api.re.example"), "regex-api");  // the first regex in order
  EXPECT_EQ(body_for(*c, "api.other.example"), "regex-api-server");
  EXPECT_EQ(body_for(*c, "nobody.example"), "explicit-default");
  EXPECT_EQ(body_for(*c, "first.example"), "first");
}

TEST(ServerSelection, SpecificAddressWinsOverWildcardListen) {
  auto c = load(kServers);
  ASSERT_TRUE(c);
  // 127.0.0.1:8080 has specific listens: the *:8080 server is not a candidate there.
  EXPECT_EQ(body_for(*c, "wild-listen"), "explicit-default");
  // 127.0.0.2 has its own group; its only server is its default.
  EXPECT_EQ(body_for(*c, "anything", "127.0.0.2"), "other-address");
  // Other addresses fall to the wildcard listen.
  EXPECT_EQ(body_for(*c, "whatever", "10.1.1.1"), "wildcard-listen");
}

TEST(ServerSelection, ReasonSaysWhy) {
  auto c = load(kServers);
  ASSERT_TRUE(c);
  auto d = route(*c, req("/", {{"Host", "a.example"}}));
  EXPECT_EQ(d.server_reason, "exact server_name \"a.example\"");
  d = route(*c, req("/", {{"Host", "zzz"}}));
  EXPECT_NE(d.server_reason.find("default_server for 127.0.0.1:8080"), std::string::npos)
      << d.server_reason;
}

TEST(ServerSelection, FirstServerIsTheDefaultWhenNoneIsMarked) {
  auto c = load(R"(events {} http {
    server { listen 127.0.0.1:8080; server_name one.example; location / { return 200 one; } }
    server { listen 127.0.0.1:8080; server_name two.example; location / { return 200 two; } }
  })");
  ASSERT_TRUE(c);
  EXPECT_EQ(body_for(*c, "two.example"), "two");
  EXPECT_EQ(body_for(*c, "three.example"), "one");
  auto absolute = req("http://two.example:8080/abs", {{"Host", "one.example"}});
  EXPECT_EQ(route(*c, absolute).body, "two");  // the absolute-form host wins over Host
}

TEST(ServerSelection, HostlessHttp10UsesServerNameForHost) {
  auto c = server("location / { proxy_pass http://127.0.0.1:9000; proxy_set_header X-H $host; }");
  ASSERT_TRUE(c);
  auto r = req("/x", {});
  r.http_minor = 0;
  auto d = route(*c, r);
  EXPECT_EQ(test::header(d, "X-H"), "localhost");
  r.http_minor = 1;
  EXPECT_EQ(route(*c, r).status, 400);  // HTTP/1.1 needs Host
}

constexpr const char* kLocations = R"(
  location = /exact { return 200 exact; }
  location / { return 200 root; }
  location /docs/ { return 200 docs; }
  location ^~ /static/ { return 200 static-noregex; }
  location /a/ {
    return 200 a;
    location ~ \.php$ { return 200 a-nested-php; }
    location /a/b/ { return 200 ab; }
  }
  location ^~ /n/ {
    return 200 n;
    location ~ \.php$ { return 200 n-nested-php; }
  }
  location ~ \.(php|PHP)$ { return 200 outer-php; }
  location ~* \.JPG$ { return 200 jpg-icase; }
  location ~ ^/docs/(?<page>[a-z]+)$ { return 200 docs-regex-$page-$1; }
  location @named { return 200 named; }
)";

std::string loc_body(const config::snapshot& c, std::string target) {
  return route(c, req(std::move(target))).body;
}

TEST(LocationMatching, NginxRules) {
  auto c = server(kLocations);
  ASSERT_TRUE(c);
  EXPECT_EQ(loc_body(*c, "/exact"), "exact");
  EXPECT_EQ(loc_body(*c, "/exact/"), "root");   // = does not match a longer URI
  EXPECT_EQ(loc_body(*c, "/docs/x1"), "docs");  // regex does not match digits: longest prefix
  EXPECT_EQ(loc_body(*c, "/docs/page"), "docs-regex-page-page");  // regex beats the prefix
  EXPECT_EQ(loc_body(*c, "/static/x.php"), "static-noregex");     // ^~ stops regexes
  EXPECT_EQ(loc_body(*c, "/z/x.php"), "outer-php");
  EXPECT_EQ(loc_body(*c, "/a/x.php"), "a-nested-php");  // nested regex first
  EXPECT_EQ(loc_body(*c, "/a/b/x.php"), "a-nested-php");
  EXPECT_EQ(loc_body(*c, "/a/b/x"), "ab");              // nested prefix
  EXPECT_EQ(loc_body(*c, "/n/x.php"), "n-nested-php");  // nested regexes of a ^~ still run
  EXPECT_EQ(loc_body(*c, "/q/c.jpg"), "jpg-icase");
  EXPECT_EQ(loc_body(*c, "/q/c.Jpg"), "jpg-icase");
  EXPECT_EQ(loc_body(*c, "/named"), "root");  // @named is never matched by URI
}

TEST(LocationMatching, CandidatesRecordEachStep) {
  auto c = server(kLocations);
  ASSERT_TRUE(c);
  auto d = route(*c, req("/static/x.php"));
  ASSERT_TRUE(d.location);
  EXPECT_EQ(d.location->pattern, "/static/");
  bool skipped = false, longest = false;
  for (const auto& cand : d.candidates) {
    if (cand.loc->pattern == "/static/" && cand.result == "longest prefix") longest = true;
    if (cand.loc->kind == config::location::match_kind::regex &&
        cand.result.find("^~") != std::string::npos)
      skipped = true;
  }
  EXPECT_TRUE(longest);
  EXPECT_TRUE(skipped);
}

TEST(LocationMatching, AutoRedirectForProxiedPrefixWithSlash) {
  auto c = server(R"(
    location /api/ { proxy_pass http://127.0.0.1:9000; }
    location ~ ^/api { proxy_pass http://127.0.0.1:9001; }
    location = /e/ { proxy_pass http://127.0.0.1:9000; }
    location /nop/ { return 200 nop; }
    location /both/ { proxy_pass http://127.0.0.1:9000; }
    location /both { return 200 both-without-slash; }
  )");
  ASSERT_TRUE(c);
  auto d = route(*c, req("/api?x=1&y=2"));
  EXPECT_EQ(d.what, action::redirect);
  EXPECT_EQ(d.status, 301);
  // The redirect beats the regex; nginx makes it absolute with the request's host and port.
  EXPECT_EQ(d.location_header, "http://localhost:8080/api/?x=1&y=2");
  EXPECT_EQ(route(*c, req("/api", {{"Host", "example.org:1234"}})).location_header,
            "http://example.org:8080/api/");
  EXPECT_EQ(route(*c, req("/e")).location_header, "http://localhost:8080/e/");
  EXPECT_EQ(route(*c, req("/nop")).status, 404);  // no proxy_pass: no redirect
  EXPECT_EQ(route(*c, req("/both")).body, "both-without-slash");
  auto r = req("/api", {});
  r.http_minor = 0;
  EXPECT_EQ(route(*c, r).location_header, "http://127.0.0.1:8080/api/");  // no Host: local IP
}

}  // namespace
}  // namespace wsgate::routing
