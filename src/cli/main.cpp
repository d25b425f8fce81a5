// wsgate's entry point: nginx's flags, parsed as nginx parses them (-tq, -c FILE, -cFILE), and the
// `explain` subcommand.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "config/directives.hpp"

namespace {

constexpr const char* kUsage =
    "Usage: wsgate [-?hvVtTq] [-s signal] [-p prefix] [-e filename] [-c filename] [-g directives]\n"
    "       wsgate explain -c FILE URL [--ws] [-H 'Name: value']... [--json]\n"
    "\n"
    "Options:\n"
    "  -?,-h         : this help\n"
    "  -v            : show version and exit\n"
    "  -V            : show version and configure options then exit\n"
    "  -t            : test configuration, lint it for WebSocket pitfalls, and exit\n"
    "  -T            : test configuration, dump it and exit\n"
    "  -q            : suppress non-error messages during configuration testing\n"
    "  -s signal     : send signal to a master process: stop, quit, reopen, reload\n"
    "  -p prefix     : set prefix path (default: the directory of the -c file)\n"
    "  -e filename   : set error log file (default: stderr)\n"
    "  -c filename   : set configuration file (default: conf/nginx.conf)\n"
    "  -g directives : set global directives out of configuration file\n"
    "\n"
    "Commands:\n"
    "  explain       : show how a request is routed and what the upstream receives\n"
    "  directives    : print the directive reference (Markdown)\n";

void print_version(bool verbose) {
  std::fprintf(stderr, "wsgate version: wsgate/%s (nginx/1.22.1 compatible)\n", WSGATE_VERSION);
  if (verbose) {
    std::fprintf(stderr, "built with OpenSSL 3\nTLS SNI support enabled\n");
    std::fprintf(stderr,
                 "configure arguments: --with-http_ssl_module --with-http_v1_1 "
                 "--with-websocket-keepalive --with-pcre2 --with-threads\n");
  }
}

// Returns the flag's value: the rest of this argument ("-cFILE") or the next one ("-c FILE").
const char* flag_value(int argc, char** argv, int& i, const char* p, char flag) {
  if (p[1] != '\0') return p + 1;
  if (i + 1 < argc) return argv[++i];
  std::fprintf(stderr, "wsgate: option \"-%c\" requires %s\n", flag,
               flag == 's'   ? "signal name"
               : flag == 'g' ? "directives"
                             : "file name");
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "explain") == 0) {
    return wsgate::cli::explain(std::vector<std::string>(argv + 2, argv + argc));
  }
  if (argc == 2 && std::strcmp(argv[1], "directives") == 0) {
    std::fputs(wsgate::config::directive_reference_markdown().c_str(), stdout);
    return 0;
  }
  wsgate::cli::options opts;
  for (int i = 1; i < argc; ++i) {
    const char* p = argv[i];
    if (*p++ != '-') {
      std::fprintf(stderr, "wsgate: invalid option: \"%s\"\n%s", argv[i], kUsage);
      return 1;
    }
    for (; *p; ++p) {
      switch (*p) {
        case '?':
        case 'h':
          print_version(false);
          std::fputs(kUsage, stderr);
          return 0;
        case 'v':
          print_version(false);
          return 0;
        case 'V':
          print_version(true);
          return 0;
        case 't':
          opts.test = true;
          continue;
        case 'T':
          opts.test = opts.dump = true;
          continue;
        case 'q':
          opts.quiet = true;
          continue;
        case 'c':
        case 'p':
        case 'e':
        case 'g':
        case 's': {
          const char flag = *p;
          const char* value = flag_value(argc, argv, i, p, flag);
          if (!value) return 1;
          if (flag == 'c') opts.conf_file = value;
          if (flag == 'p') opts.prefix = value;
          if (flag == 'e') opts.error_log = value;
          if (flag == 'g') opts.global_directives = value;
          if (flag == 's') {
            opts.signal = value;
            if (opts.signal != "stop" && opts.signal != "quit" && opts.signal != "reopen" &&
                opts.signal != "reload") {
              std::fprintf(stderr, "wsgate: invalid option: \"-s %s\"\n", value);
              return 1;
            }
          }
          goto next_arg;
        }
        default:
          std::fprintf(stderr, "wsgate: invalid option: \"%c\"\n%s", *p, kUsage);
          return 1;
      }
    }
  next_arg:;
  }
  if (!opts.signal.empty()) return wsgate::cli::send_signal(opts);
  if (opts.test) return wsgate::cli::test_config(opts);
  return wsgate::cli::serve(opts);
}
