// Placeholders until each command lands; each owner deletes its stub from this file.
#include <cstdio>

#include "cli/commands.hpp"

namespace wsgate::cli {

int serve(const options&) {
  std::fputs("wsgate: serving is not implemented yet\n", stderr);
  return 1;
}
int send_signal(const options&) {
  std::fputs("wsgate: -s is not implemented yet\n", stderr);
  return 1;
}

}  // namespace wsgate::cli
