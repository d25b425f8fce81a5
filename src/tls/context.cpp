#include "tls/context.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>

namespace wsgate::tls {

namespace {

std::string where(const config::source_loc& at) {
  if (at.file.empty()) return {};
  return " in " + at.file + ":" + std::to_string(at.line);
}

bool has(const std::vector<std::string>& v, const char* p) {
  return std::find(v.begin(), v.end(), p) != v.end();
}

// nginx's ssl_protocols as a version range: OpenSSL only takes a minimum and a maximum, so a gap
// ("TLSv1 TLSv1.2") widens to the range between them, as nginx's own mask does with OpenSSL 3.
void set_versions(SSL_CTX* ctx, const std::vector<std::string>& protocols) {
  static constexpr std::pair<const char*, int> order[] = {{"TLSv1", TLS1_VERSION},
                                                          {"TLSv1.1", TLS1_1_VERSION},
                                                          {"TLSv1.2", TLS1_2_VERSION},
                                                          {"TLSv1.3", TLS1_3_VERSION}};
  int lo = 0, hi = 0;
  for (const auto& [name, v] : order) {
    if (!has(protocols, name)) continue;
    if (!lo) lo = v;
    hi = v;
  }
  if (!lo) lo = hi = TLS1_2_VERSION;  // only SSLv2/SSLv3 named: OpenSSL 3 has neither
  SSL_CTX_set_min_proto_version(ctx, lo);
  SSL_CTX_set_max_proto_version(ctx, hi);
}

}  // namespace

std::string take_errors() {
  std::string out;
  unsigned long e;
  char buf[256];
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    out += out.empty() ? " (SSL: " : " ";
    out += buf;
  }
  if (!out.empty()) out += ")";
  return out;
}

// A certificate chain and its key into `c`, in nginx's words (`at`: the directive's place).
bool use_pair(SSL_CTX* c, const std::string& cert, const std::string& key, const std::string& at,
              std::string& error) {
  auto mismatch = [&] {
    error = "SSL_CTX_use_PrivateKey(\"" + key + "\") failed" + take_errors() + at +
            "; the key does not belong to \"" + cert + "\": name the matching pair";
    return false;
  };
  if (SSL_CTX_use_certificate_chain_file(c, cert.c_str()) != 1) {
    error = "cannot load certificate \"" + cert + "\"" + take_errors() + at +
            "; check the path and that the file holds a PEM certificate";
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(c, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    // A key that loads but belongs to another certificate fails here too (nginx, which reads
    // the key first, reports it from SSL_CTX_use_PrivateKey).
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) return mismatch();
    error = "cannot load certificate key \"" + key + "\"" + take_errors() + at +
            "; check the path and that the file holds a PEM private key";
    return false;
  }
  if (SSL_CTX_check_private_key(c) != 1) return mismatch();
  return true;
}

context make_server_context(const config::server& srv, std::string& error) {
  const auto& s = srv.ssl;
  ERR_clear_error();
  context ctx(SSL_CTX_new(TLS_server_method()), ctx_deleter{});
  if (!ctx) {
    error = "SSL_CTX_new() failed" + take_errors();
    return nullptr;
  }
  SSL_CTX* c = ctx.get();
  set_versions(c, s.protocols);
  // As nginx: no renegotiation by clients, no compression, the server's cipher order when asked.
  SSL_CTX_set_options(
      c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Buffers only while data is in flight; a read takes all the socket has, not one record
  // header then its body.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(c, 1);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
  const auto at = where(s.where);
  if (!s.ciphers.empty() && SSL_CTX_set_cipher_list(c, s.ciphers.c_str()) != 1) {
    error = "SSL_CTX_set_cipher_list(\"" + s.ciphers + "\") failed" + take_errors() + at +
            "; write an OpenSSL cipher list such as `ssl_ciphers HIGH:!aNULL:!MD5;`";
    return nullptr;
  }
  const std::string& key = s.certificate_key.empty() ? s.certificate : s.certificate_key;
  if (!use_pair(c, s.certificate, key, at, error)) return nullptr;
  return ctx;
}

context make_client_context(const config::location_settings& s, std::string& error) {
  ERR_clear_error();
  context ctx(SSL_CTX_new(TLS_client_method()), ctx_deleter{});
  if (!ctx) {
    error = "SSL_CTX_new() failed" + take_errors();
    return nullptr;
  }
  SSL_CTX* c = ctx.get();
  set_versions(c, s.proxy_ssl_protocols.value_or(std::vector<std::string>{"TLSv1.2", "TLSv1.3"}));
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(c, 1);
  // Sessions are kept by wsgate per upstream address (proxy_ssl_session_reuse), not by OpenSSL.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  const std::string ciphers = s.proxy_ssl_ciphers.value_or("DEFAULT");
  if (SSL_CTX_set_cipher_list(c, ciphers.c_str()) != 1) {
    error = "SSL_CTX_set_cipher_list(\"" + ciphers + "\") failed" + take_errors() +
            "; write an OpenSSL cipher list such as `proxy_ssl_ciphers DEFAULT;`";
    return nullptr;
  }
  const std::string trusted = s.proxy_ssl_trusted_certificate.value_or("");
  const std::string at =
      s.proxy_ssl_trusted_certificate_where ? where(*s.proxy_ssl_trusted_certificate_where) : "";
  if (s.proxy_ssl_verify.value_or(false)) {
    if (trusted.empty()) {
      error =
          "no proxy_ssl_trusted_certificate for proxy_ssl_verify; name the CA certificates "
          "that sign the upstream's (`proxy_ssl_trusted_certificate /etc/ssl/certs/"
          "ca-certificates.crt;`) or turn proxy_ssl_verify off";
      return nullptr;
    }
    // Every certificate passes here; the result is read after the handshake.
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
    SSL_CTX_set_verify_depth(c, s.proxy_ssl_verify_depth.value_or(1));
  }
  if (!trusted.empty() && SSL_CTX_load_verify_locations(c, trusted.c_str(), nullptr) != 1) {
    error = "SSL_CTX_load_verify_locations(\"" + trusted + "\") failed" + take_errors() + at +
            "; check the path and that the file holds PEM CA certificates";
    return nullptr;
  }
  // A client certificate for upstreams that ask for one.
  const std::string cert = s.proxy_ssl_certificate.value_or("");
  if (!cert.empty()) {
    const std::string cert_at =
        s.proxy_ssl_certificate_where ? where(*s.proxy_ssl_certificate_where) : "";
    const std::string key = s.proxy_ssl_certificate_key.value_or("");
    if (key.empty()) {
      error = "no \"proxy_ssl_certificate_key\" is defined for certificate \"" + cert + "\"" +
              cert_at + "; add `proxy_ssl_certificate_key FILE;` naming its private key";
      return nullptr;
    }
    if (!use_pair(c, cert, key, cert_at, error)) return nullptr;
  }
  return ctx;
}

std::string protocol_name(const SSL* ssl) {
  return ssl ? SSL_get_version(ssl) : "";
}

}  // namespace wsgate::tls
