// test-upstream: the project's test backend. It records every request exactly as it arrived on
// the wire (raw request line and raw header lines, in order, byte for byte), answers with that
// record as JSON, and lets the test steer its answer with request headers.
//
//   test-upstream [--listen 127.0.0.1:0] [--name NAME] [--log FILE]
//
// On start it prints "listening ADDR:PORT" on stdout (the bound port when 0 was asked). With
// --log, each record is also appended to FILE as one JSON line, written before the response, so
// a test that has read the proxy's answer finds the record already there.
//
// The record (the default 200 body, and the --log line):
//   {"upstream":NAME, "connection":N, "sequence":N, "peer":"ip:port",
//    "request_line":"GET /x HTTP/1.0", "method":"GET", "uri":"/x", "version":"HTTP/1.0",
//    "header_lines":["Host: b", ...], "headers":[["Host","b"], ...],
//    "body_length":N, "body_chunked":bool, "body_sha256":"hex", "websocket":bool}
// "connection" numbers accepted connections from 1; "sequence" numbers requests on one
// connection from 1 (so keep-alive reuse is visible).
//
// Steering request headers (all optional; any combination):
//   | header                        | effect                                                      |
//   |-------------------------------|-------------------------------------------------------------|
//   | X-Test-Status: 404            | answer with this status (1xx/204/304 and HEAD: no body)     |
//   | X-Test-Body-Size: N           | body of N bytes ("0123456789" repeated) instead of the JSON |
//   | X-Test-Delay-Ms: N            | wait N ms before sending the response headers               |
//   | X-Test-Chunked: 1             | send the body chunked (Transfer-Encoding: chunked)          |
//   | X-Test-Close: 1               | no length: body delimited by closing the connection         |
//   | X-Test-Header: Name: value    | add "Name: value" to the response; repeatable               |
//   | X-Test-Abort-After: N         | announce the full length, send N body bytes, then reset     |
// A request carrying "Upgrade: websocket" and Sec-WebSocket-Key is answered 101 and its
// messages are echoed (test_upstream_ws.cpp). Every response carries X-Test-Upstream: NAME.
#include "test_upstream.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using json = nlohmann::ordered_json;  // keeps "upstream" first, as documented

constexpr std::size_t kMaxHead = 64 * 1024;  // a proxy never sends more; beyond it, 431

struct settings {
  std::string listen = "127.0.0.1:0";
  std::string name = "upstream";
  int log_fd = -1;
};

struct header {
  std::string name, value;
};

struct request {
  std::string request_line, method, uri, version;
  std::vector<std::string> header_lines;
  std::vector<header> headers;
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    if (iequals(hay.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

const std::string* find_header(const request& r, std::string_view name) {
  for (const auto& h : r.headers) {
    if (iequals(h.name, name)) return &h.value;
  }
  return nullptr;
}

// A numeric steering header, or `fallback` when absent or not a number.
long long number_header(const request& r, std::string_view name, long long fallback) {
  const std::string* v = find_header(r, name);
  if (!v) return fallback;
  long long n = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  return ec == std::errc() && end == v->data() + v->size() ? n : fallback;
}

// Splits the head (without its final empty line) into the raw request line and header lines.
request parse_head(std::string_view head) {
  request r;
  std::size_t start = 0;
  bool first = true;
  while (start <= head.size()) {
    std::size_t end = head.find("\r\n", start);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(start, end - start);
    if (first) {
      r.request_line = std::string(line);
      // Method up to the first space, version after the last: the target between them is
      // kept whole, odd bytes included.
      std::size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
      if (sp1 != std::string_view::npos && sp2 > sp1) {
        r.method = std::string(line.substr(0, sp1));
        r.uri = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
        r.version = std::string(line.substr(sp2 + 1));
      } else {
        r.method = std::string(line.substr(0, sp1));
        if (sp1 != std::string_view::npos) r.uri = std::string(line.substr(sp1 + 1));
      }
      first = false;
    } else if (!line.empty()) {
      r.header_lines.emplace_back(line);
      std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) {
        r.headers.push_back({std::string(line), ""});
      } else {
        r.headers.push_back(
            {std::string(line.substr(0, colon)), std::string(trim(line.substr(colon + 1)))});
      }
    }
    start = end + 2;
  }
  return r;
}

// Incremental SHA-256 of the request body, which is hashed as it streams and never kept.
class body_hash {
 public:
  body_hash() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void update(std::string_view data) { EVP_DigestUpdate(ctx_.get(), data.data(), data.size()); }
  std::string hex() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), md.data(), &len);
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
      char b[3];
      std::snprintf(b, sizeof b, "%02x", md[i]);
      out += b;
    }
    return out;
  }

 private:
  struct deleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, deleter> ctx_;
};

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

// One connection: read bytes until a full head, then the body by its framing, and answer.
class session {
 public:
  session(tcp::socket socket, const settings& cfg, std::uint64_t id)
      : socket_(std::move(socket)), cfg_(cfg), id_(id) {}

  asio::awaitable<void> run() {
    try {
      for (std::uint64_t sequence = 1;; ++sequence) {
        std::size_t end = std::string::npos;
        while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
          if (buf_.size() > kMaxHead) {
            co_await write_all(
                "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n");
            co_return;
          }
          if (!co_await fill()) co_return;  // peer closed between requests
        }
        request req = parse_head(std::string_view(buf_).substr(0, end));
        const std::string* upgrade = find_header(req, "Upgrade");
        const bool websocket = upgrade && icontains(*upgrade, "websocket") &&
                               find_header(req, "Sec-WebSocket-Key") != nullptr;
        json record = {{"upstream", cfg_.name},
                       {"connection", id_},
                       {"sequence", sequence},
                       {"peer", peer()},
                       {"request_line", req.request_line},
                       {"method", req.method},
                       {"uri", req.uri},
                       {"version", req.version},
                       {"header_lines", req.header_lines},
                       {"websocket", websocket}};
        json headers = json::array();
        for (const auto& h : req.headers) headers.push_back({h.name, h.value});
        record["headers"] = std::move(headers);

        if (websocket) {
          record["body_length"] = 0;
          record["body_chunked"] = false;
          log(record);
          co_await wsgate::test::run_websocket_echo(std::move(socket_), std::move(buf_), cfg_.name);
          co_return;
        }
        buf_.erase(0, end + 4);

        const std::string* expect = find_header(req, "Expect");
        if (expect && iequals(trim(*expect), "100-continue")) {
          co_await write_all("HTTP/1.1 100 Continue\r\n\r\n");
        }
        const std::string* te = find_header(req, "Transfer-Encoding");
        const bool chunked = te && icontains(*te, "chunked");
        body_hash hash;
        std::uint64_t length = 0;
        if (chunked) {
          if (!co_await read_chunked(hash, length)) co_return;
        } else {
          long long cl = number_header(req, "Content-Length", 0);
          if (!co_await read_exact(static_cast<std::uint64_t>(std::max(cl, 0LL)), hash)) co_return;
          length = static_cast<std::uint64_t>(std::max(cl, 0LL));
        }
        record["body_length"] = length;
        record["body_chunked"] = chunked;
        record["body_sha256"] = hash.hex();
        log(record);
        if (!co_await respond(req, record)) co_return;
      }
    } catch (const boost::system::system_error&) {
      // Reset or closed mid-request: nothing to answer.
    }
  }

 private:
  std::string peer() const {
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    return ec ? "" : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void log(const json& record) const {
    if (cfg_.log_fd < 0) return;
    // One write per line on an O_APPEND descriptor: several upstreams can share one log file.
    std::string line = record.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    if (::write(cfg_.log_fd, line.data(), line.size()) < 0) std::perror("test-upstream: log");
  }

  asio::awaitable<bool> fill() {
    std::array<char, 16 * 1024> tmp;
    boost::system::error_code ec;
    std::size_t n = co_await socket_.async_read_some(asio::buffer(tmp),
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return false;
    buf_.append(tmp.data(), n);
    co_return true;
  }

  asio::awaitable<bool> read_exact(std::uint64_t n, body_hash& hash) {
    while (n > 0) {
      if (buf_.empty() && !co_await fill()) co_return false;
      std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(n, buf_.size()));
      hash.update(std::string_view(buf_).substr(0, take));
      buf_.erase(0, take);
      n -= take;
    }
    co_return true;
  }

  asio::awaitable<bool> read_line(std::string& line) {
    std::size_t eol;
    while ((eol = buf_.find("\r\n")) == std::string::npos) {
      if (buf_.size() > kMaxHead || !co_await fill()) co_return false;
    }
    line = buf_.substr(0, eol);
    buf_.erase(0, eol + 2);
    co_return true;
  }

  asio::awaitable<bool> read_chunked(body_hash& hash, std::uint64_t& length) {
    std::string line;
    for (;;) {
      if (!co_await read_line(line)) co_return false;
      std::uint64_t size = 0;
      auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), size, 16);
      if (ec != std::errc() || p == line.data()) co_return false;
      if (size == 0) break;
      if (!co_await read_exact(size, hash)) co_return false;
      length += size;
      if (!co_await read_line(line) || !line.empty()) co_return false;
    }
    do {  // trailers, up to the empty line
      if (!co_await read_line(line)) co_return false;
    } while (!line.empty());
    co_return true;
  }

  asio::awaitable<void> write_all(std::string_view data) {
    co_await asio::async_write(socket_, asio::buffer(data), asio::use_awaitable);
  }

  // Answers one request as steered; returns whether the connection stays open.
  asio::awaitable<bool> respond(const request& req, const json& record) {
    const int status = static_cast<int>(number_header(req, "X-Test-Status", 200));
    const long long body_size = number_header(req, "X-Test-Body-Size", -1);
    const long long delay_ms = number_header(req, "X-Test-Delay-Ms", 0);
    const long long abort_after = number_header(req, "X-Test-Abort-After", -1);
    const bool chunked = number_header(req, "X-Test-Chunked", 0) == 1;
    const bool close_delimited = number_header(req, "X-Test-Close", 0) == 1;
    const std::string* connection = find_header(req, "Connection");
    bool keep_alive = req.version == "HTTP/1.1"
                          ? !(connection && icontains(*connection, "close"))
                          : connection && icontains(*connection, "keep-alive");
    if (close_delimited || abort_after >= 0) keep_alive = false;

    std::string body;
    if (body_size >= 0) {
      body.reserve(static_cast<std::size_t>(body_size));
      for (long long i = 0; i < body_size; ++i) body.push_back(static_cast<char>('0' + i % 10));
    } else {
      body = record.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    }
    const bool no_body =
        req.method == "HEAD" || status / 100 == 1 || status == 204 || status == 304;

    std::string head =
        "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_phrase(status)) + "\r\n";
    head += "X-Test-Upstream: " + cfg_.name + "\r\n";
    head += body_size >= 0 ? "Content-Type: application/octet-stream\r\n"
                           : "Content-Type: application/json\r\n";
    for (const auto& h : req.headers) {
      if (iequals(h.name, "X-Test-Header")) head += h.value + "\r\n";
    }
    if (!(status / 100 == 1 || status == 204 || status == 304)) {
      if (chunked && !close_delimited) {
        head += "Transfer-Encoding: chunked\r\n";
      } else if (!close_delimited) {
        head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
      }
    }
    head += keep_alive ? (req.version == "HTTP/1.1" ? "" : "Connection: keep-alive\r\n")
                       : "Connection: close\r\n";
    head += "\r\n";

    if (delay_ms > 0) {
      asio::steady_timer timer(socket_.get_executor(), std::chrono::milliseconds(delay_ms));
      co_await timer.async_wait(asio::use_awaitable);
    }
    if (no_body) body.clear();
    if (abort_after >= 0) {
      co_await write_all(head);
      co_await write_all(std::string_view(body).substr(
          0, std::min(body.size(), static_cast<std::size_t>(abort_after))));
      // SO_LINGER 0 turns the close into a reset: the proxy sees the body cut short.
      socket_.set_option(asio::socket_base::linger(true, 0));
      socket_.close();
      co_return false;
    }
    if (chunked && !close_delimited && !no_body) {
      co_await write_all(head);
      constexpr std::size_t kChunk = 16 * 1024;
      for (std::size_t off = 0; off < body.size(); off += kChunk) {
        std::size_t n = std::min(kChunk, body.size() - off);
        char size_line[32];
        int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
        co_await write_all(std::string_view(size_line, static_cast<std::size_t>(len)));
        co_await write_all(std::string_view(body).substr(off, n));
        co_await write_all("\r\n");
      }
      co_await write_all("0\r\n\r\n");
    } else {
      co_await write_all(head + body);
    }
    if (!keep_alive) {
      boost::system::error_code ec;
      socket_.shutdown(tcp::socket::shutdown_send, ec);
      socket_.close(ec);
    }
    co_return keep_alive;
  }

  tcp::socket socket_;
  const settings& cfg_;
  std::uint64_t id_;
  std::string buf_;
};

asio::awaitable<void> listen(tcp::acceptor& acceptor, const settings& cfg) {
  for (std::uint64_t id = 1;; ++id) {
    tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
    socket.set_option(tcp::no_delay(true));
    asio::co_spawn(
        acceptor.get_executor(),
        [s = std::make_shared<session>(std::move(socket), cfg, id)] { return s->run(); },
        asio::detached);
  }
}

int usage(const char* why) {
  std::fprintf(stderr,
               "test-upstream: %s\nusage: test-upstream [--listen 127.0.0.1:0] [--name NAME] "
               "[--log FILE]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  settings cfg;
  std::string log_path;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) return usage("every option takes a value");
    if (arg == "--listen") {
      cfg.listen = argv[++i];
    } else if (arg == "--name") {
      cfg.name = argv[++i];
    } else if (arg == "--log") {
      log_path = argv[++i];
    } else {
      return usage("unknown option");
    }
  }
  if (!log_path.empty()) {
    cfg.log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (cfg.log_fd < 0) {
      std::perror(("test-upstream: " + log_path).c_str());
      return 1;
    }
  }
  std::size_t colon = cfg.listen.rfind(':');
  if (colon == std::string::npos) return usage("--listen wants ADDR:PORT, e.g. 127.0.0.1:0");
  std::string host = cfg.listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  std::string_view port_text = std::string_view(cfg.listen).substr(colon + 1);
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535) {
    return usage("--listen port must be a number from 0 to 65535");
  }

  try {
    asio::io_context ioc;
    boost::system::error_code addr_ec;
    auto address = asio::ip::make_address(host, addr_ec);
    if (addr_ec) return usage("--listen address must be a numeric IP address");
    tcp::acceptor acceptor(ioc, tcp::endpoint(address, static_cast<std::uint16_t>(port)));
    auto bound = acceptor.local_endpoint();
    std::cout << "listening " << (bound.address().is_v6() ? "[" : "") << bound.address().to_string()
              << (bound.address().is_v6() ? "]" : "") << ":" << bound.port() << std::endl;
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](auto, int) { ioc.stop(); });
    asio::co_spawn(ioc, listen(acceptor, cfg), asio::detached);
    ioc.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "test-upstream: %s\n", e.what());
    return 1;
  }
  return 0;
}
