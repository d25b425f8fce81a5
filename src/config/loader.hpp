// Loading a configuration: lex, parse, apply the directive table, merge levels.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/model.hpp"

namespace wsgate::config {

// A load failure. format() reads like nginx's emerg line, plus what to write instead:
//   wsgate: [emerg] unknown directive "proxy_pas" in /etc/nginx/site.conf:12
//   hint: did you mean "proxy_pass"?
struct load_error {
  source_loc where;     // file and line of the offending directive or token
  std::string message;  // nginx's wording where nginx has one
  std::string hint;     // what to write instead; may be empty
  std::string format() const;
};

struct load_options {
  std::string conf_file;          // -c; relative to prefix when not absolute
  std::string prefix;             // -p; "" = the directory of conf_file
  std::string global_directives;  // -g 'daemon off; worker_processes 2;'
};

struct load_result {
  std::shared_ptr<const snapshot> config;  // set on success
  std::optional<load_error> error;         // set on failure
};

load_result load_file(const load_options& options);
// Loads configuration text held in memory; `name` stands for the file in messages, and
// includes resolve relative to `base_dir`.
load_result load_text(std::string_view text, std::string_view name = "<inline>",
                      std::string_view base_dir = ".");

}  // namespace wsgate::config
