// test-upstream's two halves: plain HTTP (test_upstream.cpp, a hand parser that records the
// bytes exactly as received) and the WebSocket echo (test_upstream_ws.cpp, Beast), kept apart so
// the plain half compiles without Beast.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <string>

namespace wsgate::test {

// Completes the WebSocket handshake whose request bytes (and any bytes that followed them) were
// already read into `received`, answers 101 with `X-Test-Upstream: name`, then echoes every
// message back with its type until the peer closes.
boost::asio::awaitable<void> run_websocket_echo(boost::asio::ip::tcp::socket socket,
                                                std::string received, std::string name);

}  // namespace wsgate::test
