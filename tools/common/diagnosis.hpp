#pragma once
// What a failed probe means and what to check: exit codes, close codes, HTTP statuses, TLS errors.
// Shared by the client tools; no networking here.
#include <string>
#include <string_view>

namespace wsgate::client {

// wsgate-probe's exit codes (tools/probe/README.md).
enum class exit_code : int {
  ok = 0,
  usage = 1,            // bad arguments
  connect = 2,          // DNS failure, connection refused or unreachable
  tls = 3,              // TLS handshake or certificate problem
  refused = 4,          // the handshake (or plain request) got a non-success HTTP status
  timeout = 5,          // no answer in time while connecting or handshaking
  closed = 6,           // the peer closed the WebSocket (close frame or dropped connection)
  missing_replies = 7,  // connected, but some message got no reply in time
  protocol = 8,         // the peer answered something that is not valid HTTP/WebSocket
};

std::string_view exit_code_name(exit_code code);

// "normal closure", "message too big", ... for a WebSocket close code.
std::string_view close_code_name(int code);
// What a close code usually means in a proxied setup and what to check.
std::string close_code_advice(int code);

// Diagnosis for a handshake (websocket) or plain request that got `status` instead of 101/2xx.
// `body` and `location` are from the response (may be empty).
std::string diagnose_status(int status, std::string_view body, std::string_view location,
                            bool websocket, std::string_view target);

// Diagnosis for a certificate verification failure, from OpenSSL's X509_V_ERR_* code.
std::string diagnose_certificate(long verify_result, std::string_view host);

// Diagnosis for a TLS handshake that failed before certificate checks (e.g. plain HTTP port).
std::string diagnose_tls_failure(std::string_view openssl_message);

}  // namespace wsgate::client
