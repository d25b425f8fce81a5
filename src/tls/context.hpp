// Server-side TLS contexts: one OpenSSL SSL_CTX per server{} that has a certificate, built when
// the configuration is (re)loaded, so a handshake never touches the file system. Certificate and
// key errors are reported in nginx's words with the directive's file and line.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "config/model.hpp"

namespace wsgate::tls {

struct ctx_deleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using context = std::shared_ptr<SSL_CTX>;

// The context for `srv` (its ssl_certificate, ssl_certificate_key, ssl_protocols, ssl_ciphers);
// null with `error` set when a file cannot be loaded or the key does not match.
context make_server_context(const config::server& srv, std::string& error);

// The context for https upstreams of a location (proxy_ssl_protocols, proxy_ssl_ciphers,
// proxy_ssl_verify with proxy_ssl_trusted_certificate and proxy_ssl_verify_depth). The chain is
// checked during the handshake but the verdict is read after it (nginx's way: the error log then
// says why); null with `error` set on a bad file or list.
context make_client_context(const config::location_settings& s, std::string& error);

// OpenSSL's queued errors as nginx prints them: " (SSL: error:...:reason error:...)", or "".
std::string take_errors();

// "TLSv1.3" for a finished handshake (nginx's $ssl_protocol), "" otherwise.
std::string protocol_name(const SSL* ssl);

}  // namespace wsgate::tls
