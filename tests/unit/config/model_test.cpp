// What a loaded configuration means: the model's values, inheritance, includes and notices.
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "config/regex.hpp"
#include "test_util.hpp"

namespace wsgate::config {
namespace {

using namespace std::chrono_literals;

using test::load_ok;

const server& first_server(const snapshot& c) {
  return *c.http->servers.at(0);
}
const location& loc_at(const snapshot& c, size_t i) {
  return *first_server(c).root_location.children.at(i);
}

// ---- main ------------------------------------------------------------------------------------

TEST(Main, Settings) {
  auto c = load_ok(
      "daemon off; worker_processes 3; pid /tmp/w.pid; user www-data group;\n"
      "error_log /tmp/e.log warn; worker_shutdown_timeout 10s; busy_polling on;\n"
      "events { worker_connections 2048; }");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->main.daemon);
  EXPECT_EQ(c->main.worker_processes, 3);
  EXPECT_EQ(c->main.pid_path, "/tmp/w.pid");
  EXPECT_EQ(c->main.user, "www-data");
  ASSERT_TRUE(c->main.error_log);
  EXPECT_EQ(c->main.error_log->path, "/tmp/e.log");
  EXPECT_EQ(c->main.error_log->level, "warn");
  EXPECT_EQ(c->main.worker_shutdown_timeout, 10s);
  EXPECT_EQ(c->main.worker_connections, 2048);
  EXPECT_TRUE(c->main.busy_polling);
  EXPECT_FALSE(c->http);
}

TEST(Main, WorkerProcessesAuto) {
  auto c = load_ok("worker_processes auto; events {}");
  ASSERT_TRUE(c);
  EXPECT_GE(c->main.worker_processes, 1);
}

TEST(Main, Defaults) {
  auto c = load_ok("events {}");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->main.daemon);
  EXPECT_EQ(c->main.worker_processes, 1);
  EXPECT_EQ(c->main.worker_connections, 512);
  EXPECT_FALSE(c->main.busy_polling);
}

TEST(Main, GlobalDirectivesComeFirst) {
  test::temp_dir dir;
  auto path = dir.write("nginx.conf", "events {}\n");
  auto r = test::load_path(path, "daemon off; worker_processes 4;");
  ASSERT_FALSE(r.error) << r.error->format();
  EXPECT_FALSE(r.config->main.daemon);
  EXPECT_EQ(r.config->main.worker_processes, 4);
  EXPECT_EQ(r.config->conf_file, path);
}

// ---- listen and server_name ------------------------------------------------------------------

TEST(Server, ListenForms) {
  auto c = load_ok(
      "events {} http { server {\n"
      " listen 8080; listen 127.0.0.1:8081 default_server; listen [::]:8082 reuseport;\n"
      " listen 127.0.0.2; listen *:8083 backlog=64; listen localhost:8084;\n"
      " listen [::1] ssl; ssl_certificate /c.pem; ssl_certificate_key /k.pem;\n"
      "} }");
  ASSERT_TRUE(c);
  const auto& l = first_server(*c).listens;
  ASSERT_EQ(l.size(), 7u);
  EXPECT_EQ(l[0].addr, "*");
  EXPECT_EQ(l[0].port, 8080);
  EXPECT_FALSE(l[0].ipv6);
  EXPECT_EQ(l[1].addr, "127.0.0.1");
  EXPECT_TRUE(l[1].default_server);
  EXPECT_EQ(l[2].addr, "::");
  EXPECT_TRUE(l[2].ipv6);
  EXPECT_TRUE(l[2].reuseport);
  EXPECT_EQ(l[2].port, 8082);
  EXPECT_EQ(l[3].addr, "127.0.0.2");
  EXPECT_EQ(l[3].port, 80);
  EXPECT_EQ(l[4].backlog, 64);
  EXPECT_EQ(l[5].addr, "127.0.0.1");
  EXPECT_EQ(l[6].addr, "::1");
  EXPECT_EQ(l[6].port, 80);
  EXPECT_TRUE(l[6].ssl);
  EXPECT_EQ(l[6].where.line, 4);
  EXPECT_EQ(first_server(*c).ssl.certificate, "/c.pem");
}

TEST(Server, NoListenMeansPort80) {
  auto c = load_ok("events {} http { server { } }");
  ASSERT_TRUE(c);
  const auto& l = first_server(*c).listens;
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].addr, "*");
  EXPECT_EQ(l[0].port, 80);
}

TEST(Server, Http2IsANotice) {
  auto c = load_ok("events {} http { server { listen 8443 http2; } }");
  ASSERT_TRUE(c);
  ASSERT_EQ(c->notices.size(), 1u);
  EXPECT_NE(c->notices[0].text.find("http2"), std::string::npos);
}

TEST(Server, Names) {
  auto c = load_ok(
      "events {} http { server { server_name Example.COM *.Example.com www.example.* "
      ".sub.org \"\" ~^(?<user>.+)\\.Example\\.net$; } }");
  ASSERT_TRUE(c);
  const auto& n = first_server(*c).names;
  ASSERT_EQ(n.size(), 7u);
  using k = server_name_entry::kind;
  EXPECT_EQ(n[0].type, k::exact);
  EXPECT_EQ(n[0].name, "example.com");
  EXPECT_EQ(n[1].type, k::wildcard_front);
  EXPECT_EQ(n[1].name, "*.example.com");
  EXPECT_EQ(n[2].type, k::wildcard_back);
  EXPECT_EQ(n[2].name, "www.example.*");
  EXPECT_EQ(n[3].type, k::exact);  // ".sub.org" is sub.org and *.sub.org
  EXPECT_EQ(n[3].name, "sub.org");
  EXPECT_EQ(n[4].type, k::wildcard_front);
  EXPECT_EQ(n[4].name, "*.sub.org");
  EXPECT_EQ(n[5].name, "");
  EXPECT_EQ(n[6].type, k::regex);
  EXPECT_EQ(n[6].name, "^(?<user>.+)\\.Example\\.net$");
  ASSERT_TRUE(n[6].compiled);
  EXPECT_TRUE(n[6].compiled->match("joe.example.NET"));  // server_name regexes ignore case
}

// ---- locations -------------------------------------------------------------------------------

TEST(Location, Kinds) {
  auto c = load_ok(
      "events {} http { server {\n"
      " location /a {} location = /b {} location ^~ /c {} location ~ \\.php$ {}\n"
      " location ~* \\.JPG$ {} location @fallback {} location =/d {} location ~*/e {}\n"
      " location ~/f {}\n"
      "} }");
  ASSERT_TRUE(c);
  using mk = location::match_kind;
  const auto& ch = first_server(*c).root_location.children;
  ASSERT_EQ(ch.size(), 9u);
  EXPECT_EQ(ch[0]->kind, mk::prefix);
  EXPECT_EQ(ch[1]->kind, mk::exact);
  EXPECT_EQ(ch[2]->kind, mk::prefix_no_regex);
  EXPECT_EQ(ch[3]->kind, mk::regex);
  EXPECT_EQ(ch[3]->pattern, "\\.php$");
  ASSERT_TRUE(ch[3]->compiled);
  EXPECT_TRUE(ch[3]->compiled->match("/x.php"));
  EXPECT_FALSE(ch[3]->compiled->match("/x.PHP"));
  EXPECT_EQ(ch[4]->kind, mk::regex_icase);
  EXPECT_TRUE(ch[4]->compiled->match("/a.jpg"));
  EXPECT_EQ(ch[5]->kind, mk::named);
  EXPECT_EQ(ch[5]->pattern, "fallback");
  EXPECT_EQ(ch[6]->kind, mk::exact);
  EXPECT_EQ(ch[6]->pattern, "/d");
  EXPECT_EQ(ch[7]->kind, mk::regex_icase);
  EXPECT_EQ(ch[7]->pattern, "/e");
  EXPECT_EQ(ch[8]->kind, mk::regex);
  EXPECT_EQ(ch[8]->pattern, "/f");
  EXPECT_EQ(ch[8]->where.line, 4);
  for (const auto& l : ch) EXPECT_EQ(l->parent, &first_server(*c).root_location);
  EXPECT_FALSE(ch[0]->compiled);
}

TEST(Location, NestingAndParents) {
  auto c = load_ok(
      "events {} http { server {\n"
      " location /api/ { proxy_read_timeout 5s;\n"
      "   location /api/ws/ { proxy_pass http://b; }\n"
      "   location ~ \\.json$ { }\n"
      " }\n"
      " location ~ ^/re { location ^/re/x { } }\n"
      "} }");
  ASSERT_TRUE(c);
  const location& api = loc_at(*c, 0);
  ASSERT_EQ(api.children.size(), 2u);
  const location& ws = *api.children[0];
  EXPECT_EQ(ws.parent, &api);
  EXPECT_EQ(ws.pattern, "/api/ws/");
  EXPECT_EQ(*ws.settings.proxy_read_timeout, 5s);  // from the parent location
  EXPECT_EQ(*api.children[1]->settings.proxy_read_timeout, 5s);
  // nginx compares a prefix nested in a regex location against the regex source.
  EXPECT_EQ(loc_at(*c, 1).children.at(0)->pattern, "^/re/x");
}

TEST(Location, DuplicatesThatNginxAllows) {
  auto c = load_ok(
      "events {} http { server { location /a {} location = /a {} location ~ /a {} "
      "location ~ /a {} location @n {} location @n {} } }");
  ASSERT_TRUE(c);
  EXPECT_EQ(first_server(*c).root_location.children.size(), 6u);
}

TEST(Location, DuplicateInNestedLevel) {
  auto r =
      load_text("events {} http { server { location /a/ { location /a/b {}\nlocation /a/b {} } } }",
                "t.conf");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message, "duplicate location \"/a/b\"");
  EXPECT_EQ(r.error->where.line, 2);
}

// ---- handlers --------------------------------------------------------------------------------

TEST(Handlers, ProxyPassForms) {
  auto c = load_ok(
      "events {} http { upstream backend { server 10.0.0.1:8000; server 10.0.0.2; }\n"
      "server {\n"
      " location /a { proxy_pass http://backend; }\n"
      " location /b { proxy_pass http://localhost:8000/; }\n"
      " location /c { proxy_pass HTTPS://Example.com/x/; }\n"
      " location /d { proxy_pass http://[::1]:9000; }\n"
      " location /e { proxy_pass http://unix:/run/app.sock:/api/; }\n"
      " location /f { proxy_pass http://$host$request_uri; }\n"
      " location ~ /g { proxy_pass http://backend; }\n"
      " location @h { proxy_pass http://127.0.0.1:81; }\n"
      "} }");
  ASSERT_TRUE(c);
  const auto& a = *loc_at(*c, 0).proxy_pass;
  EXPECT_EQ(a.scheme, "http");
  EXPECT_EQ(a.host, "backend");
  EXPECT_EQ(a.port, 0);  // an upstream{} name
  EXPECT_FALSE(a.port_explicit);
  EXPECT_FALSE(a.uri);
  EXPECT_EQ(a.where.line, 3);
  const auto& b = *loc_at(*c, 1).proxy_pass;
  EXPECT_EQ(b.host, "localhost");
  EXPECT_EQ(b.port, 8000);
  EXPECT_TRUE(b.port_explicit);
  EXPECT_EQ(b.uri, "/");
  const auto& cc = *loc_at(*c, 2).proxy_pass;
  EXPECT_EQ(cc.scheme, "https");
  EXPECT_EQ(cc.port, 443);
  EXPECT_EQ(cc.host, "Example.com");
  EXPECT_EQ(cc.uri, "/x/");
  const auto& d = *loc_at(*c, 3).proxy_pass;
  EXPECT_EQ(d.host, "[::1]");
  EXPECT_EQ(d.port, 9000);
  const auto& e = *loc_at(*c, 4).proxy_pass;
  EXPECT_EQ(e.unix_path, "/run/app.sock");
  EXPECT_EQ(e.uri, "/api/");
  const auto& f = *loc_at(*c, 5).proxy_pass;
  EXPECT_TRUE(f.url.has_variables());
  EXPECT_TRUE(f.host.empty());  // resolved per request
  EXPECT_EQ(f.url.raw, "http://$host$request_uri");
  EXPECT_EQ(loc_at(*c, 6).proxy_pass->port, 0);
  EXPECT_EQ(loc_at(*c, 7).proxy_pass->port, 81);
}

TEST(Handlers, ReturnRewrite) {
  auto c = load_ok(
      "events {} http { server {\n"
      " rewrite ^/old/(.*)$ /new/$1 permanent;\n"
      " location /a { return 204; }\n"
      " location /b { return 200 \"hello $host\"; return 500; }\n"
      " location /c { return https://example.com$request_uri; }\n"
      " location /d { rewrite ^/d/(.*) /e/$1 break; rewrite ^ /f last; rewrite ^ /g redirect;"
      " rewrite ^ /h; }\n"
      "} }");
  ASSERT_TRUE(c);
  const location& root = first_server(*c).root_location;
  ASSERT_EQ(root.rewrites.size(), 1u);
  EXPECT_EQ(root.rewrites[0].flag, rewrite_flag::permanent);
  EXPECT_EQ(root.rewrites[0].regex, "^/old/(.*)$");
  ASSERT_TRUE(root.rewrites[0].compiled);
  std::vector<std::string_view> caps;
  EXPECT_TRUE(root.rewrites[0].compiled->match("/old/x/y", caps));
  EXPECT_EQ(caps.at(1), "x/y");
  ASSERT_EQ(root.rewrites[0].replacement.parts.size(), 2u);
  EXPECT_EQ(root.rewrites[0].replacement.parts[1].text, "1");

  EXPECT_EQ(loc_at(*c, 0).ret->code, 204);
  EXPECT_FALSE(loc_at(*c, 0).ret->text_or_url);
  EXPECT_EQ(loc_at(*c, 1).ret->code, 200);  // the first return wins
  EXPECT_EQ(loc_at(*c, 1).ret->text_or_url->raw, "hello $host");
  EXPECT_EQ(loc_at(*c, 2).ret->code, 302);
  EXPECT_EQ(loc_at(*c, 2).ret->text_or_url->raw, "https://example.com$request_uri");
  const auto& rw = loc_at(*c, 3).rewrites;
  ASSERT_EQ(rw.size(), 4u);
  EXPECT_EQ(rw[0].flag, rewrite_flag::break_);
  EXPECT_EQ(rw[1].flag, rewrite_flag::last);
  EXPECT_EQ(rw[2].flag, rewrite_flag::redirect);
  EXPECT_EQ(rw[3].flag, rewrite_flag::none);
  EXPECT_FALSE(loc_at(*c, 3).ret);
}

TEST(Handlers, StatementsAfterReturnNeverRun) {
  auto c = load_ok(
      "events {} http { server { location / {\n"
      " rewrite ^/a /b;\n"
      " return 403;\n"
      " rewrite ^/c /d;\n"
      " return 404;\n"
      "} } }");
  ASSERT_TRUE(c);
  const location& l = loc_at(*c, 0);
  ASSERT_EQ(l.rewrites.size(), 1u);
  EXPECT_EQ(l.rewrites[0].regex, "^/a");
  EXPECT_EQ(l.ret->code, 403);
  ASSERT_EQ(c->notices.size(), 2u);
  EXPECT_EQ(c->notices[0].text, "\"rewrite\" never runs: the \"return\" at line 3 comes first");
  EXPECT_EQ(c->notices[0].where.line, 4);
  EXPECT_EQ(c->notices[1].text, "\"return\" never runs: the \"return\" at line 3 comes first");
}

TEST(Handlers, NotInherited) {
  auto c = load_ok(
      "events {} http { server { return 403; rewrite ^ /x;\n"
      " location /a { location /a/b { } }\n"
      "} }");
  ASSERT_TRUE(c);
  EXPECT_TRUE(first_server(*c).root_location.ret);
  EXPECT_FALSE(loc_at(*c, 0).ret);
  EXPECT_TRUE(loc_at(*c, 0).rewrites.empty());
  EXPECT_FALSE(loc_at(*c, 0).children[0]->ret);
  EXPECT_FALSE(loc_at(*c, 0).children[0]->proxy_pass);
}

TEST(Handlers, HeadersPagesLogs) {
  auto c = load_ok(
      "events {} http { log_format main '$remote_addr \"$request\"' ' $status';\n"
      " log_format js escape=json '{\"a\":\"$uri\"}';\n"
      " server { ssl_protocols TLSv1.2; ssl_protocols TLSv1.3 TLSv1.2; location / {\n"
      "  add_header X-A 1; add_header X-B $host always;\n"
      "  error_page 404 /404.html; error_page 500 502 =200 /50x; error_page 403 = @f;\n"
      "  access_log /tmp/a.log main buffer=32k; access_log /tmp/b.log;\n"
      "  proxy_hide_header X-Powered-By; proxy_pass_header Server;\n"
      "  proxy_pass http://a; proxy_redirect default; proxy_redirect http://a/ /;\n"
      "  proxy_next_upstream error http_502; proxy_next_upstream timeout error;\n"
      "  proxy_buffers 16 8k;\n"
      " } } }");
  ASSERT_TRUE(c);
  const auto& s = loc_at(*c, 0).settings;
  ASSERT_EQ(s.add_header->size(), 2u);
  EXPECT_FALSE((*s.add_header)[0].always);
  EXPECT_TRUE((*s.add_header)[1].always);
  EXPECT_EQ((*s.add_header)[1].value.parts[0].text, "host");
  ASSERT_EQ(s.error_page->size(), 3u);
  EXPECT_EQ((*s.error_page)[0].codes, std::vector<int>{404});
  EXPECT_FALSE((*s.error_page)[0].response_code);
  EXPECT_EQ((*s.error_page)[1].codes, (std::vector<int>{500, 502}));
  EXPECT_EQ((*s.error_page)[1].response_code, 200);
  EXPECT_EQ((*s.error_page)[2].response_code, 0);
  EXPECT_EQ((*s.error_page)[2].uri.raw, "@f");
  ASSERT_EQ(s.access_log->size(), 2u);
  EXPECT_EQ((*s.access_log)[0].format, "main");
  EXPECT_EQ((*s.access_log)[1].format, "combined");
  EXPECT_EQ(*s.proxy_hide_header, std::vector<std::string>{"x-powered-by"});
  EXPECT_EQ(*s.proxy_pass_header, std::vector<std::string>{"server"});
  ASSERT_EQ(s.proxy_redirect->size(), 2u);
  EXPECT_EQ((*s.proxy_redirect)[0].type, proxy_redirect_setting::kind::default_);
  EXPECT_EQ((*s.proxy_redirect)[1].type, proxy_redirect_setting::kind::replace);
  EXPECT_EQ((*s.proxy_redirect)[1].from.raw, "http://a/");
  // Repeated lines add up, as nginx's bitmask settings do.
  EXPECT_EQ(*s.proxy_next_upstream, (std::vector<std::string>{"error", "http_502", "timeout"}));
  EXPECT_EQ(first_server(*c).ssl.protocols, (std::vector<std::string>{"TLSv1.2", "TLSv1.3"}));
  EXPECT_EQ(*s.proxy_buffers_size, 16u * 8192u);
  const auto& formats = c->http->log_formats;
  ASSERT_EQ(formats.size(), 3u);  // combined is predefined
  EXPECT_EQ(formats[0].name, "combined");
  EXPECT_EQ(formats[1].format.raw, "$remote_addr \"$request\" $status");
  EXPECT_EQ(formats[2].escape, "json");
}

// ---- upstream and map ------------------------------------------------------------------------

TEST(Upstream, ServersAndOptions) {
  auto c = load_ok(
      "events {} http { upstream u {\n"
      " least_conn;\n"
      " server 10.0.0.1:8000 weight=3 max_fails=2 fail_timeout=30s;\n"
      " server app.internal backup;\n"
      " server 10.0.0.3:9 down max_conns=5;\n"
      " keepalive 32; keepalive_requests 100; keepalive_timeout 30s;\n"
      "} }");
  ASSERT_TRUE(c);
  const upstream& u = c->http->upstreams.at("u");
  EXPECT_EQ(u.name, "u");
  EXPECT_EQ(u.balancer, "least_conn");
  ASSERT_EQ(u.servers.size(), 3u);
  EXPECT_EQ(u.servers[0].host, "10.0.0.1");
  EXPECT_EQ(u.servers[0].port, 8000);
  EXPECT_EQ(u.servers[0].weight, 3);
  EXPECT_EQ(u.servers[0].max_fails, 2);
  EXPECT_EQ(u.servers[0].fail_timeout, 30s);
  EXPECT_EQ(u.servers[1].host, "app.internal");
  EXPECT_EQ(u.servers[1].port, 80);
  EXPECT_TRUE(u.servers[1].backup);
  EXPECT_TRUE(u.servers[2].down);
  EXPECT_EQ(u.servers[2].where.line, 5);
  EXPECT_EQ(u.keepalive, 32);
  EXPECT_EQ(u.keepalive_requests, 100);
  EXPECT_EQ(u.keepalive_timeout, 30s);
}

TEST(Upstream, Balancers) {
  auto c = load_ok(
      "events {} http { upstream a { ip_hash; server 127.0.0.1:1; }\n"
      " upstream b { hash $request_uri consistent; server 127.0.0.1:1; }\n"
      " upstream c { server 127.0.0.1:1; } }");
  ASSERT_TRUE(c);
  const auto& ups = c->http->upstreams;
  EXPECT_EQ(ups.at("a").balancer, "ip_hash");
  EXPECT_EQ(ups.at("b").balancer, "hash");
  EXPECT_EQ(ups.at("b").hash_key.raw, "$request_uri");
  EXPECT_TRUE(ups.at("b").hash_consistent);
  EXPECT_EQ(ups.at("c").balancer, "round_robin");
  EXPECT_EQ(ups.at("c").keepalive, 0);
  EXPECT_EQ(ups.at("c").keepalive_timeout, 60s);
  EXPECT_EQ(ups.at("c").keepalive_requests, 1000);
  // What wsgate does not do as nginx is said: `consistent` is plain hashing here.
  ASSERT_EQ(c->notices.size(), 1u);
  EXPECT_NE(c->notices[0].text.find("plain `hash KEY`"), std::string::npos);
  auto r = load_ok("events {} http { upstream a { least_conn; ip_hash; server 127.0.0.1:1; } }");
  ASSERT_EQ(r->notices.size(), 2u);
  EXPECT_EQ(r->notices[0].text,
            "wsgate balances this upstream round robin: least_conn is not implemented yet");
  EXPECT_EQ(r->notices[1].text, "load balancing method redefined");
  auto m = load_ok("events {} http { upstream a { server 127.0.0.1:1 max_conns=10; } }");
  ASSERT_EQ(m->notices.size(), 1u);
  EXPECT_EQ(m->notices[0].text, "wsgate ignores max_conns: connections per server are not limited");
}

TEST(Map, EntriesRegexAndHostnames) {
  auto c = load_ok(
      "events {} http {\n"
      " map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n"
      " map $host $backend { hostnames; default b0; *.Example.com b1; ~^api\\. b2;"
      " ~*^WS b3; \\default b4; volatile; }\n"
      "}");
  ASSERT_TRUE(c);
  ASSERT_EQ(c->http->maps.size(), 2u);
  const map_block& m = c->http->maps[1];
  EXPECT_TRUE(m.hostnames);
  EXPECT_EQ(m.result, "backend");
  EXPECT_EQ(m.where.line, 3);
  ASSERT_EQ(m.entries.size(), 4u);
  EXPECT_EQ(m.entries[0].key, "*.example.com");
  EXPECT_FALSE(m.entries[0].is_regex);
  EXPECT_TRUE(m.entries[1].is_regex);
  EXPECT_FALSE(m.entries[1].icase);
  EXPECT_EQ(m.entries[1].key, "^api\\.");
  EXPECT_TRUE(m.entries[1].compiled->match("api.x"));
  EXPECT_TRUE(m.entries[2].icase);
  EXPECT_TRUE(m.entries[2].compiled->match("ws.x"));
  EXPECT_EQ(m.entries[3].key, "default");  // escaped: a key, not the default
  EXPECT_EQ(m.default_value->raw, "b0");
  // Exact keys are lower-cased: nginx matches them without regard to case (checked with
  // nginx 1.22: "Foo 1;" answers for ?x=foo, ?x=FOO and ?x=Foo).
  auto c2 = load_ok("events {} http { map $arg_x $y { Foo 1; } }");
  EXPECT_EQ(c2->http->maps[0].entries[0].key, "foo");
}

TEST(Map, Include) {
  test::temp_dir dir;
  dir.write("maps/keys.map", "a 1;\nb 2;\n");
  auto path = dir.write("nginx.conf",
                        "events {} http { map $arg_x $y { default 0; include maps/keys.map; } }\n");
  auto r = test::load_path(path);
  ASSERT_FALSE(r.error) << r.error->format();
  EXPECT_EQ(r.config->http->maps[0].entries.size(), 2u);
}

// ---- inheritance -----------------------------------------------------------------------------

TEST(Inheritance, DefaultsEverywhere) {
  auto c = load_ok("events {} http { server { location / { location /x { } } } }");
  ASSERT_TRUE(c);
  const location* levels[] = {&first_server(*c).root_location, &loc_at(*c, 0),
                              loc_at(*c, 0).children[0].get()};
  for (const location* l : levels) {
    const auto& s = l->settings;
    EXPECT_EQ(*s.proxy_http_version, "1.0");
    EXPECT_EQ(*s.proxy_connect_timeout, 60s);
    EXPECT_EQ(*s.proxy_read_timeout, 60s);
    EXPECT_EQ(*s.proxy_send_timeout, 60s);
    EXPECT_TRUE(*s.proxy_buffering);
    EXPECT_TRUE(*s.proxy_request_buffering);
    EXPECT_TRUE(*s.proxy_pass_request_headers);
    EXPECT_TRUE(*s.proxy_pass_request_body);
    EXPECT_EQ(*s.proxy_buffer_size, 4096u);
    EXPECT_EQ(*s.client_max_body_size, 1048576u);
    EXPECT_EQ(*s.keepalive_timeout, 75s);
    EXPECT_EQ(*s.client_body_timeout, 60s);
    EXPECT_EQ(*s.send_timeout, 60s);
    EXPECT_TRUE(*s.server_tokens);
    EXPECT_TRUE(s.proxy_set_header->empty());
    EXPECT_TRUE(s.add_header->empty());
    EXPECT_EQ(*s.proxy_next_upstream, (std::vector<std::string>{"error", "timeout"}));
    ASSERT_EQ(s.proxy_redirect->size(), 1u);
    EXPECT_EQ((*s.proxy_redirect)[0].type, proxy_redirect_setting::kind::default_);
    EXPECT_EQ(*s.websocket_keepalive, duration::zero());
    EXPECT_EQ(*s.upgrade_allow, std::vector<std::string>{"websocket"});
    ASSERT_TRUE(s.error_log);
    ASSERT_EQ(s.access_log->size(), 1u);
  }
  const server& srv = first_server(*c);
  EXPECT_TRUE(*srv.merge_slashes);
  EXPECT_FALSE(*srv.underscores_in_headers);
  EXPECT_EQ(*srv.client_header_buffer_size, 1024u);
  EXPECT_EQ(*srv.large_client_header_buffers, std::make_pair(4, size_t{8192}));
  EXPECT_EQ(*srv.client_header_timeout, 60s);
  EXPECT_EQ(srv.ssl.protocols, (std::vector<std::string>{"TLSv1.2", "TLSv1.3"}));
}

TEST(Inheritance, ValuesFlowDownUntilSet) {
  auto c = load_ok(
      "events {} http { proxy_read_timeout 10s; proxy_http_version 1.1; merge_slashes off;\n"
      " client_max_body_size 0; ssl_protocols TLSv1.3;\n"
      " server { proxy_read_timeout 20s; underscores_in_headers on;\n"
      "  location / { proxy_buffering off; location /x { proxy_read_timeout 30s; } }\n"
      "  location /y { }\n"
      " }\n"
      " server { merge_slashes on; }\n"
      "}");
  ASSERT_TRUE(c);
  const location& root = loc_at(*c, 0);
  const location& x = *root.children[0];
  const location& y = loc_at(*c, 1);
  EXPECT_EQ(*root.settings.proxy_read_timeout, 20s);
  EXPECT_EQ(*x.settings.proxy_read_timeout, 30s);
  EXPECT_EQ(*y.settings.proxy_read_timeout, 20s);
  EXPECT_EQ(*x.settings.proxy_http_version, "1.1");
  EXPECT_FALSE(*x.settings.proxy_buffering);
  EXPECT_TRUE(*y.settings.proxy_buffering);
  EXPECT_EQ(*y.settings.client_max_body_size, 0u);
  const server& s1 = *c->http->servers[0];
  const server& s2 = *c->http->servers[1];
  EXPECT_FALSE(*s1.merge_slashes);
  EXPECT_TRUE(*s2.merge_slashes);
  EXPECT_TRUE(*s1.underscores_in_headers);
  EXPECT_FALSE(*s2.underscores_in_headers);
  EXPECT_EQ(s2.ssl.protocols, std::vector<std::string>{"TLSv1.3"});
  EXPECT_EQ(*s2.root_location.settings.proxy_read_timeout, 10s);
}

TEST(Inheritance, ListDirectivesReplaceTheOuterList) {
  auto c = load_ok(
      "events {} http {\n"
      " proxy_set_header X-Http 1;\n"
      " add_header X-Outer 1;\n"
      " server {\n"
      "  proxy_set_header Host $host;\n"
      "  proxy_set_header X-Real-IP $remote_addr;\n"
      "  location /ws/ { proxy_set_header Upgrade $http_upgrade; }\n"
      "  location /plain/ { add_header X-Inner 2; }\n"
      " }\n"
      " server { location / { } }\n"
      "}");
  ASSERT_TRUE(c);
  const location& ws = loc_at(*c, 0);
  ASSERT_EQ(ws.settings.proxy_set_header->size(), 1u);  // Host and X-Real-IP are gone
  EXPECT_EQ((*ws.settings.proxy_set_header)[0].name, "Upgrade");
  EXPECT_EQ(ws.settings.proxy_set_header_where->line, 7);
  const location& plain = loc_at(*c, 1);
  ASSERT_EQ(plain.settings.proxy_set_header->size(), 2u);  // the server's list, whole
  EXPECT_EQ(plain.settings.proxy_set_header_where->line, 5);
  ASSERT_EQ(plain.settings.add_header->size(), 1u);
  EXPECT_EQ((*plain.settings.add_header)[0].name, "X-Inner");
  EXPECT_EQ((*ws.settings.add_header)[0].name, "X-Outer");
  const location& other = *c->http->servers[1]->root_location.children[0];
  ASSERT_EQ(other.settings.proxy_set_header->size(), 1u);
  EXPECT_EQ((*other.settings.proxy_set_header)[0].name, "X-Http");
  EXPECT_EQ(other.settings.proxy_set_header_where->line, 2);
}

TEST(Inheritance, WsgateOwnDirectives) {
  auto c = load_ok(
      "events {} http { websocket_keepalive 30s; server {\n"
      " location /ws/ { proxy_upgrade_allow websocket H2C; }\n"
      " location / { websocket_keepalive 0; }\n"
      "} }");
  ASSERT_TRUE(c);
  EXPECT_EQ(*loc_at(*c, 0).settings.websocket_keepalive, 30s);
  EXPECT_EQ(*loc_at(*c, 0).settings.upgrade_allow, (std::vector<std::string>{"websocket", "h2c"}));
  EXPECT_EQ(*loc_at(*c, 1).settings.websocket_keepalive, duration::zero());
}

// ---- notices ---------------------------------------------------------------------------------

TEST(Notices, NginxTuningIsAcceptedAndNamed) {
  auto c = load_ok(
      "worker_rlimit_nofile 65535;\n"
      "events { use epoll; multi_accept on; }\n"
      "http {\n"
      " sendfile on; tcp_nopush on; types_hash_max_size 2048;\n"
      " types { text/html html; application/json json; }\n"
      " default_type application/octet-stream; gzip on;\n"
      " server { root /var/www; index index.html; }\n"
      "}");
  ASSERT_TRUE(c);
  std::vector<std::string> names;
  for (const auto& n : c->notices) names.push_back(n.text.substr(0, n.text.find(' ')));
  EXPECT_EQ(names, (std::vector<std::string>{
                       "\"worker_rlimit_nofile\"", "\"use\"", "\"multi_accept\"", "\"sendfile\"",
                       "\"tcp_nopush\"", "\"types_hash_max_size\"", "\"types\"", "\"default_type\"",
                       "\"gzip\"", "\"root\"", "\"index\""}));
  EXPECT_EQ(c->notices[0].text, "\"worker_rlimit_nofile\" only tunes nginx; wsgate ignores it");
  EXPECT_EQ(c->notices[0].where.line, 1);
  EXPECT_EQ(c->notices[6].where.line, 5);
}

TEST(Notices, IgnoredDirectivesStillRespectContexts) {
  auto r = load_text("events {} http { multi_accept on; }");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message, "\"multi_accept\" directive is not allowed here");
}

// ---- includes --------------------------------------------------------------------------------

TEST(Include, GlobsInOrderRelativeToMainFile) {
  test::temp_dir dir;
  dir.write("conf.d/b.conf", "server { listen 8002; }\n");
  dir.write("conf.d/a.conf", "server { listen 8001; }\n");
  dir.write("conf.d/skip.txt", "garbage\n");
  dir.write("snippets/proxy.conf", "proxy_set_header Host $host;\nproxy_http_version 1.1;\n");
  dir.write("mime.types", "types { text/html html; }\n");
  auto path =
      dir.write("etc/../nginx.conf",
                "events {}\nhttp {\n include mime.types;\n include conf.d/*.conf;\n"
                " include empty.d/*.conf;\n"
                " server { listen 8003; location / { include snippets/proxy.conf; } }\n}\n");
  auto r = test::load_path(path);
  ASSERT_FALSE(r.error) << r.error->format();
  const auto& servers = r.config->http->servers;
  ASSERT_EQ(servers.size(), 3u);
  EXPECT_EQ(servers[0]->listens[0].port, 8001);  // glob(3) order
  EXPECT_EQ(servers[1]->listens[0].port, 8002);
  EXPECT_EQ(servers[0]->where.file, (dir.path() / "conf.d/a.conf").string());
  EXPECT_EQ(servers[0]->where.line, 1);
  const location& l = *servers[2]->root_location.children[0];
  EXPECT_EQ(*l.settings.proxy_http_version, "1.1");
  EXPECT_EQ((*l.settings.proxy_set_header)[0].where.file,
            (dir.path() / "snippets/proxy.conf").string());
  // -T: every file read, in order, with its text.
  const auto& files = r.config->files;
  ASSERT_EQ(files.size(), 5u);
  EXPECT_EQ(files[0].first, (dir.path() / "nginx.conf").string());
  EXPECT_EQ(files[1].first, (dir.path() / "mime.types").string());
  EXPECT_EQ(files[1].second, "types { text/html html; }\n");
  EXPECT_EQ(files[2].first, (dir.path() / "conf.d/a.conf").string());
  EXPECT_EQ(files[4].first, (dir.path() / "snippets/proxy.conf").string());
}

TEST(Include, ErrorsNameTheIncludedFile) {
  test::temp_dir dir;
  dir.write("conf.d/bad.conf", "server {\n  listen 80;\n  proxy_pas http://x;\n}\n");
  auto path = dir.write("nginx.conf", "events {}\nhttp { include conf.d/*.conf; }\n");
  auto r = test::load_path(path);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->where.file, (dir.path() / "conf.d/bad.conf").string());
  EXPECT_EQ(r.error->where.line, 3);
  if (test::have_nginx()) {
    EXPECT_EQ(test::nginx_emerg(path, dir.path().string()),
              "unknown directive \"proxy_pas\" in " + r.error->where.file + ":3");
  }
}

TEST(Include, BraceInIncludedFileDoesNotCloseTheIncluder) {
  test::temp_dir dir;
  dir.write("x.conf", "}\n");
  auto path = dir.write("nginx.conf", "events {}\nhttp { include x.conf; }\n");
  auto r = test::load_path(path);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message, "unexpected \"}\"");
  EXPECT_EQ(r.error->where.file, (dir.path() / "x.conf").string());
}

TEST(Include, RecursionIsAnError) {
  test::temp_dir dir;
  dir.write("a.conf", "include b.conf;\n");
  dir.write("b.conf", "include a.conf;\n");
  auto path = dir.write("nginx.conf", "events {}\ninclude a.conf;\n");
  auto r = test::load_path(path);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message,
            "\"" + (dir.path() / "a.conf").string() + "\" includes itself (through \"include\")");
  EXPECT_EQ(r.error->where.file, (dir.path() / "b.conf").string());
}

TEST(Include, DirectoryIsAnError) {
  test::temp_dir dir;
  dir.write("conf.d/site.conf/x", "");  // a directory whose name matches the glob
  auto path = dir.write("nginx.conf", "events {}\ninclude conf.d/*.conf;\n");
  auto r = test::load_path(path);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message, "pread() \"" + (dir.path() / "conf.d/site.conf").string() +
                                  "\" failed (21: Is a directory)");
  EXPECT_EQ(r.error->where.line, 2);
}

TEST(Include, SameFileTwiceIsFine) {
  test::temp_dir dir;
  dir.write("h.conf", "proxy_set_header A b;\n");
  auto path = dir.write(
      "nginx.conf",
      "events {}\nhttp { server { location /a { include h.conf; } location /b { include h.conf; } "
      "} }\n");
  auto r = test::load_path(path);
  ASSERT_FALSE(r.error) << r.error->format();
}

TEST(Include, RelativeMainFileUsesPrefix) {
  test::temp_dir dir;
  dir.write("conf/inc.conf", "worker_processes 7;\n");
  dir.write("conf/nginx.conf", "events {}\ninclude inc.conf;\n");
  load_options o;
  o.prefix = dir.path().string();
  o.conf_file = "conf/nginx.conf";
  auto r = load_file(o);
  ASSERT_FALSE(r.error) << r.error->format();
  EXPECT_EQ(r.config->main.worker_processes, 7);
  EXPECT_EQ(r.config->conf_file, (dir.path() / "conf/nginx.conf").string());
  EXPECT_EQ(r.config->prefix, dir.path().string());
}

TEST(Paths, RelativePathsFollowNginxPrefixes) {
  test::temp_dir dir;
  dir.write("conf/nginx.conf",
            "pid run/w.pid; error_log logs/error.log; events {}\n"
            "http { access_log logs/access.log; error_log stderr;\n"
            " server { listen 8443 ssl; ssl_certificate certs/c.pem; ssl_certificate_key "
            "/abs/k.pem;\n"
            "  access_log syslog:server=127.0.0.1; access_log /var/log/$host.log; } }\n");
  load_options o;
  o.prefix = (dir.path() / "prefix").string();
  o.conf_file = (dir.path() / "conf/nginx.conf").string();
  auto r = load_file(o);
  ASSERT_FALSE(r.error) << r.error->format();
  const snapshot& c = *r.config;
  EXPECT_EQ(c.main.pid_path, o.prefix + "/run/w.pid");  // -p
  EXPECT_EQ(c.main.error_log->path, o.prefix + "/logs/error.log");
  EXPECT_EQ((*c.http->settings.access_log)[0].path, o.prefix + "/logs/access.log");
  EXPECT_EQ(c.http->settings.error_log->path, "stderr");
  const server& s = *c.http->servers[0];
  EXPECT_EQ(s.ssl.certificate, (dir.path() / "conf/certs/c.pem").string());  // conf dir
  EXPECT_EQ(s.ssl.certificate_key, "/abs/k.pem");
  const auto& logs = *s.root_location.settings.access_log;
  EXPECT_EQ(logs[0].path, "syslog:server=127.0.0.1");
  EXPECT_EQ(logs[1].path, "/var/log/$host.log");
}

TEST(LoadText, IncludesResolveAgainstBaseDir) {
  test::temp_dir dir;
  dir.write("x.conf", "worker_processes 2;\n");
  auto r = load_text("events {} include x.conf;", "inline", dir.path().string());
  ASSERT_FALSE(r.error) << r.error->format();
  EXPECT_EQ(r.config->main.worker_processes, 2);
  EXPECT_EQ(r.config->files.size(), 2u);
}

}  // namespace
}  // namespace wsgate::config
