// The directive table: complete for issue 2's list, consistent, and printable for README.
#include <gtest/gtest.h>

#include <set>

#include "config/directives.hpp"
#include "config/loader.hpp"

namespace wsgate::config {
namespace {

const directive_spec* find(std::string_view name, unsigned ctx) {
  for (const auto& d : directive_table())
    if (d.name == name && (d.contexts & ctx)) return &d;
  return nullptr;
}

TEST(DirectiveTable, CoversTheIssueList) {
  struct want {
    const char* name;
    unsigned ctx;
  };
  const want required[] = {
      {"daemon", ctx_main},
      {"worker_processes", ctx_main},
      {"worker_connections", ctx_events},
      {"pid", ctx_main},
      {"error_log", ctx_main},
      {"include", ctx_main},
      {"user", ctx_main},
      {"worker_shutdown_timeout", ctx_main},
      {"events", ctx_main},
      {"http", ctx_main},
      {"server", ctx_http},
      {"listen", ctx_server},
      {"server_name", ctx_server},
      {"location", ctx_server},
      {"location", ctx_location},
      {"upstream", ctx_http},
      {"server", ctx_upstream},
      {"keepalive", ctx_upstream},
      {"keepalive_requests", ctx_upstream},
      {"keepalive_timeout", ctx_upstream},
      {"least_conn", ctx_upstream},
      {"ip_hash", ctx_upstream},
      {"hash", ctx_upstream},
      {"map", ctx_http},
      {"return", ctx_location},
      {"rewrite", ctx_server},
      {"add_header", ctx_location},
      {"error_page", ctx_location},
      {"access_log", ctx_location},
      {"log_format", ctx_http},
      {"keepalive_timeout", ctx_location},
      {"client_max_body_size", ctx_location},
      {"client_header_timeout", ctx_server},
      {"client_body_timeout", ctx_location},
      {"send_timeout", ctx_location},
      {"client_header_buffer_size", ctx_server},
      {"large_client_header_buffers", ctx_server},
      {"merge_slashes", ctx_server},
      {"underscores_in_headers", ctx_server},
      {"server_tokens", ctx_location},
      {"ssl_certificate", ctx_server},
      {"ssl_certificate_key", ctx_server},
      {"ssl_protocols", ctx_server},
      {"ssl_ciphers", ctx_server},
      {"proxy_pass", ctx_location},
      {"proxy_set_header", ctx_location},
      {"proxy_http_version", ctx_location},
      {"proxy_connect_timeout", ctx_location},
      {"proxy_read_timeout", ctx_location},
      {"proxy_send_timeout", ctx_location},
      {"proxy_buffering", ctx_location},
      {"proxy_request_buffering", ctx_location},
      {"proxy_redirect", ctx_location},
      {"proxy_pass_request_headers", ctx_location},
      {"proxy_pass_request_body", ctx_location},
      {"proxy_next_upstream", ctx_location},
      {"proxy_buffer_size", ctx_location},
      {"proxy_buffers", ctx_location},
      {"proxy_hide_header", ctx_location},
      {"proxy_pass_header", ctx_location},
      {"websocket_keepalive", ctx_location},
      {"proxy_upgrade_allow", ctx_location},
  };
  for (const auto& w : required) {
    const directive_spec* d = find(w.name, w.ctx);
    ASSERT_NE(d, nullptr) << w.name << " in " << describe_contexts(w.ctx);
    EXPECT_NE(d->kind, support::ignored) << w.name;
  }
  EXPECT_EQ(find("websocket_keepalive", ctx_http)->kind, support::wsgate_only);
  EXPECT_EQ(find("sendfile", ctx_http)->kind, support::ignored);
}

TEST(DirectiveTable, EntriesAreWellFormed) {
  std::set<std::pair<std::string, unsigned>> seen;
  for (const auto& d : directive_table()) {
    EXPECT_NE(d.handler, nullptr) << d.name;
    EXPECT_NE(d.contexts, 0u) << d.name;
    EXPECT_NE(d.arity & ~static_cast<unsigned>(is_block), 0u) << d.name;
    EXPECT_FALSE(d.doc.empty()) << d.name;
    if (d.kind != support::ignored) {
      EXPECT_TRUE(d.syntax.starts_with(d.name)) << d.name;
    }
    // One entry per name and context: the first match would hide any other.
    for (unsigned bit = 1; bit <= ctx_map; bit <<= 1) {
      if (d.contexts & bit) {
        EXPECT_TRUE(seen.insert({std::string(d.name), bit}).second)
            << d.name << " twice in " << describe_contexts(bit);
      }
    }
  }
}

TEST(DirectiveTable, Describe) {
  EXPECT_EQ(describe_contexts(ctx_hsl), "http, server, location");
  EXPECT_EQ(describe_contexts(ctx_upstream), "upstream");
  EXPECT_EQ(describe_arity(take1), "1 argument");
  EXPECT_EQ(describe_arity(take12), "1 or 2 arguments");
  EXPECT_EQ(describe_arity(take123), "1, 2 or 3 arguments");
  EXPECT_EQ(describe_arity(take_1more), "1 or more arguments");
  EXPECT_EQ(describe_arity(take0 | is_block), "0 arguments");
}

TEST(DirectiveTable, MarkdownReference) {
  std::string md = directive_reference_markdown();
  EXPECT_NE(md.find("| `proxy_set_header FIELD VALUE` | http, server, location | "),
            std::string::npos);
  EXPECT_NE(md.find("| `websocket_keepalive TIME` | http, server, location |"), std::string::npos);
  EXPECT_NE(md.find("`sendfile`"), std::string::npos);
  // wsgate-only directives sit in their own table, after the nginx one.
  EXPECT_GT(md.find("websocket_keepalive"), md.find("### wsgate's own"));
}

TEST(DirectiveTable, EveryFullDirectiveParsesWithItsOwnSyntaxLine) {
  // Each directive is reachable through dispatch: a wrong-context use says "not allowed here",
  // never "unknown directive".
  for (const auto& d : directive_table()) {
    if (d.contexts & ctx_main) continue;
    std::string text = "events {}\n" + std::string(d.name) + " x;\n";
    auto r = load_text(text);
    ASSERT_TRUE(r.error) << d.name;
    EXPECT_EQ(r.error->message, "\"" + std::string(d.name) + "\" directive is not allowed here");
  }
}

}  // namespace
}  // namespace wsgate::config
