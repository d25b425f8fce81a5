// A client connection that speaks TLS: Asio's OpenSSL stream owning the TCP socket. Only the
// files that read or write such a connection include this (Asio's SSL headers are heavy).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>

namespace wsgate::proxy {

struct tls_connection {
  tls_connection(boost::asio::ip::tcp::socket s, SSL* ssl) : stream(std::move(s), ssl) {}
  boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream;
};

}  // namespace wsgate::proxy
