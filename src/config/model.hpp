// The configuration model: what a loaded nginx configuration means, as typed values.
//
// Levels follow nginx: main > http > server > location (nested), plus upstream and map blocks.
// Every inheritable setting is a std::optional at each level ("unset"); after loading, merge()
// fills each unset value from the enclosing level, then from the default, so a location holds
// the effective value of every setting and no reader walks up the tree.
//
// A snapshot is immutable once built; the data path holds it by shared_ptr so a reload swaps
// the pointer and open connections finish on the snapshot they started with.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wsgate::config {

class regex;  // config/regex.hpp: compiled PCRE2, shared by every reader of a snapshot

using duration = std::chrono::milliseconds;

// Where a directive was written, for error messages and lint warnings ("in FILE:LINE").
struct source_loc {
  std::string file;
  int line = 0;
};

// A directive argument that may contain $variables / ${variables}, split at load time.
// Evaluation belongs to routing/ (variables.hpp); config/ only splits.
struct template_part {
  bool is_variable = false;
  std::string text;  // literal text, or the variable name without '$' (e.g. "http_upgrade")
};
struct template_string {
  std::string raw;  // as written, without quotes
  std::vector<template_part> parts;
  bool has_variables() const {
    for (const auto& p : parts)
      if (p.is_variable) return true;
    return false;
  }
};

struct header_setting {  // proxy_set_header NAME VALUE
  std::string name;
  template_string value;
  source_loc where;
};

struct add_header_setting {  // add_header NAME VALUE [always]
  std::string name;
  template_string value;
  bool always = false;
  source_loc where;
};

// allow / deny ADDRESS[/BITS] | unix: | all (ngx_http_access_module): checked in order, the
// first that matches decides.
struct access_rule {
  enum class kind { all, ipv4, ipv6, unix_socket } type = kind::all;
  bool allow = false;
  unsigned char addr[16] = {};  // network order; ipv4 uses the first 4
  unsigned char mask[16] = {};
  source_loc where;
};

// proxy_pass URL, parsed. With variables in the URL, only `url` is set and the rest is
// resolved per request (as nginx does).
struct proxy_pass_setting {
  template_string url;
  std::string scheme;  // "http" or "https"
  std::string host;    // host name, IP, or upstream{} name
  uint16_t port = 0;   // 0 when the host names an upstream{} block
  bool port_explicit = false;
  std::optional<std::string> uri;  // the URI part; nullopt when absent ("http://b" vs "http://b/")
  std::string unix_path;           // "http://unix:/path:" form
  source_loc where;
};

struct return_setting {  // return CODE [TEXT|URL] | return URL
  int code = 0;
  std::optional<template_string> text_or_url;
  source_loc where;
};

enum class rewrite_flag { none, last, break_, redirect, permanent };
struct rewrite_setting {
  std::string regex;
  template_string replacement;
  rewrite_flag flag = rewrite_flag::none;
  source_loc where;
  std::shared_ptr<const config::regex> compiled;  // `regex`, compiled at load
};

struct error_page_setting {  // error_page CODE... [=[RESPONSE]] URI
  std::vector<int> codes;
  std::optional<int> response_code;  // "=404"; set to 0 for a bare "=" (use the target's code)
  template_string uri;
  source_loc where;
};

struct log_setting {  // access_log PATH [FORMAT] | off ; error_log PATH [LEVEL]
  bool off = false;
  std::string path;
  std::string format;  // access_log only; "combined" when absent
  std::string level;   // error_log only; "error" when absent
  source_loc where;
};

// proxy_redirect: default | off | REDIRECT REPLACEMENT
struct proxy_redirect_setting {
  enum class kind { default_, off, replace } type = kind::default_;
  template_string from, to;
  source_loc where;
};

// Settings that inherit http > server > location. Each field unset until merge().
struct location_settings {
  // proxy_*
  std::optional<std::vector<header_setting>> proxy_set_header;  // a level's list replaces outer
  std::optional<source_loc> proxy_set_header_where;  // first proxy_set_header at this level
  std::optional<std::string> proxy_http_version;     // "1.0" (default) or "1.1"
  std::optional<duration> proxy_connect_timeout;     // 60s
  std::optional<duration> proxy_read_timeout;        // 60s
  std::optional<duration> proxy_send_timeout;        // 60s
  std::optional<bool> proxy_buffering;               // on
  std::optional<bool> proxy_request_buffering;       // on
  std::optional<std::vector<proxy_redirect_setting>> proxy_redirect;  // default
  std::optional<bool> proxy_pass_request_headers;                     // on
  std::optional<bool> proxy_pass_request_body;                        // on
  std::optional<std::vector<std::string>> proxy_next_upstream;        // error timeout
  std::optional<size_t> proxy_buffer_size;                            // 4k (one page)
  std::optional<size_t> proxy_buffers_size;        // proxy_buffers N SIZE: N*SIZE
  std::optional<size_t> proxy_max_temp_file_size;  // 1024m: response spill beyond buffers; 0 = none
  std::optional<std::vector<std::string>> proxy_hide_header;  // lower-case names
  std::optional<std::vector<std::string>> proxy_pass_header;  // lower-case names
  // proxy_pass https://: TLS to the upstream (ngx_http_proxy_module's proxy_ssl_*)
  std::optional<bool> proxy_ssl_server_name;                 // off: no SNI sent
  std::optional<template_string> proxy_ssl_name;             // $proxy_host (port dropped)
  std::optional<bool> proxy_ssl_verify;                      // off
  std::optional<int> proxy_ssl_verify_depth;                 // 1
  std::optional<std::string> proxy_ssl_trusted_certificate;  // "": none
  std::optional<source_loc> proxy_ssl_trusted_certificate_where;
  std::optional<std::string> proxy_ssl_certificate;  // "": none (a client certificate)
  std::optional<source_loc> proxy_ssl_certificate_where;
  std::optional<std::string> proxy_ssl_certificate_key;         // "": none
  std::optional<std::vector<std::string>> proxy_ssl_protocols;  // TLSv1.2 TLSv1.3
  std::optional<std::string> proxy_ssl_ciphers;                 // DEFAULT
  std::optional<bool> proxy_ssl_session_reuse;                  // on
  // responses
  std::optional<std::vector<add_header_setting>> add_header;  // a level's list replaces outer
  std::optional<std::vector<error_page_setting>> error_page;  // a level's list replaces outer
  std::optional<std::vector<access_rule>> access;             // a level's list replaces outer
  // client side
  std::optional<size_t> client_max_body_size;     // 1m; 0 disables the check
  std::optional<size_t> client_body_buffer_size;  // 16k: a buffered body beyond it goes to a file
  std::optional<duration> client_body_timeout;    // 60s
  std::optional<duration> send_timeout;           // 60s
  std::optional<duration> keepalive_timeout;      // 75s
  std::optional<int> keepalive_requests;          // 1000 requests on one client connection
  std::optional<duration> keepalive_time;         // 1h: no new request on a connection older
  std::optional<bool> server_tokens;              // on
  std::optional<std::vector<log_setting>> access_log;
  std::optional<log_setting> error_log;  // path "" after merge: the main error log
  // wsgate's own (documented in README, flagged in -t output as wsgate-only)
  std::optional<duration> websocket_keepalive;  // ping an idle tunnel after this long; 0 = off
  std::optional<std::vector<std::string>> upgrade_allow;  // allowed Upgrade tokens: websocket
};

struct location {
  enum class match_kind {
    prefix,           // location /x
    exact,            // location = /x
    prefix_no_regex,  // location ^~ /x
    regex,            // location ~ re
    regex_icase,      // location ~* re
    named             // location @name
  };
  match_kind kind = match_kind::prefix;
  std::string pattern;  // the prefix, exact URI, regex source, or name without '@'
  source_loc where;
  std::shared_ptr<const regex> compiled;  // regex and regex_icase only

  // Handlers (not inherited, as nginx): at most one of proxy_pass / return decides the content.
  std::optional<proxy_pass_setting> proxy_pass;
  std::optional<return_setting> ret;
  // stub_status (nginx's counters, its format) or wsgate_status (live tunnels: JSON, Prometheus
  // text or HTML): the location answers with the status instead of proxying.
  enum class status_page { none, stub, wsgate } status = status_page::none;
  source_loc status_where;
  std::vector<rewrite_setting> rewrites;  // in order; only those before `ret` (later never run)

  location_settings settings;                       // merged: every optional is set after merge()
  std::vector<std::unique_ptr<location>> children;  // nested locations, in file order
  const location* parent = nullptr;
};

struct listen_setting {
  std::string addr;  // "" or "*" = any IPv4; "[::]" style stored without brackets as "::"
  uint16_t port = 80;
  bool ipv6 = false;
  bool default_server = false;
  bool ssl = false;
  bool reuseport = false;
  int backlog = 511;
  source_loc where;
};

struct server_name_entry {
  enum class kind { exact, wildcard_front, wildcard_back, regex } type = kind::exact;
  std::string name;  // lower-cased; for wildcards as written ("*.example.com", "www.example.*")
  source_loc where;
  std::shared_ptr<const regex> compiled;  // kind::regex only; `name` holds the source without '~'
};

struct ssl_settings {
  std::string certificate, certificate_key;
  std::vector<std::string> protocols;         // TLSv1.2 TLSv1.3 by default
  std::string ciphers;                        // "HIGH:!aNULL:!MD5"
  std::optional<bool> prefer_server_ciphers;  // off
  source_loc where;                           // the ssl_certificate line, for load errors
  bool inherited = false;                     // the certificate comes from http{}
};

struct server {
  std::vector<listen_setting> listens;  // empty in the file = listen *:80 (as root) / *:8000
  std::vector<server_name_entry> names;
  source_loc where;
  location root_location;  // server-level settings and handlers live here; children = locations
  ssl_settings ssl;
  std::optional<bool> merge_slashes;                                  // on
  std::optional<bool> underscores_in_headers;                         // off
  std::optional<size_t> client_header_buffer_size;                    // 1k
  std::optional<std::pair<int, size_t>> large_client_header_buffers;  // 4 8k
  std::optional<duration> client_header_timeout;                      // 60s
};

struct upstream_server {
  std::string host;  // as written (name or IP); resolved at start
  uint16_t port = 80;
  int weight = 1;
  int max_fails = 1;
  duration fail_timeout = std::chrono::seconds(10);
  bool backup = false;
  bool down = false;
  source_loc where;
};

struct upstream {
  std::string name;
  std::vector<upstream_server> servers;
  int keepalive = 0;  // idle connections cached per worker; 0 = none
  int keepalive_requests = 1000;
  duration keepalive_timeout = std::chrono::seconds(60);
  std::string balancer = "round_robin";  // least_conn, ip_hash, hash
  template_string hash_key;              // hash KEY [consistent]
  bool hash_consistent = false;
  source_loc where;
};

struct map_block {  // map $source $result { ... }
  template_string source;
  std::string result;  // variable name without '$'
  std::optional<template_string> default_value;
  struct entry {
    std::string key;  // exact, lower-cased (nginx ignores case), or regex when is_regex
    bool is_regex = false, icase = false;
    template_string value;
    std::shared_ptr<const regex> compiled;  // is_regex only; `key` holds the source without ~/~*
  };
  std::vector<entry> entries;
  bool hostnames = false;
  source_loc where;
};

struct log_format {
  std::string name;
  std::string escape = "default";
  template_string format;
};

struct http_block {
  std::vector<std::unique_ptr<server>> servers;
  std::map<std::string, upstream, std::less<>> upstreams;  // found by string_view too
  std::vector<map_block> maps;
  std::vector<log_format> log_formats;
  location_settings settings;  // http-level values, merged into servers and locations
  source_loc where;
};

struct main_settings {
  bool daemon = true;
  int worker_processes = 1;  // "auto" resolved to the CPU count
  int worker_connections = 512;
  std::string pid_path = "/run/nginx.pid";
  std::optional<log_setting> error_log;
  std::string user;
  duration worker_shutdown_timeout = duration::zero();  // 0 = wait for ever, as nginx
  // wsgate's own: an idle worker polls for a while before it sleeps (HAProxy's busy-polling).
  bool busy_polling = false;
  source_loc busy_polling_where;
};

// A notice the loader emits but that does not fail the load (e.g. accepted nginx-only tuning).
struct notice {
  source_loc where;
  std::string text;
};

struct snapshot {
  std::string conf_file;  // absolute path of the main file
  std::string prefix;     // -p, used for relative paths
  main_settings main;
  std::optional<http_block> http;
  std::vector<notice> notices;
  // Every file read, in order, with its text: `-T` prints them as nginx does.
  std::vector<std::pair<std::string, std::string>> files;
};

}  // namespace wsgate::config
