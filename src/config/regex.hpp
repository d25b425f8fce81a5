// A compiled PCRE2 regular expression, as nginx uses them: locations (~ ~*), server_name ~,
// map ~ / ~*, rewrite. Immutable after compile(), so one instance is shared by every thread of
// a snapshot; match() keeps its scratch space per thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsgate::config {

class regex {
 public:
  struct compile_result {
    std::shared_ptr<const regex> re;  // set on success
    std::string error;                // nginx's wording when compilation fails
  };
  // Compiles `pattern`; on failure `error` reads like nginx's:
  //   pcre2_compile() failed: missing closing parenthesis in "^/(a"
  //   pcre2_compile() failed: quantifier does not follow a repeatable item in "*a" at "*a"
  static compile_result compile(std::string_view pattern, bool icase);

  ~regex();
  regex(const regex&) = delete;
  regex& operator=(const regex&) = delete;

  // True when `subject` matches. Captures, when asked for, receive $0..$N as views into
  // `subject`; a group that did not take part is an empty view with data() == nullptr.
  bool match(std::string_view subject) const;
  bool match(std::string_view subject, std::vector<std::string_view>& captures) const;
  // The same as offset pairs (start, end) per group, -1 for a group that did not take part.
  bool match(std::string_view subject, std::vector<std::pair<int, int>>& offsets) const;

  const std::string& pattern() const { return pattern_; }
  bool icase() const { return icase_; }
  int capture_count() const { return captures_; }  // groups, not counting $0
  // Named groups, (name, group number), as nginx exposes them as variables.
  const std::vector<std::pair<std::string, int>>& names() const { return names_; }

 private:
  regex() = default;
  int run(std::string_view subject) const;  // pcre2_match() on the thread's match data

  void* code_ = nullptr;  // pcre2_code_8*, kept opaque so users need no PCRE2 header
  std::string pattern_;
  bool icase_ = false;
  int captures_ = 0;
  std::vector<std::pair<std::string, int>> names_;
};

}  // namespace wsgate::config
