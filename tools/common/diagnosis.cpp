#include "diagnosis.hpp"

#include <openssl/x509_vfy.h>

namespace wsgate::client {
namespace {

constexpr std::string_view upgrade_fix =
    "add `proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
    "proxy_set_header Connection $connection_upgrade;` (with `map $http_upgrade "
    "$connection_upgrade "
    "{ default upgrade; '' close; }` in http{}) to the location, then run `wsgate -t` on the "
    "config";

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace

std::string_view exit_code_name(exit_code code) {
  switch (code) {
    case exit_code::ok:
      return "ok";
    case exit_code::usage:
      return "usage";
    case exit_code::connect:
      return "connect";
    case exit_code::tls:
      return "tls";
    case exit_code::refused:
      return "refused";
    case exit_code::timeout:
      return "timeout";
    case exit_code::closed:
      return "closed";
    case exit_code::missing_replies:
      return "missing_replies";
    case exit_code::protocol:
      return "protocol";
  }
  return "unknown";
}

std::string_view close_code_name(int code) {
  switch (code) {
    case 1000:
      return "normal closure";
    case 1001:
      return "going away";
    case 1002:
      return "protocol error";
    case 1003:
      return "unsupported data";
    case 1005:
      return "no status code";
    case 1006:
      return "abnormal closure (no close frame)";
    case 1007:
      return "invalid payload data";
    case 1008:
      return "policy violation";
    case 1009:
      return "message too big";
    case 1010:
      return "mandatory extension missing";
    case 1011:
      return "internal server error";
    case 1012:
      return "service restart";
    case 1013:
      return "try again later";
    case 1014:
      return "bad gateway";
    case 1015:
      return "TLS handshake failure";
    default:
      return code >= 4000 && code <= 4999 ? "application-defined" : "unknown";
  }
}

std::string close_code_advice(int code) {
  switch (code) {
    case 1000:
      return "the server ended the session normally";
    case 1001:
      return "the server (or the proxy) is shutting down or reloading; reconnect, and check "
             "whether the "
             "backend restarted";
    case 1002:
      return "the peer saw a WebSocket protocol violation; a middlebox may be altering frames";
    case 1003:
      return "the server does not accept this kind of message (text vs binary)";
    case 1006:
      return "the connection dropped without a close frame: the backend crashed or was killed, or "
             "a proxy "
             "timed out an idle tunnel (check proxy_read_timeout / proxy_send_timeout, default "
             "60s) or "
             "closed it on reload; look at the proxy's error log";
    case 1007:
      return "the server rejected the payload (e.g. text that is not UTF-8)";
    case 1008:
      return "the server's policy rejected the message or the session (authentication, origin)";
    case 1009:
      return "the message exceeded the server's (or proxy's) maximum message size; send smaller "
             "messages "
             "or raise the limit on the server";
    case 1011:
      return "the server hit an internal error while handling a message; check the backend's logs";
    case 1012:
      return "the server is restarting; reconnect after a moment";
    case 1013:
      return "the server is overloaded; retry later";
    case 1014:
      return "a gateway could not reach or got a bad answer from the upstream";
    default:
      return "see the server's documentation for this close code";
  }
}

std::string diagnose_status(int status, std::string_view body, std::string_view location,
                            bool websocket, std::string_view target) {
  std::string d;
  if (!websocket) {
    if (status == 400 && contains(body, "Unsupported upgrade request")) {
      return "the backend refused a plain request that carried `Connection: upgrade` (uvicorn "
             "answers "
             "400 to that): the proxy sends `Connection: upgrade` on every request, e.g. "
             "`proxy_set_header Connection \"upgrade\";`. Use nginx's map idiom instead: `map "
             "$http_upgrade $connection_upgrade { default upgrade; '' close; }` and "
             "`proxy_set_header "
             "Connection $connection_upgrade;`, then run `wsgate -t` on the config";
    }
    if (status == 400 && contains(body, "plain HTTP request was sent to HTTPS port")) {
      return "this port speaks TLS: use https:// (or wss://) instead of http://";
    }
  } else {
    if (status == 400 && contains(body, "plain HTTP request was sent to HTTPS port")) {
      return "this port speaks TLS: use wss:// instead of ws://";
    }
    if (status == 404 || status == 400 || status == 405 || status == 426) {
      d = "the server answered the upgrade as a plain request: the proxy in front probably does "
          "not "
          "forward Upgrade/Connection (or uses HTTP/1.0 upstream); ";
      d += upgrade_fix;
      if (status == 404) {
        d += ". If there is no proxy, check the path: '" + std::string(target) +
             "' may not be a WebSocket route on this server";
      }
      if (status == 400 && contains(body, "Unsupported upgrade request")) {
        d += ". The backend saw `Connection: upgrade` without `Upgrade: websocket`: the proxy "
             "forwards Connection but not the Upgrade header";
      }
      if (status == 426) {
        d += ". 426 Upgrade Required means the backend insists on an upgrade it did not receive";
      }
      return d;
    }
    if (status == 200) {
      return "the server answered 200 instead of 101: the request was served as an ordinary page "
             "(a "
             "static file or a catch-all location) instead of being proxied to the WebSocket "
             "backend; check which location matches '" +
             std::string(target) + "' and that it has proxy_pass plus the upgrade headers";
    }
    if (status == 403) {
      return "the backend refused the WebSocket handshake: the path '" + std::string(target) +
             "' is not a WebSocket route there (uvicorn/Starlette answer 403 for that; check the "
             "path "
             "the proxy sends upstream, i.e. the URI part of proxy_pass), or an "
             "Origin/authentication "
             "check failed (try -H 'Origin: ...')";
    }
  }
  switch (status) {
    case 301:
    case 302:
    case 303:
    case 307:
    case 308:
      d = "the server redirects";
      if (!location.empty()) {
        d += " to " + std::string(location);
      }
      d += ": ";
      if (!location.empty() && location.ends_with(std::string(target) + "/")) {
        d += "the URL lacks a trailing slash (a location like `/path/` redirects `/path`); add it";
      } else if (location.starts_with("https://")) {
        d += "plain HTTP is redirected to HTTPS; use wss:// or https://";
      } else {
        d += websocket ? "WebSocket clients do not follow redirects; probe the Location URL"
                       : "probe the Location URL";
      }
      return d;
    case 401:
      return "authentication required: send credentials with -H 'Authorization: ...'";
    case 403:
      return "forbidden: an access rule (allow/deny, auth) on the server or proxy refused the "
             "request";
    case 404:
      return "not found: no route for '" + std::string(target) +
             "' on the server; check the path and the URI the proxy sends upstream (proxy_pass "
             "with or "
             "without a URI part)";
    case 413:
      return "request too large for the server or proxy (client_max_body_size)";
    case 429:
      return "rate limited; retry later or check limit_req/limit_conn";
    case 500:
      return "the backend failed with an internal error; check its logs";
    case 502:
      return "bad gateway: the proxy could not reach the upstream or got an invalid answer: is the "
             "backend "
             "running and listening on the address in proxy_pass? check the proxy's error log "
             "(connect() failed / upstream prematurely closed)";
    case 503:
      return "service unavailable: the upstream is marked down or overloaded (max_fails, limits)";
    case 504:
      return "gateway timeout: the upstream accepted the connection but answered too slowly; check "
             "the "
             "backend, and proxy_connect_timeout / proxy_read_timeout";
    default:
      break;
  }
  if (status >= 500) {
    return "the server or an upstream failed; check the proxy's and the backend's error logs";
  }
  return "the server refused the request with HTTP " + std::to_string(status);
}

std::string diagnose_certificate(long verify_result, std::string_view host) {
  const std::string h(host);
  switch (verify_result) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return "the certificate is not valid for '" + h +
             "': check ssl_certificate / server_name on the server, or connect by the name the "
             "certificate "
             "was issued for";
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return "the certificate is self-signed (not issued by a trusted CA): trust it with --cacert "
             "FILE, or "
             "skip verification with --insecure for testing";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      return "the certificate's issuer is unknown: the server may not send its intermediate "
             "certificates "
             "(use the full chain in ssl_certificate), or its CA is private (--cacert FILE)";
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "the server's certificate has expired; renew it";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "the server's certificate is not valid yet (check clocks)";
    default:
      return std::string("certificate verification failed: ") +
             X509_verify_cert_error_string(verify_result) +
             " (--insecure skips verification for testing)";
  }
}

std::string diagnose_tls_failure(std::string_view openssl_message) {
  if (contains(openssl_message, "wrong version number") ||
      contains(openssl_message, "packet length too long") ||
      contains(openssl_message, "record layer failure") ||
      contains(openssl_message, "http request")) {
    return "the server does not speak TLS on this port (it answered in plain text): use ws:// or "
           "http://, or "
           "check that the server's listen directive has `ssl`";
  }
  if (contains(openssl_message, "stream truncated") ||
      contains(openssl_message, "unexpected eof")) {
    return "the server closed the connection during the TLS handshake: it probably does not speak "
           "TLS on this "
           "port (use ws:// or http://), or it refused this client's TLS version or SNI name";
  }
  if (contains(openssl_message, "alert")) {
    return "the server refused the TLS handshake (protocol version, cipher or SNI mismatch; check "
           "ssl_protocols and server_name)";
  }
  return "the TLS handshake failed; check that the port serves TLS and its certificate "
         "configuration";
}

}  // namespace wsgate::client
