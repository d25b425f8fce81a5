#include "config/loader.hpp"

#include <fmt/format.h>
#include <glob.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/parser.hpp"

namespace wsgate::config {
namespace fs = std::filesystem;

std::string load_error::format() const {
  std::string out = "wsgate: [emerg] " + message;
  if (where.file == "command line")
    out += " in command line";
  else if (!where.file.empty())
    out += fmt::format(" in {}:{}", where.file, where.line);
  if (!hint.empty()) out += "\n  hint: " + hint;
  return out;
}

void parse_state::fail(int line, std::string message, std::string hint) const {
  throw load_failure{{here(line), std::move(message), std::move(hint)}};
}

template_string parse_state::tmpl(const std::string& raw, int line) const {
  template_string t;
  std::string err;
  if (!split_template(raw, t, err))
    fail(line, err,
         "`$` starts a variable name of letters, digits and _; write `${name}` when text follows "
         "it directly (nginx has no escape for a literal `$`)");
  return t;
}

namespace {

std::string syntax_hint(const std::string& message) {
  if (message == "unexpected \"}\"")
    return "this `}` closes no block: remove it, or end the directive before it with `;`";
  if (message.starts_with("unexpected end of file, expecting \"}\""))
    return "a block opened above is not closed: add the missing `}`";
  if (message.starts_with("unexpected end of file, expecting \";\""))
    return "end the last directive with `;`";
  if (message == "unexpected \";\"")
    return "a `;` needs a directive before it: remove the extra one";
  if (message == "unexpected \"{\"") return "a block needs a directive before it, e.g. `server {`";
  if (message.starts_with("unexpected \""))
    return "a closing quote must be followed by a space, `;` or `{`";
  return {};
}

bool has_glob(std::string_view s) {
  return s.find_first_of("*?[") != std::string_view::npos;
}

bool read_whole(const std::string& path, std::string& out, int& err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    err = errno;
    return false;
  }
  if (fs::is_directory(path)) {
    err = EISDIR;
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

std::string open_failed(const std::string& path, int err) {
  return fmt::format("open() \"{}\" failed ({}: {})", path, err, std::strerror(err));
}

}  // namespace

void parse_state::parse(context_flag ctx, bool in_block) {
  statement s;
  syntax_error serr;
  for (;;) {
    if (!lex->next(s, serr)) fail(serr.line, serr.message, syntax_hint(serr.message));
    switch (s.ends) {
      case statement::end::eof:
        if (in_block)
          fail(s.line, "unexpected end of file, expecting \"}\"",
               syntax_hint("unexpected end of file, expecting \"}\""));
        return;
      case statement::end::block_end:
        if (!in_block) fail(s.line, "unexpected \"}\"", syntax_hint("unexpected \"}\""));
        return;
      default:
        if (s.ends == statement::end::block_start && file == "command line")
          fail(s.line, "block directives are not supported in -g option",
               "put blocks in the configuration file; -g takes `name value;` directives only");
        if (ctx == ctx_map)
          map_line(*this, s);
        else
          dispatch(*this, s, ctx);
    }
  }
}

void parse_state::skip_block() {
  statement s;
  syntax_error serr;
  int depth = 1;
  while (depth > 0) {
    if (!lex->next(s, serr)) fail(serr.line, serr.message, syntax_hint(serr.message));
    if (s.ends == statement::end::eof)
      fail(s.line, "unexpected end of file, expecting \"}\"",
           syntax_hint("unexpected end of file, expecting \"}\""));
    if (s.ends == statement::end::block_start) ++depth;
    if (s.ends == statement::end::block_end) --depth;
  }
}

void parse_state::notice_ignored(const statement& s) {
  snap->notices.push_back(
      {here(s.line), fmt::format("\"{}\" only tunes nginx; wsgate ignores it", s.words[0].text)});
}

void parse_state::include(const std::string& pattern, int line, context_flag ctx) {
  // nginx resolves a relative include against the configuration prefix: the directory of the
  // main file (ngx_conf_full_name with conf_prefix).
  std::string full = pattern;
  if (!full.empty() && full[0] != '/') full = (fs::path(conf_prefix) / pattern).string();

  std::vector<std::string> paths;
  if (has_glob(full)) {
    glob_t g{};
    int rc = ::glob(full.c_str(), 0, nullptr, &g);
    if (rc == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) paths.emplace_back(g.gl_pathv[i]);
    } else if (rc != GLOB_NOMATCH) {
      globfree(&g);
      fail(line, fmt::format("glob() \"{}\" failed", full),
           "check the directory exists and is readable");
    }
    globfree(&g);  // no match is fine, as nginx: an empty conf.d/ is common
  } else {
    paths.push_back(full);
  }

  for (const auto& path : paths) {
    if (fs::is_directory(path))  // nginx fails on a directory, named or matched by a glob
      fail(line, fmt::format("pread() \"{}\" failed ({}: {})", path, EISDIR, std::strerror(EISDIR)),
           "include files, not directories: add a glob such as `" + pattern + "/*.conf`");
    for (const auto& open : include_stack)
      if (open == path)
        fail(line, fmt::format("\"{}\" includes itself (through \"include\")", path),
             "remove the include that leads back to this file");
    std::string text;
    int err = 0;
    if (!read_whole(path, text, err))
      fail(line, open_failed(path, err),
           err == ENOENT ? "check the path; relative includes resolve against the main file's "
                           "directory (" +
                               conf_prefix + ")"
                         : "check the file's permissions");
    snap->files.emplace_back(path, text);  // a copy: `files` may grow while `text` is lexed

    // Read the included file in the same context, then return to the includer.
    lexer sub(text);
    lexer* saved_lex = lex;
    std::string saved_file = file;
    lex = &sub;
    file = path;
    include_stack.push_back(path);
    parse(ctx, false);
    include_stack.pop_back();
    lex = saved_lex;
    file = saved_file;
  }
}

namespace {

load_result run(parse_state& st, std::shared_ptr<snapshot> snap, const std::string& main_text,
                const std::string& main_name, const std::string& globals) {
  load_result result;
  try {
    // -g directives come first, as nginx reads them before the file (ngx_conf_param).
    st.frames.push_back({ctx_main});
    if (!globals.empty()) {
      lexer g(globals, true);
      st.lex = &g;
      st.file = "command line";
      st.parse(ctx_main, false);
    }
    lexer lex(main_text);
    st.lex = &lex;
    st.file = main_name;
    st.include_stack.push_back(main_name);
    st.parse(ctx_main, false);
    finish(st);
    result.config = std::move(snap);
  } catch (const load_failure& f) {
    result.error = f.error;
  }
  return result;
}

}  // namespace

load_result load_text(std::string_view text, std::string_view name, std::string_view base_dir) {
  auto snap = std::make_shared<snapshot>();
  snap->conf_file = std::string(name);
  snap->prefix = std::string(base_dir);
  std::string own(text);
  snap->files.emplace_back(std::string(name), own);
  parse_state st;
  st.snap = snap.get();
  st.conf_prefix = std::string(base_dir);
  return run(st, snap, own, std::string(name), {});
}

load_result load_file(const load_options& options) {
  // A relative -c is taken from the prefix (-p) when given, as nginx; the include prefix is
  // then the main file's directory.
  fs::path conf =
      options.conf_file.empty() ? fs::path("conf/nginx.conf") : fs::path(options.conf_file);
  if (conf.is_relative())
    conf = (options.prefix.empty() ? fs::current_path() : fs::path(options.prefix)) / conf;
  conf = conf.lexically_normal();

  auto snap = std::make_shared<snapshot>();
  snap->conf_file = conf.string();
  snap->prefix = options.prefix.empty() ? conf.parent_path().string() : options.prefix;

  std::string text;
  int err = 0;
  if (!read_whole(conf.string(), text, err)) {
    load_result r;
    r.error = load_error{{},
                         open_failed(conf.string(), err),
                         err == ENOENT ? "give the configuration file with -c FILE"
                                       : "check the file's permissions"};
    return r;
  }
  snap->files.emplace_back(conf.string(), text);
  parse_state st;
  st.snap = snap.get();
  st.conf_prefix = conf.parent_path().string();
  return run(st, snap, text, conf.string(), options.global_directives);
}

}  // namespace wsgate::config
