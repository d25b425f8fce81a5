// test-upstream's WebSocket half: Beast's acceptor computes Sec-WebSocket-Accept and checks the
// handshake as a strict server would (a request without Connection: upgrade gets Beast's 400).
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include "test_upstream.hpp"

namespace wsgate::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

asio::awaitable<void> run_websocket_echo(asio::ip::tcp::socket socket, std::string received,
                                         std::string name) {
  websocket::stream<asio::ip::tcp::socket> ws(std::move(socket));
  ws.set_option(websocket::stream_base::decorator(
      [name](websocket::response_type& res) { res.set("X-Test-Upstream", name); }));
  try {
    // The buffer overload parses the request from bytes already read; what follows the request
    // (frames a client sent eagerly) stays queued for the first read.
    co_await ws.async_accept(asio::buffer(received), asio::use_awaitable);
    beast::flat_buffer message;
    for (;;) {
      message.clear();
      co_await ws.async_read(message, asio::use_awaitable);
      ws.text(ws.got_text());
      co_await ws.async_write(message.data(), asio::use_awaitable);
    }
  } catch (const boost::system::system_error&) {
    // Peer closed or the handshake failed: the connection simply ends.
  }
}

}  // namespace wsgate::test
