#include <gtest/gtest.h>

#include <string>

#include "http/chunked.hpp"
#include "http/flat_buffer.hpp"
#include "http/request_parser.hpp"
#include "http/response_parser.hpp"
#include "http/status.hpp"

using namespace wsgate::http;

namespace {

struct outcome {
  parse_result result;
  int status;
  bool too_large;
};

outcome parse_all(const std::string& raw, header_limits limits = {}) {
  request_parser p;
  p.reset(limits);
  const auto r = p.parse(raw);
  return {r, p.error_status(), p.header_too_large()};
}

// Feeds the request one byte at a time: the result must not depend on how reads split it.
outcome parse_bytewise(const std::string& raw, header_limits limits = {}) {
  request_parser p;
  p.reset(limits);
  parse_result r = parse_result::need_more;
  for (size_t i = 1; i <= raw.size() && r == parse_result::need_more; ++i)
    r = p.parse(std::string_view(raw).substr(0, i));
  return {r, p.error_status(), p.header_too_large()};
}

}  // namespace

TEST(RequestParser, ParsesHeadWithViews) {
  request_parser p;
  p.reset({});
  const std::string raw =
      "\r\nPOST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Y:  v  \r\n\r\nhello";
  ASSERT_EQ(p.parse(raw), parse_result::done);
  const auto& h = p.head();
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.target, "/a?b=1");
  EXPECT_EQ(h.minor, 1);
  ASSERT_EQ(h.headers.size(), 3u);
  EXPECT_EQ(h.headers[2].name, "X-Y");
  EXPECT_EQ(h.headers[2].value, "v");
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_EQ(raw.substr(h.size), "hello");
  EXPECT_TRUE(h.keep_alive);
}

TEST(RequestParser, ByteByByteGivesTheSameAnswer) {
  for (const std::string& raw :
       {std::string("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        std::string("GET /x HTTP/1.0\nConnection: keep-alive\n\n"),
        std::string("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
        std::string("get / HTTP/1.1\r\n\r\n")}) {
    const auto a = parse_all(raw), b = parse_bytewise(raw);
    EXPECT_EQ(a.result, b.result) << raw;
    EXPECT_EQ(a.status, b.status) << raw;
  }
}

TEST(RequestParser, StatusesAsNginx) {
  struct tc {
    const char* raw;
    int status;
  } cases[] = {
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"get / HTTP/1.1\r\n\r\n", 400},
      {"GET / http/1.1\r\n\r\n", 400},
      {"GET /a b HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nA: 1\r\n B: 2\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nBad Name: 2\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400},
      {"TRACE / HTTP/1.1\r\n\r\n", 405},
  };
  for (const auto& c : cases) {
    const auto o = parse_all(c.raw);
    EXPECT_EQ(o.result, parse_result::error) << c.raw;
    EXPECT_EQ(o.status, c.status) << c.raw;
  }
  EXPECT_EQ(parse_all("GET / HTTP/1.1\r\nNoColon\r\nBad@Name: 1\r\n\r\n").result,
            parse_result::done);
}

TEST(RequestParser, HeaderBuffersPackedAsNginx) {
  const header_limits limits{1024, 4, 8192};
  const std::string ok_line = "GET /" + std::string(8170, 'a') + " HTTP/1.1\r\n\r\n";
  EXPECT_EQ(parse_all(ok_line, limits).result, parse_result::done);
  const auto long_line = parse_all("GET /" + std::string(8200, 'a') + " HTTP/1.1\r\n\r\n", limits);
  EXPECT_EQ(long_line.status, 414);
  const auto long_header =
      parse_all("GET / HTTP/1.1\r\nX: " + std::string(8190, 'a') + "\r\n\r\n", limits);
  EXPECT_EQ(long_header.status, 400);
  EXPECT_TRUE(long_header.too_large);
  auto many = [](int n) {
    std::string r = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < n; ++i)
      r += "X" + std::to_string(i) + ": " + std::string(4000, 'a') + "\r\n";
    return r + "\r\n";
  };
  EXPECT_EQ(parse_all(many(8), limits).result, parse_result::done);
  EXPECT_TRUE(parse_all(many(9), limits).too_large);
  // An incomplete head that already exceeds every buffer is refused without waiting for more.
  EXPECT_EQ(parse_all("GET / HTTP/1.1\r\nX: " + std::string(9000, 'a'), limits).status, 400);
}

TEST(Chunked, DecodesAcrossSplitsAndRejectsGarbage) {
  const std::string body = "5;ext=1\r\nhello\r\nB\r\n, world!!!!\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  for (size_t split = 1; split < body.size(); ++split) {
    chunked_decoder d;
    std::string out, in = body.substr(0, split);
    size_t fed = split;
    bool done = false;
    while (!done) {
      auto step = d.next(in);
      out.append(step.data);
      ASSERT_FALSE(step.error);
      in.erase(0, step.consumed);
      done = step.done;
      if (!done && in.empty()) {
        if (fed >= body.size()) break;
        in = body.substr(fed, 1);
        ++fed;
      }
    }
    EXPECT_TRUE(done) << split;
    EXPECT_EQ(out, "hello, world!!!!") << split;
    EXPECT_EQ(in + body.substr(fed), "NEXT") << split;
  }
  chunked_decoder bad;
  EXPECT_TRUE(bad.next("zz\r\n").error);
  char hdr[24];
  EXPECT_EQ(std::string(hdr, chunk_header(hdr, 0x1a2b)), "1a2b\r\n");
}

TEST(ResponseParser, StatusHeadersAndFraming) {
  response_head h;
  const std::string raw = "HTTP/1.1 200 Fine\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
  ASSERT_EQ(parse_response(raw, h), parse_result::done);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.reason, "Fine");
  EXPECT_EQ(h.content_length, 2u);
  EXPECT_TRUE(h.connection_close);
  EXPECT_EQ(raw.substr(h.size), "ok");
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\nContent-", h), parse_result::need_more);
  EXPECT_EQ(parse_response("garbage\r\n\r\n", h), parse_result::error);
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", h),
            parse_result::error);
}

TEST(Status, PagesHaveNginxShapeAndLength) {
  // nginx 1.22.1's 404 page is 153 bytes with "nginx/1.22.1" (12 characters) in it.
  EXPECT_EQ(error_page(404, "nginx/1.22.1").size(), 153u);
  EXPECT_EQ(error_page(302, "nginx/1.22.1").size(), 145u);
  EXPECT_EQ(error_page(414, "nginx/1.22.1").size(), 177u);
  EXPECT_EQ(error_page(400, "nginx/1.22.1", true).size(), 233u);
  EXPECT_EQ(error_page(418, "wsgate"), "");
  EXPECT_EQ(reason_phrase(302), "Moved Temporarily");
  EXPECT_EQ(server_signature(false), "wsgate");
}

TEST(FlatBuffer, GrowsCompactsAndReleases) {
  flat_buffer b;
  auto [p, n] = b.prepare(4, 16);
  ASSERT_GE(n, 4u);
  std::memcpy(p, "abcd", 4);
  b.commit(4);
  b.consume(2);
  EXPECT_EQ(b.data(), "cd");
  auto [q, m] = b.prepare(14, 16);
  EXPECT_GE(m, 14u);
  (void)q;
  EXPECT_EQ(b.data(), "cd");
  b.consume(2);
  b.release();
  EXPECT_EQ(b.capacity(), 0u);
}
