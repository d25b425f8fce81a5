// Configurations both wsgate and Debian's nginx accept: the loader must not refuse what nginx
// takes (wsgate-only directives aside).
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "test_util.hpp"

namespace wsgate::config {
namespace {

struct accept_case {
  const char* name;
  std::string conf;
};
void PrintTo(const accept_case& c, std::ostream* os) {
  *os << c.name;
}

const accept_case accepted[] = {
    {"minimal", "events {}"},
    {"main",
     "daemon off; worker_processes auto; worker_shutdown_timeout 5s; pcre_jit on;\n"
     "worker_rlimit_nofile 4096; events { worker_connections 64; multi_accept on; use "
     "epoll; } http { }"},
    {"location_kinds",
     "events {} http { server { listen 127.0.0.1:18080;\n"
     " location /a {} location = /b {} location ^~ /c {} location ~ \\.php$ {}\n"
     " location ~* \\.JPG$ {} location @fallback {} location =/d {} location ~*/e {}\n"
     " location ~/f {} location /a/ { location /a/b/ { location = /a/b/c {} } location ~ x {} }\n"
     " location @fallback {} location ~ /f {}\n"
     "} }"},
    {"names",
     "events {} http { server { server_name Example.COM *.Example.com www.example.* .sub.org \"\" "
     "~^(?<user>.+)\\.Example\\.net$ _; } }"},
    // A bad wildcard only matters where nginx builds a name table (several servers on the port).
    {"literal_star_single_server", "events {} http { server { server_name x a*b; } }"},
    {"same_name_twice", "events {} http { server { server_name a a; } server { server_name a; } }"},
    {"listens",
     "events {} http { server { listen 127.0.0.1:18081 default_server; listen 127.0.0.1:18082 "
     "reuseport backlog=10; listen [::1]:18083; listen 18084; listen localhost:18085; }\n"
     "server { listen 127.0.0.1:18081; listen 18084; } }"},
    {"proxy_pass",
     "events {} http { upstream backend { server 127.0.0.1:8000 weight=2 max_fails=3 "
     "fail_timeout=5s; server 127.0.0.1:8001 backup; keepalive 8; keepalive_requests 10; "
     "keepalive_timeout 5s; least_conn; }\n"
     "server {\n"
     " location /a { proxy_pass http://backend; }\n"
     " location /b { proxy_pass http://localhost:8000/; proxy_redirect default; }\n"
     " location /c { proxy_pass https://127.0.0.1/x/; proxy_redirect http://a/ /; }\n"
     " location /d { proxy_pass http://[::1]:9000; }\n"
     " location /e { proxy_pass http://unix:/run/app.sock:/api/; }\n"
     " location /f { proxy_pass http://$host$request_uri; }\n"
     " location ~ /g { proxy_pass http://backend; }\n"
     " location @h { proxy_pass http://127.0.0.1:81; }\n"
     " location /i { proxy_pass http://127.0.0.1:81; proxy_redirect off; }\n"
     "} }"},
    {"rewrite_return",
     "events {} http { server { rewrite ^/old/(.*)$ /new/$1 permanent;\n"
     " location /a { return 204; } location /b { return 200 \"hello $host\"; return 500; }\n"
     " location /c { return https://example.com$request_uri; }\n"
     " location /d { rewrite ^/d/(.*) /e/$1 break; rewrite ^ /f last; rewrite ^ /g redirect;"
     " rewrite ^ /h; return 301 $scheme://x; }\n"
     "} }"},
    {"headers_logs",
     "events {} http { log_format main '$remote_addr \"$request\"' ' $status';\n"
     " log_format js escape=json '{\"a\":\"$uri\"}'; access_log off;\n"
     " server { error_log stderr warn; location / {\n"
     "  add_header X-A 1; add_header X-B $host always; add_header \"X C\" 'a;b';\n"
     "  error_page 404 /404.html; error_page 500 502 =200 /50x; error_page 403 = @f;\n"
     "  access_log /dev/null main buffer=32k flush=1s; access_log /dev/null;\n"
     "  proxy_hide_header X-Powered-By; proxy_pass_header Server;\n"
     "  proxy_next_upstream error http_502; proxy_next_upstream timeout;\n"
     "  proxy_buffers 16 8k; proxy_buffer_size 16k;\n"
     " } location @f { return 403; } } }"},
    {"timeouts_sizes",
     "events {} http { proxy_read_timeout \"1h 30m\"; proxy_send_timeout 1s500ms;\n"
     " proxy_connect_timeout 5; keepalive_timeout 75s 60s; client_body_timeout 25d;\n"
     " send_timeout 90; client_max_body_size 1g; client_header_buffer_size 2k;\n"
     " large_client_header_buffers 8 16k; client_header_timeout 10s; merge_slashes off;\n"
     " underscores_in_headers on; server_tokens off; proxy_http_version 1.1;\n"
     " proxy_buffering off; proxy_request_buffering off; proxy_pass_request_headers on;\n"
     " proxy_pass_request_body off; ssl_protocols TLSv1.2; ssl_protocols TLSv1.3;\n"
     " ssl_ciphers HIGH:!aNULL; }"},
    {"maps",
     "events {} http {\n"
     " map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n"
     " map $host $backend { hostnames; default b0; *.Example.com b1; ~^api\\. b2;"
     " ~*^WS b3; \\default b4; volatile; }\n"
     " map $uri$args $x { /a 1; }\n"
     "}"},
    {"nginx_tuning",
     "events {} http { sendfile on; tcp_nopush on; tcp_nodelay on; types_hash_max_size 2048;\n"
     " types { text/html html; application/json json; } default_type application/octet-stream;\n"
     " gzip on; gzip_types text/plain; server_names_hash_bucket_size 64;\n"
     " server { root /var/www; index index.html; charset utf-8; } }"},
    {"quoting", "events {} http { server { return 200 \"a\\\"b\\\\c 'd' ${host}x \\t\"; } }"},
};

class AcceptedByBoth : public ::testing::TestWithParam<accept_case> {};

TEST_P(AcceptedByBoth, Loads) {
  test::temp_dir dir;
  std::string path = dir.write("nginx.conf", GetParam().conf + "\n");
  auto r = test::load_path(path);
  EXPECT_FALSE(r.error) << r.error->format();
  if (test::have_nginx()) {
    EXPECT_EQ(test::nginx_emerg(path, dir.path().string()), "") << "nginx refuses it";
  }
}

INSTANTIATE_TEST_SUITE_P(All, AcceptedByBoth, ::testing::ValuesIn(accepted),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(AcceptedByBoth, Examples) {
  for (const char* name :
       {"seed-broken.conf", "seed-fixed.conf", "no-upgrade.conf", "recommended.conf"}) {
    std::string path = std::string(WSGATE_SOURCE_DIR) + "/examples/configs/" + name;
    auto r = test::load_path(path);
    EXPECT_FALSE(r.error) << r.error->format();
    if (test::have_nginx()) {
      test::temp_dir dir;
      EXPECT_EQ(test::nginx_emerg(path, dir.path().string()), "") << name;
    }
  }
}

}  // namespace
}  // namespace wsgate::config
