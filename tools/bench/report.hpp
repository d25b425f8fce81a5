// The two shapes of a wsgate-bench result: a human table and JSON with the same fields.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "load.hpp"

namespace wsgate::bench {

nlohmann::json to_json(const load_config& cfg, const std::string& url, const load_result& r);
std::string to_table(const load_config& cfg, const std::string& url, const load_result& r);

}  // namespace wsgate::bench
