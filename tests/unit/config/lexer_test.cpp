// The tokenizer splits exactly as ngx_conf_read_token, and templates as nginx's script compiler.
#include "config/lexer.hpp"

#include <gtest/gtest.h>

namespace wsgate::config {
namespace {

// All statements of `text`, each as its words joined by '|' plus the terminator.
std::vector<std::string> statements(std::string_view text) {
  lexer lx(text);
  std::vector<std::string> out;
  statement s;
  syntax_error e;
  for (;;) {
    if (!lx.next(s, e)) {
      out.push_back("ERROR " + e.message + " @" + std::to_string(e.line));
      return out;
    }
    std::string line;
    for (size_t i = 0; i < s.words.size(); ++i) line += (i ? "|" : "") + s.words[i].text;
    switch (s.ends) {
      case statement::end::semicolon:
        line += ";";
        break;
      case statement::end::block_start:
        line += "{";
        break;
      case statement::end::block_end:
        line += "}";
        break;
      case statement::end::eof:
        out.push_back(line + "EOF");
        return out;
    }
    out.push_back(line);
  }
}

using v = std::vector<std::string>;

TEST(Lexer, DirectivesBlocksAndComments) {
  EXPECT_EQ(statements("a b;\n# comment ; { }\nc {\n d e; # tail\n}\n"),
            (v{"a|b;", "c{", "d|e;", "}", "EOF"}));
}

TEST(Lexer, QuotesAndEscapes) {
  EXPECT_EQ(statements(R"(a "x y" 'p;q' "say \"hi\"" 'it\'s' "t\tn\nr\r" "\\" "\d";)"),
            (v{"a|x y|p;q|say \"hi\"|it's|t\tn\nr\r|\\|\\d;", "EOF"}));
}

TEST(Lexer, EscapesOutsideQuotes) {
  // nginx unescapes bare words too; a backslash hides a terminator from the tokenizer but,
  // not being one of \" \' \\ \t \r \n, stays in the word.
  EXPECT_EQ(statements(R"(a b\;c \"d;)"), (v{"a|b\\;c|\"d;", "EOF"}));
}

TEST(Lexer, EmptyQuotedWord) {
  auto st = statements("'' close;");
  EXPECT_EQ(st, (v{"|close;", "EOF"}));
  lexer lx("'' close;");
  statement s;
  syntax_error e;
  ASSERT_TRUE(lx.next(s, e));
  EXPECT_TRUE(s.words[0].quoted);
  EXPECT_FALSE(s.words[1].quoted);
}

TEST(Lexer, QuoteInsideWordIsLiteral) {
  EXPECT_EQ(statements(R"(a b"c d;)"), (v{"a|b\"c|d;", "EOF"}));
  EXPECT_EQ(statements("a b#c;"), (v{"a|b#c;", "EOF"}));
}

TEST(Lexer, BraceVariableKeepsBraces) {
  // `${` does not open a block, and the closing brace belongs to the word.
  EXPECT_EQ(statements("a ${host}x{ b; }"), (v{"a|${host}x{", "b;", "}", "EOF"}));
  EXPECT_EQ(statements("return 200 ${a}${b};"), (v{"return|200|${a}${b};", "EOF"}));
}

TEST(Lexer, WordEndsAtSemicolonOrBrace) {
  EXPECT_EQ(statements("a b;c d{}"), (v{"a|b;", "c|d{", "}", "EOF"}));
}

TEST(Lexer, LinesCountedAcrossQuotesAndComments) {
  lexer lx("a \"x\ny\";\n# c\n\nb\n;");
  statement s;
  syntax_error e;
  ASSERT_TRUE(lx.next(s, e));
  EXPECT_EQ(s.line, 2);
  EXPECT_EQ(s.words[1].text, "x\ny");
  ASSERT_TRUE(lx.next(s, e));
  EXPECT_EQ(s.words[0].text, "b");
  EXPECT_EQ(s.words[0].line, 5);
  EXPECT_EQ(s.line, 6);  // errors are reported where the directive ends, as nginx
}

TEST(Lexer, Errors) {
  EXPECT_EQ(statements("a b }"), (v{"ERROR unexpected \"}\" @1"}));
  EXPECT_EQ(statements(";"), (v{"ERROR unexpected \";\" @1"}));
  EXPECT_EQ(statements("\n{"), (v{"ERROR unexpected \"{\" @2"}));
  EXPECT_EQ(statements("a \"b\"c;"), (v{"ERROR unexpected \"c\" @1"}));
  EXPECT_EQ(statements("a b"), (v{"ERROR unexpected end of file, expecting \";\" or \"}\" @1"}));
  EXPECT_EQ(statements("a 'b;\n"),
            (v{"ERROR unexpected end of file, expecting \";\" or \"}\" @2"}));
  lexer param("daemon off", true);
  statement s;
  syntax_error e;
  EXPECT_FALSE(param.next(s, e));
  EXPECT_EQ(e.message, "unexpected end of parameter, expecting \";\"");
}

TEST(Lexer, QuoteMayBeFollowedByTerminator) {
  EXPECT_EQ(statements("a \"b\";c 'd'{}"), (v{"a|b;", "c|d{", "}", "EOF"}));
}

std::string parts(std::string_view raw) {
  template_string t;
  std::string err;
  if (!split_template(raw, t, err)) return "ERROR " + err;
  std::string out;
  for (const auto& p : t.parts) out += p.is_variable ? "[" + p.text + "]" : "'" + p.text + "'";
  EXPECT_EQ(t.raw, raw);
  return out;
}

TEST(Template, SplitsVariables) {
  EXPECT_EQ(parts("plain"), "'plain'");
  EXPECT_EQ(parts(""), "");
  EXPECT_EQ(parts("$host"), "[host]");
  EXPECT_EQ(parts("$http_x_forwarded_for, $remote_addr"),
            "[http_x_forwarded_for]', '[remote_addr]");
  EXPECT_EQ(parts("http://$host:8080/x"), "'http://'[host]':8080/x'");
  EXPECT_EQ(parts("${scheme}s://a"), "[scheme]'s://a'");
  EXPECT_EQ(parts("$host-$Var_9.x"), "[host]'-'[Var_9]'.x'");
  EXPECT_EQ(parts("/v1/$1/$22"), "'/v1/'[1]'/'[2]'2'");  // captures are one digit
  EXPECT_EQ(parts("a$b$c"), "'a'[b][c]");
}

TEST(Template, Errors) {
  EXPECT_EQ(parts("a$"), "ERROR invalid variable name");
  EXPECT_EQ(parts("$-x"), "ERROR invalid variable name");
  EXPECT_EQ(parts("${}"), "ERROR invalid variable name");
  EXPECT_EQ(parts("${host"), "ERROR the closing bracket in \"host\" variable is missing");
}

}  // namespace
}  // namespace wsgate::config
