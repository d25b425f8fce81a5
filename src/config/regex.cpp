#include "config/regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <fmt/format.h>
#include <pcre2.h>

namespace wsgate::config {
namespace {

pcre2_code* as_code(void* p) {
  return static_cast<pcre2_code*>(p);
}

// One match-data block per thread, grown to the largest group count seen, so matching on the
// request path does not allocate.
struct thread_match_data {
  pcre2_match_data* data = nullptr;
  uint32_t pairs = 0;
  ~thread_match_data() {
    if (data) pcre2_match_data_free(data);
  }
  pcre2_match_data* get(uint32_t need) {
    if (!data || pairs < need) {
      if (data) pcre2_match_data_free(data);
      pairs = need < 16 ? 16 : need;
      data = pcre2_match_data_create(pairs, nullptr);
    }
    return data;
  }
};
thread_local thread_match_data tls_match;

}  // namespace

regex::compile_result regex::compile(std::string_view pattern, bool icase) {
  int errcode = 0;
  PCRE2_SIZE erroff = 0;
  uint32_t flags = icase ? PCRE2_CASELESS : 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   flags, &errcode, &erroff, nullptr);
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(errcode, buf, sizeof buf);
    // nginx names the rest of the pattern only when the error is not at its very end.
    const char* what = reinterpret_cast<const char*>(buf);
    if (erroff >= pattern.size())
      return {nullptr, fmt::format("pcre2_compile() failed: {} in \"{}\"", what, pattern)};
    return {nullptr, fmt::format("pcre2_compile() failed: {} in \"{}\" at \"{}\"", what, pattern,
                                 pattern.substr(erroff))};
  }
  // JIT is an optimisation only; without it (unsupported CPU, SELinux) matching still works.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);

  std::shared_ptr<regex> re(new regex());
  re->code_ = code;
  re->pattern_ = std::string(pattern);
  re->icase_ = icase;
  uint32_t count = 0;
  pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &count);
  re->captures_ = static_cast<int>(count);

  uint32_t name_count = 0, entry_size = 0;
  PCRE2_SPTR table = nullptr;
  pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, &name_count);
  if (name_count > 0) {
    pcre2_pattern_info(code, PCRE2_INFO_NAMEENTRYSIZE, &entry_size);
    pcre2_pattern_info(code, PCRE2_INFO_NAMETABLE, &table);
    for (uint32_t i = 0; i < name_count; ++i) {
      PCRE2_SPTR e = table + i * entry_size;
      int group = (e[0] << 8) | e[1];
      re->names_.emplace_back(reinterpret_cast<const char*>(e + 2), group);
    }
  }
  return {std::move(re), {}};
}

regex::~regex() {
  if (code_) pcre2_code_free(as_code(code_));
}

int regex::run(std::string_view subject) const {
  pcre2_match_data* md = tls_match.get(static_cast<uint32_t>(captures_) + 1);
  return pcre2_match(as_code(code_), reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(),
                     0, 0, md, nullptr);
}

bool regex::match(std::string_view subject) const {
  return run(subject) >= 0;
}

bool regex::match(std::string_view subject, std::vector<std::pair<int, int>>& offsets) const {
  offsets.clear();
  int rc = run(subject);
  if (rc < 0) return false;
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(tls_match.data);
  for (int i = 0; i <= captures_; ++i) {
    // Groups beyond rc did not take part; PCRE2 marks unset ones with PCRE2_UNSET.
    if (i < rc && ov[2 * i] != PCRE2_UNSET)
      offsets.emplace_back(static_cast<int>(ov[2 * i]), static_cast<int>(ov[2 * i + 1]));
    else
      offsets.emplace_back(-1, -1);
  }
  return true;
}

bool regex::match(std::string_view subject, std::vector<std::string_view>& captures) const {
  // Read straight from the match data: a reused vector makes no allocation per match.
  captures.clear();
  const int rc = run(subject);
  if (rc < 0) return false;
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(tls_match.data);
  for (int i = 0; i <= captures_; ++i) {
    if (i < rc && ov[2 * i] != PCRE2_UNSET)
      captures.push_back(subject.substr(ov[2 * i], ov[2 * i + 1] - ov[2 * i]));
    else
      captures.emplace_back();
  }
  return true;
}

}  // namespace wsgate::config
