#include "http/status.hpp"

#ifndef WSGATE_VERSION
#define WSGATE_VERSION "0.1.0"
#endif

namespace wsgate::http {

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
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Moved Temporarily";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Time-out";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Request Entity Too Large";
    case 414:
      return "Request-URI Too Large";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Requested Range Not Satisfiable";
    case 421:
      return "Misdirected Request";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Temporarily Unavailable";
    case 504:
      return "Gateway Time-out";
    case 505:
      return "HTTP Version Not Supported";
    case 507:
      return "Insufficient Storage";
    default:
      return {};
  }
}

namespace {
// The title nginx's page uses when it differs from the status line.
std::string_view page_title(int status) {
  switch (status) {
    case 302:
      return "Found";
    case 304:
    case 305:
    case 306:
      return {};
    case 407:
    case 417:
    case 418:
    case 419:
    case 420:
      return {};
    default:
      break;
  }
  if (status == 421 || status == 429 || status == 507) return reason_phrase(status);
  if ((status >= 301 && status <= 308) || (status >= 400 && status <= 416) ||
      (status >= 500 && status <= 505))
    return reason_phrase(status);
  return {};
}
}  // namespace

std::string error_page(int status, std::string_view signature, bool too_large_header) {
  std::string title;
  std::string h1;
  std::string_view extra;
  if (status == 400 && too_large_header) {
    title = "400 Request Header Or Cookie Too Large";
    h1 = "400 Bad Request";
    extra = "<center>Request Header Or Cookie Too Large</center>\r\n";
  } else if (status == 497) {  // nginx's NGX_HTTP_TO_HTTPS: a plain request on a TLS port
    title = "400 The plain HTTP request was sent to HTTPS port";
    h1 = "400 Bad Request";
    extra = "<center>The plain HTTP request was sent to HTTPS port</center>\r\n";
  } else {
    const std::string_view t = page_title(status);
    if (t.empty()) return {};
    title = std::to_string(status) + " " + std::string(t);
    h1 = title;
  }
  std::string page;
  page.reserve(200);
  page += "<html>\r\n<head><title>";
  page += title;
  page += "</title></head>\r\n<body>\r\n<center><h1>";
  page += h1;
  page += "</h1></center>\r\n";
  page += extra;
  page += "<hr><center>";
  page += signature;
  page += "</center>\r\n</body>\r\n</html>\r\n";
  return page;
}

std::string_view server_signature(bool server_tokens) {
  return server_tokens ? std::string_view("wsgate/" WSGATE_VERSION) : std::string_view("wsgate");
}

}  // namespace wsgate::http
