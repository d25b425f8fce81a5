#include "proxy/tls_stream.hpp"

#include <openssl/err.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>

namespace wsgate::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
// Pieces up to this size (a TLS record's payload) are gathered into one SSL_write.
constexpr size_t kRecord = 16 * 1024;
}  // namespace

tls_connection::tls_connection(tcp::socket& s, SSL* ssl) : socket_(&s), ssl_(ssl) {
  error_code ec;
  socket_->non_blocking(true, ec);
  SSL_set_fd(ssl_, socket_->native_handle());
}

tls_connection::~tls_connection() {
  // Marked as shut down (no I/O here: the socket may be closed already), so that OpenSSL keeps
  // a clean connection's session resumable; one that failed is dropped, as it should be.
  if (clean_) SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl_);
}

tls_connection::step tls_connection::classify(int rc, error_code& ec) {
  switch (SSL_get_error(ssl_, rc)) {
    case SSL_ERROR_WANT_READ:
      return step::want_read;
    case SSL_ERROR_WANT_WRITE:
      return step::want_write;
    case SSL_ERROR_ZERO_RETURN:
      ec = asio::error::eof;
      return step::eof;
    case SSL_ERROR_SYSCALL:
      if (errno == EAGAIN || errno == EWOULDBLOCK) return step::want_read;
      if (ERR_peek_error() == 0 && errno == 0) {
        truncated_ = true;
        ec = asio::ssl::error::stream_truncated;  // TCP ended without close_notify
        return step::eof;
      }
      ec = error_code(errno, boost::system::system_category());
      clean_ = false;
      return step::failed;
    case SSL_ERROR_SSL: {
      clean_ = false;
      const unsigned long e = ERR_get_error();
      // OpenSSL 3 reports a TCP end without close_notify as this SSL error.
      if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ec = asio::ssl::error::stream_truncated;
        return step::eof;
      }
      ec = error_code(static_cast<int>(e), asio::error::get_ssl_category());
      return step::failed;
    }
    default:
      ec = asio::error::fault;
      return step::failed;
  }
}

asio::awaitable<tls_connection::error_code> tls_connection::wait(step s) {
  auto [ec] = co_await socket_->async_wait(
      s == step::want_write ? tcp::socket::wait_write : tcp::socket::wait_read, use_nothrow);
  co_return ec;
}

tls_connection::step tls_connection::read_now(void* p, size_t n, size_t& got, error_code& ec) {
  ERR_clear_error();
  errno = 0;
  const int rc = SSL_read_ex(ssl_, p, n, &got);
  return rc == 1 ? step::done : classify(rc, ec);
}

tls_connection::step tls_connection::write_now(const void* p, size_t n, error_code& ec) {
  ERR_clear_error();
  errno = 0;
  size_t wrote = 0;
  const int rc = SSL_write_ex(ssl_, p, n, &wrote);
  const step s = rc == 1 ? step::done : classify(rc, ec);
  writing_ = s == step::want_read || s == step::want_write;
  return s;
}

void tls_connection::shutdown_now() {
  if (!clean_ || truncated_ || writing_ || SSL_in_init(ssl_) || !socket_->is_open() ||
      (SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN))
    return;
  ERR_clear_error();
  errno = 0;
  if (SSL_shutdown(ssl_) < 0) ERR_clear_error();  // the socket buffer is full or the peer gone
}

asio::awaitable<tls_connection::error_code> tls_connection::handshake() {
  for (;;) {
    ERR_clear_error();
    errno = 0;
    const int rc = SSL_do_handshake(ssl_);
    if (rc == 1) {
      clean_ = true;
      co_return error_code{};
    }
    error_code ec;
    const step s = classify(rc, ec);
    if (s != step::want_read && s != step::want_write) co_return ec ? ec : asio::error::eof;
    if (auto wec = co_await wait(s)) co_return wec;
  }
}

asio::awaitable<std::tuple<tls_connection::error_code, size_t>> tls_connection::read_some(
    asio::mutable_buffer b) {
  for (;;) {
    size_t got = 0;
    error_code ec;
    const step s = read_now(b.data(), b.size(), got, ec);
    if (s == step::done) co_return std::tuple{error_code{}, got};
    if (s == step::eof || s == step::failed) co_return std::tuple{ec, size_t{0}};
    if (auto wec = co_await wait(s)) co_return std::tuple{wec, size_t{0}};
  }
}

asio::awaitable<std::tuple<tls_connection::error_code, size_t>> tls_connection::write(
    std::span<const asio::const_buffer> bufs) {
  size_t total = 0;
  for (const auto& b : bufs) total += b.size();
  std::span<const asio::const_buffer> pieces = bufs;
  asio::const_buffer joined;
  if (bufs.size() > 1 && total <= kRecord) {
    gather_.clear();
    for (const auto& b : bufs) gather_.append(static_cast<const char*>(b.data()), b.size());
    joined = asio::buffer(gather_);
    pieces = std::span<const asio::const_buffer>(&joined, 1);
  }
  error_code ec;
  writing_ = true;
  for (const auto& b : pieces) {
    const char* p = static_cast<const char*>(b.data());
    size_t left = b.size();
    while (left > 0 && !ec) {
      ERR_clear_error();
      errno = 0;
      size_t wrote = 0;
      const int rc = SSL_write_ex(ssl_, p, left, &wrote);
      if (rc == 1) {
        p += wrote;
        left -= wrote;
        continue;
      }
      const step s = classify(rc, ec);
      if (s == step::want_read || s == step::want_write) ec = co_await wait(s);
      if (s == step::eof) ec = asio::error::broken_pipe;
    }
    if (ec) break;
  }
  writing_ = false;
  gather_ = std::string();  // an idle connection keeps no buffer
  co_return std::tuple{ec, ec ? size_t{0} : total};
}

// A coroutine of its own: `b` must live in a frame until the write is done (the span above
// points at it).
asio::awaitable<std::tuple<tls_connection::error_code, size_t>> tls_connection::write(
    asio::const_buffer b) {
  co_return co_await write(std::span<const asio::const_buffer>(&b, 1));
}

}  // namespace wsgate::proxy
