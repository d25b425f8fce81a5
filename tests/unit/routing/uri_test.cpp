// URI parsing and normalisation as nginx 1.22 (each expectation checked against Debian's nginx
// through proxy_pass with a URI part, which sends the normalised $uri).
#include "routing/uri.hpp"

#include <gtest/gtest.h>

namespace wsgate::routing {
namespace {

std::string norm(std::string_view path, bool merge = true) {
  auto r = normalize_path(path, merge);
  return r ? *r : "<400>";
}

TEST(NormalizePath, DecodesPercentEscapes) {
  EXPECT_EQ(norm("/a%20b"), "/a b");
  EXPECT_EQ(norm("/%D0%B9"), "/\xD0\xB9");
  EXPECT_EQ(norm("/a%2Fb"), "/a/b");
  EXPECT_EQ(norm("/a%2fb"), "/a/b");
  EXPECT_EQ(norm("/a+b"), "/a+b");
}

TEST(NormalizePath, DecodedSlashesAndDotsTakePartInResolution) {
  EXPECT_EQ(norm("/a%2Fb/../c"), "/a/c");
  EXPECT_EQ(norm("/a/%2e%2e/b"), "/b");
  EXPECT_EQ(norm("/a%2F%2Fb"), "/a/b");
}

TEST(NormalizePath, DecodedQuestionMarkAndPercentAreData) {
  EXPECT_EQ(norm("/a%3Fb"), "/a?b");
  EXPECT_EQ(norm("/a%25b"), "/a%b");
  EXPECT_EQ(norm("/a%23b"), "/a#b");
}

TEST(NormalizePath, RejectsBadEscapesAndNul) {
  EXPECT_EQ(norm("/a%zz"), "<400>");
  EXPECT_EQ(norm("/a%2"), "<400>");
  EXPECT_EQ(norm("/a%"), "<400>");
  EXPECT_EQ(norm("/a%00"), "<400>");
}

TEST(NormalizePath, ResolvesDotSegments) {
  EXPECT_EQ(norm("/a/./b"), "/a/b");
  EXPECT_EQ(norm("/a/b/../c"), "/a/c");
  EXPECT_EQ(norm("/a/b/.."), "/a/");
  EXPECT_EQ(norm("/a/."), "/a/");
  EXPECT_EQ(norm("/a/..b"), "/a/..b");
  EXPECT_EQ(norm("/a/.b"), "/a/.b");
  EXPECT_EQ(norm("/.."), "<400>");
  EXPECT_EQ(norm("/a/../.."), "<400>");
  EXPECT_EQ(norm("/a/../../b"), "<400>");
}

TEST(NormalizePath, MergesSlashesUnlessDisabled) {
  EXPECT_EQ(norm("//a///b"), "/a/b");
  EXPECT_EQ(norm("//a///b", false), "//a///b");
  EXPECT_EQ(norm("/a//../b", false), "/a/b");
}

TEST(ParseTarget, SplitsArgsAndKeepsTheRawTarget) {
  auto t = parse_target("/a%20b//c?x=%20&y");
  ASSERT_TRUE(t.ok);
  EXPECT_EQ(t.uri, "/a b/c");
  EXPECT_EQ(t.args, "x=%20&y");
  EXPECT_EQ(t.unparsed_uri, "/a%20b//c?x=%20&y");
  EXPECT_TRUE(t.quoted_uri);
  auto plain = parse_target("/x");
  EXPECT_FALSE(plain.quoted_uri);
  EXPECT_FALSE(plain.has_args);
}

TEST(ParseTarget, AbsoluteFormSetsTheHost) {
  auto t = parse_target("http://WWW.Example.com:8080/p?q=1");
  ASSERT_TRUE(t.ok);
  EXPECT_EQ(t.host, "www.example.com");
  EXPECT_EQ(t.uri, "/p");
  EXPECT_EQ(t.args, "q=1");
  EXPECT_EQ(t.unparsed_uri, "/p?q=1");
  auto bare = parse_target("http://h");
  ASSERT_TRUE(bare.ok);
  EXPECT_EQ(bare.uri, "/");
  EXPECT_EQ(bare.unparsed_uri, "/");
}

TEST(ParseTarget, RejectsWhatNginxRejects) {
  EXPECT_FALSE(parse_target("a/b").ok);
  EXPECT_FALSE(parse_target("/a b").ok);
  EXPECT_FALSE(parse_target("/..").ok);
  EXPECT_FALSE(parse_target("/%zz").ok);
  EXPECT_FALSE(parse_target("").ok);
}

TEST(Escape, UriAndArgsTables) {
  EXPECT_EQ(escape("/a b?c#d%e"), "/a%20b%3Fc%23d%25e");
  EXPECT_EQ(escape("/\xD0\xB9"), "/%D0%B9");
  EXPECT_EQ(escape("/a&b+c;d=e"), "/a&b+c;d=e");
  EXPECT_EQ(escape("a&b+c;d=e", escape_kind::args), "a%26b%2Bc%3Bd=e");
}

TEST(ValidateHost, LowercasesStripsPortAndTrailingDot) {
  EXPECT_EQ(validate_host("Example.COM:8080"), "example.com");
  EXPECT_EQ(validate_host("example.com."), "example.com");
  EXPECT_EQ(validate_host("[::1]:80"), "[::1]");
  EXPECT_FALSE(validate_host("a..b"));
  EXPECT_FALSE(validate_host("a/b"));
  EXPECT_FALSE(validate_host(""));
  EXPECT_FALSE(validate_host(":80"));
}

}  // namespace
}  // namespace wsgate::routing
