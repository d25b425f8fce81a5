// The directive table: every directive wsgate reads, in one place (nginx's ngx_command_t
// arrays): name, the contexts it may appear in, how many arguments it takes, the handler that
// applies it to the model, and one line of documentation. README's directive reference is
// generated from directive_table().
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace wsgate::config {

// Contexts, as bit flags (nginx's NGX_MAIN_CONF, NGX_HTTP_SRV_CONF, ...).
enum context_flag : unsigned {
  ctx_main = 1u << 0,
  ctx_events = 1u << 1,
  ctx_http = 1u << 2,
  ctx_server = 1u << 3,
  ctx_location = 1u << 4,
  ctx_upstream = 1u << 5,
  ctx_map = 1u << 6,  // inside map { }: lines are KEY VALUE, not directives
};
inline constexpr unsigned ctx_hsl = ctx_http | ctx_server | ctx_location;

// Arity, as bit flags (nginx's NGX_CONF_NOARGS, NGX_CONF_TAKE1, ..., NGX_CONF_1MORE).
enum arity_flag : unsigned {
  take0 = 1u << 0,
  take1 = 1u << 1,
  take2 = 1u << 2,
  take3 = 1u << 3,
  take4 = 1u << 4,
  take5 = 1u << 5,
  take6 = 1u << 6,
  take7 = 1u << 7,
  take_any = 1u << 8,
  take_1more = 1u << 9,
  take_2more = 1u << 10,
  is_block = 1u << 11,  // the directive opens a { } block
};
inline constexpr unsigned take12 = take1 | take2;
inline constexpr unsigned take123 = take1 | take2 | take3;
inline constexpr unsigned take23 = take2 | take3;

// How wsgate treats a directive.
enum class support {
  full,         // applied to the model and honoured at run time
  ignored,      // nginx-internal tuning: accepted, with a notice that wsgate ignores it
  wsgate_only,  // wsgate's own extension; nginx would reject it
};

struct parse_state;  // the loader's internal state (loader.cpp)
struct statement;
using directive_handler = void (*)(parse_state&, const statement&);

struct directive_spec {
  std::string_view name;
  std::string_view syntax;  // "proxy_set_header FIELD VALUE", for hints and README
  unsigned contexts = 0;    // context_flag bits
  unsigned arity = 0;       // arity_flag bits
  directive_handler handler = nullptr;
  std::string_view doc;  // one line, for README
  support kind = support::full;
};

// Every directive, in table order. A name may appear more than once with different contexts
// (e.g. `server` in http and in upstream), as in nginx.
const std::vector<directive_spec>& directive_table();

// README's directive reference, as Markdown: a table of the directives wsgate applies, one of
// wsgate's own, and the list of nginx tuning directives it accepts and ignores.
std::string directive_reference_markdown();

// "http, server, location" and "1 or 2 arguments": for README and messages.
std::string describe_contexts(unsigned contexts);
std::string describe_arity(unsigned arity);

}  // namespace wsgate::config
