// The commands wsgate runs, one function each; main.cpp parses nginx's flags and dispatches.
#pragma once

#include <string>
#include <vector>

namespace wsgate::cli {

// nginx's command line: -c -p -e -g -t -T -q -s -v -V -h.
struct options {
  std::string conf_file;          // -c; default "conf/nginx.conf" under the prefix, as nginx
  std::string prefix;             // -p
  std::string error_log;          // -e FILE|stderr
  std::string global_directives;  // -g
  bool test = false;              // -t
  bool dump = false;              // -T (implies test)
  bool quiet = false;             // -q: only errors during -t
  std::string signal;             // -s stop|quit|reload|reopen
};

int test_config(const options& opts);               // -t / -T (config/, routing/lint)
int serve(const options& opts);                     // run the proxy (ops/)
int send_signal(const options& opts);               // -s (ops/)
int explain(const std::vector<std::string>& args);  // wsgate explain ...

}  // namespace wsgate::cli
