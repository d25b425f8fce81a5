// README's directive reference is generated from the directive table (`wsgate directives`);
// this keeps the two from drifting apart.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "config/directives.hpp"

TEST(Readme, DirectiveReferenceMatchesTheTable) {
  std::ifstream in(std::string(WSGATE_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(in) << "README.md not found under " << WSGATE_SOURCE_DIR;
  std::stringstream text;
  text << in.rdbuf();
  const std::string reference = wsgate::config::directive_reference_markdown();
  EXPECT_NE(text.str().find(reference), std::string::npos)
      << "README's directive reference is stale: regenerate it with\n"
         "  ./build/src/cli/wsgate directives\n"
         "and paste the output under \"## Directive reference\".";
}
