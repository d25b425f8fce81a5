#include "config/lexer.hpp"

#include <fmt/format.h>

namespace wsgate::config {
namespace {

bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// nginx unescapes every word the same way, quoted or not: \" \' \\ drop the backslash, \t \r \n
// become the control character, any other backslash stays as written.
std::string unescape(std::string_view w) {
  std::string out;
  out.reserve(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] == '\\' && i + 1 < w.size()) {
      char n = w[i + 1];
      if (n == '"' || n == '\'' || n == '\\') {
        out += n;
        ++i;
        continue;
      }
      if (n == 't' || n == 'r' || n == 'n') {
        out += n == 't' ? '\t' : n == 'r' ? '\r' : '\n';
        ++i;
        continue;
      }
    }
    out += w[i];
  }
  return out;
}

}  // namespace

// A transcription of ngx_conf_read_token's state machine, so odd inputs (`a"b`, `"a"b`,
// `${x}`, `\;`) split exactly as nginx splits them.
bool lexer::next(statement& out, syntax_error& error) {
  out.words.clear();
  bool last_space = true, need_space = false, sharp_comment = false, variable = false;
  bool quoted = false, s_quoted = false, d_quoted = false;
  size_t start = 0;
  int start_line = line_;

  auto fail = [&](std::string msg) {
    error = {std::move(msg), line_};
    return false;
  };

  for (;;) {
    if (pos_ >= text_.size()) {
      if (!out.words.empty() || !last_space) {
        if (parameter_) return fail("unexpected end of parameter, expecting \";\"");
        return fail("unexpected end of file, expecting \";\" or \"}\"");
      }
      out.ends = statement::end::eof;
      out.line = line_;
      return true;
    }
    char ch = text_[pos_++];
    if (ch == '\n') {
      ++line_;
      if (sharp_comment) sharp_comment = false;
    }
    if (sharp_comment) continue;
    if (quoted) {
      quoted = false;
      continue;
    }
    if (need_space) {
      if (blank(ch)) {
        last_space = true;
        need_space = false;
        continue;
      }
      if (ch == ';') {
        out.ends = statement::end::semicolon;
        out.line = line_;
        return true;
      }
      if (ch == '{') {
        out.ends = statement::end::block_start;
        out.line = line_;
        return true;
      }
      if (ch == ')') {
        last_space = true;
        need_space = false;
      } else {
        return fail(fmt::format("unexpected \"{}\"", ch));
      }
    }
    if (last_space) {
      start = pos_ - 1;
      start_line = line_;
      if (blank(ch)) continue;
      switch (ch) {
        case ';':
        case '{':
          if (out.words.empty()) return fail(fmt::format("unexpected \"{}\"", ch));
          out.ends = ch == '{' ? statement::end::block_start : statement::end::semicolon;
          out.line = line_;
          return true;
        case '}':
          if (!out.words.empty()) return fail("unexpected \"}\"");
          out.ends = statement::end::block_end;
          out.line = line_;
          return true;
        case '#':
          sharp_comment = true;
          continue;
        case '\\':
          quoted = true;
          last_space = false;
          continue;
        case '"':
          ++start;
          d_quoted = true;
          last_space = false;
          continue;
        case '\'':
          ++start;
          s_quoted = true;
          last_space = false;
          continue;
        case '$':
          variable = true;
          last_space = false;
          continue;
        default:
          last_space = false;
      }
    } else {
      if (ch == '{' && variable) continue;
      variable = false;
      if (ch == '\\') {
        quoted = true;
        continue;
      }
      if (ch == '$') {
        variable = true;
        continue;
      }
      bool found = false;
      bool was_quoted = d_quoted || s_quoted;
      if (d_quoted) {
        if (ch == '"') {
          d_quoted = false;
          need_space = true;
          found = true;
        }
      } else if (s_quoted) {
        if (ch == '\'') {
          s_quoted = false;
          need_space = true;
          found = true;
        }
      } else if (blank(ch) || ch == ';' || ch == '{') {
        last_space = true;
        found = true;
      }
      if (found) {
        out.words.push_back(
            {unescape(text_.substr(start, pos_ - 1 - start)), was_quoted, start_line});
        if (ch == ';') {
          out.ends = statement::end::semicolon;
          out.line = line_;
          return true;
        }
        if (ch == '{') {
          out.ends = statement::end::block_start;
          out.line = line_;
          return true;
        }
      }
    }
  }
}

bool split_template(std::string_view raw, template_string& out, std::string& error) {
  out.raw = std::string(raw);
  out.parts.clear();
  auto literal = [&](std::string_view s) {
    if (s.empty()) return;
    if (!out.parts.empty() && !out.parts.back().is_variable)
      out.parts.back().text += s;
    else
      out.parts.push_back({false, std::string(s)});
  };
  auto name_char = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  };
  size_t i = 0;
  while (i < raw.size()) {
    size_t dollar = raw.find('$', i);
    if (dollar == std::string_view::npos) {
      literal(raw.substr(i));
      break;
    }
    literal(raw.substr(i, dollar - i));
    size_t p = dollar + 1;
    if (p < raw.size() && raw[p] >= '1' && raw[p] <= '9') {  // $1..$9: a regex capture
      out.parts.push_back({true, std::string(1, raw[p])});
      i = p + 1;
      continue;
    }
    bool bracket = p < raw.size() && raw[p] == '{';
    if (bracket) ++p;
    size_t name_start = p;
    while (p < raw.size() && name_char(raw[p])) ++p;
    std::string_view name = raw.substr(name_start, p - name_start);
    if (bracket) {
      if (p >= raw.size() || raw[p] != '}') {
        error = fmt::format("the closing bracket in \"{}\" variable is missing", name);
        return false;
      }
      ++p;
    }
    if (name.empty()) {
      error = "invalid variable name";
      return false;
    }
    out.parts.push_back({true, std::string(name)});
    i = p;
  }
  return true;
}

}  // namespace wsgate::config
