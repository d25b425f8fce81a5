// A connection that speaks TLS (a client's, or one to an https upstream): OpenSSL reading and
// writing the socket itself (SSL_set_fd)
// in non-blocking mode, Asio only waiting for readiness. No buffer sits between the two (Asio's
// SSL stream keeps four 17 KiB ones per connection): with SSL_MODE_RELEASE_BUFFERS an idle
// connection holds OpenSSL's state and nothing else, and every byte OpenSSL has read but not
// handed out shows in SSL_has_pending(), so waiting for readability without a buffer is safe.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <span>
#include <string>
#include <tuple>

namespace wsgate::proxy {

class tls_connection {
 public:
  using error_code = boost::system::error_code;
  // Takes `ssl` (which must not have a descriptor yet) and drives it on `s`, which stays the
  // caller's: where the socket object moves, attach() follows it (the descriptor is the same).
  tls_connection(boost::asio::ip::tcp::socket& s, SSL* ssl);
  ~tls_connection();
  tls_connection(const tls_connection&) = delete;
  tls_connection& operator=(const tls_connection&) = delete;

  boost::asio::ip::tcp::socket& socket() { return *socket_; }
  void attach(boost::asio::ip::tcp::socket& s) { socket_ = &s; }
  SSL* native() { return ssl_; }
  // Bytes OpenSSL read from the socket and has not handed out yet (decrypted or not).
  bool buffered() const { return SSL_has_pending(ssl_) == 1; }

  // What one non-blocking call did.
  enum class step { done, want_read, want_write, eof, failed };
  // SSL_read once: `got` bytes on done; on failed, `ec` says why.
  step read_now(void* p, size_t n, size_t& got, error_code& ec);
  // SSL_write once, all of it or nothing (done, or want_*: then write() must carry on with the
  // same bytes, as OpenSSL requires).
  step write_now(const void* p, size_t n, error_code& ec);

  // Sends close_notify once, not waiting for the peer's (nginx's ssl shutdown on close): only on
  // a connection whose handshake finished, with no TLS error, no write half done and a peer
  // that did not just drop TCP. Call it before the socket closes.
  void shutdown_now();

  boost::asio::awaitable<error_code> handshake();
  // Some bytes (waiting for them); eof when the peer closed (with or without close_notify:
  // the latter as boost::asio::ssl::error::stream_truncated).
  boost::asio::awaitable<std::tuple<error_code, size_t>> read_some(boost::asio::mutable_buffer b);
  // Everything, small pieces gathered into one TLS record.
  boost::asio::awaitable<std::tuple<error_code, size_t>> write(
      std::span<const boost::asio::const_buffer> bufs);
  boost::asio::awaitable<std::tuple<error_code, size_t>> write(boost::asio::const_buffer b);

 private:
  step classify(int rc, error_code& ec);
  boost::asio::awaitable<error_code> wait(step s);

  boost::asio::ip::tcp::socket* socket_;
  SSL* ssl_;
  std::string gather_;      // small buffers joined for one SSL_write; empty between writes
  bool clean_ = false;      // handshake done and no TLS error since
  bool truncated_ = false;  // the peer's TCP ended without close_notify
  bool writing_ = false;    // an SSL_write wants to be called again with the same bytes
};

}  // namespace wsgate::proxy
