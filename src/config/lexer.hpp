// nginx's configuration syntax, token by token (ngx_conf_read_token): words separated by
// blanks, single/double quotes with \" \' \\ \n \t \r escapes, `#` comments, and statements
// ended by `;`, `{` or `}`.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/model.hpp"

namespace wsgate::config {

struct token {
  std::string text;  // unescaped, quotes removed
  bool quoted = false;
  int line = 0;
};

// One statement: the words of a directive and what ended it.
struct statement {
  enum class end { semicolon, block_start, block_end, eof } ends = end::eof;
  std::vector<token> words;
  int line = 0;  // line of the terminating character, where nginx reports directive errors
};

// A syntax error, already worded as nginx words it.
struct syntax_error {
  std::string message;
  int line = 0;
};

class lexer {
 public:
  // `text` must outlive the lexer. `parameter` selects -g wording ("unexpected end of
  // parameter") for text given on the command line.
  explicit lexer(std::string_view text, bool parameter = false)
      : text_(text), parameter_(parameter) {}
  // Reads the next statement; returns false and fills `error` on a syntax error.
  bool next(statement& out, syntax_error& error);
  int line() const { return line_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
  bool parameter_ = false;
};

// Splits an argument into literal text and $variables as nginx's script compiler does:
// `$name` takes [A-Za-z0-9_]+, `${name}` may sit against letters, `$1`..`$9` are regex captures
// (a part whose text is the digit). Returns false with nginx's message on a bad variable.
bool split_template(std::string_view raw, template_string& out, std::string& error);

}  // namespace wsgate::config
