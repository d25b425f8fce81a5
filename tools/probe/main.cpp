// wsgate-probe: connects to a ws://, wss://, http:// or https:// URL, exchanges messages, and says
// what is wrong when it fails. Usage and exit codes: README.md next to this file.
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "diagnosis.hpp"
#include "url.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using json = nlohmann::ordered_json;
using asio::awaitable;
using asio::use_awaitable;
using clock_type = std::chrono::steady_clock;
using wsgate::client::exit_code;

namespace {

struct options {
  std::string url_text;
  std::vector<std::string> headers;
  std::vector<std::string> sends;
  bool use_stdin = false;
  double timeout = 10;
  bool insecure = false;
  std::string cacert;
  bool json_output = false;
  std::string expect_type;
  int greeting_ms = 250;
  int linger_ms = 0;
  std::string save_binary;
};

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

std::string ms_text(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", ms);
  return buf;
}

std::string shorten(std::string_view text, std::size_t limit = 600) {
  if (text.size() <= limit) {
    return std::string(text);
  }
  return std::string(text.substr(0, limit)) + "... (" + std::to_string(text.size()) + " bytes)";
}

// Collects the outcome; in human mode it also prints each step as it happens.
class report {
 public:
  explicit report(bool json_mode) : json_mode_(json_mode) {}

  void info(const std::string& line) {
    if (!json_mode_) {
      std::cout << "* " << line << std::endl;
    }
  }
  void timing(const char* name, double ms) { doc_["timings"][name] = ms; }

  void http_response(int status, std::string_view reason, const json& headers,
                     std::string_view body) {
    doc_["http"] = {{"status", status}, {"reason", reason}, {"headers", headers}, {"body", body}};
    if (!json_mode_) {
      std::cout << "< HTTP " << status << " " << reason << "\n";
      for (const auto& [name, value] : headers.items()) {
        std::cout << "< " << name << ": " << value.get<std::string>() << "\n";
      }
      if (!body.empty()) {
        std::cout << shorten(body, 64 * 1024) << (body.ends_with('\n') ? "" : "\n");
      }
      std::cout.flush();
    }
  }

  void sent(int index, std::string_view text) {
    ++sent_;
    json m{{"direction", "sent"}, {"index", index}, {"bytes", text.size()}};
    put_data(m, text);
    doc_["messages"].push_back(std::move(m));
    if (!json_mode_) {
      std::cout << "> " << shorten(text) << std::endl;
    }
  }

  // `reply_to` is the index of the message this answers, or -1 (greeting or other event).
  void received(bool binary, std::string_view data, double ms, int reply_to, bool greeting) {
    json m{{"direction", "received"}, {"binary", binary}, {"bytes", data.size()}, {"ms", ms}};
    if (!binary) {
      put_data(m, data);
    }
    if (reply_to >= 0) {
      m["reply_to"] = reply_to;
      ++replies_;
    }
    if (greeting) {
      m["greeting"] = true;
    }
    doc_["messages"].push_back(std::move(m));
    if (!json_mode_) {
      std::cout << "< "
                << (binary ? "<binary " + std::to_string(data.size()) + " bytes>" : shorten(data))
                << "  ("
                << (greeting        ? "greeting, "
                    : reply_to >= 0 ? "reply, "
                                    : "")
                << ms_text(ms) << ")" << std::endl;
    }
  }

  void closed(int code, std::string_view reason, std::string_view by) {
    doc_["close"] = {{"code", code},
                     {"name", wsgate::client::close_code_name(code)},
                     {"reason", reason},
                     {"by", by}};
  }

  // Records the first failure; later ones are consequences of it.
  void fail(exit_code code, std::string error, std::string diagnosis) {
    if (failed()) {
      return;
    }
    code_ = code;
    doc_["error"] = error;
    doc_["diagnosis"] = diagnosis;
    if (!json_mode_) {
      std::cout << "FAILED (exit " << static_cast<int>(code) << ", "
                << wsgate::client::exit_code_name(code) << "): " << error << "\n";
      if (!diagnosis.empty()) {
        std::cout << "diagnosis: " << diagnosis << "\n";
      }
      std::cout.flush();
    }
  }

  [[nodiscard]] bool failed() const { return code_ != exit_code::ok; }
  [[nodiscard]] int sent_count() const { return sent_; }
  [[nodiscard]] int reply_count() const { return replies_; }

  int finish(const std::string& url) {
    if (!failed() && replies_ < sent_) {
      fail(exit_code::missing_replies,
           std::to_string(sent_ - replies_) + " message(s) got no reply", "");
    }
    json out{{"url", url},
             {"ok", !failed()},
             {"exit_code", static_cast<int>(code_)},
             {"outcome", wsgate::client::exit_code_name(code_)},
             {"sent", sent_},
             {"replies", replies_}};
    for (auto& [key, value] : doc_.items()) {
      out[key] = value;
    }
    if (json_mode_) {
      std::cout << out.dump(2) << std::endl;
    } else if (!failed() && doc_.contains("http")) {
      std::cout << "OK: HTTP " << doc_["http"]["status"].get<int>() << std::endl;
    } else if (!failed()) {
      std::cout << "OK: " << replies_ << "/" << sent_ << " message(s) got a reply" << std::endl;
    }
    return static_cast<int>(code_);
  }

 private:
  // Large messages are cut in the JSON result; "bytes" keeps the real size.
  static void put_data(json& m, std::string_view data) {
    constexpr std::size_t limit = 64 * 1024;
    m["data"] = data.substr(0, limit);
    if (data.size() > limit) {
      m["truncated"] = true;
    }
  }

  bool json_mode_;
  json doc_ = json::object();
  exit_code code_ = exit_code::ok;
  int sent_ = 0;
  int replies_ = 0;
};

std::chrono::milliseconds to_duration(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

awaitable<bool> connect_tcp(beast::tcp_stream& stream, const wsgate::client::url& u,
                            const options& opt, report& rep) {
  const auto start = clock_type::now();
  boost::system::error_code ec;
  tcp::resolver resolver(co_await asio::this_coro::executor);
  const auto results =
      co_await resolver.async_resolve(u.host, u.port, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    rep.fail(exit_code::connect, "cannot resolve host '" + u.host + "': " + ec.message(),
             "check the host name (typo? DNS? /etc/hosts), or use an IP address");
    co_return false;
  }
  stream.expires_after(to_duration(opt.timeout));
  const auto endpoint =
      co_await stream.async_connect(results, asio::redirect_error(use_awaitable, ec));
  const std::string where = u.host + ":" + u.port;
  if (ec == beast::error::timeout) {
    rep.fail(exit_code::timeout,
             "no TCP connection to " + where + " within " + std::to_string(opt.timeout) + " s",
             "the host does not answer: it is down, or a firewall drops the packets");
    co_return false;
  }
  if (ec == asio::error::connection_refused) {
    rep.fail(exit_code::connect, "connection refused by " + where,
             "nothing listens on " + where +
                 ": is the service (or the proxy in front of it) running, and "
                 "is the port right?");
    co_return false;
  }
  if (ec) {
    rep.fail(exit_code::connect, "cannot connect to " + where + ": " + ec.message(),
             "check that " + where + " is reachable from here");
    co_return false;
  }
  stream.socket().set_option(tcp::no_delay(true), ec);
  rep.timing("connect_ms", ms_since(start));
  rep.info("connected to " + endpoint.address().to_string() + ":" +
           std::to_string(endpoint.port()) + " in " + ms_text(ms_since(start)));
  co_return true;
}

awaitable<bool> tls_handshake(ssl::stream<beast::tcp_stream>& stream, const wsgate::client::url& u,
                              const options& opt, report& rep) {
  const auto start = clock_type::now();
  SSL* native = stream.native_handle();
  if (!is_ip_literal(u.host)) {
    // SSL_set_tlsext_host_name is a macro with an old-style cast; this is what it expands to.
    SSL_ctrl(native, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(u.host.c_str()));
    SSL_set1_host(native, u.host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(native), u.host.c_str());
  }
  stream.set_verify_mode(opt.insecure ? ssl::verify_none : ssl::verify_peer);
  beast::get_lowest_layer(stream).expires_after(to_duration(opt.timeout));
  boost::system::error_code ec;
  co_await stream.async_handshake(ssl::stream_base::client,
                                  asio::redirect_error(use_awaitable, ec));
  if (ec == beast::error::timeout) {
    rep.fail(exit_code::timeout, "no TLS handshake within " + std::to_string(opt.timeout) + " s",
             "the server accepted the connection but does not answer TLS: is this a TLS port? (try "
             "ws:// or "
             "http://)");
    co_return false;
  }
  const long verify = SSL_get_verify_result(native);
  if (ec) {
    if (!opt.insecure && verify != X509_V_OK) {
      rep.fail(
          exit_code::tls,
          std::string("certificate verification failed: ") + X509_verify_cert_error_string(verify),
          wsgate::client::diagnose_certificate(verify, u.host));
    } else {
      rep.fail(exit_code::tls, "TLS handshake failed: " + ec.message(),
               wsgate::client::diagnose_tls_failure(ec.message()));
    }
    co_return false;
  }
  rep.timing("tls_ms", ms_since(start));
  rep.info(std::string("TLS ") + SSL_get_version(native) + " " + SSL_get_cipher_name(native) +
           ", certificate " +
           (opt.insecure ? "NOT verified (--insecure)" : "verified for " + u.host) + " in " +
           ms_text(ms_since(start)));
  co_return true;
}

std::vector<std::pair<std::string, std::string>> header_pairs(const options& opt) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& h : opt.headers) {
    const auto colon = h.find(':');
    std::string value = h.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    out.emplace_back(h.substr(0, colon), value);
  }
  return out;
}

template <typename Fields>
json headers_json(const Fields& fields) {
  json out = json::object();
  for (const auto& f : fields) {
    const std::string name(f.name_string());
    if (out.contains(name)) {
      out[name] = out[name].template get<std::string>() + ", " + std::string(f.value());
    } else {
      out[name] = std::string(f.value());
    }
  }
  return out;
}

// The response to a handshake or request could not be read: say why in terms of what is on the
// port.
void fail_on_read(report& rep, const boost::system::error_code& ec, const options& opt,
                  const wsgate::client::url& u, const char* what) {
  if (ec == beast::error::timeout) {
    rep.fail(
        exit_code::timeout,
        std::string("no answer to the ") + what + " within " + std::to_string(opt.timeout) + " s",
        "the server accepted the connection but did not answer: a proxy may be waiting for an "
        "upstream "
        "that does not respond (proxy_connect_timeout / proxy_read_timeout), or this port does not "
        "speak HTTP" +
            std::string(u.secure ? "" : " (a TLS port? try wss:// or https://)"));
  } else if (ec == http::error::end_of_stream || ec == asio::error::eof ||
             ec == asio::error::connection_reset) {
    rep.fail(exit_code::protocol,
             std::string("the server closed the connection without answering the ") + what,
             std::string(u.secure ? "" : "if this port speaks TLS, use wss:// or https://; ") +
                 "otherwise check the server's error log");
  } else {
    rep.fail(exit_code::protocol,
             std::string("invalid answer to the ") + what + ": " + ec.message(),
             std::string(u.secure ? "" : "if this port speaks TLS, use wss:// or https://; ") +
                 "the peer does not speak HTTP/1.1 correctly");
  }
}

struct incoming {
  bool binary = false;
  std::string data;
};

// Messages read by the reader task, waited for by the sender with a deadline.
struct inbox {
  explicit inbox(const asio::any_io_executor& ex) : signal(ex) {}
  std::deque<incoming> queue;
  bool done = false;
  boost::system::error_code error;
  asio::steady_timer signal;  // cancelled to wake the waiter
};

enum class wait_result { message, closed, timeout };

awaitable<wait_result> wait_message(inbox& in, clock_type::time_point deadline) {
  while (in.queue.empty() && !in.done) {
    if (clock_type::now() >= deadline) {
      co_return wait_result::timeout;
    }
    in.signal.expires_at(deadline);
    boost::system::error_code ec;
    co_await in.signal.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  co_return in.queue.empty() ? wait_result::closed : wait_result::message;
}

template <typename WebSocket>
awaitable<void> read_loop(WebSocket& ws, inbox& in) {
  for (;;) {
    beast::flat_buffer buffer;
    boost::system::error_code ec;
    co_await ws.async_read(buffer, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      in.done = true;
      in.error = ec;
      in.signal.cancel();
      co_return;
    }
    in.queue.push_back({ws.got_binary(), beast::buffers_to_string(buffer.data())});
    in.signal.cancel();
  }
}

std::string json_type(const incoming& m) {
  if (m.binary) {
    return {};
  }
  const json j = json::parse(m.data, nullptr, false);
  if (j.is_object() && j.contains("type") && j["type"].is_string()) {
    return j["type"].get<std::string>();
  }
  return {};
}

template <typename WebSocket>
void report_close(WebSocket& ws, const inbox& in, report& rep) {
  if (in.error == websocket::error::closed) {
    const auto& reason = ws.reason();
    const int code = static_cast<int>(reason.code);
    rep.closed(code, reason.reason.c_str(), "peer");
    rep.fail(
        exit_code::closed,
        "the server closed the WebSocket: code " + std::to_string(code) + " (" +
            std::string(wsgate::client::close_code_name(code)) + ")" +
            (reason.reason.empty() ? "" : ", reason '" + std::string(reason.reason.c_str()) + "'"),
        wsgate::client::close_code_advice(code));
  } else {
    rep.closed(1006, in.error.message(), "network");
    rep.fail(exit_code::closed,
             "the connection dropped without a close frame (1006 abnormal closure): " +
                 in.error.message(),
             wsgate::client::close_code_advice(1006));
  }
}

template <typename WebSocket>
awaitable<void> run_websocket(WebSocket& ws, const wsgate::client::url& u, const options& opt,
                              report& rep) {
  const auto headers = header_pairs(opt);
  ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
    req.set(http::field::user_agent, "wsgate-probe/0.1");
    for (const auto& [name, value] : headers) {
      req.set(name, value);
    }
  }));
  websocket::response_type res;
  const auto start = clock_type::now();
  beast::get_lowest_layer(ws).expires_after(to_duration(opt.timeout));
  boost::system::error_code ec;
  co_await ws.async_handshake(res, u.host_header(), u.target,
                              asio::redirect_error(use_awaitable, ec));
  beast::get_lowest_layer(ws).expires_never();
  if (ec == websocket::error::upgrade_declined) {
    rep.http_response(static_cast<int>(res.result_int()), res.reason(), headers_json(res),
                      res.body());
    rep.fail(exit_code::refused,
             "handshake refused: HTTP " + std::to_string(res.result_int()) + " " +
                 std::string(res.reason()),
             wsgate::client::diagnose_status(static_cast<int>(res.result_int()), res.body(),
                                             res[http::field::location], true, u.target));
    co_return;
  }
  if (ec && res.result_int() == 101) {
    rep.fail(exit_code::protocol, "invalid 101 response: " + ec.message(),
             "something between the probe and the server rewrote the handshake headers "
             "(Sec-WebSocket-Accept / Upgrade / Connection)");
    co_return;
  }
  if (ec) {
    fail_on_read(rep, ec, opt, u, "WebSocket handshake");
    co_return;
  }
  rep.timing("handshake_ms", ms_since(start));
  rep.info("handshake: 101 Switching Protocols in " + ms_text(ms_since(start)));

  auto ex = co_await asio::this_coro::executor;
  inbox in(ex);
  bool reader_finished = false;
  asio::co_spawn(ex, read_loop(ws, in), [&](std::exception_ptr) {
    reader_finished = true;
    in.signal.cancel();
  });
  std::ofstream save;
  if (!opt.save_binary.empty()) {
    save.open(opt.save_binary, std::ios::binary | std::ios::trunc);
  }
  auto handle = [&](const incoming& m, double ms, int reply_to, bool greeting) {
    rep.received(m.binary, m.data, ms, reply_to, greeting);
    if (m.binary && save.is_open()) {
      save.write(m.data.data(), static_cast<std::streamsize>(m.data.size()));
    }
  };

  std::string expect = opt.expect_type;
  std::vector<std::string> messages = opt.sends;
  if (messages.empty() && !opt.use_stdin) {
    messages.emplace_back(R"({"type":"ping"})");
    if (expect.empty()) {
      expect = "pong";  // we chose the message, so we know its answer
    }
  }
  // Messages the server sends on its own right after the handshake are not replies.
  const auto opened = clock_type::now();
  if (expect.empty() && opt.greeting_ms > 0) {
    const auto deadline = opened + std::chrono::milliseconds(opt.greeting_ms);
    while (co_await wait_message(in, deadline) == wait_result::message) {
      handle(in.queue.front(), ms_since(opened), -1, true);
      in.queue.pop_front();
    }
  }

  bool peer_closed = false;
  std::size_t next = 0;
  for (int index = 0;; ++index) {
    std::string message;
    if (next < messages.size()) {
      message = messages[next++];
    } else if (opt.use_stdin && std::getline(std::cin, message)) {
      if (message.empty()) {
        --index;
        continue;
      }
    } else {
      break;
    }
    while (!in.queue.empty()) {  // arrived before this send: not its reply
      handle(in.queue.front(), ms_since(opened), -1, false);
      in.queue.pop_front();
    }
    if (in.done) {
      peer_closed = true;
      break;
    }
    ws.text(true);
    rep.sent(index, message);
    const auto sent_at = clock_type::now();
    co_await ws.async_write(asio::buffer(message), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      // Usually the peer closed meanwhile; the reader knows how.
      co_await wait_message(in, clock_type::now() + std::chrono::seconds(1));
      if (!in.done) {
        rep.fail(exit_code::closed, "sending failed: " + ec.message(),
                 wsgate::client::close_code_advice(1006));
        break;
      }
    }
    const auto deadline = sent_at + to_duration(opt.timeout);
    bool replied = false;
    while (!replied) {
      const wait_result r = co_await wait_message(in, deadline);
      if (r == wait_result::timeout) {
        rep.fail(
            exit_code::missing_replies,
            "no reply" + (expect.empty() ? std::string() : " of type '" + expect + "'") +
                " to message " + std::to_string(index) + " within " + std::to_string(opt.timeout) +
                " s",
            "the connection is open but the server did not answer: it may not know this message "
            "(check its protocol), be slow (try a larger --timeout), or a proxy buffers the "
            "tunnel (proxy_buffering)");
        break;
      }
      if (r == wait_result::closed) {
        peer_closed = true;
        break;
      }
      const incoming m = std::move(in.queue.front());
      in.queue.pop_front();
      replied = expect.empty() || json_type(m) == expect;
      handle(m, ms_since(sent_at), replied ? index : -1, false);
    }
    if (!replied) {
      break;
    }
  }
  if (!peer_closed && !rep.failed() && opt.linger_ms > 0) {
    const auto deadline = clock_type::now() + std::chrono::milliseconds(opt.linger_ms);
    const auto since = clock_type::now();
    while (co_await wait_message(in, deadline) == wait_result::message) {
      handle(in.queue.front(), ms_since(since), -1, false);
      in.queue.pop_front();
    }
  }
  if (in.done) {
    peer_closed = true;
  }
  if (peer_closed) {
    report_close(ws, in, rep);
  } else {
    ws.set_option(websocket::stream_base::timeout{to_duration(opt.timeout),
                                                  websocket::stream_base::none(), false});
    co_await ws.async_close(websocket::close_code::normal, asio::redirect_error(use_awaitable, ec));
    rep.closed(1000, "", "probe");
  }
  // The reader ends once the close handshake (or the connection) is over.
  const auto deadline = clock_type::now() + std::chrono::seconds(2);
  while (!reader_finished && clock_type::now() < deadline) {
    co_await wait_message(in, deadline);
    in.queue.clear();
  }
  if (!reader_finished) {
    beast::get_lowest_layer(ws).close();
    while (!reader_finished) {
      co_await wait_message(in, clock_type::now() + std::chrono::milliseconds(100));
    }
  }
}

template <typename Stream>
awaitable<void> run_http(Stream& stream, const wsgate::client::url& u, const options& opt,
                         report& rep) {
  http::request<http::empty_body> req{http::verb::get, u.target, 11};
  req.set(http::field::host, u.host_header());
  req.set(http::field::user_agent, "wsgate-probe/0.1");
  req.set(http::field::accept, "*/*");
  req.set(http::field::connection, "close");
  for (const auto& [name, value] : header_pairs(opt)) {
    req.set(name, value);
  }
  const auto start = clock_type::now();
  beast::get_lowest_layer(stream).expires_after(to_duration(opt.timeout));
  boost::system::error_code ec;
  co_await http::async_write(stream, req, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    fail_on_read(rep, ec, opt, u, "request");
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    fail_on_read(rep, ec, opt, u, "request");
    co_return;
  }
  const auto& res = parser.get();
  rep.timing("response_ms", ms_since(start));
  rep.info("response in " + ms_text(ms_since(start)));
  const int status = static_cast<int>(res.result_int());
  rep.http_response(status, res.reason(), headers_json(res), res.body());
  if (status < 200 || status >= 300) {
    rep.fail(exit_code::refused, "HTTP " + std::to_string(status) + " " + std::string(res.reason()),
             wsgate::client::diagnose_status(status, res.body(), res[http::field::location], false,
                                             u.target));
  }
}

awaitable<void> run(const wsgate::client::url& u, const options& opt, ssl::context& tls,
                    report& rep) {
  auto ex = co_await asio::this_coro::executor;
  if (u.secure) {
    ssl::stream<beast::tcp_stream> stream(ex, tls);
    if (!co_await connect_tcp(beast::get_lowest_layer(stream), u, opt, rep) ||
        !co_await tls_handshake(stream, u, opt, rep)) {
      co_return;
    }
    if (u.websocket) {
      websocket::stream<ssl::stream<beast::tcp_stream>> ws(std::move(stream));
      co_await run_websocket(ws, u, opt, rep);
    } else {
      co_await run_http(stream, u, opt, rep);
    }
  } else {
    beast::tcp_stream stream(ex);
    if (!co_await connect_tcp(stream, u, opt, rep)) {
      co_return;
    }
    if (u.websocket) {
      websocket::stream<beast::tcp_stream> ws(std::move(stream));
      co_await run_websocket(ws, u, opt, rep);
    } else {
      co_await run_http(stream, u, opt, rep);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"wsgate-probe: check a WebSocket or HTTP endpoint and diagnose what is wrong"};
  app.add_option("url", opt.url_text, "ws://, wss://, http:// or https:// URL")->required();
  app.add_option("-H,--header", opt.headers, "extra request header 'Name: value' (repeatable)");
  app.add_option(
      "--send", opt.sends,
      "text message to send, waiting for its reply (repeatable; default {\"type\":\"ping\"})");
  app.add_flag("--stdin", opt.use_stdin, "also send each non-empty line read from stdin");
  app.add_option("--timeout", opt.timeout, "seconds allowed for each step and each reply")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 3600.0));
  app.add_flag("-k,--insecure", opt.insecure, "do not verify the server's certificate");
  app.add_option("--cacert", opt.cacert, "PEM file of CA certificates to trust")
      ->check(CLI::ExistingFile);
  app.add_flag("--json", opt.json_output, "print one machine-readable JSON result");
  app.add_option(
      "--expect-reply", opt.expect_type,
      "the reply to a message is the next JSON message with this \"type\" (others are shown as "
      "events); without it, the next message is the reply");
  app.add_option(
         "--greeting-wait", opt.greeting_ms,
         "ms to collect messages the server sends on connect, before the first send (not used with "
         "--expect-reply)")
      ->capture_default_str()
      ->check(CLI::Range(0, 60000));
  app.add_option("--linger", opt.linger_ms, "ms to keep printing messages after the last reply")
      ->check(CLI::Range(0, 600000));
  app.add_option("--save-binary", opt.save_binary,
                 "write the received binary messages, concatenated, to FILE");
  app.footer(
      "Exit codes: 0 every message got its reply (or HTTP 2xx), 1 usage, 2 connect/DNS failure, 3 "
      "TLS/"
      "certificate, 4 handshake or request refused with an HTTP status, 5 timeout connecting or "
      "handshaking, "
      "6 closed by the peer, 7 missing replies, 8 invalid answer (not HTTP/WebSocket).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : static_cast<int>(exit_code::usage);
  }
  std::string error;
  const auto u = wsgate::client::parse_url(opt.url_text, error);
  if (!u) {
    std::cerr << "wsgate-probe: " << error << "\n";
    return static_cast<int>(exit_code::usage);
  }
  for (const auto& h : opt.headers) {
    const auto colon = h.find(':');
    if (colon == std::string::npos || colon == 0 || h.find_first_of(" \t") < colon) {
      std::cerr << "wsgate-probe: header '" << h << "' is not 'Name: value'\n";
      return static_cast<int>(exit_code::usage);
    }
  }
  if (!u->websocket && (!opt.sends.empty() || opt.use_stdin)) {
    std::cerr << "wsgate-probe: --send/--stdin need a ws:// or wss:// URL (http(s) URLs are "
                 "fetched with GET)\n";
    return static_cast<int>(exit_code::usage);
  }

  ssl::context tls(ssl::context::tls_client);
  tls.set_default_verify_paths();
  if (!opt.cacert.empty()) {
    boost::system::error_code ec;
    tls.load_verify_file(opt.cacert, ec);
    if (ec) {
      std::cerr << "wsgate-probe: cannot load --cacert " << opt.cacert << ": " << ec.message()
                << "\n";
      return static_cast<int>(exit_code::usage);
    }
  }

  report rep(opt.json_output);
  rep.info("probing " + opt.url_text);
  asio::io_context ioc;
  asio::co_spawn(ioc, run(*u, opt, tls, rep), [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        rep.fail(exit_code::protocol, std::string("unexpected failure: ") + ex.what(), "");
      }
    }
  });
  ioc.run();
  return rep.finish(opt.url_text);
}
