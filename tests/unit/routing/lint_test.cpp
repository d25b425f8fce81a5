// Every lint rule, firing and not firing.
#include "routing/lint.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include "helpers.hpp"

namespace wsgate::routing {
namespace {

using test::has_warning;
using test::server;

constexpr const char* kMap = "map $http_upgrade $connection_upgrade { default upgrade; '' close; }";

std::vector<warning> lint_of(std::string_view body, std::string_view http_extra = kMap) {
  auto c = server(body, http_extra);
  EXPECT_TRUE(c);
  return c ? lint(*c) : std::vector<warning>{};
}

const warning* find(const std::vector<warning>& ws, std::string_view id) {
  for (const auto& w : ws)
    if (w.id == id) return &w;
  return nullptr;
}

TEST(Lint, UpgradeNotForwarded) {
  auto w = lint_of("location /ws/ { proxy_pass http://b:1; proxy_read_timeout 1h; }");
  const warning* f = find(w, "ws-upgrade-not-forwarded");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->where.file, "test.conf");
  EXPECT_GT(f->where.line, 0);
  EXPECT_NE(f->fix.find("proxy_set_header Upgrade $http_upgrade;"), std::string::npos);
  EXPECT_NE(f->fix.find("proxy_http_version 1.1;"), std::string::npos);
  // Headers forwarded but HTTP/1.0: still a plain GET upstream.
  EXPECT_TRUE(has_warning(lint_of(R"(location /socket/ {
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h; proxy_pass http://b:1; })"),
                          "ws-upgrade-not-forwarded"));
  // Everything forwarded: quiet.
  EXPECT_FALSE(has_warning(lint_of(R"(location /ws/ { proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h; proxy_pass http://b:1; })"),
                           "ws-upgrade-not-forwarded"));
  // Not a WebSocket location: quiet.
  EXPECT_FALSE(has_warning(lint_of("location /api/ { proxy_pass http://b:1; }"),
                           "ws-upgrade-not-forwarded"));
  // A long read timeout marks a location as WebSocket-bound too.
  EXPECT_TRUE(
      has_warning(lint_of("location /live/ { proxy_read_timeout 3600s; proxy_pass http://b:1; }"),
                  "ws-upgrade-not-forwarded"));
}

TEST(Lint, ConnectionUpgradeLiteral) {
  auto w = lint_of(R"(location /ws/ { proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";
      proxy_read_timeout 1h; proxy_pass http://b:1; })");
  const warning* f = find(w, "connection-upgrade-literal");
  ASSERT_TRUE(f);
  EXPECT_NE(f->fix.find("map $http_upgrade $connection_upgrade"), std::string::npos);
  EXPECT_TRUE(has_warning(w, "connection-upgrade-dropped"));
  EXPECT_TRUE(is_notice(*find(w, "connection-upgrade-dropped")));
  EXPECT_FALSE(is_notice(*f));
  auto quiet = lint_of(R"(location /ws/ { proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h; proxy_pass http://b:1; })");
  EXPECT_FALSE(has_warning(quiet, "connection-upgrade-literal"));
  EXPECT_FALSE(has_warning(quiet, "connection-upgrade-dropped"));
}

TEST(Lint, ReadTimeoutWhereWebSocketsPass) {
  constexpr const char* fwd = R"(proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;)";
  auto w = lint_of(std::string("location /ws/ { ") + fwd + " proxy_pass http://b:1; }");
  const warning* f = find(w, "ws-read-timeout");
  ASSERT_TRUE(f);
  EXPECT_NE(f->text.find("60s"), std::string::npos);
  EXPECT_TRUE(has_warning(lint_of(std::string("location /ws/ { ") + fwd +
                                  " proxy_read_timeout 30s; proxy_pass http://b:1; }"),
                          "ws-read-timeout"));
  EXPECT_FALSE(has_warning(lint_of(std::string("location /ws/ { ") + fwd +
                                   " proxy_read_timeout 61s; proxy_pass http://b:1; }"),
                           "ws-read-timeout"));
  EXPECT_FALSE(
      has_warning(lint_of("location /api/ { proxy_pass http://b:1; }"), "ws-read-timeout"));
  // wsgate's websocket_keepalive pings idle tunnels before the timeout: quiet.
  EXPECT_FALSE(has_warning(lint_of(std::string("location /ws/ { ") + fwd +
                                   " websocket_keepalive 30s; proxy_pass http://b:1; }"),
                           "ws-read-timeout"));
}

TEST(Lint, ProxyPassSlashMismatch) {
  auto w = lint_of("location /api/ { proxy_pass http://b:1/v1; }");
  const warning* f = find(w, "proxy-pass-slash-mismatch");
  ASSERT_TRUE(f);
  EXPECT_NE(f->text.find("/api/x goes upstream as /v1x"), std::string::npos) << f->text;
  EXPECT_NE(f->fix.find("/v1/"), std::string::npos) << f->fix;
  EXPECT_TRUE(has_warning(lint_of("location /api { proxy_pass http://b:1/v1/; }"),
                          "proxy-pass-slash-mismatch"));
  EXPECT_FALSE(has_warning(lint_of("location /api/ { proxy_pass http://b:1/v1/; }"),
                           "proxy-pass-slash-mismatch"));
  EXPECT_FALSE(has_warning(lint_of("location /api/ { proxy_pass http://b:1; }"),
                           "proxy-pass-slash-mismatch"));
  EXPECT_FALSE(has_warning(lint_of("location = /api { proxy_pass http://b:1/v1/; }"),
                           "proxy-pass-slash-mismatch"));
}

TEST(Lint, ProxyPassUriEqualToPrefixIsANotice) {
  // The seed's "fix": the URI part replaces the matched prefix with itself.
  auto w = lint_of("location /api/v1/ws/ { proxy_pass http://b:1/api/v1/ws/; }");
  const warning* f = find(w, "proxy-pass-uri-redundant");
  ASSERT_TRUE(f);
  EXPECT_TRUE(is_notice(*f));
  EXPECT_NE(f->text.find("/api/v1/ws/x goes upstream as /api/v1/ws/x"), std::string::npos)
      << f->text;
  EXPECT_NE(f->fix.find("proxy_pass http://b:1;"), std::string::npos) << f->fix;
  EXPECT_FALSE(has_warning(lint_of("location /api/ { proxy_pass http://b:1/v1/; }"),
                           "proxy-pass-uri-redundant"));
  EXPECT_FALSE(
      has_warning(lint_of("location / { proxy_pass http://b:1/; }"), "proxy-pass-uri-redundant"));
  EXPECT_FALSE(
      has_warning(lint_of("location /a/ { proxy_pass http://b:1; }"), "proxy-pass-uri-redundant"));
}

TEST(Lint, InnerProxySetHeaderDropsOuter) {
  auto w = lint_of(R"(proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      location /a/ { proxy_set_header Host $host; proxy_pass http://b:1; }
      location /b/ { proxy_pass http://b:1; }
      location /c/ { proxy_set_header X-Real-IP $remote_addr;
                     proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                     proxy_set_header Host $host; proxy_pass http://b:1; })");
  int count = 0;
  for (const auto& x : w) {
    if (x.id != "proxy-set-header-dropped") continue;
    ++count;
    EXPECT_NE(x.text.find("location /a/"), std::string::npos) << x.text;
    EXPECT_NE(x.text.find("X-Real-IP, X-Forwarded-For"), std::string::npos) << x.text;
  }
  EXPECT_EQ(count, 1);
}

TEST(Lint, WebSocketPathOnlyWithTrailingSlash) {
  constexpr const char* fwd = R"(proxy_http_version 1.1; proxy_read_timeout 1h;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;)";
  auto w = lint_of(std::string("location /ws/ { ") + fwd + " proxy_pass http://b:1; }");
  const warning* f = find(w, "ws-trailing-slash-only");
  ASSERT_TRUE(f);
  EXPECT_NE(f->fix.find("location = /ws"), std::string::npos);
  EXPECT_FALSE(has_warning(
      lint_of(std::string("location /ws/ { ") + fwd +
              " proxy_pass http://b:1; } location = /ws { " + fwd + " proxy_pass http://b:1; }"),
      "ws-trailing-slash-only"));
  EXPECT_FALSE(
      has_warning(lint_of("location /api/ { proxy_pass http://b:1; }"), "ws-trailing-slash-only"));
}

TEST(Lint, UnknownVariable) {
  auto w = lint_of("location / { proxy_set_header X-A $nosuchvar; proxy_pass http://b:1; }");
  const warning* f = find(w, "unknown-variable");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->text, "unknown \"nosuchvar\" variable");
  EXPECT_FALSE(has_warning(
      lint_of(
          R"(location / { proxy_set_header X-A "$http_x_a $arg_b $cookie_c $connection_upgrade $1";
      proxy_pass http://b:1; })"),
      "unknown-variable"));
}

TEST(Lint, WsHeuristic) {
  auto c = server(R"(
    location /api/v1/ws/ { proxy_pass http://b:1; }
    location /socket.io/ { proxy_pass http://b:1; }
    location /chat/ { proxy_set_header Upgrade $http_upgrade; proxy_pass http://b:1; }
    location /api/ { proxy_pass http://b:1; }
    location /wsx/ { proxy_pass http://b:1; }
  )");
  ASSERT_TRUE(c);
  const auto& locs = c->http->servers[0]->root_location.children;
  ASSERT_EQ(locs.size(), 5u);
  EXPECT_TRUE(ws_location(*locs[0]));
  EXPECT_TRUE(ws_location(*locs[1]));
  EXPECT_TRUE(ws_location(*locs[2]));
  EXPECT_FALSE(ws_location(*locs[3]));
  EXPECT_FALSE(ws_location(*locs[4]));
}

TEST(Lint, TlsPitfalls) {
  // A certificate in a server with no ssl listen: TLS clients get plain text.
  auto w = lint(*test::load(R"(events {} http {
    server { listen 127.0.0.1:443; server_name a; ssl_certificate a.pem; ssl_certificate_key a.key;
             location / { return 200; } } })"));
  const warning* f = find(w, "ssl-certificate-without-ssl");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->where.line, 2);
  EXPECT_NE(f->fix.find("listen 443 ssl;"), std::string::npos);
  EXPECT_TRUE(find(w, "ssl-port-plain"));  // and 443 without ssl
  // The same with ssl: quiet.
  w = lint(*test::load(R"(events {} http {
    server { listen 127.0.0.1:443 ssl; ssl_certificate a.pem; ssl_certificate_key a.key; } })"));
  EXPECT_FALSE(find(w, "ssl-certificate-without-ssl"));
  EXPECT_FALSE(find(w, "ssl-port-plain"));
  // A certificate from http{} in a plain server is not this server's mistake.
  w = lint(*test::load(R"(events {} http { ssl_certificate a.pem; ssl_certificate_key a.key;
    server { listen 127.0.0.1:443 ssl; server_name tls; }
    server { listen 127.0.0.1:8080; server_name plain; } })"));
  EXPECT_FALSE(find(w, "ssl-certificate-without-ssl"));
  // A plain listen sharing an ssl address: a notice that it speaks TLS too.
  w = lint(*test::load(R"(events {} http {
    server { listen 127.0.0.1:8443 ssl; server_name a; ssl_certificate a.pem; ssl_certificate_key a.key; }
    server { listen 127.0.0.1:8443; server_name b; ssl_certificate b.pem; ssl_certificate_key b.key; }
    server { listen 127.0.0.2:8443; server_name c; } })"));
  f = find(w, "ssl-listen-shared");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->where.line, 3);
  EXPECT_TRUE(is_notice(*f));
  EXPECT_FALSE(find(w, "ssl-certificate-without-ssl"));  // b speaks TLS through the shared port
  int shared = 0;
  for (const auto& x : w) shared += x.id == "ssl-listen-shared";
  EXPECT_EQ(shared, 1);  // 127.0.0.2 is another address
}

TEST(Lint, ProxySslVerifyAgainstAnIp) {
  auto w = lint_of(R"(location / { proxy_pass https://10.0.0.5:8443;
      proxy_ssl_verify on; proxy_ssl_trusted_certificate ca.pem; })");
  const warning* f = find(w, "proxy-ssl-verify-ip");
  ASSERT_TRUE(f);
  EXPECT_NE(f->text.find("10.0.0.5"), std::string::npos);
  EXPECT_NE(f->fix.find("proxy_ssl_name"), std::string::npos);
  // A name to check: quiet; a host name in proxy_pass: quiet; no verification: quiet.
  EXPECT_FALSE(find(lint_of(R"(location / { proxy_pass https://10.0.0.5:8443; proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ca.pem; proxy_ssl_name api.example.com; })"),
                    "proxy-ssl-verify-ip"));
  EXPECT_FALSE(find(lint_of(R"(location / { proxy_pass https://api.example.com;
      proxy_ssl_verify on; proxy_ssl_trusted_certificate ca.pem; })"),
                    "proxy-ssl-verify-ip"));
  EXPECT_FALSE(
      find(lint_of("location / { proxy_pass https://10.0.0.5:8443; }"), "proxy-ssl-verify-ip"));
}

// busy_polling with more polling workers than CPUs: they would take each other's CPU time.
TEST(Lint, BusyPollingOversubscribed) {
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  ASSERT_GT(cpus, 0);
  const std::string many = std::to_string(cpus + 1), enough = std::to_string(cpus);
  auto w = lint(*test::load("worker_processes " + many + ";\nbusy_polling on;\nevents {} http {}"));
  const warning* f = find(w, "busy-polling-oversubscribed");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->where.line, 2);
  EXPECT_NE(f->text.find(many + " worker threads"), std::string::npos) << f->text;
  EXPECT_NE(f->fix.find("worker_processes auto;"), std::string::npos);
  // As many workers as CPUs, or no polling: quiet.
  EXPECT_FALSE(
      find(lint(*test::load("worker_processes " + enough + "; busy_polling on; events {} http {}")),
           "busy-polling-oversubscribed"));
  EXPECT_FALSE(find(lint(*test::load("worker_processes " + many + "; events {} http {}")),
                    "busy-polling-oversubscribed"));
}

}  // namespace
}  // namespace wsgate::routing
