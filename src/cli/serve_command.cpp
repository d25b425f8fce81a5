// Running the proxy and signalling a running one: nginx's flags handed to ops/.
#include "cli/commands.hpp"
#include "ops/server.hpp"

namespace wsgate::cli {

namespace {
ops::serve_options to_serve_options(const options& opts) {
  return {opts.conf_file, opts.prefix, opts.error_log, opts.global_directives};
}
}  // namespace

int serve(const options& opts) {
  return ops::serve(to_serve_options(opts));
}

int send_signal(const options& opts) {
  return ops::send_signal(to_serve_options(opts), opts.signal);
}

}  // namespace wsgate::cli
