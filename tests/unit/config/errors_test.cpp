// Every load error: its exact message and line, and (where nginx has the same check) the same
// text as Debian's nginx 1.22 prints for the same file.
#include <gtest/gtest.h>

#include "config/loader.hpp"
#include "test_util.hpp"

namespace wsgate::config {
namespace {

struct error_case {
  const char* name;
  std::string conf;
  std::string message;     // expected, without " in FILE:LINE"
  int line;                // 0: the message names no place
  bool nginx_same = true;  // nginx 1.22 reports exactly this
};

const error_case cases[] = {
    // syntax (ngx_conf_read_token / ngx_conf_parse)
    {"extra_brace", "events {} http { server { location /b { } } }}", "unexpected \"}\"", 1},
    {"eof_in_block", "events {} http {\nserver {\n", "unexpected end of file, expecting \"}\"", 4},
    {"missing_semicolon_before_brace", "events {} http { server { location /b { proxy_pass x } } }",
     "unexpected \"}\"", 1},
    {"lone_semicolon", "events {} http { server { ; } }", "unexpected \";\"", 1},
    {"lone_brace", "events {} {", "unexpected \"{\"", 1},
    {"text_after_quote", "events {} http { server { \"a\"b; } }", "unexpected \"b\"", 1},
    {"eof_in_directive", "events {} http { server { server_name a",
     "unexpected end of file, expecting \";\" or \"}\"", 2},
    {"eof_in_quote", "events {} http { server { server_name \"a; } }",
     "unexpected end of file, expecting \";\" or \"}\"", 2},
    {"multiline_directive_reported_at_end",
     "events {} http { server { location /a {\nproxy_buffering\n  maybe\n  ; } } }",
     "invalid value \"maybe\" in \"proxy_buffering\" directive, it must be \"on\" or \"off\"", 4},
    {"multiline_block_reported_at_brace", "events {} http {\nserver {\nlocation\n== /a\n{} } }",
     "invalid location modifier \"==\"", 5},
    {"quote_then_quote", "events {} http { server { server_name 'a'\"b\"; } }", "unexpected \"\"\"",
     1},
    // ngx_conf_handler
    {"unknown", "events {}\nhttp {\n  server { foo; }\n}", "unknown directive \"foo\"", 3},
    {"not_allowed", "events {}\nhttp { server { location /b {\nlisten 80; } } }",
     "\"listen\" directive is not allowed here", 3},
    {"proxy_pass_in_server", "events {} http { server { proxy_pass http://a; } }",
     "\"proxy_pass\" directive is not allowed here", 1},
    {"user_in_http", "events {} http { user root; }", "\"user\" directive is not allowed here", 1},
    {"arity", "events {} http { server { location /b { proxy_set_header A; } } }",
     "invalid number of arguments in \"proxy_set_header\" directive", 1},
    {"arity_location", "events {} http { server { location a b c { } } }",
     "invalid number of arguments in \"location\" directive", 1},
    {"no_opening_brace", "events {} http { server { location /b ; } }",
     "directive \"location\" has no opening \"{\"", 1},
    {"not_terminated", "events {} http { server { proxy_buffering { } } }",
     "directive \"proxy_buffering\" is not terminated by \";\"", 1},
    // generic setters
    {"flag_duplicate",
     "events {} http { server { location /a {\nproxy_buffering on;\n"
     "proxy_buffering off; } } }",
     "\"proxy_buffering\" directive is duplicate", 3},
    {"flag_value", "events {} http { server { location /a { proxy_buffering maybe; } } }",
     "invalid value \"maybe\" in \"proxy_buffering\" directive, it must be \"on\" or \"off\"", 1},
    {"time_value", "events {} http { server { location /a { proxy_read_timeout 1x; } } }",
     "\"proxy_read_timeout\" directive invalid value", 1},
    {"time_order", "events {} http { client_body_timeout 1m1h; }",
     "\"client_body_timeout\" directive invalid value", 1},
    {"time_years", "events {} http { send_timeout 1y; }",
     "\"send_timeout\" directive invalid value", 1},
    {"size_value", "events {} http { server { location /a { client_max_body_size 1q; } } }",
     "\"client_max_body_size\" directive invalid value", 1},
    {"enum_value", "events {} http { proxy_http_version 2.0; }", "invalid value \"2.0\"", 1},
    {"enum_duplicate", "events {} http { proxy_http_version 1.1; proxy_http_version 1.1; }",
     "\"proxy_http_version\" directive is duplicate", 1},
    {"bufs_value", "events {} http { server { large_client_header_buffers x 8k; } }",
     "\"large_client_header_buffers\" directive invalid value", 1},
    {"keepalive_second_value", "events {} http { server { keepalive_timeout 5 x; } }",
     "\"keepalive_timeout\" directive invalid value", 1},
    {"next_upstream_value", "events {} http { proxy_next_upstream foo; }", "invalid value \"foo\"",
     1},
    // main and events
    {"no_events", "http {}", "no \"events\" section in configuration", 0},
    {"events_duplicate", "events {} events {} http { }", "\"events\" directive is duplicate", 1},
    {"busy_polling_value", "busy_polling yes; events {}",
     "invalid value \"yes\" in \"busy_polling\" directive, it must be \"on\" or \"off\"", 1,
     false},  // wsgate's own directive: nginx does not know it
    {"busy_polling_duplicate", "busy_polling on;\nbusy_polling off; events {}",
     "\"busy_polling\" directive is duplicate", 2, false},
    {"busy_polling_in_http", "events {} http { busy_polling on; }",
     "\"busy_polling\" directive is not allowed here", 1, false},
    {"http_duplicate", "events {} http { } http {}", "\"http\" directive is duplicate", 1},
    {"daemon_duplicate", "daemon on; daemon off; events {}", "\"daemon\" directive is duplicate",
     1},
    {"worker_processes_duplicate", "worker_processes auto; worker_processes 2; events {}",
     "\"worker_processes\" directive is duplicate", 1},
    {"worker_processes_value", "worker_processes x; events {}",
     "\"worker_processes\" directive invalid value", 1},
    {"worker_connections_value", "events { worker_connections x; }", "invalid number \"x\"", 1},
    {"error_log_level", "events {} http { error_log /tmp/x loud; }", "invalid log level \"loud\"",
     1},
    // locations
    {"regex_proxy_pass_uri",
     "events {} http { server { location ~ /a { proxy_pass http://x/y; } } }",
     "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside "
     "named location, or inside \"if\" statement, or inside \"limit_except\" block",
     1},
    {"named_proxy_pass_uri", "events {} http { server { location @n { proxy_pass http://a/; } } }",
     "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside "
     "named location, or inside \"if\" statement, or inside \"limit_except\" block",
     1},
    {"duplicate_location",
     "events {} http { server {\nlocation /a {}\nlocation = /a {}\n"
     "location /b {}\nlocation /b {} } }",
     "duplicate location \"/b\"", 5},
    {"duplicate_location_noregex", "events {} http { server { location ^~ /b {} location /b {} } }",
     "duplicate location \"/b\"", 1},
    {"duplicate_after_later_error",
     "events {} http { server {\nlocation /b {}\nlocation /b {} }\n"
     "server { foo; } }",
     "unknown directive \"foo\"", 4},
    {"nested_outside", "events {} http { server { location /a { location /b {} } } }",
     "location \"/b\" is outside location \"/a\"", 1},
    {"nested_in_exact", "events {} http { server { location = /a { location /a/b {} } } }",
     "location \"/a/b\" cannot be inside the exact location \"/a\"", 1},
    {"nested_named", "events {} http { server { location /a { location @b {} } } }",
     "named location \"@b\" can be on the server level only", 1},
    {"inside_named", "events {} http { server { location @a { location /a {} } } }",
     "location \"/a\" cannot be inside the named location \"@a\"", 1},
    {"nested_in_regex", "events {} http { server { location ~ ^/a { location /b {} } } }",
     "location \"/b\" is outside location \"^/a\"", 1},
    {"location_modifier", "events {} http { server { location == /a {} } }",
     "invalid location modifier \"==\"", 1},
    {"location_regex", "events {} http { server { location ~ ^/(a { } } }",
     "pcre2_compile() failed: missing closing parenthesis in \"^/(a\"", 1},
    {"location_regex_at", "events {} http { server { location ~ *a { } } }",
     "pcre2_compile() failed: quantifier does not follow a repeatable item in \"*a\" at \"*a\"", 1},
    // listen
    {"duplicate_listen", "events {} http { server { listen 8080; listen 8080; } }",
     "a duplicate listen 0.0.0.0:8080", 1},
    {"duplicate_listen_star", "events {} http { server { listen *:80; listen 80; } }",
     "a duplicate listen 0.0.0.0:80", 1},
    {"duplicate_listen_v6", "events {} http { server { listen [::1]:80; listen [0:0::1]:80; } }",
     "a duplicate listen [::1]:80", 1},
    {"duplicate_listen_default_port",
     "events {} http { server { listen 127.0.0.1:80; listen "
     "127.0.0.1; } }",
     "a duplicate listen 127.0.0.1:80", 1},
    {"duplicate_default_server",
     "events {} http { server { listen 8080 default_server; }\nserver { listen 8080 default; } }",
     "a duplicate default server for 0.0.0.0:8080", 2},
    {"duplicate_listen_options",
     "events {} http { server { listen 8080 backlog=5; } server { listen 8080 backlog=10; } }",
     "duplicate listen options for 0.0.0.0:8080", 1},
    {"listen_parameter", "events {} http { server { listen 80 foo; } }",
     "invalid parameter \"foo\"", 1},
    {"listen_port", "events {} http { server { listen 99999; } }",
     "invalid port in \"99999\" of the \"listen\" directive", 1},
    {"listen_port_zero", "events {} http { server { listen 127.0.0.1:0; } }",
     "invalid port in \"127.0.0.1:0\" of the \"listen\" directive", 1},
    {"listen_host", "events {} http { server { listen abc:80; } }",
     "host not found in \"abc:80\" of the \"listen\" directive", 1},
    {"listen_ssl_no_cert", "events {} http { server { listen 80 ssl; } }",
     "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive", 1},
    {"listen_unix", "events {} http { server { listen unix:/tmp/x.sock; } }",
     "wsgate does not listen on unix sockets: \"unix:/tmp/x.sock\" of the \"listen\" directive", 1,
     false},
    // access
    {"allow_bits", "events {} http { server { allow 10.0.0.0/33; } }",
     "invalid parameter \"10.0.0.0/33\"", 1},
    {"deny_address", "events {} http { server { location / { deny 10.0.0; } } }",
     "invalid parameter \"10.0.0\"", 1},
    {"deny_args", "events {} http { deny all 10.0.0.1; }",
     "invalid number of arguments in \"deny\" directive", 1},
    // variables
    {"variable_name", "events {} http { server { return 200 \"a$\"; } }", "invalid variable name",
     1},
    {"variable_bracket", "events {} http { server { return 200 \"a${b\"; } }",
     "the closing bracket in \"b\" variable is missing", 1},
    // handlers
    {"proxy_pass_duplicate",
     "events {} http { server { location /b { proxy_pass http://a; proxy_pass http://b; } } }",
     "\"proxy_pass\" directive is duplicate", 1},
    {"proxy_pass_prefix", "events {} http { server { location / { proxy_pass localhost:8000; } } }",
     "invalid URL prefix", 1},
    {"proxy_pass_port",
     "events {} http { server { location / { proxy_pass http://localhost:99999; } } }",
     "invalid port in upstream \"localhost:99999\"", 1},
    {"return_code", "events {} http { server { return abc; } }", "invalid return code \"abc\"", 1},
    {"return_code_large", "events {} http { server { return 1000; } }",
     "invalid return code \"1000\"", 1},
    {"rewrite_flag", "events {} http { server { rewrite ^/a /b foo; } }",
     "invalid parameter \"foo\"", 1},
    {"add_header_always", "events {} http { server { add_header a b never; } }",
     "invalid parameter \"never\"", 1},
    {"error_page_range", "events {} http { server { error_page 200 /x; } }",
     "value \"200\" must be between 300 and 599", 1},
    {"error_page_response", "events {} http { server { error_page 404 =abc /x; } }",
     "invalid value \"=abc\"", 1},
    {"access_log_format", "events {} http { server { access_log /tmp/x foo; } }",
     "unknown log format \"foo\"", 1},
    {"log_format_duplicate", "events {} http { log_format a x; log_format a y; }",
     "duplicate \"log_format\" name \"a\"", 1},
    // upstream and map
    {"upstream_empty", "events {} http {\nupstream u {\n}\nserver {} }",
     "no servers are inside upstream", 3},
    {"upstream_duplicate",
     "events {} http { upstream u { server 127.0.0.1:1; } upstream u { server 127.0.0.1:1;} }",
     "duplicate upstream \"u\"", 1},
    {"upstream_weight", "events {} http { upstream u { server 127.0.0.1 weight=x; } }",
     "invalid parameter \"weight=x\"", 1},
    {"upstream_param", "events {} http { upstream u { server 127.0.0.1 foo; } }",
     "invalid parameter \"foo\"", 1},
    {"ssl_ciphers_duplicate", "events {} http { server { ssl_ciphers A; ssl_ciphers B; } }",
     "\"ssl_ciphers\" directive is duplicate", 1},
    {"proxy_redirect_after_off", "events {} http { proxy_redirect off; proxy_redirect default; }",
     "\"proxy_redirect\" directive is duplicate", 1},
    {"proxy_redirect_off_after",
     "events {} http { server { location / { proxy_pass http://a; proxy_redirect default; "
     "proxy_redirect off; } } }",
     "\"proxy_redirect\" directive is duplicate", 1},
    {"proxy_redirect_default_first", "events {} http { proxy_redirect default; }",
     "\"proxy_redirect default\" should be placed after the \"proxy_pass\" directive", 1},
    {"proxy_redirect_default_variables",
     "events {} http { server { location / { proxy_pass http://$host; proxy_redirect default; } } "
     "}",
     "\"proxy_redirect default\" cannot be used with \"proxy_pass\" directive with variables", 1},
    {"proxy_redirect_param", "events {} http { proxy_redirect on; }", "invalid parameter \"on\"",
     1},
    {"proxy_buffers_duplicate", "events {} http { proxy_buffers 8 4k; proxy_buffers 8 4k; }",
     "\"proxy_buffers\" directive is duplicate", 1},
    {"pid_duplicate", "pid /a; pid /b; events {}", "\"pid\" directive is duplicate", 1},
    {"upstream_keepalive_duplicate",
     "events {} http { upstream u { server 127.0.0.1:1; keepalive 2; keepalive 3; } }",
     "\"keepalive\" directive is duplicate", 1},
    {"upstream_keepalive_timeout_duplicate",
     "events {} http { upstream u { server 127.0.0.1:1; keepalive_timeout 2; keepalive_timeout 3; "
     "} }",
     "\"keepalive_timeout\" directive is duplicate", 1},
    {"upstream_keepalive_zero",
     "events {} http { upstream u { server 127.0.0.1:1; keepalive 0; } }",
     "invalid value \"0\" in \"keepalive\" directive", 1},
    {"bad_wildcard_shared_port",
     "events {} http { server { server_name a*b; } server { server_name c; } }",
     "invalid server name or wildcard \"a*b\" on 0.0.0.0:80", 0},
    {"bad_wildcard_regex_captures",
     "events {} http { server { listen 8080; server_name ~^(www)?x$ a.*.b; } }",
     "invalid server name or wildcard \"a.*.b\" on 0.0.0.0:8080", 0},
    {"server_name_star", "events {} http { server { server_name *a; } }",
     "server name \"*a\" is invalid", 1},
    {"upstream_port_after",
     "events {} http {\nupstream backend { server 127.0.0.1:1; }\nserver { location / { "
     "proxy_pass http://backend:80/; } }\n}",
     "upstream \"backend\" may not have port 80", 3},
    {"upstream_port_before",
     "events {} http {\nserver { location / { proxy_pass http://backend:8000/; } }\n"
     "upstream backend { server 127.0.0.1:1; } }",
     "upstream \"backend\" may not have port 8000", 2},
    {"hash_parameter", "events {} http { upstream u { hash $uri always; server 127.0.0.1:1; } }",
     "invalid parameter \"always\"", 1},
    {"map_result", "events {} http { map $a b { } }", "invalid variable name \"b\"", 1},
    {"map_params", "events {} http { map $a $b { a b c; } }",
     "invalid number of the map parameters", 1},
    {"map_conflict", "events {} http { map $a $b { a b; a c; } }", "conflicting parameter \"a\"",
     1},
    {"map_conflict_case", "events {} http { map $a $b { foo 1; Foo 2; } }",
     "conflicting parameter \"foo\"", 1},
    {"map_default", "events {} http { map $a $b { default a; default c; } }",
     "duplicate default map parameter", 1},
    {"include_missing", "events {}\nhttp { include /nonexistent/x.conf; }",
     "open() \"/nonexistent/x.conf\" failed (2: No such file or directory)", 2},
};

void PrintTo(const error_case& c, std::ostream* os) {
  *os << c.name;
}

class LoadErrors : public ::testing::TestWithParam<error_case> {};

TEST_P(LoadErrors, MessageAndLine) {
  const error_case& c = GetParam();
  test::temp_dir dir;
  std::string path = dir.write("nginx.conf", c.conf + "\n");
  load_result r = test::load_path(path);
  ASSERT_TRUE(r.error) << "loaded without error";
  EXPECT_EQ(r.error->message, c.message);
  if (c.line) {
    EXPECT_EQ(r.error->where.file, path);
    EXPECT_EQ(r.error->where.line, c.line);
  }
  // Every error says what to do next.
  EXPECT_FALSE(r.error->hint.empty()) << r.error->format();
}

// The same file through Debian's nginx: the [emerg] line must read exactly as ours.
TEST_P(LoadErrors, SameAsNginx) {
  const error_case& c = GetParam();
  if (!c.nginx_same) GTEST_SKIP() << "a deliberate difference from nginx";
  if (!test::have_nginx()) GTEST_SKIP() << "needs /usr/sbin/nginx and root";
  test::temp_dir dir;
  std::string path = dir.write("nginx.conf", c.conf + "\n");
  std::string expected = c.message;
  if (c.line) expected += " in " + path + ":" + std::to_string(c.line);
  EXPECT_EQ(test::nginx_emerg(path, dir.path().string()), expected);
}

INSTANTIATE_TEST_SUITE_P(All, LoadErrors, ::testing::ValuesIn(cases),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(LoadErrorFormat, EmergLineThenHint) {
  auto r = load_text("events {}\nhttp {\n  proxy_pas http://x;\n}\n", "/etc/wsgate/site.conf");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->format(),
            "wsgate: [emerg] unknown directive \"proxy_pas\" in /etc/wsgate/site.conf:3\n"
            "  hint: did you mean \"proxy_pass\"?");
}

TEST(LoadErrorFormat, NoHintNoSecondLine) {
  load_error e{{"f.conf", 7}, "boom", ""};
  EXPECT_EQ(e.format(), "wsgate: [emerg] boom in f.conf:7");
}

TEST(LoadErrorHints, UnknownFarFromAnyName) {
  auto r = load_text("events {} http { completely_unknown_thing on; }");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->hint, "remove it, or see README's directive list for what wsgate reads");
}

TEST(LoadErrorHints, UnsupportedNginxDirectiveSaysWhatInstead) {
  auto r = load_text("events {} http { server { location / { if ($x) { return 404; } } } }");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message, "unknown directive \"if\"");
  EXPECT_NE(r.error->hint.find("map"), std::string::npos) << r.error->hint;
}

TEST(LoadErrorHints, RegexProxyPassSuggestsRewrite) {
  auto r =
      load_text("events {} http { server { location ~ ^/api/ { proxy_pass http://b:81/v1/; } } }");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->hint,
            "drop the URI part (`proxy_pass http://b:81;`) and change the URI with rewrite first "
            "if needed, e.g. `rewrite ^/old/(.*)$ /v1/$1 break;`");
}

TEST(LoadErrorHints, NotAllowedNamesTheRightPlace) {
  auto r = load_text("events {} http { listen 80; }");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->hint, "\"listen\" belongs in server, not in http");
}

TEST(LoadErrorHints, ArityShowsTheSyntax) {
  auto r = load_text("events {} http { proxy_set_header Host; }");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->hint, "write `proxy_set_header FIELD VALUE;`");
}

TEST(LoadErrors, GlobalDirectivesErrorInCommandLine) {
  test::temp_dir dir;
  std::string path = dir.write("nginx.conf", "events {}\n");
  auto r = test::load_path(path, "daemon maybe;");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->format().substr(0, r.error->format().find('\n')),
            "wsgate: [emerg] invalid value \"maybe\" in \"daemon\" directive, it must be \"on\" or "
            "\"off\" in command line");
  auto r2 = test::load_path(path, "daemon off");
  ASSERT_TRUE(r2.error);
  EXPECT_EQ(r2.error->message, "unexpected end of parameter, expecting \";\"");
}

TEST(LoadErrors, GlobalDirectivesRefuseBlocks) {
  test::temp_dir dir;
  std::string path = dir.write("nginx.conf", "events {}\n");
  auto r = test::load_path(path, "events {}");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message, "block directives are not supported in -g option");
  EXPECT_EQ(r.error->where.file, "command line");
  auto u = test::load_path(path, "foo;");
  ASSERT_TRUE(u.error);
  EXPECT_EQ(u.error->format().substr(0, u.error->format().find('\n')),
            "wsgate: [emerg] unknown directive \"foo\" in command line");
}

TEST(LoadErrors, GlobalDirectiveThenFileIsDuplicate) {
  test::temp_dir dir;
  std::string path = dir.write("nginx.conf", "events {}\ndaemon on;\n");
  auto r = test::load_path(path, "daemon off;");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message, "\"daemon\" directive is duplicate");
  EXPECT_EQ(r.error->where.line, 2);
}

TEST(LoadErrors, MissingMainFile) {
  auto r = test::load_path("/nonexistent/wsgate.conf");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->format(),
            "wsgate: [emerg] open() \"/nonexistent/wsgate.conf\" failed (2: No such file or "
            "directory)\n  hint: give the configuration file with -c FILE");
}

}  // namespace
}  // namespace wsgate::config
