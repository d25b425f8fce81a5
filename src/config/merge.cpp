// After parsing: nginx's "unset, then merge". Each level's unset value takes the enclosing
// level's, and the http level takes the defaults, so every location ends with every value set.
#include <fmt/format.h>

#include "config/parser.hpp"

namespace wsgate::config {
namespace {

using namespace std::chrono_literals;

template <typename V>
void inherit(std::optional<V>& inner, const std::optional<V>& outer) {
  if (!inner) inner = outer;
}
template <typename V, typename D>
void fallback(std::optional<V>& v, D&& def) {
  if (!v) v = std::forward<D>(def);
}

// The defaults, written once (nginx 1.22's, unless noted).
void apply_defaults(location_settings& s, const main_settings& main) {
  fallback(s.proxy_set_header, std::vector<header_setting>{});
  fallback(s.proxy_http_version, std::string("1.0"));
  fallback(s.proxy_connect_timeout, duration(60s));
  fallback(s.proxy_read_timeout, duration(60s));
  fallback(s.proxy_send_timeout, duration(60s));
  fallback(s.proxy_buffering, true);
  fallback(s.proxy_request_buffering, true);
  fallback(s.proxy_redirect, std::vector<proxy_redirect_setting>{proxy_redirect_setting{}});
  fallback(s.proxy_pass_request_headers, true);
  fallback(s.proxy_pass_request_body, true);
  fallback(s.proxy_next_upstream, std::vector<std::string>{"error", "timeout"});
  fallback(s.proxy_buffer_size, size_t{4096});
  fallback(s.proxy_buffers_size, size_t{8 * 4096});
  fallback(s.proxy_max_temp_file_size, size_t{1024} * 1024 * 1024);
  fallback(s.proxy_hide_header, std::vector<std::string>{});
  fallback(s.proxy_pass_header, std::vector<std::string>{});
  fallback(s.proxy_ssl_server_name, false);
  fallback(s.proxy_ssl_name, template_string{"$proxy_host", {{true, "proxy_host"}}});
  fallback(s.proxy_ssl_verify, false);
  fallback(s.proxy_ssl_verify_depth, 1);
  fallback(s.proxy_ssl_trusted_certificate, std::string());
  fallback(s.proxy_ssl_certificate, std::string());
  fallback(s.proxy_ssl_certificate_key, std::string());
  // nginx 1.22's default is TLSv1 TLSv1.1 TLSv1.2 (OpenSSL 3 refuses the first two at its default
  // level); TLSv1.3 joined nginx's default in 1.23.4, and is offered here.
  fallback(s.proxy_ssl_protocols, std::vector<std::string>{"TLSv1.2", "TLSv1.3"});
  fallback(s.proxy_ssl_ciphers, std::string("DEFAULT"));
  fallback(s.proxy_ssl_session_reuse, true);
  fallback(s.add_header, std::vector<add_header_setting>{});
  fallback(s.error_page, std::vector<error_page_setting>{});
  fallback(s.client_max_body_size, size_t{1024 * 1024});
  fallback(s.client_body_buffer_size, size_t{16 * 1024});  // 2 pages on 64-bit, as nginx
  fallback(s.client_body_timeout, duration(60s));
  fallback(s.send_timeout, duration(60s));
  fallback(s.keepalive_timeout, duration(75s));
  fallback(s.keepalive_requests, 1000);
  fallback(s.keepalive_time, duration(1h));
  fallback(s.server_tokens, true);
  log_setting access;
  access.path = "/var/log/nginx/access.log";  // Debian's built-in path
  access.format = "combined";
  fallback(s.access_log, std::vector<log_setting>{access});
  if (!s.error_log) {
    // No error_log in http{}: requests log to the main error log (an empty path), which -e and
    // the built-in default (stderr, as Debian's nginx is built) decide.
    log_setting err;
    err.level = "error";
    s.error_log = main.error_log ? *main.error_log : err;
  }
  fallback(s.websocket_keepalive, duration::zero());
  fallback(s.upgrade_allow, std::vector<std::string>{"websocket"});
}

void merge_settings(location_settings& in, const location_settings& out) {
  if (!in.proxy_set_header) {  // the whole list, and where it was written, comes from outside
    in.proxy_set_header = out.proxy_set_header;
    in.proxy_set_header_where = out.proxy_set_header_where;
  }
  inherit(in.proxy_http_version, out.proxy_http_version);
  inherit(in.proxy_connect_timeout, out.proxy_connect_timeout);
  inherit(in.proxy_read_timeout, out.proxy_read_timeout);
  inherit(in.proxy_send_timeout, out.proxy_send_timeout);
  inherit(in.proxy_buffering, out.proxy_buffering);
  inherit(in.proxy_request_buffering, out.proxy_request_buffering);
  inherit(in.proxy_redirect, out.proxy_redirect);
  inherit(in.proxy_pass_request_headers, out.proxy_pass_request_headers);
  inherit(in.proxy_pass_request_body, out.proxy_pass_request_body);
  inherit(in.proxy_next_upstream, out.proxy_next_upstream);
  inherit(in.proxy_buffer_size, out.proxy_buffer_size);
  inherit(in.proxy_buffers_size, out.proxy_buffers_size);
  inherit(in.proxy_max_temp_file_size, out.proxy_max_temp_file_size);
  inherit(in.proxy_hide_header, out.proxy_hide_header);
  inherit(in.proxy_pass_header, out.proxy_pass_header);
  inherit(in.proxy_ssl_server_name, out.proxy_ssl_server_name);
  inherit(in.proxy_ssl_name, out.proxy_ssl_name);
  inherit(in.proxy_ssl_verify, out.proxy_ssl_verify);
  inherit(in.proxy_ssl_verify_depth, out.proxy_ssl_verify_depth);
  if (!in.proxy_ssl_trusted_certificate) {
    in.proxy_ssl_trusted_certificate = out.proxy_ssl_trusted_certificate;
    in.proxy_ssl_trusted_certificate_where = out.proxy_ssl_trusted_certificate_where;
  }
  if (!in.proxy_ssl_certificate) {
    in.proxy_ssl_certificate = out.proxy_ssl_certificate;
    in.proxy_ssl_certificate_where = out.proxy_ssl_certificate_where;
  }
  inherit(in.proxy_ssl_certificate_key, out.proxy_ssl_certificate_key);
  inherit(in.proxy_ssl_protocols, out.proxy_ssl_protocols);
  inherit(in.proxy_ssl_ciphers, out.proxy_ssl_ciphers);
  inherit(in.proxy_ssl_session_reuse, out.proxy_ssl_session_reuse);
  inherit(in.add_header, out.add_header);
  inherit(in.error_page, out.error_page);
  inherit(in.access, out.access);
  inherit(in.client_max_body_size, out.client_max_body_size);
  inherit(in.client_body_buffer_size, out.client_body_buffer_size);
  inherit(in.client_body_timeout, out.client_body_timeout);
  inherit(in.send_timeout, out.send_timeout);
  inherit(in.keepalive_timeout, out.keepalive_timeout);
  inherit(in.keepalive_requests, out.keepalive_requests);
  inherit(in.keepalive_time, out.keepalive_time);
  inherit(in.server_tokens, out.server_tokens);
  inherit(in.access_log, out.access_log);
  inherit(in.error_log, out.error_log);
  inherit(in.websocket_keepalive, out.websocket_keepalive);
  inherit(in.upgrade_allow, out.upgrade_allow);
}

void merge_tree(location& loc, const location_settings& outer) {
  merge_settings(loc.settings, outer);
  for (auto& child : loc.children) merge_tree(*child, loc.settings);
}

void merge_server(server& srv, const server& http_level) {
  inherit(srv.merge_slashes, http_level.merge_slashes);
  inherit(srv.underscores_in_headers, http_level.underscores_in_headers);
  inherit(srv.client_header_buffer_size, http_level.client_header_buffer_size);
  inherit(srv.large_client_header_buffers, http_level.large_client_header_buffers);
  inherit(srv.client_header_timeout, http_level.client_header_timeout);
  fallback(srv.merge_slashes, true);
  fallback(srv.underscores_in_headers, false);
  fallback(srv.client_header_buffer_size, size_t{1024});
  fallback(srv.large_client_header_buffers, std::make_pair(4, size_t{8192}));
  fallback(srv.client_header_timeout, duration(60s));
  const ssl_settings& outer = http_level.ssl;
  if (srv.ssl.certificate.empty()) {
    srv.ssl.certificate = outer.certificate;
    srv.ssl.where = outer.where;
    srv.ssl.inherited = true;
  }
  if (srv.ssl.certificate_key.empty()) srv.ssl.certificate_key = outer.certificate_key;
  if (srv.ssl.protocols.empty()) srv.ssl.protocols = outer.protocols;
  if (srv.ssl.ciphers.empty()) srv.ssl.ciphers = outer.ciphers;
  if (!srv.ssl.prefer_server_ciphers) srv.ssl.prefer_server_ciphers = outer.prefer_server_ciphers;
  // nginx 1.22 also offers TLSv1 and TLSv1.1 by default; wsgate offers only current versions.
  if (srv.ssl.protocols.empty()) srv.ssl.protocols = {"TLSv1.2", "TLSv1.3"};
  if (srv.ssl.ciphers.empty()) srv.ssl.ciphers = "HIGH:!aNULL:!MD5";
}

void resolve_upstream_refs(location& loc, const http_block& http) {
  if (loc.proxy_pass && !loc.proxy_pass->port_explicit && !loc.proxy_pass->host.empty() &&
      http.upstreams.count(loc.proxy_pass->host))
    loc.proxy_pass->port = 0;
  for (auto& child : loc.children) resolve_upstream_refs(*child, http);
}

}  // namespace

void finish(parse_state& st) {
  snapshot& snap = *st.snap;
  if (!st.events_seen)
    throw load_failure{{{},
                        "no \"events\" section in configuration",
                        "add `events {}` at the top level of the main file"}};
  if (!snap.http) return;
  http_block& http = *snap.http;
  apply_defaults(http.settings, snap.main);
  for (auto& srv : http.servers) {
    merge_server(*srv, st.http_server_defaults);
    merge_tree(srv->root_location, http.settings);
    resolve_upstream_refs(srv->root_location, http);
    for (const auto& l : srv->listens)
      if (l.ssl && srv->ssl.certificate.empty())
        throw load_failure{
            {l.where, "no \"ssl_certificate\" is defined for the \"listen ... ssl\" directive",
             "add `ssl_certificate FILE;` and `ssl_certificate_key FILE;` to this server"}};
  }
}

}  // namespace wsgate::config
