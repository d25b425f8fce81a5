// What the upstream receives: proxy_pass URI mapping, headers, rewrites and returns. Every
// expectation here was observed on Debian's nginx 1.22.1 (tests/diff and the probes in the
// routing report).
#include <gtest/gtest.h>

#include "helpers.hpp"

namespace wsgate::routing {
namespace {

using test::header;
using test::load;
using test::req;
using test::server;

constexpr const char* kMapping = R"(
  location /api/ { proxy_pass http://127.0.0.1:9000/v1/; }
  location /raw/ { proxy_pass http://127.0.0.1:9000; }
  location /noslash { proxy_pass http://127.0.0.1:9000/x; }
  location /slashless/ { proxy_pass http://127.0.0.1:9000/v1; }
  location = /exact { proxy_pass http://127.0.0.1:9000/other; }
  location /var/ { proxy_pass http://127.0.0.1:9000$uri; }
  location /var2/ { proxy_pass http://127.0.0.1:9000/fixed/$arg_p; }
  location /var3/ { proxy_pass http://$arg_h; }
  location ~ ^/re/(\d+)/(.*)$ { proxy_pass http://127.0.0.1:9000/user/$1/$2; }
  location ~ ^/rex/ { proxy_pass http://127.0.0.1:9000; }
)";

std::string uri_of(const config::snapshot& c, std::string target) {
  auto d = route(c, req(std::move(target)));
  EXPECT_EQ(d.what, action::proxy);
  return d.upstream.uri;
}

TEST(ProxyPassMapping, Table) {
  auto c = server(kMapping);
  ASSERT_TRUE(c);
  struct row {
    const char* request;
    const char* upstream;
  };
  const row rows[] = {
      // URI part: the matched prefix replaced, normalised and re-escaped, args appended.
      {"/api/a%20b/c?x=%20", "/v1/a%20b/c?x=%20"},
      {"/api/a%2Fb/../c", "/v1/a/c"},
      {"/api//x///y", "/v1/x/y"},
      {"/api/%D0%B9?q", "/v1/%D0%B9?q"},
      {"/api/a+b%2B", "/v1/a+b+"},
      {"/api/", "/v1/"},
      // No URI part: the request URI exactly as received.
      {"/raw//a/./b/%2e%2e/c?z", "/raw//a/./b/%2e%2e/c?z"},
      // Trailing-slash mismatches do what they say.
      {"/noslash/q?z=1", "/x/q?z=1"},
      {"/noslashy", "/xy"},
      {"/slashless/x", "/v1x"},
      {"/exact?k=v", "/other?k=v"},
      // Variables: the evaluated URL as is, without the request's args.
      {"/var/a%3Fb?k=v", "/var/a?b"},
      {"/var2/x?p=zz", "/fixed/zz"},
      {"/re/7/a%2Fb", "/user/7/a/b"},
      // A regex location without URI part sends the original URI.
      {"/rex/a%20b?q", "/rex/a%20b?q"},
  };
  for (const auto& r : rows) EXPECT_EQ(uri_of(*c, r.request), r.upstream) << r.request;
}

TEST(ProxyPassMapping, VariableHostWithoutUriSendsTheRequestUri) {
  auto c = server(kMapping);
  ASSERT_TRUE(c);
  auto d = route(*c, req("/var3/x?h=127.0.0.1:9005"));
  ASSERT_EQ(d.what, action::proxy);
  EXPECT_EQ(d.upstream.host, "127.0.0.1");
  EXPECT_EQ(d.upstream.port, 9005);
  EXPECT_EQ(d.upstream.uri, "/var3/x?h=127.0.0.1:9005");
  EXPECT_EQ(header(d, "Host"), "127.0.0.1:9005");
}

TEST(ProxyPassMapping, BadRequestsAre400) {
  auto c = server(kMapping);
  ASSERT_TRUE(c);
  EXPECT_EQ(route(*c, req("/api/%00")).status, 400);
  EXPECT_EQ(route(*c, req("/api/%zz")).status, 400);
  EXPECT_EQ(route(*c, req("/api/../../x")).status, 400);
  EXPECT_EQ(route(*c, req("/api/x", {{"Host", "a"}, {"Host", "b"}})).status, 400);
  EXPECT_EQ(route(*c, req("/api/x", {{"Host", "a..b"}})).status, 400);
}

TEST(ProxyHost, PortShownOnlyWhenNotDefault) {
  auto c = server(R"(
    location /a/ { proxy_set_header X-P "$proxy_host|$proxy_port"; proxy_pass http://b.example:8000; }
    location /b/ { proxy_set_header X-P "$proxy_host|$proxy_port"; proxy_pass http://b.example:80; }
    location /c/ { proxy_set_header X-P "$proxy_host|$proxy_port"; proxy_pass https://b.example; }
    location /d/ { proxy_set_header X-P "$proxy_host|$proxy_port"; proxy_pass http://backend; }
  )",
                  "upstream backend { server 127.0.0.1:9000; }");
  ASSERT_TRUE(c);
  EXPECT_EQ(header(route(*c, req("/a/")), "X-P"), "b.example:8000|8000");
  EXPECT_EQ(header(route(*c, req("/b/")), "X-P"), "b.example|80");
  EXPECT_EQ(header(route(*c, req("/c/")), "X-P"), "b.example|443");
  auto d = route(*c, req("/d/"));
  EXPECT_EQ(header(d, "X-P"), "backend|80");
  EXPECT_TRUE(d.upstream.via_upstream_block);
  EXPECT_EQ(d.upstream.host, "backend");
  EXPECT_EQ(d.upstream.port, 0);
}

TEST(UpstreamHeaders, DefaultsWhenNothingIsSet) {
  auto c = server("location / { proxy_pass http://127.0.0.1:9000; }");
  ASSERT_TRUE(c);
  auto d = route(*c, req("/x", {{"Host", "localhost"},
                                {"User-Agent", "t/1"},
                                {"Connection", "keep-alive"},
                                {"Keep-Alive", "300"},
                                {"Upgrade", "websocket"},
                                {"TE", "trailers"},
                                {"Expect", "100-continue"},
                                {"Proxy-Connection", "x"},
                                {"X_Under", "dropped"},
                                {"accept", "*/*"}}));
  const header_list want = {{"Host", "127.0.0.1:9000"},
                            {"Connection", "close"},
                            {"User-Agent", "t/1"},
                            {"Proxy-Connection", "x"},
                            {"accept", "*/*"}};
  EXPECT_EQ(d.upstream.headers, want);
  EXPECT_EQ(d.upstream.version, "HTTP/1.0");
  EXPECT_EQ(d.upstream.method, "GET");
}

TEST(UpstreamHeaders, SetListFirstThenDefaultsThenClient) {
  auto c = server(R"(location / {
      proxy_set_header X-A a;
      proxy_set_header Host $host;
      proxy_set_header X-Empty "";
      proxy_set_header Accept-Encoding "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_pass http://127.0.0.1:9000;
  })");
  ASSERT_TRUE(c);
  auto r = req("/x", {{"Host", "LocalHost:8080"},
                      {"Accept-Encoding", "gzip"},
                      {"X-Forwarded-For", "1.1.1.1"},
                      {"Content-Length", "3"},
                      {"X-Forwarded-For", "2.2.2.2"}});
  r.method = "POST";
  auto d = route(*c, r);
  const header_list want = {{"X-A", "a"},
                            {"Host", "localhost"},
                            {"X-Forwarded-For", "1.1.1.1, 2.2.2.2, 10.0.0.7"},
                            {"Connection", "close"},
                            {"Content-Length", "3"}};
  EXPECT_EQ(d.upstream.headers, want);
  EXPECT_EQ(d.upstream.method, "POST");
}

TEST(UpstreamHeaders, VariablesAsNginx122) {
  auto c = server(R"(location / {
      proxy_set_header X-Cookie $http_cookie;
      proxy_set_header X-XFF $http_x_forwarded_for;
      proxy_set_header X-Multi $http_x_multi;
      proxy_set_header X-Arg "[$arg_a][$arg_B][$is_args][$args]";
      proxy_set_header X-Cook "[$cookie_sid]";
      proxy_set_header X-U "$host|$server_name|$server_port|$scheme|$request_uri|$uri|$request_method|$remote_addr";
      proxy_pass http://127.0.0.1:9000;
  })");
  ASSERT_TRUE(c);
  auto d = route(*c, req("/j%20k?a=1&b=2&ab=3", {{"Host", "LocalHost.:99"},
                                                 {"Cookie", "a=1"},
                                                 {"Cookie", "sid=2"},
                                                 {"X-Forwarded-For", "1.1.1.1"},
                                                 {"X-Multi", "first"},
                                                 {"X-Forwarded-For", "2.2.2.2"},
                                                 {"X-Multi", "second"}}));
  EXPECT_EQ(header(d, "X-Cookie"), "a=1; sid=2");
  EXPECT_EQ(header(d, "X-XFF"), "1.1.1.1, 2.2.2.2");
  EXPECT_EQ(header(d, "X-Multi"), "first");  // 1.22: other repeated headers give the first
  EXPECT_EQ(header(d, "X-Arg"), "[1][2][?][a=1&b=2&ab=3]");
  EXPECT_EQ(header(d, "X-Cook"), "[2]");
  EXPECT_EQ(header(d, "X-U"),
            "localhost|localhost|8080|http|/j%20k?a=1&b=2&ab=3|/j k|GET|10.0.0.7");
}

TEST(UpstreamHeaders, MapIdiomAndWebSocket) {
  auto c = server(R"(location /ws/ {
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h;
      proxy_pass http://127.0.0.1:9000;
  })",
                  "map $http_upgrade $connection_upgrade { default upgrade; '' close; }");
  ASSERT_TRUE(c);
  auto ws = route(*c, req("/ws/chat", {{"Host", "localhost"},
                                       {"Upgrade", "websocket"},
                                       {"Connection", "Upgrade"},
                                       {"Sec-WebSocket-Key", "k"}}));
  EXPECT_TRUE(ws.websocket);
  EXPECT_EQ(ws.upstream.version, "HTTP/1.1");
  const header_list want = {{"Upgrade", "websocket"},
                            {"Connection", "upgrade"},
                            {"Host", "127.0.0.1:9000"},
                            {"Sec-WebSocket-Key", "k"}};
  EXPECT_EQ(ws.upstream.headers, want);
  EXPECT_EQ(ws.limits.read, std::chrono::hours(1));
  auto plain = route(*c, req("/ws/status"));
  EXPECT_FALSE(plain.websocket);
  EXPECT_EQ(header(plain, "Connection"), "close");
  EXPECT_EQ(header(plain, "Upgrade"), "<none>");
}

TEST(UpstreamHeaders, ConnectionUpgradeWithoutUpgradeIsDropped) {
  // wsgate's deliberate difference: nginx would send "Connection: upgrade" here.
  auto c = server(R"(location / {
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_pass http://127.0.0.1:9000;
  })");
  ASSERT_TRUE(c);
  auto plain = route(*c, req("/status"));
  EXPECT_EQ(header(plain, "Connection"), "<none>");
  EXPECT_TRUE(test::has_warning(plain.warnings, "connection-upgrade-dropped"));
  auto ws =
      route(*c, req("/ws", {{"Host", "x"}, {"Upgrade", "websocket"}, {"Connection", "upgrade"}}));
  EXPECT_EQ(header(ws, "Connection"), "upgrade");
}

TEST(UpstreamHeaders, UnderscoresAndPassRequestHeaders) {
  auto on = server(R"(underscores_in_headers on;
      location / { proxy_set_header X-U $http_x_under_score; proxy_pass http://127.0.0.1:9000; })");
  auto off = server(
      "location / { proxy_set_header X-U $http_x_under_score; proxy_pass http://127.0.0.1:9000; }");
  auto none = server(R"(location / { proxy_pass_request_headers off;
      proxy_pass http://127.0.0.1:9000; })");
  ASSERT_TRUE(on && off && none);
  const header_list h = {{"Host", "localhost"}, {"X_Under_Score", "1"}, {"X-Ok", "2"}};
  auto d_on = route(*on, req("/", h));
  EXPECT_EQ(header(d_on, "X-U"), "1");
  EXPECT_EQ(header(d_on, "X_Under_Score"), "1");
  auto d_off = route(*off, req("/", h));
  EXPECT_EQ(header(d_off, "X-U"), "<none>");
  EXPECT_EQ(header(d_off, "X_Under_Score"), "<none>");
  EXPECT_EQ(header(d_off, "X-Ok"), "2");
  const header_list want = {{"Host", "127.0.0.1:9000"}, {"Connection", "close"}};
  EXPECT_EQ(route(*none, req("/", h)).upstream.headers, want);
}

TEST(Rewrites, LastBreakRedirectAndArgs) {
  auto c = server(R"(
    rewrite ^/old/(.*)$ /api/$1 last;
    location /api/ { proxy_pass http://127.0.0.1:9000/v1/; }
    location /loop/ { rewrite ^/loop/(.*)$ /loop/$1 last; proxy_pass http://127.0.0.1:9000; }
    location /brk/ { rewrite ^/brk/(.*)$ /changed/$1 break; proxy_pass http://127.0.0.1:9000/ignored/; }
    location /chain/ {
      rewrite ^/chain/(.*)$ /api/$1;
      rewrite ^/api/(.*)$ /api/two-$1;
      proxy_pass http://127.0.0.1:9001;
    }
    location /argsdrop/ { rewrite ^ /api/dropped? last; }
    location /enc/ { rewrite ^/enc/(.*)$ /api/$1 last; }
    location /enc2/ { rewrite ^/enc2/(.*)$ /api/x?y=$1 last; }
    location /r/ { rewrite ^/r/(.*)$ /new/$1 redirect; }
    location /p/ { rewrite ^/p/(.*)$ /new/$1?k=1 permanent; }
  )");
  ASSERT_TRUE(c);
  EXPECT_EQ(uri_of(*c, "/old/x?y=1"), "/v1/x?y=1");
  EXPECT_EQ(route(*c, req("/loop/x")).status, 500);
  EXPECT_EQ(uri_of(*c, "/brk/x?q=1"), "/changed/x?q=1");
  EXPECT_EQ(uri_of(*c, "/chain/x"), "/v1/two-x");
  EXPECT_EQ(uri_of(*c, "/argsdrop/x?q=1"), "/v1/dropped");
  EXPECT_EQ(uri_of(*c, "/enc/a%20b%3F"), "/v1/a%20b%3F");
  EXPECT_EQ(uri_of(*c, "/enc2/a%20b%26"), "/v1/x?y=a%20b%26");
  EXPECT_EQ(uri_of(*c, "/enc2/a&b"), "/v1/x?y=a&b");
  auto r = route(*c, req("/r/a%20b%3Fc"));
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.location_header, "http://localhost:8080/new/a%20b?c");
  EXPECT_EQ(route(*c, req("/r/a%2Fb%7E")).location_header, "http://localhost:8080/new/a/b~");
  auto p = route(*c, req("/p/a%2fb?z=1"));
  EXPECT_EQ(p.status, 301);
  EXPECT_EQ(p.location_header, "http://localhost:8080/new/a/b?k=1&z=1");
}

TEST(Returns, CodesTextAndUrls) {
  auto c = server(R"(
    location /t { return 200 "hello $uri"; }
    location /gone { return 410; }
    location /moved { return 301 /new-home; }
    location /away { return https://other.example/elsewhere$uri$is_args$args; }
    location /close { return 444; }
    location /both { return 418; proxy_pass http://127.0.0.1:9000; }
  )");
  ASSERT_TRUE(c);
  auto t = route(*c, req("/t"));
  EXPECT_EQ(t.what, action::respond);
  EXPECT_EQ(t.status, 200);
  EXPECT_EQ(t.body, "hello /t");
  EXPECT_EQ(route(*c, req("/gone")).status, 410);
  auto m = route(*c, req("/moved", {{"Host", "localhost:8080"}}));
  EXPECT_EQ(m.what, action::redirect);
  EXPECT_EQ(m.location_header, "http://localhost:8080/new-home");
  auto a = route(*c, req("/away/x?y=1"));
  EXPECT_EQ(a.status, 302);
  EXPECT_EQ(a.location_header, "https://other.example/elsewhere/away/x?y=1");
  EXPECT_EQ(route(*c, req("/close")).status, 444);
  EXPECT_EQ(route(*c, req("/both")).status, 418);  // the rewrite phase runs before content
}

}  // namespace
}  // namespace wsgate::routing

namespace wsgate::routing {
namespace {

TEST(Diagnostics, OffChangesNoActionOnlyTheExplanations) {
  auto c = test::server(R"(
    location /ws/ { proxy_set_header Connection "upgrade"; proxy_pass http://127.0.0.1:9000; }
    location ~ \.php$ { return 200 php; }
  )");
  ASSERT_TRUE(c);
  for (const char* target : {"/ws/x", "/ws/a.php", "/ws", "/other.php"}) {
    SCOPED_TRACE(target);
    auto on = test::req(target);
    auto off = on;
    off.diagnostics = false;
    auto a = route(*c, on), b = route(*c, off);
    EXPECT_EQ(a.what, b.what);
    EXPECT_EQ(a.status, b.status);
    EXPECT_EQ(a.location, b.location);
    EXPECT_EQ(a.upstream.uri, b.upstream.uri);
    EXPECT_EQ(a.upstream.headers, b.upstream.headers);
    EXPECT_EQ(a.location_header, b.location_header);
    EXPECT_FALSE(a.candidates.empty());
    EXPECT_TRUE(b.candidates.empty());
  }
  // The request-specific notice stays: the data path logs it.
  auto off = test::req("/ws/x");
  off.diagnostics = false;
  EXPECT_TRUE(test::has_warning(route(*c, off).warnings, "connection-upgrade-dropped"));
}

}  // namespace
}  // namespace wsgate::routing

namespace wsgate::routing {
namespace {

TEST(StatusPages, LocationAndServerLevel) {
  auto c = test::server(R"(
    stub_status;
    location = /wsgate { wsgate_status; }
    location /api/ { proxy_pass http://127.0.0.1:9000; }
  )");
  ASSERT_TRUE(c);
  auto d = route(*c, test::req("/wsgate?format=html"));
  EXPECT_EQ(d.what, action::status);
  EXPECT_EQ(d.status_page, config::location::status_page::wsgate);
  // The server level's stub_status answers what no location matched (nginx's server handler).
  d = route(*c, test::req("/elsewhere"));
  EXPECT_EQ(d.what, action::status);
  EXPECT_EQ(d.status_page, config::location::status_page::stub);
  d = route(*c, test::req("/api/x"));
  EXPECT_EQ(d.what, action::proxy);
  EXPECT_EQ(d.status_page, config::location::status_page::none);
}

}  // namespace
}  // namespace wsgate::routing
