// voice-service: the seed's voice-chat backend (WebSocket + HTTP), with espeak-ng speech.
// Protocol and endpoints: README.md next to this file.
#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/beast.hpp>
#include <boost/crc.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "page.hpp"
#include "protocol.hpp"
#include "synth.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using json = nlohmann::ordered_json;
using asio::awaitable;
using asio::use_awaitable;

namespace {

using ws_stream = websocket::stream<beast::tcp_stream>;

constexpr std::size_t audio_chunk = 32 * 1024;  // bytes of WAV per binary message

constexpr std::string_view simple_chat_path = "/api/v1/ws/simple-voice-chat";
constexpr std::string_view legacy_chat_path = "/ws/voice-conversation";
constexpr std::string_view status_path = "/api/v1/ws/simple-voice-chat/status";
constexpr std::string_view health_path = "/api/v1/health/voice";
constexpr std::string_view endpoints_path = "/api/v1/voice/endpoints";

// A live WebSocket session as seen by the shutdown logic.
struct session_handle {
  std::weak_ptr<ws_stream> ws;
  bool reading = false;
};

struct service {
  voice::speech_synthesizer& synth;
  asio::thread_pool& synth_thread;  // exactly one thread: espeak-ng is not thread-safe
  std::size_t max_message;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::map<std::string, int, std::less<>> active{{"simple-voice-chat", 0},
                                                 {"voice-conversation", 0}};
  std::uint64_t sessions_total = 0;
  std::set<session_handle*> sessions{};
  bool stopping = false;

  [[nodiscard]] double uptime() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  }
  [[nodiscard]] int active_total() const {
    int n = 0;
    for (const auto& [name, count] : active) {
      n += count;
    }
    return n;
  }
};

// Runs the synthesis on the synthesis thread and resumes the caller on its own executor, so the
// event loop never blocks on espeak-ng.
template <typename Token>
auto async_synthesize(service& svc, voice::speech_request request, Token&& token) {
  return asio::async_initiate<Token, void(voice::synthesis)>(
      [&svc](auto handler, voice::speech_request req) {
        auto work = asio::make_work_guard(asio::get_associated_executor(handler));
        asio::post(svc.synth_thread, [&svc, handler = std::move(handler), work = std::move(work),
                                      req = std::move(req)]() mutable {
          voice::synthesis result = svc.synth.synthesize(req.text, req.voice);
          auto ex = work.get_executor();
          asio::post(ex, [handler = std::move(handler), result = std::move(result)]() mutable {
            std::move(handler)(std::move(result));
          });
        });
      },
      token, std::move(request));
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) {
    return {target, {}};
  }
  return {target.substr(0, q), target.substr(q + 1)};
}

// The WebSocket routes; anything else answers a handshake with 403 like uvicorn does.
std::string_view ws_endpoint(std::string_view path) {
  if (path == simple_chat_path) {
    return "simple-voice-chat";
  }
  if (path == legacy_chat_path) {
    return "voice-conversation";
  }
  return {};
}

http::response<http::string_body> json_response(const http::request<http::string_body>& req,
                                                http::status status, const json& body) {
  http::response<http::string_body> res{status, req.version()};
  res.set(http::field::server, "voice-service");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(req.keep_alive());
  res.body() = body.dump();
  res.prepare_payload();
  return res;
}

http::response<http::string_body> text_response(const http::request<http::string_body>& req,
                                                http::status status, std::string_view content_type,
                                                std::string body) {
  http::response<http::string_body> res{status, req.version()};
  res.set(http::field::server, "voice-service");
  res.set(http::field::content_type, content_type);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

json endpoints_document(const service& svc, const http::request<http::string_body>& req) {
  std::string host(req[http::field::host]);
  if (host.empty()) {
    host = "localhost:8000";
  }
  // Behind a TLS-terminating proxy the scheme the client used arrives in X-Forwarded-Proto.
  const bool secure = req["X-Forwarded-Proto"] == "https";
  const std::string http_base = std::string(secure ? "https://" : "http://") + host;
  const std::string ws_base = std::string(secure ? "wss://" : "ws://") + host;
  json endpoints = json::array();
  endpoints.push_back(
      {{"name", "simple-voice-chat"},
       {"type", "websocket"},
       {"path", simple_chat_path},
       {"url", ws_base + std::string(simple_chat_path) + "?language=ar&voice_type=female"},
       {"parameters",
        {{"language", json::array({"ar", "en"})}, {"voice_type", json::array({"female", "male"})}}},
       {"active_sessions", svc.active.at("simple-voice-chat")}});
  endpoints.push_back({{"name", "voice-conversation"},
                       {"type", "websocket"},
                       {"legacy", true},
                       {"path", legacy_chat_path},
                       {"url", ws_base + std::string(legacy_chat_path) + "?preset=qwen_optimized"},
                       {"active_sessions", svc.active.at("voice-conversation")}});
  for (const auto& [name, path] :
       {std::pair{"simple-voice-chat-status", status_path}, std::pair{"voice-health", health_path},
        std::pair{"voice-endpoints", endpoints_path}}) {
    endpoints.push_back({{"name", name},
                         {"type", "http"},
                         {"method", "GET"},
                         {"path", path},
                         {"url", http_base + std::string(path)}});
  }
  endpoints.push_back({{"name", "test-page"},
                       {"type", "http"},
                       {"method", "GET"},
                       {"path", "/"},
                       {"url", http_base + "/"}});
  return {{"service", "voice-service"},
          {"endpoints", endpoints},
          {"active_sessions", svc.active_total()},
          {"sessions_total", svc.sessions_total},
          {"uptime_seconds", svc.uptime()}};
}

http::response<http::string_body> route_http(service& svc,
                                             const http::request<http::string_body>& req) {
  const auto [path, query] = split_target(req.target());
  const bool known =
      path == "/" || path == status_path || path == health_path || path == endpoints_path;
  if (!ws_endpoint(path).empty() || !known) {
    // A plain request on a WebSocket-only route is "not found", as in FastAPI.
    return json_response(req, http::status::not_found, {{"detail", "Not Found"}});
  }
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    auto res =
        json_response(req, http::status::method_not_allowed, {{"detail", "Method Not Allowed"}});
    res.set(http::field::allow, "GET");
    return res;
  }
  if (path == "/") {
    return text_response(req, http::status::ok, "text/html; charset=utf-8",
                         std::string(voice::test_page));
  }
  if (path == status_path) {
    return json_response(req, http::status::ok,
                         {{"status", "ok"},
                          {"service", "simple-voice-chat"},
                          {"websocket_path", simple_chat_path},
                          {"active_sessions", svc.active.at("simple-voice-chat")},
                          {"supported_languages", json::array({"ar", "en"})},
                          {"supported_voice_types", json::array({"female", "male"})},
                          {"uptime_seconds", svc.uptime()}});
  }
  if (path == health_path) {
    json espeak{{"available", svc.synth.available()},
                {"version", svc.synth.version()},
                {"sample_rate", svc.synth.sample_rate()}};
    if (!svc.synth.available()) {
      espeak["error"] = svc.synth.init_error();
    }
    return json_response(req, http::status::ok,
                         {{"status", svc.synth.available() ? "healthy" : "degraded"},
                          {"service", "voice"},
                          {"espeak", espeak},
                          {"active_sessions", svc.active_total()},
                          {"uptime_seconds", svc.uptime()}});
  }
  return json_response(req, http::status::ok, endpoints_document(svc, req));
}

awaitable<void> send_json(ws_stream& ws, const json& event) {
  ws.text(true);
  co_await ws.async_write(asio::buffer(event.dump()), use_awaitable);
}

awaitable<void> speak(service& svc, ws_stream& ws, voice::speech_request request) {
  const voice::synthesis audio = co_await async_synthesize(svc, std::move(request), use_awaitable);
  if (!audio.error.empty()) {
    // Named, not braced in the co_await: GCC 12 miscompiles initializer lists in coroutines.
    const json failure{{"type", "error"}, {"message", "speech synthesis failed: " + audio.error}};
    co_await send_json(ws, failure);
    co_return;
  }
  int messages = 0;
  ws.binary(true);
  for (std::size_t off = 0; off < audio.wav.size(); off += audio_chunk) {
    const std::size_t n = std::min(audio_chunk, audio.wav.size() - off);
    co_await ws.async_write(asio::buffer(audio.wav.data() + off, n), use_awaitable);
    ++messages;
  }
  // The WAV's CRC-32 (zlib's), so a client can tell the relayed bytes are the ones sent.
  boost::crc_32_type crc;
  crc.process_bytes(audio.wav.data(), audio.wav.size());
  const json end{
      {"type", "audio_end"},
      {"bytes", audio.wav.size()},
      {"crc32", crc.checksum()},
      {"messages", messages},
      {"format", "wav"},
      {"encoding", "pcm_s16le"},
      {"channels", 1},
      {"sample_rate", audio.sample_rate},
      {"samples", audio.samples},
      {"duration_ms", audio.sample_rate > 0
                          ? audio.samples * 1000 / static_cast<std::size_t>(audio.sample_rate)
                          : 0}};
  co_await send_json(ws, end);
}

awaitable<void> run_websocket(service& svc, beast::tcp_stream stream,
                              http::request<http::string_body> req, std::string endpoint,
                              std::string query) {
  auto ws = std::make_shared<ws_stream>(std::move(stream));
  ws->set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
  ws->set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "voice-service"); }));
  // The limit is enforced below, message by message: Beast's own limit drops the connection right
  // after its close frame, and a client still sending then sees a reset instead of 1009.
  ws->read_message_max(0);
  boost::system::error_code ec;
  co_await ws->async_accept(req, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    co_return;
  }
  session_handle handle{ws};
  svc.sessions.insert(&handle);
  ++svc.active[endpoint];
  ++svc.sessions_total;
  struct unregister {
    service& s;
    session_handle* h;
    std::string ep;
    ~unregister() {
      s.sessions.erase(h);
      --s.active[ep];
    }
  } guard{svc, &handle, endpoint};

  voice::session_state state;
  try {
    const voice::outcome opened = voice::open_session(state, endpoint, voice::parse_query(query));
    for (const auto& event : opened.events) {
      co_await send_json(*ws, event);
    }
    beast::flat_buffer buffer;
    while (!svc.stopping) {
      buffer.clear();
      handle.reading = true;
      bool too_big = false;
      do {
        co_await ws->async_read_some(buffer, 64 * 1024, asio::redirect_error(use_awaitable, ec));
        too_big = buffer.size() > svc.max_message;
      } while (!ec && !too_big && !ws->is_message_done());
      handle.reading = false;
      if (ec) {
        co_return;  // closed by the peer, or the connection dropped
      }
      if (too_big) {
        // async_close reads and discards the rest until the peer's close frame: a clean 1009.
        const websocket::close_reason reason{
            websocket::close_code::too_big,
            "message larger than " + std::to_string(svc.max_message) + " bytes"};
        co_await ws->async_close(reason, asio::redirect_error(use_awaitable, ec));
        co_return;
      }
      if (ws->got_binary()) {
        co_await send_json(*ws, voice::handle_binary(state, buffer.size()));
        continue;
      }
      const voice::outcome out = voice::handle_text(state, beast::buffers_to_string(buffer.data()));
      for (const auto& event : out.events) {
        co_await send_json(*ws, event);
      }
      if (out.speak) {
        co_await speak(svc, *ws, *out.speak);
      }
    }
    co_await ws->async_close(websocket::close_code::going_away,
                             asio::redirect_error(use_awaitable, ec));
  } catch (const boost::system::system_error&) {
    // The peer went away mid-write; nothing left to tell it.
  }
}

awaitable<void> run_session(service& svc, tcp::socket socket) {
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // events are small and latency matters
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  boost::system::error_code ec;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(64 * 1024);
    stream.expires_after(std::chrono::seconds(30));
    co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      break;
    }
    http::request<http::string_body> req = parser.release();
    const auto [path, query] = split_target(req.target());
    http::response<http::string_body> res;
    if (websocket::is_upgrade(req)) {
      const std::string_view endpoint = ws_endpoint(path);
      if (!endpoint.empty()) {
        stream.expires_never();
        co_await run_websocket(svc, std::move(stream), std::move(req), std::string(endpoint),
                               std::string(query));
        co_return;
      }
      res = text_response(req, http::status::forbidden, "text/plain", "");
      res.keep_alive(false);
    } else if (http::token_list{req[http::field::connection]}.exists("upgrade")) {
      // uvicorn's answer to "Connection: upgrade" without "Upgrade: websocket": the seed's
      // "fixed" nginx config sends exactly that on plain requests.
      res = text_response(req, http::status::bad_request, "text/plain; charset=utf-8",
                          "Unsupported upgrade request.");
      res.keep_alive(false);
    } else {
      res = route_http(svc, req);
      if (req.method() == http::verb::head) {
        const auto length = res.body().size();
        res.body().clear();
        res.content_length(length);
      }
    }
    const bool keep_alive = res.keep_alive() && !svc.stopping;
    res.keep_alive(keep_alive);
    co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
    if (ec || !keep_alive) {
      break;
    }
  }
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

awaitable<void> listen(service& svc, tcp::acceptor& acceptor) {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || svc.stopping) {
        co_return;
      }
      continue;  // e.g. EMFILE: keep serving the connections we have
    }
    asio::co_spawn(acceptor.get_executor(), run_session(svc, std::move(socket)), asio::detached);
  }
}

// Stops accepting, closes every WebSocket with 1001, and stops the loop once they are gone (or
// after a grace period).
awaitable<void> shut_down(service& svc, tcp::acceptor& acceptor, asio::io_context& ioc) {
  svc.stopping = true;
  boost::system::error_code ec;
  acceptor.close(ec);
  for (session_handle* h : svc.sessions) {
    // A close may run alongside the pending read; a session busy writing or synthesising
    // notices `stopping` and closes itself.
    if (auto ws = h->ws.lock(); ws && h->reading) {
      ws->async_close(websocket::close_code::going_away, [ws](boost::system::error_code) {});
    }
  }
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (int i = 0; i < 60 && !svc.sessions.empty(); ++i) {
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(use_awaitable);
  }
  ioc.stop();
}

bool parse_listen(const std::string& text, tcp::endpoint& out, std::string& error) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    error = "--listen wants ADDR:PORT (e.g. 127.0.0.1:8000), got '" + text + "'";
    return false;
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") {
    host = "127.0.0.1";
  }
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) {
    error = "--listen: '" + host + "' is not an IP address (use e.g. 127.0.0.1 or 0.0.0.0)";
    return false;
  }
  unsigned long port = 0;
  try {
    std::size_t used = 0;
    port = std::stoul(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1 || port > 65535) {
      throw std::out_of_range("port");
    }
  } catch (const std::exception&) {
    error = "--listen: port must be a number 0-65535 (0 picks a free port), got '" +
            text.substr(colon + 1) + "'";
    return false;
  }
  out = tcp::endpoint(address, static_cast<unsigned short>(port));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"voice-service: the voice-chat backend (WebSocket + HTTP, espeak-ng speech)"};
  std::string listen_arg = "127.0.0.1:8000";
  std::size_t max_message = 1024 * 1024;
  app.add_option("--listen", listen_arg, "ADDR:PORT to listen on; port 0 picks a free port")
      ->capture_default_str();
  app.add_option("--max-message", max_message,
                 "largest WebSocket message accepted, in bytes (larger: close 1009)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{64} * 1024 * 1024));
  CLI11_PARSE(app, argc, argv);

  tcp::endpoint endpoint;
  std::string error;
  if (!parse_listen(listen_arg, endpoint, error)) {
    std::cerr << "voice-service: " << error << "\n";
    return 1;
  }

  voice::speech_synthesizer synth;
  if (!synth.available()) {
    std::cerr << "voice-service: warning: " << synth.init_error()
              << "; text replies will carry an error\n";
  }
  asio::io_context ioc;
  asio::thread_pool synth_thread(1);
  service svc{.synth = synth, .synth_thread = synth_thread, .max_message = max_message};

  tcp::acceptor acceptor(ioc);
  try {
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& e) {
    std::cerr << "voice-service: cannot listen on " << listen_arg << ": " << e.code().message()
              << " (is another process using the port? try --listen 127.0.0.1:0)\n";
    return 1;
  }
  const tcp::endpoint bound = acceptor.local_endpoint();
  std::cout << "listening " << bound.address().to_string() << ":" << bound.port() << std::endl;

  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (!ec) {
      asio::co_spawn(ioc, shut_down(svc, acceptor, ioc), asio::detached);
    }
  });
  asio::co_spawn(ioc, listen(svc, acceptor), asio::detached);
  ioc.run();
  synth_thread.stop();
  synth_thread.join();
  std::cout << "stopped" << std::endl;
  return 0;
}
