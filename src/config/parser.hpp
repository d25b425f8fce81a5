// The loader's internal state, shared by the parse loop (loader.cpp) and the directive handlers
// (directives.cpp). Not part of the public interface.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "config/directives.hpp"
#include "config/lexer.hpp"
#include "config/loader.hpp"
#include "config/model.hpp"

namespace wsgate::config {

// Thrown by handlers and the parse loop; load_*() turns it into load_result::error.
struct load_failure {
  load_error error;
};

// Where the parser is: the context and the model objects directives write to.
struct frame {
  context_flag ctx = ctx_main;
  location_settings* settings = nullptr;  // http, server and location levels
  location* loc = nullptr;                // the server's root_location, or a location
  server* srv = nullptr;                  // server level and below; the http defaults at http
  upstream* ups = nullptr;
  map_block* map = nullptr;  // inside map { }
};

struct parse_state {
  snapshot* snap = nullptr;
  std::string conf_prefix;  // includes resolve against it (the main file's directory)
  std::string file;         // the file being read, for messages
  lexer* lex = nullptr;
  std::vector<std::string> include_stack;  // files being read, for the recursion guard
  std::vector<frame> frames;
  // http-level values of server-only settings (merge_slashes, ssl_*...), merged into servers.
  server http_server_defaults;
  // Single-value directives already given where the model has no "unset": main and events
  // ones by name, upstream ones as "UPSTREAM\nNAME".
  std::set<std::string> main_set;
  bool events_seen = false;
  // listen address:port -> (a default_server given, socket options given), across servers.
  std::map<std::string, std::pair<bool, bool>> listen_seen;

  frame& top() { return frames.back(); }
  source_loc here(int line) const { return {file, line}; }
  [[noreturn]] void fail(int line, std::string message, std::string hint = {}) const;
  // Reads statements in context `ctx` until the closing `}` (in_block) or the end of the text.
  void parse(context_flag ctx, bool in_block);
  // Skips a block whose content wsgate ignores (types { ... }).
  void skip_block();
  // Reads the file(s) named by an include pattern, in the current context.
  void include(const std::string& pattern, int line, context_flag ctx);
  // Splits a directive argument into a template, failing with nginx's message.
  template_string tmpl(const std::string& raw, int line) const;
  void notice_ignored(const statement& st);
};

// Applies one statement through the table (contexts, arity, handler).
void dispatch(parse_state& st, const statement& s, context_flag ctx);
// One line inside map { }.
void map_line(parse_state& st, const statement& s);
// After the whole text: defaults, inheritance, implied listens, upstream references.
void finish(parse_state& st);

}  // namespace wsgate::config
