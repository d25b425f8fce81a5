// The client connection, as coroutines named by phase: run_session reads requests and answers
// or proxies them (proxy_request); a confirmed upgrade hands both sockets to the tunnel.
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstring>
#include <ctime>
#include <optional>
#include <span>

#include "http/chunked.hpp"
#include "http/request_parser.hpp"
#include "http/response_parser.hpp"
#include "http/spill_buffer.hpp"
#include "http/status.hpp"
#include "http/text.hpp"
#include "proxy/logs.hpp"
#include "proxy/response_rules.hpp"
#include "proxy/status.hpp"
#include "proxy/tls_stream.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/worker.hpp"
#include "routing/match.hpp"
#include "routing/route.hpp"
#include "routing/variables.hpp"

namespace wsgate::proxy {

namespace {

using clock = std::chrono::steady_clock;
using config::duration;
using http::iequals;
using error_code = boost::system::error_code;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
template <class T = void>
using awaitable = asio::awaitable<T>;

constexpr size_t kBodyRead = 16 * 1024;
constexpr size_t kBodyLimit = 64 * 1024;
constexpr std::string_view kCrlf = "\r\n";

// The clock formatted once a second per thread: the Date header (GMT) or $time_local.
template <bool local>
std::string_view formatted_now() {
  thread_local std::time_t last = 0;
  thread_local char text[40];
  const std::time_t now = std::time(nullptr);
  if (now != last) {
    std::tm tm{};
    if (local)
      localtime_r(&now, &tm);
    else
      gmtime_r(&now, &tm);
    std::strftime(text, sizeof text, local ? "%d/%b/%Y:%H:%M:%S %z" : "%a, %d %b %Y %H:%M:%S GMT",
                  &tm);
    last = now;
  }
  return text;
}
std::string_view http_date() {
  return formatted_now<false>();
}
std::string_view local_time() {
  return formatted_now<true>();
}

// A number appended without a temporary string.
void append_number(std::string& out, uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

std::string endpoint_addr(const tcp::endpoint& ep) {
  auto a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  if (!a.is_v4()) return a.to_string();
  // Asio's to_string goes through inet_ntop and sprintf, ~3,800 instructions per connection.
  const auto b = a.to_v4().to_bytes();
  char text[16];
  char* p = text;
  for (size_t i = 0; i < b.size(); ++i) {
    if (i) *p++ = '.';
    p = std::to_chars(p, text + sizeof text, b[i]).ptr;
  }
  return std::string(text, p);
}

// Statuses after which nginx closes the connection (ngx_http_special_response_handler).
bool closes_connection(int status) {
  return status == 400 || status == 408 || status == 413 || status == 414 || status == 500 ||
         status == 501 || status == 505;
}

// add_header applies to these unless `always`.
bool add_header_status(int status) {
  switch (status) {
    case 200:
    case 201:
    case 204:
    case 206:
    case 301:
    case 302:
    case 303:
    case 304:
    case 307:
    case 308:
      return true;
    default:
      return false;
  }
}

const std::string* find_header(const routing::header_list& h, std::string_view name) {
  for (const auto& [n, v] : h)
    if (iequals(n, name)) return &v;
  return nullptr;
}

// The first token of an Upgrade value ("websocket", "h2c", "foo/2") lower-cased, no version.
std::string upgrade_token(std::string_view v) {
  std::string t;
  for (char c : v) {
    if (c == ',' || c == '/' || c == ' ' || c == '\t') {
      if (!t.empty()) break;
      continue;
    }
    t.push_back(http::lower(c));
  }
  return t;
}

bool upgrade_allowed(std::string_view value, const config::location_settings& s) {
  const std::string t = upgrade_token(value);
  if (t.empty() || t == "h2c") return false;
  static const std::vector<std::string> dflt{"websocket"};
  const auto& allowed = s.upgrade_allow ? *s.upgrade_allow : dflt;
  return std::any_of(allowed.begin(), allowed.end(),
                     [&](const std::string& a) { return iequals(a, t); });
}

enum class upstream_failure { none, error, timeout, invalid, too_big, premature };

// The connection's state shared with its watchdog.
struct connection_state {
  connection_state(worker_context& wc, tcp::socket sock)
      : w(wc), client(std::move(sock)), timer(wc.io) {}
  worker_context& w;
  tcp::socket client;
  tls_connection_ptr tls;                    // on `client`, once its handshake began
  bool tls_port = false;                     // the listener is `ssl`
  std::optional<tcp::endpoint> peer, local;  // known from accept() and the listener
  std::unique_ptr<upstream_conn> upstream;
  asio::steady_timer timer;
  clock::time_point deadline = clock::time_point::max();
  bool timed_out = false;
  bool idle_wait = false;  // waiting for the next request (its timeout still ends TLS cleanly)
  bool finished = false;

  duration shortest = duration::max();  // the shortest timeout this connection has armed

  // The watchdog sleeps at most `shortest` at a time, so a new deadline is never earlier than
  // its timer once every kind of step has run: a busy connection re-arms nothing.
  void arm(duration d) {
    const auto next = clock::now() + d;
    deadline = next;
    timed_out = false;
    if (d < shortest) shortest = d;
    if (next < timer.expiry()) timer.cancel();
  }
  void disarm() { deadline = clock::time_point::max(); }
  tcp::socket& sock() { return client; }
};

// Cancels the connection's socket operations when the current step's deadline passes; the
// step then completes with operation_aborted and timed_out set. A plain timer handler that arms
// itself again, not a coroutine: a connection then holds one small wait operation for it.
void watchdog(std::shared_ptr<connection_state> s) {
  if (s->finished) return;
  const auto now = clock::now();
  s->timer.expires_at(s->shortest == duration::max() || s->deadline - now < s->shortest
                          ? s->deadline
                          : now + s->shortest);
  connection_state& st = *s;
  st.timer.async_wait([s = std::move(s)](const error_code&) mutable {
    if (s->finished) return;
    if (clock::now() >= s->deadline) {
      s->timed_out = true;
      s->deadline = clock::time_point::max();
      error_code ignored;
      s->sock().cancel(ignored);
      if (s->upstream) s->upstream->socket.cancel(ignored);
    }
    watchdog(std::move(s));
  });
}

// A session's strings and vectors whose capacity the worker keeps from one connection to the
// next: a new connection (a WebSocket handshake is one request on a fresh connection) then
// parses, routes and writes its heads without growing them again. Handed out emptied of the
// last connection's content; kept per thread, as a worker's sessions all run on its thread.
struct session_scratch {
  http::request_parser parser;  // reset before each request it parses
  routing::request_info info;
  routing::decision decision;
  std::string request_line, out, upstream_addr, pool_lookup, upstream_key, access_line, access_path;
  std::vector<http::header_field> spare_fields;
  peer_group::pick_state pick;  // reset before each pick
  routing::listen_group group;  // filled where it is read

  void clear() {
    info.method.assign("GET");
    info.target.clear();
    info.http_minor = 1;
    info.headers.clear();
    info.tls = false;
    info.named_location.clear();
    routing::reset(decision);
    for (std::string* str : {&request_line, &out, &upstream_addr, &pool_lookup, &upstream_key,
                             &access_line, &access_path})
      str->clear();
    spare_fields.clear();
  }
};

struct scratch_return {
  void operator()(session_scratch* sc) const;
};
using scratch_ptr = std::unique_ptr<session_scratch, scratch_return>;

// At most this many wait in a worker for the next connection; more are freed.
constexpr size_t kScratchKept = 64;
thread_local std::vector<std::unique_ptr<session_scratch>> free_scratch;

scratch_ptr take_scratch() {
  if (free_scratch.empty()) return scratch_ptr(new session_scratch);
  session_scratch* sc = free_scratch.back().release();
  free_scratch.pop_back();
  sc->clear();
  return scratch_ptr(sc);
}

void scratch_return::operator()(session_scratch* sc) const {
  if (free_scratch.size() < kScratchKept)
    free_scratch.emplace_back(sc);
  else
    delete sc;
}

class session : tls_server_picker {
 public:
  explicit session(std::shared_ptr<connection_state> st);
  ~session() { drop_spool(); }
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  awaitable<void> run_session();

 private:
  enum class body_result { data, end, bad, timeout, closed, too_large };

  awaitable<bool> read_head();
  awaitable<bool> tls_handshake();
  SSL_CTX* pick_tls_context(std::string_view server_name) override;
  awaitable<bool> serve_status(config::location::status_page page);
  awaitable<bool> handle(routing::decision& d, int override_status, bool in_error_page);
  awaitable<bool> proxy_request(routing::decision& d, int override_status);
  // Parts of proxy_request, apart so that its coroutine frame stays small enough for Asio's
  // frame recycler (at most 1,020 bytes; a larger one is a heap allocation per request).
  awaitable<int> spool_request_body();
  void write_request_head(const routing::upstream_request& up, bool spool);
  struct body_send {
    error_code ec;               // writing to the upstream failed
    bool client_failed = false;  // reading the client's body failed: answer `status` (0: close)
    int status = 0;
  };
  awaitable<body_send> send_request_body(const routing::decision& d, bool stream,
                                         bool chunked_upstream);
  upstream_failure send_failure(error_code ec);
  awaitable<bool> switch_protocols(const routing::decision& d, http::response_head& head);
  void write_response_head(const http::response_head& head, int status, int override_status,
                           bool chunk_to_client);
  awaitable<bool> relay_unbuffered(const routing::decision& d, const http::response_head& head,
                                   bool no_body, bool chunk_to_client, bool close_delimited,
                                   bool upstream_reusable);
  awaitable<bool> respond(int status, std::string_view body, std::string_view content_type,
                          std::string_view location, bool too_large = false);
  awaitable<bool> respond_error(int status, bool too_large = false, bool in_error_page = false);
  const config::error_page_setting* error_page_for(int status) const;
  routing::decision route_error_page(const std::string& uri) const;
  awaitable<bool> relay_buffered(const routing::decision& d, const http::response_head& head,
                                 bool chunk_to_client, bool close_delimited, bool reusable);
  awaitable<bool> discard_body();
  awaitable<void> linger();

  void start_body(const http::request_head& h);
  awaitable<body_result> next_body_piece(std::string_view& piece);
  int body_failure_status(body_result r);

  awaitable<upstream_failure> connect_upstream(const routing::decision& d, bool& reused);
  awaitable<upstream_failure> upstream_handshake(const routing::decision& d);
  awaitable<upstream_failure> read_response_head(const routing::decision& d,
                                                 http::response_head& head);
  void release_upstream(bool reusable);

  awaitable<error_code> write_client(std::span<const asio::const_buffer> bufs);
  awaitable<error_code> write_client(std::string_view s) {
    const asio::const_buffer b(s.data(), s.size());
    co_return co_await write_client(std::span<const asio::const_buffer>(&b, 1));
  }
  awaitable<error_code> write_upstream(std::span<const asio::const_buffer> bufs, duration timeout);

  void append_add_headers(std::string& out, int status);
  void log_access();
  std::string error_context() const;
  std::string request_host() const;
  const config::location_settings& settings() const { return loc_->settings; }
  // nginx writes a request's errors to the error_log of the level handling it.
  void log(log_level level, std::string_view message);
  const config::log_setting* sink_for_ = nullptr;  // the error_log `sink_` was opened for
  error_sink sink_;

  std::shared_ptr<connection_state> s_;
  worker_context& w_;
  std::shared_ptr<const runtime> rt_;
  const config::server* default_server_ = nullptr;
  const config::location* loc_ =
      nullptr;  // answers the current request (default server's root before routing)
  http::header_limits limits_;
  duration header_timeout_ = std::chrono::seconds(60);

  http::flat_buffer in_;
  http::spill_buffer ahead_;  // a response read ahead of the client (proxy_buffering on)
  scratch_ptr sc_ = take_scratch();
  http::request_parser& parser_ = sc_->parser;
  routing::request_info& info_ = sc_->info;
  std::string& request_line_ = sc_->request_line;  // $request
  std::string& out_ = sc_->out;                    // a head being written
  int requests_ = 0;
  // The request body read before the upstream is contacted (proxy_request_buffering).
  std::string spooled_;
  int spool_fd_ = -1;
  uint64_t spool_size_ = 0;
  bool spool_ready_ = false;
  void drop_spool() {
    spooled_.clear();
    if (spool_fd_ >= 0) ::close(spool_fd_);
    spool_fd_ = -1;
    spool_size_ = 0;
    spool_ready_ = false;
  }
  clock::time_point started_ = clock::now();
  bool head_request_ = false;
  bool keep_alive_ = true;
  bool http09_ = false;
  bool expect_continue_ = false;

  bool body_chunked_ = false;
  uint64_t body_remaining_ = 0;
  uint64_t body_total_ = 0;
  uint64_t body_max_ = 0;
  bool body_done_ = true;
  size_t body_pending_consume_ = 0;
  http::chunked_decoder body_decoder_;

  int status_ = 0;
  uint64_t body_bytes_sent_ = 0;
  std::string& upstream_addr_ = sc_->upstream_addr;
  std::string& pool_lookup_ = sc_->pool_lookup;  // "key|peer" of the idle upstream pool
  // Kept across requests so that their capacity is reused (no allocation per request once
  // warm): the routing decision, the upstream group key, the access log line and path (all
  // from the scratch, kept across connections too), the registration among the worker's idle
  // clients, and a closed upstream connection object.
  routing::decision& decision_ = sc_->decision;
  std::string& upstream_key_ = sc_->upstream_key;
  std::string& access_line_ = sc_->access_line;
  std::string& access_path_ = sc_->access_path;
  std::unordered_set<tcp::socket*>::node_type idle_node_;
  std::unique_ptr<upstream_conn> spare_upstream_;
  std::vector<http::header_field>& spare_fields_ = sc_->spare_fields;  // the response's headers
  // proxy_pass with variables: the last numeric address resolved, kept while requests name it.
  std::string dynamic_key_;
  std::vector<socket_address> dynamic_peers_;
  peer_group::pick_state& pick_ = sc_->pick;  // the peers this request has tried, its hashing
  unsigned char client_addr_[16] = {};        // ip_hash's key: the client's address bytes
  size_t client_addr_len_ = 0;
  bool plain_on_tls_ = false;  // a plain HTTP request came to a TLS port: answered 400 (497)
  std::string_view upstream_scheme_ = "http";  // for the error log's "upstream:"
};

session::session(std::shared_ptr<connection_state> st) : s_(std::move(st)), w_(s_->w) {
  rt_ = w_.rt;
  // Candidates, server reasons and lint are for `wsgate explain`; per request they cost string
  // work and heap allocations and change no action.
  info_.diagnostics = false;
  error_code ec;
  const auto remote = s_->peer ? *s_->peer : s_->client.remote_endpoint(ec);
  const auto local = s_->local ? *s_->local : s_->client.local_endpoint(ec);
  info_.remote_addr = endpoint_addr(remote);
  info_.remote_port = remote.port();
  info_.local_addr = endpoint_addr(local);
  info_.local_port = local.port();
  // ip_hash's key: the first three bytes of an IPv4 address, all 16 of an IPv6 one (nginx).
  if (remote.address().is_v4()) {
    const auto b = remote.address().to_v4().to_bytes();
    std::memcpy(client_addr_, b.data(), 3);
    client_addr_len_ = 3;
  } else {
    const auto b = remote.address().to_v6().to_bytes();
    std::memcpy(client_addr_, b.data(), 16);
    client_addr_len_ = 16;
  }
  if (rt_->config->http) {
    routing::find_listen_group_into(*rt_->config, info_.local_addr, info_.local_port, sc_->group,
                                    false);
    default_server_ = sc_->group.default_server;
  }
  if (default_server_) {
    loc_ = &default_server_->root_location;
    limits_.first_buffer = default_server_->client_header_buffer_size.value_or(1024);
    const auto large =
        default_server_->large_client_header_buffers.value_or(std::make_pair(4, size_t{8192}));
    limits_.large_count = large.first;
    limits_.large_size = large.second;
    header_timeout_ = default_server_->client_header_timeout.value_or(std::chrono::seconds(60));
  }
}

std::string session::request_host() const {
  std::string_view target = info_.target;
  if (!target.empty() && target.front() != '/') {  // absolute-form: scheme://host[:port]/...
    const size_t s = target.find("://");
    if (s != std::string_view::npos) {
      std::string_view rest = target.substr(s + 3);
      rest = rest.substr(0, rest.find_first_of("/?"));
      std::string h(rest.substr(
          0, rest.rfind(':') == std::string_view::npos ? rest.size() : rest.rfind(':')));
      for (auto& c : h) c = http::lower(c);
      if (!h.empty()) return h;
    }
  }
  if (const std::string* v = find_header(info_.headers, "host")) {
    std::string h = *v;
    if (!h.empty() && h.front() == '[') {
      const size_t close = h.find(']');
      if (close != std::string::npos) h.resize(close + 1);
    } else if (const size_t colon = h.find(':'); colon != std::string::npos) {
      h.resize(colon);
    }
    for (auto& c : h) c = http::lower(c);
    if (!h.empty() && h.back() == '.') h.pop_back();
    if (!h.empty()) return h;
  }
  if (default_server_ && !default_server_->names.empty() &&
      default_server_->names.front().type == config::server_name_entry::kind::exact &&
      !default_server_->names.front().name.empty())
    return default_server_->names.front().name;
  return info_.local_addr;
}

void session::log(log_level level, std::string_view message) {
  const auto& el = loc_ ? settings().error_log : std::nullopt;
  if (!el || el->path.empty()) return log_error(level, message);
  if (sink_for_ != &*el) {
    sink_for_ = &*el;
    sink_ = open_error_sink(el->path, parse_log_level(el->level).value_or(log_level::error));
  }
  log_error(sink_, level, message);
}

std::string session::error_context() const {
  std::string out = ", client: " + info_.remote_addr + ", server: ";
  if (default_server_ && !default_server_->names.empty())
    out += default_server_->names.front().name;
  if (!request_line_.empty()) out += ", request: \"" + request_line_ + "\"";
  if (!upstream_addr_.empty())
    out.append(", upstream: \"").append(upstream_scheme_).append("://").append(upstream_addr_) +=
        '"';
  if (const std::string* h = find_header(info_.headers, "host")) out += ", host: \"" + *h + "\"";
  return out;
}

awaitable<error_code> session::write_client(std::span<const asio::const_buffer> bufs) {
  s_->arm(loc_ ? settings().send_timeout.value_or(std::chrono::seconds(60))
               : std::chrono::seconds(60));
  error_code ec;
  size_t n = 0;
  std::vector<asio::const_buffer> rest;
  if (s_->tls)
    std::tie(ec, n) = co_await s_->tls->write(bufs);
  else if (!send_now(s_->client, bufs, rest, ec) && !ec)
    std::tie(ec, n) = co_await asio::async_write(s_->client, rest, use_nothrow);
  if (ec && s_->timed_out)
    log(log_level::info,
        "client timed out (110: Connection timed out) while sending response to client" +
            error_context());
  s_->disarm();
  co_return ec;
}

awaitable<error_code> session::write_upstream(std::span<const asio::const_buffer> bufs,
                                              duration timeout) {
  s_->arm(timeout);
  auto& up = *s_->upstream;
  error_code ec;
  size_t n = 0;
  std::vector<asio::const_buffer> rest;
  if (up.tls)
    std::tie(ec, n) = co_await up.tls->write(bufs);
  else if (!send_now(up.socket, bufs, rest, ec) && !ec)
    std::tie(ec, n) = co_await asio::async_write(up.socket, rest, use_nothrow);
  if (ec && s_->timed_out) ec = asio::error::timed_out;
  s_->disarm();
  co_return ec;
}

void session::append_add_headers(std::string& out, int status) {
  if (!loc_ || !settings().add_header || settings().add_header->empty()) return;
  const bool ok_status = add_header_status(status);
  routing::eval_context ctx;
  bool ctx_ready = false;
  for (const auto& h : *settings().add_header) {
    if (!h.always && !ok_status) continue;
    std::string value;
    if (h.value.has_variables()) {
      if (!ctx_ready) {
        ctx.config = rt_->config.get();
        ctx.request = &info_;
        ctx.server = default_server_;
        for (const auto& [n, v] : info_.headers) ctx.headers.emplace_back(n, v);
        ctx.host = request_host();
        ctx_ready = true;
      }
      value = routing::evaluate(h.value, ctx);
    } else {
      value = h.value.raw;
    }
    if (value.empty()) continue;
    out += h.name;
    out += ": ";
    out += value;
    out += kCrlf;
  }
}

void session::log_access() {
  if (!loc_ || !settings().access_log) return;
  std::string& line = access_line_;
  line.clear();
  for (const auto& l : *settings().access_log) {
    if (l.off) continue;
    if (line.empty()) {
      auto header = [&](std::string_view n) -> std::string_view {
        const std::string* v = find_header(info_.headers, n);
        return v ? std::string_view(*v) : std::string_view("-");
      };
      line += info_.remote_addr;
      line += " - - [";
      line += local_time();
      line += "] \"";
      line += request_line_;
      line += "\" ";
      append_number(line, static_cast<uint64_t>(status_));
      line += ' ';
      append_number(line, body_bytes_sent_);
      line += " \"";
      line += header("referer");
      line += "\" \"";
      line += header("user-agent");
      line += "\"\n";
    }
    const std::string* path = &l.path;
    if (!l.path.empty() && l.path.front() != '/') {
      access_path_.assign(rt_->config->prefix).append(1, '/').append(l.path);
      path = &access_path_;
    }
    write_access_log(access_log_fd(*path), line);
  }
}

// ---- phase 1: the request head -------------------------------------------------------------

awaitable<bool> session::read_head() {
  parser_.reset(limits_);
  s_->arm(header_timeout_);
  for (;;) {
    const auto r = parser_.parse(in_.data());
    if (r == http::parse_result::done) break;
    if (r == http::parse_result::error) {
      s_->disarm();
      request_line_.clear();
      log(log_level::info, std::string(parser_.error_text()) +
                               " while reading client request line" + error_context());
      co_await respond_error(parser_.error_status(), parser_.header_too_large());
      co_return false;
    }
    const size_t want = std::max(limits_.first_buffer, in_.size());
    auto [p, n] = in_.prepare(want, limits_.max_bytes());
    if (n == 0) {
      co_await respond_error(400, true);
      co_return false;
    }
    auto [ec, got] = s_->tls ? co_await s_->tls->read_some(asio::buffer(p, n))
                             : co_await s_->client.async_read_some(asio::buffer(p, n), use_nothrow);
    if (ec) {
      if (s_->timed_out)  // nginx closes without a response when the head does not arrive
        log(log_level::info,
            "client timed out (110: Connection timed out) while reading client request headers" +
                error_context());
      s_->disarm();
      co_return false;
    }
    in_.commit(got);
  }
  s_->disarm();
  const auto& h = parser_.head();
  info_.method.assign(h.method);
  info_.target.assign(h.target);
  info_.http_minor = h.http09 ? 0 : h.minor;
  info_.headers.resize(h.headers.size());
  for (size_t i = 0; i < h.headers.size(); ++i) {
    info_.headers[i].first.assign(h.headers[i].name);
    info_.headers[i].second.assign(h.headers[i].value);
  }
  const std::string_view data = in_.data();
  size_t line_start = 0;
  while (line_start < data.size() && (data[line_start] == '\r' || data[line_start] == '\n'))
    ++line_start;
  const size_t line_end = data.find('\n', line_start);
  request_line_.assign(data.substr(line_start, line_end - line_start));
  if (!request_line_.empty() && request_line_.back() == '\r') request_line_.pop_back();
  head_request_ = h.method == "HEAD";
  keep_alive_ = h.keep_alive;
  http09_ = h.http09;
  expect_continue_ = h.expect_continue && h.minor >= 1;
  start_body(h);
  in_.consume(h.size);
  co_return true;
}

void session::start_body(const http::request_head& h) {
  body_chunked_ = h.chunked;
  body_remaining_ = h.content_length.value_or(0);
  body_total_ = 0;
  body_done_ = !h.chunked && body_remaining_ == 0;
  body_pending_consume_ = 0;
  body_decoder_.reset();
}

int session::body_failure_status(body_result r) {
  switch (r) {
    case body_result::timeout:
      return 0;  // nginx logs 408 and closes without an answer
    case body_result::too_large:
      return 413;
    case body_result::bad:
      return 400;
    default:
      return 0;
  }
}

awaitable<session::body_result> session::next_body_piece(std::string_view& piece) {
  in_.consume(body_pending_consume_);
  body_pending_consume_ = 0;
  for (;;) {
    if (body_done_) co_return body_result::end;
    if (!in_.empty()) {
      if (body_chunked_) {
        const auto step = body_decoder_.next(in_.data());
        if (step.error) co_return body_result::bad;
        if (!step.data.empty()) {
          body_total_ += step.data.size();
          if (body_max_ && body_total_ > body_max_) co_return body_result::too_large;
          piece = step.data;
          body_pending_consume_ = step.consumed;
          co_return body_result::data;
        }
        in_.consume(step.consumed);
        if (step.done) {
          body_done_ = true;
          co_return body_result::end;
        }
        if (!in_.empty()) continue;
      } else {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(body_remaining_, in_.size()));
        piece = in_.data().substr(0, n);
        body_pending_consume_ = n;
        body_remaining_ -= n;
        body_total_ += n;
        if (body_remaining_ == 0) body_done_ = true;
        co_return body_result::data;
      }
    }
    if (expect_continue_) {
      expect_continue_ = false;
      co_await write_client(std::string_view("HTTP/1.1 100 Continue\r\n\r\n"));
    }
    auto [p, n] = in_.prepare(kBodyRead, kBodyLimit);
    s_->arm(settings().client_body_timeout.value_or(std::chrono::seconds(60)));
    auto [ec, got] = s_->tls ? co_await s_->tls->read_some(asio::buffer(p, n))
                             : co_await s_->client.async_read_some(asio::buffer(p, n), use_nothrow);
    const bool timed_out = s_->timed_out;
    s_->disarm();
    if (ec) {
      if (timed_out) {
        log(log_level::info,
            "client timed out (110: Connection timed out) while reading client request body" +
                error_context());
        status_ = 408;  // logged as nginx does, though no answer is sent
        co_return body_result::timeout;
      }
      log(log_level::info,
          "client prematurely closed connection while reading client request body" +
              error_context());
      co_return body_result::closed;
    }
    in_.commit(got);
  }
}

awaitable<bool> session::discard_body() {
  expect_continue_ = false;  // nginx does not invite a body it will throw away
  std::string_view piece;
  for (;;) {
    const auto r = co_await next_body_piece(piece);
    if (r == body_result::end) co_return true;
    if (r != body_result::data && r != body_result::too_large) co_return false;
  }
}

// nginx's lingering close: after an error answer, read and drop what the client still sends
// (briefly) so the kernel does not reset the connection before the client reads the answer.
awaitable<void> session::linger() {
  error_code ec;
  // On a TLS connection close_notify goes first; then the bytes are dropped undecrypted.
  if (s_->tls) s_->tls->shutdown_now();
  tcp::socket& sock = s_->sock();
  sock.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  const auto until = clock::now() + std::chrono::seconds(5);
  char sink[4096];
  while (clock::now() < until) {
    s_->arm(std::chrono::seconds(1));
    auto [rec, n] = co_await sock.async_read_some(asio::buffer(sink), use_nothrow);
    (void)n;
    s_->disarm();
    if (rec) break;
  }
}

// ---- answers wsgate writes itself ------------------------------------------------------------

awaitable<bool> session::respond(int status, std::string_view body, std::string_view content_type,
                                 std::string_view location, bool too_large) {
  status_ = status == 494 || status == 497 ? 400 : status;
  const bool close =
      !keep_alive_ || closes_connection(status_) || w_.draining ||
      (loc_ && settings().keepalive_timeout.value_or(std::chrono::seconds(75)).count() == 0);
  const bool tokens = loc_ ? settings().server_tokens.value_or(true) : true;
  std::string page;
  if (body.empty() && content_type.empty()) {
    page =
        http::error_page(status == 497 ? 497 : status_, http::server_signature(tokens), too_large);
    if (!page.empty()) {
      body = page;
      content_type = "text/html";
    }
  }
  out_.clear();
  if (!http09_) {
    out_ += "HTTP/1.1 ";
    append_number(out_, static_cast<uint64_t>(status_));
    out_ += ' ';
    out_ += http::reason_phrase(status_);
    out_ += "\r\nServer: ";
    out_ += http::server_signature(tokens);
    out_ += "\r\nDate: ";
    out_ += http_date();
    out_ += kCrlf;
    if (!content_type.empty()) {
      out_ += "Content-Type: ";
      out_ += content_type;
      out_ += kCrlf;
    }
    if (status_ != 204 && status_ != 304 && !(status_ < 200)) {
      out_ += "Content-Length: ";
      append_number(out_, static_cast<uint64_t>(body.size()));
      out_ += kCrlf;
    }
    if (!location.empty()) {
      out_ += "Location: ";
      out_ += location;
      out_ += kCrlf;
    }
    out_ += close ? "Connection: close\r\n" : "Connection: keep-alive\r\n";
    append_add_headers(out_, status_);
    out_ += kCrlf;
  }
  const bool send_body = !head_request_ && status_ != 204 && status_ != 304;
  const std::array<asio::const_buffer, 2> bufs{
      asio::buffer(out_), asio::buffer(body.data(), send_body ? body.size() : 0)};
  const auto ec = co_await write_client(bufs);
  body_bytes_sent_ = send_body ? body.size() : 0;
  if (ec) co_return false;
  if (close) {
    if (!body_done_ || !in_.empty()) co_await linger();
    co_return false;
  }
  co_return true;
}

const config::error_page_setting* session::error_page_for(int status) const {
  if (!loc_ || !settings().error_page) return nullptr;
  for (const auto& ep : *settings().error_page)
    if (std::find(ep.codes.begin(), ep.codes.end(), status) != ep.codes.end())
      return ep.uri.raw.empty() ? nullptr : &ep;
  return nullptr;
}

// The request an error page is served for: a named location gets the request as it is
// (method, URI and body unchanged); a URI, a GET (or HEAD) for that URI.
routing::decision session::route_error_page(const std::string& uri) const {
  routing::request_info again = info_;
  if (uri.front() == '@') {
    again.named_location.assign(uri, 1);
  } else {
    again.target = uri;
    if (again.method != "HEAD") again.method = "GET";
  }
  return routing::route(*rt_->config, again);
}

// An error status of wsgate's own: error_page when one names it, else nginx's page.
awaitable<bool> session::respond_error(int status, bool too_large, bool in_error_page) {
  const config::error_page_setting* ep = in_error_page ? nullptr : error_page_for(status);
  if (!ep) co_return co_await respond(status, {}, {}, {}, too_large);
  const std::string& uri = ep->uri.raw;
  if (uri.front() != '/' && uri.front() != '@') {
    // A URL: the client is redirected (302 unless =30x is given).
    const int code = ep->response_code && *ep->response_code >= 301 && *ep->response_code <= 308
                         ? *ep->response_code
                         : 302;
    co_return co_await respond(code, {}, {}, uri);
  }
  routing::decision d = route_error_page(uri);
  if (uri.front() == '@' && !d.location) {
    log(log_level::error, "could not find named location \"" + uri + "\"" + error_context());
    co_return co_await respond(500, {}, {}, {});
  }
  const int override_status = ep->response_code ? *ep->response_code : status;
  // A URI page's request carries no body; the original one is dropped with the connection
  // state unchanged (discarded after the page, as nginx does).
  co_return co_await handle(d, override_status == 0 ? -1 : override_status, true);
}

// ---- phase 2: what route() decided -----------------------------------------------------------

awaitable<bool> session::handle(routing::decision& d, int override_status, bool in_error_page) {
  if (d.location)
    loc_ = d.location;
  else if (d.server)
    loc_ = &d.server->root_location;
  body_max_ = settings().client_max_body_size.value_or(1024 * 1024);
  // ngx_http_update_location_config: the location decides whether this is the connection's last
  // request (keepalive_requests counts this one; keepalive_time from the connection's start).
  if (requests_ + 1 >= settings().keepalive_requests.value_or(1000) ||
      clock::now() - started_ > settings().keepalive_time.value_or(std::chrono::hours(1)))
    keep_alive_ = false;
  if (!in_error_page && d.what != routing::action::respond) {
    if (body_max_ && !body_chunked_ && body_remaining_ > body_max_) {
      log(log_level::error, "client intended to send too large body: " +
                                std::to_string(body_remaining_) + " bytes" + error_context());
      co_return co_await respond_error(413);
    }
  }
  int status = d.status;
  if (override_status > 0 && d.what != routing::action::proxy) status = override_status;
  switch (d.what) {
    case routing::action::respond: {
      if (d.access_denied) log(log_level::error, "access forbidden by rule" + error_context());
      if (d.status == 444 || d.status == 0) {  // close without an answer
        status_ = 444;
        co_return false;
      }
      if (!in_error_page && body_max_ && !body_chunked_ && body_remaining_ > body_max_)
        co_return co_await respond_error(413);
      bool keep;
      if (d.body.empty() && status >= 400 && !in_error_page)
        keep = co_await respond_error(status);
      else
        keep = co_await respond(status, d.body, d.body.empty() ? std::string_view{} : "text/plain",
                                {});
      if (keep && !body_done_) keep = co_await discard_body();
      co_return keep;
    }
    case routing::action::redirect: {
      bool keep = co_await respond(status, {}, {}, d.location_header);
      if (keep && !body_done_) keep = co_await discard_body();
      co_return keep;
    }
    case routing::action::not_found: {
      bool keep = in_error_page ? co_await respond(status ? status : 404, {}, {}, {})
                                : co_await respond_error(404);
      if (keep && !body_done_) keep = co_await discard_body();
      co_return keep;
    }
    case routing::action::proxy:
      co_return co_await proxy_request(d, override_status);
    case routing::action::status: {
      bool keep = co_await serve_status(d.status_page);
      if (keep && !body_done_) keep = co_await discard_body();
      co_return keep;
    }
  }
  co_return false;
}

awaitable<bool> session::serve_status(config::location::status_page page) {
  if (info_.method != "GET" && info_.method != "HEAD") co_return co_await respond_error(405);
  if (page == config::location::status_page::stub)
    co_return co_await respond(200, stub_status_text(w_), "text/plain", {});
  const std::string* accept = find_header(info_.headers, "accept");
  const auto format = pick_status_format(info_.target, accept ? *accept : std::string_view{});
  if (!format)
    co_return co_await respond(400, "unknown format: ask for ?format=json, prometheus or html\n",
                               "text/plain", {});
  std::vector<int> missing;
  const auto parts = co_await collect_status(w_, missing);
  const auto started = w_.peers.empty() ? w_.started : w_.peers.front()->started;
  const auto [body, type] = format_status(parts, missing, started, *format, rt_.get());
  co_return co_await respond(200, body, type, {});
}

// ---- phase 3: proxying -------------------------------------------------------------------------

void session::release_upstream(bool reusable) {
  auto& up = s_->upstream;
  if (!up) return;
  if (reusable && !up->pool_key.empty() && up->in.empty()) {
    const peer_group* g = nullptr;
    const size_t sep = up->pool_key.find('|');
    g = rt_->find(std::string_view(up->pool_key).substr(0, sep));
    auto& idle = w_.idle_upstreams[up->pool_key];
    if (g && g->keepalive > 0 && up->requests < g->keepalive_requests) {
      if (static_cast<int>(idle.size()) >= g->keepalive) {
        idle.erase(idle.begin());  // the least recently used goes
        --w_.connections;
      }
      up->idle_since = clock::now();
      up->in.release();
      idle.push_back(std::move(up));
      return;
    }
  }
  error_code ec;
  // close_notify to a connection that is not kept, as nginx (one leaving the keep-alive cache
  // later just closes: nginx's no_send_shutdown there).
  if (up->tls) up->tls->shutdown_now();
  up->tls.reset();
  up->socket.close(ec);
  up->in.consume(up->in.size());
  up->in.release();  // the block goes to the worker thread's cache, not to this idle session
  spare_upstream_ = std::move(up);  // reused by the next connect_upstream
  --w_.connections;
}

awaitable<upstream_failure> session::connect_upstream(const routing::decision& d, bool& reused) {
  const auto& up = d.upstream;
  reused = false;
  const bool https = up.scheme == "https";
  upstream_scheme_ = https ? "https" : "http";
  std::string& key = upstream_key_;
  key.assign(up.host);
  if (!up.via_upstream_block) {
    key += ':';
    append_number(key, up.port);
  }
  const peer_group* g = rt_->find(key);
  if (!g && key != dynamic_key_) {
    // proxy_pass with variables: numeric addresses and names the system resolver knows. A
    // numeric address is kept for the next request (a name is looked up again each time).
    dynamic_key_.clear();
    dynamic_peers_ = resolve(up.host, up.port ? up.port : 80);
    if (dynamic_peers_.empty()) {
      log(log_level::error, "no resolver defined to resolve " + up.host + error_context());
      co_return upstream_failure::error;
    }
    if (is_numeric_host(up.host)) dynamic_key_.assign(key);
  }
  if (g) {
    std::string_view balance_key = up.balance_key;
    if (g->balance == peer_group::method::ip_hash)
      balance_key = std::string_view(reinterpret_cast<const char*>(client_addr_), client_addr_len_);
    pick_.reset(*g, balance_key);
  }
  size_t next_dynamic = 0;
  bool picked_any = false;
  upstream_failure last = upstream_failure::error;
  for (;;) {
    // The balancer picks the peer (nginx's round robin: weights, max_fails, backup servers).
    const peer* chosen = nullptr;
    const socket_address* addr = nullptr;
    if (g) {
      bool any_live = false;
      chosen = g->pick(pick_, clock::now(), any_live);
      if (!chosen) {
        if (!any_live)
          log(log_level::error, "no live upstreams while connecting to upstream" + error_context());
        break;
      }
      addr = &chosen->addr;
    } else {
      if (next_dynamic == dynamic_peers_.size()) break;
      addr = &dynamic_peers_[next_dynamic++];
    }
    const bool first = !picked_any;
    picked_any = true;
    const socket_address& peer = *addr;
    upstream_addr_ = peer.text;
    // As nginx's keepalive module: the balancer picks the peer, then an idle connection to
    // that peer is reused when one is still open and within its limits.
    if (g && g->keepalive > 0 && first) {
      pool_lookup_.assign(key).append(1, '|').append(peer.text);  // reuses its capacity
      if (https) pool_lookup_ += "|tls";
      auto it = w_.idle_upstreams.find(pool_lookup_);
      while (it != w_.idle_upstreams.end() && !it->second.empty()) {
        auto conn = std::move(it->second.back());
        it->second.pop_back();
        char probe;
        const ssize_t r = ::recv(conn->socket.native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
        // (Over TLS, anything OpenSSL holds unread is as unexpected as bytes on the socket.)
        const bool alive = r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
                           (!conn->tls || !conn->tls->buffered());
        if (alive && clock::now() - conn->idle_since < g->keepalive_timeout) {
          s_->upstream = std::move(conn);
          reused = true;
          g->report(chosen, false, clock::now());
          co_return upstream_failure::none;
        }
        error_code ec;
        conn->socket.close(ec);
        --w_.connections;
      }
    }
    if (w_.connections >= w_.max_connections) {
      log(log_level::alert, std::to_string(w_.max_connections) +
                                " worker_connections are not enough while connecting to upstream" +
                                error_context());
      co_return upstream_failure::error;
    }
    // The last closed connection object is reused (its strings and buffer with it).
    auto conn =
        spare_upstream_ ? std::move(spare_upstream_) : std::make_unique<upstream_conn>(w_.io);
    conn->requests = 0;
    conn->pool_key.clear();
    conn->in.consume(conn->in.size());
    tcp::endpoint ep;
    std::memcpy(ep.data(), &peer.storage, peer.length);
    ep.resize(peer.length);
    error_code ec;
    conn->socket.open(ep.protocol(), ec);
    if (ec) continue;
    // Non-blocking for the connect below and for send_now afterwards.
    conn->socket.non_blocking(true, ec);
    ++w_.connections;
    conn->peer.assign(peer.text);
    if (g) {
      conn->pool_key.assign(key).append(1, '|').append(peer.text);
      if (https) conn->pool_key += "|tls";
    }
    s_->upstream = std::move(conn);
    s_->arm(d.limits.connect);
    // A non-blocking connect, then SO_ERROR once the socket is writable (as nginx does): Asio's
    // async_connect asks poll() once more after epoll has said so.
    error_code cec;
    tcp::socket& us = s_->upstream->socket;
    if (::connect(us.native_handle(), ep.data(), static_cast<socklen_t>(ep.size())) != 0) {
      if (errno == EINPROGRESS || errno == EINTR) {
        std::tie(cec) = co_await us.async_wait(tcp::socket::wait_write, use_nothrow);
        int err = 0;
        socklen_t len = sizeof err;
        if (!cec && ::getsockopt(us.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
          err = errno;
        if (!cec && err) cec = error_code(err, boost::system::system_category());
      } else {
        cec = error_code(errno, boost::system::system_category());
      }
    }
    const bool timed_out = s_->timed_out;
    s_->disarm();
    if (!cec) {
      s_->upstream->socket.set_option(tcp::no_delay(true), ec);
      last = https ? co_await upstream_handshake(d) : upstream_failure::none;
      if (last == upstream_failure::none) {
        if (chosen) g->report(chosen, false, clock::now());
        co_return upstream_failure::none;
      }
    } else if (timed_out) {
      log(log_level::error,
          "upstream timed out (110: Connection timed out) while connecting to upstream" +
              error_context());
      last = upstream_failure::timeout;
    } else {
      log(log_level::error, "connect() failed (" + std::to_string(cec.value()) + ": " +
                                cec.message() + ") while connecting to upstream" + error_context());
      last = upstream_failure::error;
    }
    release_upstream(false);
    if (chosen && g->report(chosen, true, clock::now()))
      log(log_level::warn,
          "upstream server temporarily disabled while connecting to upstream" + error_context());
  }
  co_return last;
}

// TLS with an https upstream, on the connection just made (ngx_http_upstream_ssl_init_connection):
// SNI when proxy_ssl_server_name is on (never an IP address), the session kept from the last
// connection to this peer, and with proxy_ssl_verify the chain and the name checked after the
// handshake, so that the error log says which failed.
awaitable<upstream_failure> session::upstream_handshake(const routing::decision& d) {
  auto& up = *s_->upstream;
  const auto& set = settings();
  const tls::context* ctx = rt_->upstream_tls_for(&set);
  SSL* ssl = ctx ? SSL_new(ctx->get()) : nullptr;
  if (!ssl) {
    log(log_level::alert, "no TLS context for an https upstream" + tls::take_errors() +
                              " while SSL handshaking to upstream" + error_context());
    co_return upstream_failure::error;
  }
  SSL_set_connect_state(ssl);
  const std::string& name = d.upstream.ssl_name;
  if (set.proxy_ssl_server_name.value_or(false) && !name.empty() && name.front() != '[' &&
      !is_numeric_host(name))
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(name.c_str()));
  up.tls.reset(new tls_connection(up.socket, ssl));
  if (set.proxy_ssl_session_reuse.value_or(true)) {
    up.tls_session.store = &w_.tls_sessions;
    up.tls_session.key.assign(std::to_string(reinterpret_cast<uintptr_t>(ctx->get())))
        .append(1, '|')
        .append(up.peer);
    auto it = w_.tls_sessions.find(up.tls_session.key);
    if (it != w_.tls_sessions.end())
      SSL_set_session(ssl, static_cast<SSL_SESSION*>(it->second.get()));
    SSL_set_app_data(ssl, &up.tls_session);
  }
  s_->arm(d.limits.connect);
  const error_code ec = co_await up.tls->handshake();
  const bool timed_out = s_->timed_out;
  s_->disarm();
  if (ec) {
    if (timed_out)
      log(log_level::error,
          "upstream timed out (110: Connection timed out) while SSL handshaking to upstream" +
              error_context());
    else
      log(log_level::error, "SSL_do_handshake() failed (SSL: " + ec.message() +
                                ") while SSL handshaking to upstream" + error_context());
    co_return timed_out ? upstream_failure::timeout : upstream_failure::error;
  }
  if (set.proxy_ssl_verify.value_or(false)) {
    const long rc = SSL_get_verify_result(ssl);
    if (rc != X509_V_OK) {
      log(log_level::error, "upstream SSL certificate verify error: (" + std::to_string(rc) + ":" +
                                X509_verify_cert_error_string(rc) +
                                ") while SSL handshaking to upstream" + error_context());
      co_return upstream_failure::error;
    }
    X509* cert = SSL_get1_peer_certificate(ssl);
    const bool match = cert && X509_check_host(cert, name.data(), name.size(), 0, nullptr) == 1;
    X509_free(cert);
    if (!match) {
      log(log_level::error, "upstream SSL certificate does not match \"" + name +
                                "\" while SSL handshaking to upstream" + error_context());
      co_return upstream_failure::error;
    }
  }
  co_return upstream_failure::none;
}

awaitable<upstream_failure> session::read_response_head(const routing::decision& d,
                                                        http::response_head& head) {
  auto& up = *s_->upstream;
  const size_t limit = std::max<size_t>(settings().proxy_buffer_size.value_or(4096), 1024);
  for (;;) {
    if (!up.in.empty()) {
      const auto r = http::parse_response(up.in.data(), head);
      if (r == http::parse_result::error) {
        log(log_level::error,
            "upstream sent invalid header while reading response header from upstream" +
                error_context());
        co_return upstream_failure::invalid;
      }
      if (r == http::parse_result::done) {
        // Interim responses (100, 102, 103) are dropped; 101 is final.
        if (head.status >= 100 && head.status < 200 && head.status != 101) {
          up.in.consume(head.size);
          continue;
        }
        co_return upstream_failure::none;
      }
      if (up.in.size() >= limit) {
        log(log_level::error,
            "upstream sent too big header while reading response header from upstream" +
                error_context());
        co_return upstream_failure::too_big;
      }
    }
    auto [p, n] = up.in.prepare(limit, limit + kBodyRead);
    s_->arm(d.limits.read);
    auto [ec, got] = up.tls ? co_await up.tls->read_some(asio::buffer(p, n))
                            : co_await up.socket.async_read_some(asio::buffer(p, n), use_nothrow);
    const bool timed_out = s_->timed_out;
    s_->disarm();
    if (ec) {
      if (timed_out) {
        log(log_level::error,
            "upstream timed out (110: Connection timed out) while reading response header "
            "from upstream" +
                error_context());
        co_return upstream_failure::timeout;
      }
      log(log_level::error,
          std::string(ec == asio::error::eof ? "upstream prematurely closed connection"
                                             : "recv() failed (" + std::to_string(ec.value()) +
                                                   ": " + ec.message() + ")") +
              " while reading response header from upstream" + error_context());
      co_return upstream_failure::premature;
    }
    up.in.commit(got);
  }
}

// Reads the whole request body before the upstream is contacted: memory up to
// client_body_buffer_size, then an unlinked temporary file; kept for the request's life, so an
// error_page that proxies again sends the same body. 0: read; > 0: answer that status; -1: close.
awaitable<int> session::spool_request_body() {
  const size_t spool_memory = settings().client_body_buffer_size.value_or(16 * 1024);
  std::string& spooled = spooled_;
  int& spool_fd = spool_fd_;
  uint64_t& spool_size = spool_size_;
  std::string_view piece;
  for (;;) {
    const auto r = co_await next_body_piece(piece);
    if (r == body_result::end) break;
    if (r != body_result::data) {
      const int st = body_failure_status(r);
      co_return st ? st : -1;
    }
    spool_size += piece.size();
    if (spool_fd < 0 && spooled.size() + piece.size() > spool_memory) {
      spool_fd = ::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
      if (spool_fd < 0) {
        log(log_level::crit, "open() of a temporary file in /tmp failed (" + std::to_string(errno) +
                                 ": " + std::strerror(errno) +
                                 ") while reading client request body" + error_context());
        co_return 500;
      }
      log(log_level::warn,
          "a client request body is buffered to a temporary file" + error_context());
      if (::write(spool_fd, spooled.data(), spooled.size()) != static_cast<ssize_t>(spooled.size()))
        co_return 500;
      spooled.clear();
    }
    if (spool_fd >= 0) {
      if (::write(spool_fd, piece.data(), piece.size()) != static_cast<ssize_t>(piece.size()))
        co_return 500;
    } else {
      spooled.append(piece);
    }
  }
  spool_ready_ = true;
  co_return 0;
}

// The upstream request head into out_, exactly as route() computed it.
void session::write_request_head(const routing::upstream_request& up, bool spool) {
  out_.clear();
  out_ += up.method;
  out_ += ' ';
  out_ += up.uri;
  out_ += ' ';
  out_ += up.version;
  out_ += kCrlf;
  for (size_t i = 0; i <= up.headers.size(); ++i) {
    if (spool && static_cast<int>(i) == up.pending_content_length_at) {
      out_ += "Content-Length: ";
      append_number(out_, static_cast<uint64_t>(spool_size_));
      out_ += kCrlf;
    }
    if (i == up.headers.size()) break;
    out_ += up.headers[i].first;
    out_ += ": ";
    out_ += up.headers[i].second;
    out_ += kCrlf;
  }
  out_ += kCrlf;
}

// The request body after the head: the spooled file's part, or the body streamed as it arrives
// (Content-Length as is; chunked re-framed per piece).
awaitable<session::body_send> session::send_request_body(const routing::decision& d, bool stream,
                                                         bool chunked_upstream) {
  body_send out;
  error_code& ec = out.ec;
  if (spool_fd_ >= 0) {
    auto buf = w_.buffers.take();
    off_t off = 0;
    while (!ec && static_cast<uint64_t>(off) < spool_size_) {
      const ssize_t n = ::pread(spool_fd_, buf.get(), buffer_pool::kSize, off);
      if (n <= 0) {
        ec = asio::error::fault;
        break;
      }
      off += n;
      const asio::const_buffer b(buf.get(), static_cast<size_t>(n));
      ec = co_await write_upstream(std::span<const asio::const_buffer>(&b, 1), d.limits.send);
    }
    w_.buffers.give(std::move(buf));
  }
  if (!ec && stream) {
    std::string_view piece;
    for (;;) {
      const auto r = co_await next_body_piece(piece);
      if (r == body_result::end) {
        if (chunked_upstream) {
          const asio::const_buffer b = asio::buffer("0\r\n\r\n", 5);
          ec = co_await write_upstream(std::span<const asio::const_buffer>(&b, 1), d.limits.send);
        }
        break;
      }
      if (r != body_result::data) {
        out.client_failed = true;
        out.status = body_failure_status(r);
        co_return out;
      }
      char hdr[24];
      const size_t hl = chunked_upstream ? http::chunk_header(hdr, piece.size()) : 0;
      std::array<asio::const_buffer, 3> bufs{asio::buffer(hdr, hl), asio::buffer(piece),
                                             asio::buffer(kCrlf.data(), chunked_upstream ? 2 : 0)};
      ec = co_await write_upstream(bufs, d.limits.send);
      if (ec) break;
    }
  }
  co_return out;
}

// Logs a failed write of the request to the upstream, as nginx words it.
upstream_failure session::send_failure(error_code ec) {
  if (ec == asio::error::timed_out) {
    log(log_level::error,
        "upstream timed out (110: Connection timed out) while sending request to upstream" +
            error_context());
    return upstream_failure::timeout;
  }
  log(log_level::error, "writev() failed (" + std::to_string(ec.value()) + ": " + ec.message() +
                            ") while sending request to upstream" + error_context());
  return upstream_failure::error;
}

// A 101 to a request that asked for an allowed upgrade: the head goes to the client, then both
// connections become a tunnel. Always false: the connection serves no more requests.
awaitable<bool> session::switch_protocols(const routing::decision& d, http::response_head& head) {
  const auto& up = d.upstream;
  auto& upc = *s_->upstream;
  const std::string* asked = find_header(up.headers, "upgrade");
  if (!asked || !upgrade_allowed(*asked, settings()) ||
      (!head.upgrade.empty() && !upgrade_allowed(head.upgrade, settings()))) {
    log(log_level::error,
        "upstream sent \"101 Switching Protocols\" to a request without an allowed Upgrade "
        "while reading response header from upstream" +
            error_context());
    release_upstream(false);
    co_return co_await respond_error(502);
  }
  status_ = 101;
  out_.clear();
  out_ += "HTTP/1.1 101 Switching Protocols\r\nServer: ";
  out_ += http::server_signature(settings().server_tokens.value_or(true));
  out_ += "\r\nDate: ";
  out_ += http_date();
  out_ += "\r\nConnection: upgrade\r\n";
  for (const auto& f : head.headers) {
    if (hide_response_header(f.name, settings(), true)) continue;
    out_ += f.name;
    out_ += ": ";
    out_ += f.value;
    out_ += kCrlf;
  }
  append_add_headers(out_, 101);
  out_ += kCrlf;
  upc.in.consume(head.size);
  if (co_await write_client(out_)) {
    release_upstream(false);
    co_return false;
  }
  log_access();
  status_ = 0;  // logged
  std::string early(in_.data());
  in_.consume(in_.size());
  tunnel_limits limits{d.limits.read, d.limits.send,
                       settings().send_timeout.value_or(std::chrono::seconds(60))};
  limits.websocket = upgrade_token(*asked) == "websocket";
  limits.keepalive = settings().websocket_keepalive.value_or(config::duration::zero());
  std::string client = info_.remote_addr;
  client += ':';
  append_number(client, info_.remote_port);
  start_tunnel(w_, std::move(s_->client), std::move(s_->upstream), std::move(early), limits,
               std::move(client), std::move(s_->tls));
  co_return false;
}

// The client's response head into out_, in nginx's header order.
void session::write_response_head(const http::response_head& head, int status, int override_status,
                                  bool chunk_to_client) {
  const bool tokens = settings().server_tokens.value_or(true);
  out_.clear();
  if (!http09_) {
    out_ += "HTTP/1.1 ";
    append_number(out_, static_cast<uint64_t>(status));
    out_ += ' ';
    if (override_status <= 0 && !head.reason.empty())
      out_ += head.reason;
    else
      out_ += http::reason_phrase(status);
    out_ += kCrlf;
    const bool pass_server =
        std::any_of(head.headers.begin(), head.headers.end(), [&](const auto& f) {
          return iequals(f.name, "server") && !hide_response_header(f.name, settings(), false);
        });
    const bool pass_date =
        std::any_of(head.headers.begin(), head.headers.end(), [&](const auto& f) {
          return iequals(f.name, "date") && !hide_response_header(f.name, settings(), false);
        });
    if (!pass_server) {
      out_ += "Server: ";
      out_ += http::server_signature(tokens);
      out_ += kCrlf;
    }
    if (!pass_date) {
      out_ += "Date: ";
      out_ += http_date();
      out_ += kCrlf;
    }
    for (const auto& f : head.headers)
      if (iequals(f.name, "content-type") && !hide_response_header(f.name, settings(), false)) {
        out_ += "Content-Type: ";
        out_ += f.value;
        out_ += kCrlf;
        break;
      }
    if (head.content_length && !head.chunked) {
      out_ += "Content-Length: ";
      append_number(out_, static_cast<uint64_t>(*head.content_length));
      out_ += kCrlf;
    }
    for (const auto& f : head.headers)
      if (iequals(f.name, "location") && !hide_response_header(f.name, settings(), false)) {
        auto rewritten = rewrite_location(f.value, *loc_);
        const std::string value = rewritten ? *rewritten : std::string(f.value);
        out_ += "Location: ";
        out_ += absolute_location(value, request_host(), info_.local_port, false);
        out_ += kCrlf;
        break;
      }
    if (chunk_to_client) out_ += "Transfer-Encoding: chunked\r\n";
    out_ += keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
    for (const auto& f : head.headers) {
      if (iequals(f.name, "content-type") || iequals(f.name, "content-length") ||
          iequals(f.name, "location"))
        continue;
      if (hide_response_header(f.name, settings(), false)) continue;
      out_ += f.name;
      out_ += ": ";
      out_ += f.value;
      out_ += kCrlf;
    }
    append_add_headers(out_, status);
    out_ += kCrlf;
  }
}

awaitable<bool> session::proxy_request(routing::decision& d, int override_status) {
  const auto& up = d.upstream;
  if (up.host.rfind("unix:", 0) == 0) {
    log(log_level::error, "proxy_pass to " + up.scheme + "://" + up.host +
                              " is not supported yet (tcp upstreams only)" + error_context());
    co_return co_await respond_error(502);
  }
  const bool client_body = !body_done_ || spool_ready_;
  const bool pass_body = up.pass_body && client_body;
  // proxy_request_buffering on (and a chunked body that goes upstream with a Content-Length):
  // the whole body is read before the upstream is contacted, as nginx does, so a slow or
  // stalled client never holds an upstream connection.
  const bool spool = pass_body && (spool_ready_ || up.pending_content_length_at >= 0 ||
                                   settings().proxy_request_buffering.value_or(true));
  const bool chunked_upstream = pass_body && !spool && body_chunked_;  // route() set TE: chunked

  if (spool && !spool_ready_) {
    const int st = co_await spool_request_body();
    if (st > 0) co_return co_await respond_error(st);
    if (st < 0) co_return false;
  }

  write_request_head(up, spool);

  // Connect, send, read the response head; a reused keep-alive connection that fails before
  // any response byte is replaced by a fresh one once (only when no body was streamed).
  http::response_head head;
  // The header list's storage is lent by the session for this response and given back at the
  // end (a nested proxy_request, for an error_page, finds none lent and allocates its own).
  struct fields_lease {
    std::vector<http::header_field>& spare;
    std::vector<http::header_field>& fields;
    ~fields_lease() {
      if (fields.capacity() > spare.capacity()) spare.swap(fields);
    }
  } lease{spare_fields_, head.headers};
  head.headers.swap(spare_fields_);
  upstream_failure failure = upstream_failure::none;
  bool streamed = false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = false;
    failure = co_await connect_upstream(d, reused);
    if (failure != upstream_failure::none) break;
    s_->upstream->requests++;
    error_code ec;
    {
      std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(spooled_)};
      ec = co_await write_upstream(bufs, d.limits.send);
    }
    if (!ec && (spool_fd_ >= 0 || (pass_body && !spool))) {
      streamed = pass_body && !spool;
      const body_send bs = co_await send_request_body(d, streamed, chunked_upstream);
      if (bs.client_failed) {
        release_upstream(false);
        if (bs.status) co_return co_await respond_error(bs.status);
        co_return false;
      }
      ec = bs.ec;
    }
    if (ec) {
      failure = send_failure(ec);
      release_upstream(false);
      if (reused && !streamed) continue;
      break;
    }
    failure = co_await read_response_head(d, head);
    if (failure == upstream_failure::none) break;
    release_upstream(false);
    if (!(reused && !streamed && failure == upstream_failure::premature)) break;
  }
  if (failure != upstream_failure::none) {
    if (!body_done_ && !streamed) keep_alive_ = false;  // the body is left unread
    co_return co_await respond_error(failure == upstream_failure::timeout ? 504 : 502);
  }
  auto& upc = *s_->upstream;

  // 101: only to a request that asked for an allowed upgrade; then both sides become a tunnel.
  if (head.status == 101) co_return co_await switch_protocols(d, head);

  // The client's response head, in nginx's header order.
  const int status = override_status > 0 ? override_status : head.status;
  status_ = status;
  const bool no_body = head_request_ || head.status == 204 || head.status == 304 ||
                       (head.status >= 100 && head.status < 200);
  const bool upstream_len = head.content_length.has_value() && !head.chunked;
  const bool close_delimited = !no_body && !upstream_len && !head.chunked;
  bool chunk_to_client = false;
  if (!no_body && !upstream_len) {
    if (info_.http_minor >= 1 && !http09_)
      chunk_to_client = true;
    else
      keep_alive_ = false;  // HTTP/1.0 client: the end of the body is the close
  }
  if (w_.draining || settings().keepalive_timeout.value_or(std::chrono::seconds(75)).count() == 0)
    keep_alive_ = false;
  write_response_head(head, status, override_status, chunk_to_client);
  upc.in.consume(head.size);
  bool upstream_reusable = !head.connection_close && head.minor >= 1;
  if (const std::string* c = find_header(up.headers, "connection");
      c && http::has_token(*c, "close"))
    upstream_reusable = false;

  // proxy_buffering on: the response is read ahead of the client and the upstream is freed as
  // soon as it is read; X-Accel-Buffering from the upstream overrides the setting, as nginx.
  bool buffering = settings().proxy_buffering.value_or(true);
  for (const auto& f : head.headers)
    if (iequals(f.name, "x-accel-buffering")) {
      if (iequals(f.value, "no"))
        buffering = false;
      else if (iequals(f.value, "yes"))
        buffering = true;
    }
  if (!no_body && buffering) {
    if (!co_await relay_buffered(d, head, chunk_to_client, close_delimited, upstream_reusable))
      co_return false;  // the client must not take a cut body for a whole one
    if (keep_alive_ && !body_done_) co_return co_await discard_body();
    co_return keep_alive_;
  }

  co_return co_await relay_unbuffered(d, head, no_body, chunk_to_client, close_delimited,
                                      upstream_reusable);
}

// proxy_buffering off: the head in out_, then each piece of the body is written to the client
// before the next is read. True: the connection serves the next request.
awaitable<bool> session::relay_unbuffered(const routing::decision& d,
                                          const http::response_head& head, bool no_body,
                                          bool chunk_to_client, bool close_delimited,
                                          bool upstream_reusable) {
  auto& upc = *s_->upstream;
  // The head goes out with the first piece of the body when that is already here (one write
  // for a small response).
  bool head_pending = true;
  if (no_body || upc.in.empty()) {
    head_pending = false;
    if (co_await write_client(out_)) {
      release_upstream(false);
      co_return false;
    }
  }

  // proxy_buffering off: each piece is written to the client before the next is read.
  bool complete = true;
  if (!no_body) {
    http::body_framing framing(head.chunked, head.content_length);
    bool done = framing.done();
    while (!done) {
      if (upc.in.empty()) {
        auto [p, n] = upc.in.prepare(kBodyLimit, kBodyLimit);
        s_->arm(d.limits.read);
        auto [ec, got] = upc.tls
                             ? co_await upc.tls->read_some(asio::buffer(p, n))
                             : co_await upc.socket.async_read_some(asio::buffer(p, n), use_nothrow);
        const bool timed_out = s_->timed_out;
        s_->disarm();
        if (ec) {
          if (close_delimited && ec == asio::error::eof) {
            upstream_reusable = false;
            break;
          }
          log(log_level::error,
              std::string(timed_out ? "upstream timed out (110: Connection timed out)"
                                    : "upstream prematurely closed connection") +
                  " while reading upstream" + error_context());
          complete = false;
          break;
        }
        upc.in.commit(got);
      }
      const auto step = framing.next(upc.in.data());
      if (step.error) {
        log(log_level::error,
            "upstream sent invalid chunked response while reading upstream" + error_context());
        complete = false;
        break;
      }
      const std::string_view piece = step.data;
      const size_t consumed = step.consumed;
      done = step.done;
      if (!piece.empty()) {
        char hdr[24];
        const size_t hl = chunk_to_client ? http::chunk_header(hdr, piece.size()) : 0;
        std::array<asio::const_buffer, 4> bufs{
            asio::buffer(out_.data(), head_pending ? out_.size() : 0), asio::buffer(hdr, hl),
            asio::buffer(piece), asio::buffer(kCrlf.data(), chunk_to_client ? 2 : 0)};
        head_pending = false;
        const auto ec = co_await write_client(bufs);
        if (ec) {
          release_upstream(false);
          co_return false;
        }
        body_bytes_sent_ += piece.size();
      }
      upc.in.consume(consumed);
    }
    if (head_pending && co_await write_client(out_)) {
      release_upstream(false);
      co_return false;
    }
    if (complete && chunk_to_client) {
      if (co_await write_client(std::string_view("0\r\n\r\n"))) {
        release_upstream(false);
        co_return false;
      }
    }
  }
  if (!upc.in.empty()) upstream_reusable = false;  // extra bytes: the connection is out of step
  release_upstream(complete && upstream_reusable);
  if (!complete) co_return false;  // the client must not take a cut body for a whole one
  if (keep_alive_ && !body_done_) co_return co_await discard_body();
  co_return keep_alive_;
}

// proxy_buffering on: reads the upstream response ahead of the client into `ahead_` (memory up
// to proxy_buffer_size + proxy_buffers, then a temporary file up to proxy_max_temp_file_size),
// writes to the client what its socket takes, and gives the upstream connection back (to its
// keep-alive pool) as soon as the whole response is read. The head in out_ goes first.
// Returns true when the client got the complete response.
awaitable<bool> session::relay_buffered(const routing::decision& d, const http::response_head& head,
                                        bool chunk_to_client, bool close_delimited, bool reusable) {
  upstream_conn* upc = s_->upstream.get();
  const auto& set = settings();
  ahead_.reset(set.proxy_buffer_size.value_or(4096) + set.proxy_buffers_size.value_or(8 * 4096),
               set.proxy_max_temp_file_size.value_or(size_t{1} << 30));
  const duration send_timeout = set.send_timeout.value_or(std::chrono::seconds(60));
  http::body_framing framing(head.chunked, head.content_length);
  bool upstream_done = framing.done();
  bool complete = true;
  bool warned = false;
  auto last_client = clock::now(), last_upstream = last_client;
  const int client_fd = s_->sock().native_handle();

  auto fail_file = [&](const char* what) {
    log(log_level::crit, std::string(what) + " a temporary file failed (" + std::to_string(errno) +
                             ": " + std::strerror(errno) + ") while reading upstream" +
                             error_context());
    release_upstream(false);
  };
  if (!ahead_.push(out_)) {
    fail_file("write() to");
    co_return false;
  }
  // Moves what the upstream sent into the queue, framed for the client.
  auto take = [&]() -> bool {
    while (!upstream_done && !upc->in.empty()) {
      const auto step = framing.next(upc->in.data());
      if (step.error) {
        log(log_level::error,
            "upstream sent invalid chunked response while reading upstream" + error_context());
        complete = false;
        upstream_done = true;
        break;
      }
      const std::string_view piece = step.data;
      const size_t consumed = step.consumed;
      const bool end = step.done;
      if (!piece.empty()) {
        char hdr[24];
        const size_t hl = chunk_to_client ? http::chunk_header(hdr, piece.size()) : 0;
        if (!ahead_.push(std::string_view(hdr, hl)) || !ahead_.push(piece) ||
            !ahead_.push(chunk_to_client ? kCrlf : std::string_view{}))
          return false;
        body_bytes_sent_ += piece.size();
      }
      upc->in.consume(consumed);
      if (end) upstream_done = true;
      if (consumed == 0) break;
    }
    if (!warned && ahead_.spilled()) {
      warned = true;
      log(log_level::warn,
          "an upstream response is buffered to a temporary file while reading upstream" +
              error_context());
    }
    return true;
  };

  for (;;) {
    if (upc) {
      if (!take()) {
        fail_file("write() to");
        co_return false;
      }
      if (upstream_done) {
        if (complete && chunk_to_client && !ahead_.push("0\r\n\r\n")) {
          fail_file("write() to");
          co_return false;
        }
        // Read to its end: the upstream goes back to its pool while the client still reads.
        release_upstream(complete && reusable);
        upc = nullptr;
      }
    }
    // Whatever the client's socket takes now.
    while (!ahead_.empty()) {
      const std::string_view f = ahead_.front();
      if (f.empty()) {
        fail_file("read() from");
        co_return false;
      }
      if (s_->tls) {
        // OpenSSL writes whole records: the piece goes out before more is read.
        if (co_await write_client(f)) {
          release_upstream(false);
          co_return false;
        }
        ahead_.pop(f.size());
        last_client = clock::now();
        continue;
      }
      const ssize_t n = ::send(client_fd, f.data(), f.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        ahead_.pop(static_cast<size_t>(n));
        last_client = clock::now();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      log(log_level::info, "send() failed (" + std::to_string(errno) + ": " + std::strerror(errno) +
                               ") while sending to client" + error_context());
      release_upstream(false);
      co_return false;
    }
    if (!upc && ahead_.empty()) break;
    // Read ahead while the queue has room.
    bool wait_upstream = false;
    if (upc && ahead_.room() > 0) {
      auto [p, n] = upc->in.prepare(std::min(kBodyLimit, ahead_.room()), kBodyLimit);
      ssize_t got = -1;
      if (n && upc->tls) {
        // OpenSSL's answers as recv() would give them.
        size_t tgot = 0;
        error_code tec;
        switch (upc->tls->read_now(p, n, tgot, tec)) {
          case tls_connection::step::done:
            got = static_cast<ssize_t>(tgot);
            break;
          case tls_connection::step::eof:
            got = 0;
            break;
          case tls_connection::step::want_read:
          case tls_connection::step::want_write:
            errno = EAGAIN;
            break;
          case tls_connection::step::failed:
            errno = EPROTO;
            break;
        }
      } else if (n) {
        got = ::recv(upc->socket.native_handle(), p, n, MSG_DONTWAIT);
      }
      if (got > 0) {
        upc->in.commit(static_cast<size_t>(got));
        last_upstream = clock::now();
        continue;
      }
      if (got == 0) {
        if (!close_delimited) {
          log(log_level::error,
              "upstream prematurely closed connection while reading upstream" + error_context());
          complete = false;
        }
        reusable = false;
        upstream_done = true;
        continue;
      }
      if (n && errno == EINTR) continue;
      if (n && errno != EAGAIN && errno != EWOULDBLOCK) {
        log(log_level::error, "recv() failed (" + std::to_string(errno) + ": " +
                                  std::strerror(errno) + ") while reading upstream" +
                                  error_context());
        complete = false;
        upstream_done = true;
        continue;
      }
      wait_upstream = n != 0;
    }
    const bool wait_client = !ahead_.empty();
    // Each side has its own timeout from its last progress.
    auto deadline = clock::time_point::max();
    if (wait_client) deadline = std::min(deadline, last_client + send_timeout);
    if (wait_upstream) deadline = std::min(deadline, last_upstream + d.limits.read);
    const auto now = clock::now();
    bool timed_out = now >= deadline;
    if (!timed_out && (wait_client || wait_upstream)) {
      s_->arm(std::chrono::ceil<duration>(deadline - now));
      if (wait_client && wait_upstream) {
        using namespace asio::experimental::awaitable_operators;
        co_await (s_->sock().async_wait(tcp::socket::wait_write, use_nothrow) ||
                  upc->socket.async_wait(tcp::socket::wait_read, use_nothrow));
      } else if (wait_client) {
        co_await s_->sock().async_wait(tcp::socket::wait_write, use_nothrow);
      } else {
        co_await upc->socket.async_wait(tcp::socket::wait_read, use_nothrow);
      }
      timed_out = s_->timed_out;
      s_->disarm();
    }
    if (timed_out) {
      const auto t = clock::now();
      if (wait_upstream && t >= last_upstream + d.limits.read) {
        log(log_level::error,
            "upstream timed out (110: Connection timed out) while reading upstream" +
                error_context());
        complete = false;
        reusable = false;
        upstream_done = true;
      } else if (wait_client && t >= last_client + send_timeout) {
        log(log_level::info,
            "client timed out (110: Connection timed out) while sending to client" +
                error_context());
        release_upstream(false);
        co_return false;
      }
    }
  }
  co_return complete;
}

// ---- TLS ------------------------------------------------------------------------------------

// As nginx (ngx_http_ssl_handshake): the first byte tells a TLS ClientHello (0x16, or 0x80 for
// an SSLv2-style hello) from a plain HTTP request, which is read and answered 400 instead.
awaitable<bool> session::tls_handshake() {
  s_->arm(header_timeout_);
  for (;;) {
    unsigned char first = 0;
    const ssize_t n = ::recv(s_->client.native_handle(), &first, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 1) {
      if (first != 0x16 && first != 0x80) {
        plain_on_tls_ = true;
        s_->disarm();
        co_return true;
      }
      break;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      s_->disarm();
      co_return false;
    }
    auto [ec] = co_await s_->client.async_wait(tcp::socket::wait_read, use_nothrow);
    if (ec) {
      if (s_->timed_out)
        log(log_level::info,
            "client timed out (110: Connection timed out) while SSL handshaking" + error_context());
      s_->disarm();
      co_return false;
    }
  }
  const tls::context* ctx = default_server_ ? rt_->tls_for(default_server_) : nullptr;
  if (!ctx) {
    log(log_level::error,
        "no \"ssl_certificate\" is defined in server listening on SSL port while SSL "
        "handshaking" +
            error_context() + "; add ssl_certificate and ssl_certificate_key to that server");
    s_->disarm();
    co_return false;
  }
  SSL* ssl = SSL_new(ctx->get());
  if (!ssl) {
    log(log_level::alert, "SSL_new() failed" + tls::take_errors() + error_context());
    s_->disarm();
    co_return false;
  }
  SSL_set_accept_state(ssl);
  SSL_set_app_data(ssl, static_cast<tls_server_picker*>(this));
  s_->tls.reset(new tls_connection(s_->client, ssl));
  ERR_clear_error();
  const error_code ec = co_await s_->tls->handshake();
  SSL_set_app_data(ssl, nullptr);
  const bool timed_out = s_->timed_out;
  s_->disarm();
  if (ec) {
    if (timed_out)
      log(log_level::info,
          "client timed out (110: Connection timed out) while SSL handshaking" + error_context());
    else if (ec.category() == asio::error::get_ssl_category())
      log(log_level::info, "SSL_do_handshake() failed (SSL: " + ec.message() +
                               ") while SSL handshaking" + error_context());
    else
      log(log_level::info, "client closed connection while SSL handshaking" + error_context());
    co_return false;
  }
  info_.tls = true;
  co_return true;
}

SSL_CTX* session::pick_tls_context(std::string_view server_name) {
  std::string host(server_name);
  for (char& c : host) c = http::lower(c);
  routing::find_listen_group_into(*rt_->config, info_.local_addr, info_.local_port, sc_->group,
                                  false);
  const auto chosen = routing::select_server(sc_->group, host, nullptr, false);
  const tls::context* ctx = rt_->tls_for(chosen.server);
  return ctx ? ctx->get() : nullptr;
}

// ---- the connection ------------------------------------------------------------------------

awaitable<void> session::run_session() {
  if (s_->tls_port && !co_await tls_handshake()) co_return;
  for (;;) {
    if (in_.empty() && !w_.draining && !s_->tls) {
      // Under load the next request is usually here once the other ready connections have had
      // their turn: one non-blocking read then replaces the readiness wait (whose epoll re-arm
      // is a syscall per request) and the read after it. A new connection's first read is tried
      // at once: under load its request has mostly arrived by the time it is accepted (when it
      // has not, the read finds nothing and the wait below follows, one syscall more).
      if (requests_ > 0) {
        co_await asio::post(s_->client.get_executor(), asio::use_awaitable);
        if (w_.draining) break;  // QUIT closes connections waiting for a request
      }
      auto [p, n] = in_.prepare(limits_.first_buffer, limits_.max_bytes());
      const ssize_t got = ::recv(s_->client.native_handle(), p, n, MSG_DONTWAIT);
      if (got > 0) in_.commit(static_cast<size_t>(got));
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        break;  // closed or failed: as the wait below would find
    }
    if (in_.empty()) {
      // Between requests the connection holds no buffer; it waits for readability.
      in_.release();
      ahead_.release();
      const bool first = requests_ == 0;
      duration wait = header_timeout_;
      if (!first) wait = settings().keepalive_timeout.value_or(std::chrono::seconds(75));
      s_->arm(wait);
      if (w_.draining) break;  // QUIT closes connections waiting for a request
      // The set's node is kept between waits: no allocation per request.
      tcp::socket& sock = s_->sock();
      if (idle_node_)
        w_.idle_clients.insert(std::move(idle_node_));
      else
        w_.idle_clients.insert(&sock);
      error_code ec;
      // OpenSSL may hold the next request already (read with the last one).
      s_->idle_wait = true;
      if (!s_->tls || !s_->tls->buffered())
        std::tie(ec) = co_await sock.async_wait(tcp::socket::wait_read, use_nothrow);
      idle_node_ = w_.idle_clients.extract(&sock);
      s_->disarm();
      if (ec) break;  // idle_wait stays set: a keep-alive timeout closes as nginx does
      s_->idle_wait = false;
    }
    status_ = 0;
    body_bytes_sent_ = 0;
    upstream_addr_.clear();
    drop_spool();
    if (default_server_) loc_ = &default_server_->root_location;
    auto& counters = w_.counters;
    worker_counters::add(counters.reading, int64_t{1});
    const bool head_read = co_await read_head();
    worker_counters::add(counters.reading, int64_t{-1});
    if (head_read || status_) worker_counters::add(counters.requests, uint64_t{1});
    if (!head_read) {
      if (status_) log_access();
      break;
    }
    bool keep = false;
    worker_counters::add(counters.writing, int64_t{1});
    if (!rt_->config->http || !default_server_) {
      keep = co_await respond(404, {}, {}, {});
    } else if (plain_on_tls_) {
      // As nginx: the request head is read and its server found (whose error_page 497 may
      // redirect), then it is answered 400 and the connection closed.
      routing::route_into(*rt_->config, info_, decision_);
      if (decision_.server) loc_ = &decision_.server->root_location;
      log(log_level::info,
          "client sent plain HTTP request to HTTPS port while reading client request headers" +
              error_context());
      keep_alive_ = false;
      co_await respond_error(497);
    } else {
      routing::route_into(*rt_->config, info_, decision_);
      keep = co_await handle(decision_, 0, false);
    }
    worker_counters::add(counters.writing, int64_t{-1});
    if (status_) log_access();
    ++requests_;
    if (!keep || w_.draining) break;
  }
}

}  // namespace

bool send_now(tcp::socket& s, std::span<const asio::const_buffer> bufs,
              std::vector<asio::const_buffer>& rest, boost::system::error_code& ec) {
  size_t n = s.write_some(bufs, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    ec.clear();
    n = 0;
  }
  if (ec) return false;
  if (n == asio::buffer_size(bufs)) return true;
  for (const auto& b : bufs) {
    if (n >= b.size()) {
      n -= b.size();
      continue;
    }
    rest.push_back(b + n);
    n = 0;
  }
  return false;
}

void start_session(worker_context& w, tcp::socket socket, const tcp::endpoint* peer,
                   const tcp::endpoint* local, bool tls) {
  ++w.connections;
  worker_counters::add(w.counters.active, int64_t{1});
  error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  socket.non_blocking(true, ec);  // for send_now
  auto state = std::make_shared<connection_state>(w, std::move(socket));
  if (peer) state->peer = *peer;
  if (local) state->local = *local;
  state->tls_port = tls;
  watchdog(state);
  asio::co_spawn(
      w.io,
      [state]() -> awaitable<void> {
        {
          // On the heap, not in this frame: Asio recycles no frame over 1,020 bytes, and its
          // search for a cached block that fits scans the whole cache first.
          auto s = std::make_unique<session>(state);
          co_await s->run_session();
        }
        state->finished = true;
        state->timer.cancel();
        error_code ignored;
        // close_notify, except after a timeout inside a request (nginx's quiet shutdown).
        if (state->tls && (!state->timed_out || state->idle_wait)) state->tls->shutdown_now();
        if (state->upstream && state->upstream->tls) state->upstream->tls->shutdown_now();
        if (state->sock().is_open()) {
          state->sock().close(ignored);
          --state->w.connections;
          // (A client handed to a tunnel is counted until the tunnel closes.)
          worker_counters::add(state->w.counters.active, int64_t{-1});
        }
        if (state->upstream) {
          state->upstream->socket.close(ignored);
          state->upstream.reset();
          --state->w.connections;
        }
      },
      asio::detached);
}

void drain(worker_context& w) {
  w.draining = true;
  for (tcp::socket* s : w.idle_clients) {
    error_code ec;
    s->cancel(ec);
  }
  // Open tunnels say goodbye to both peers (Close 1001) and close once they answered.
  quit_tunnels(w, w.rt ? w.rt->config->main.worker_shutdown_timeout : config::duration::zero());
  // Idle upstream keep-alive connections are closed too.
  for (auto& [key, list] : w.idle_upstreams) {
    w.connections -= static_cast<int>(list.size());
    list.clear();
  }
}

}  // namespace wsgate::proxy
