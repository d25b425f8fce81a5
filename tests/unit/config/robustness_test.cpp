// Damaged configurations never crash the loader: each one loads or fails with a message.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "config/loader.hpp"

namespace wsgate::config {
namespace {

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Robustness, MutatedExamplesLoadOrFailCleanly) {
  const std::string base =
      read(std::string(WSGATE_SOURCE_DIR) + "/examples/configs/recommended.conf");
  ASSERT_FALSE(base.empty());
  const std::string alphabet = "{};\"'\\$#~*^=@ \n\tax/:0";
  std::mt19937 rng(12345);  // fixed seed: a failure reproduces
  int loaded = 0, failed = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string text = base;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % (text.size() + 1);
      switch (rng() % 3) {
        case 0:  // insert
          text.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 1:  // delete
          if (at < text.size()) text.erase(at, 1);
          break;
        default:  // truncate
          text.resize(at);
      }
    }
    auto r = load_text(text, "fuzz.conf");
    if (r.error) {
      ++failed;
      EXPECT_FALSE(r.error->message.empty());
      EXPECT_GE(r.error->where.line, 0);
    } else {
      ++loaded;
      ASSERT_TRUE(r.config);
    }
  }
  // Both outcomes occur, so the mutations reach past the first line.
  EXPECT_GT(loaded, 0);
  EXPECT_GT(failed, 0);
}

TEST(Robustness, DeepNestingAndLongInput) {
  std::string text = "events {} http { server {";
  std::string prefix = "/";
  for (int i = 0; i < 200; ++i) {
    prefix += "a/";
    text += " location " + prefix + " {";
  }
  for (int i = 0; i < 200; ++i) text += " }";
  text += " } }";
  auto r = load_text(text);
  ASSERT_FALSE(r.error) << r.error->format();
  const location* l = &r.config->http->servers[0]->root_location;
  int depth = 0;
  while (!l->children.empty()) {
    l = l->children[0].get();
    ++depth;
  }
  EXPECT_EQ(depth, 200);
  EXPECT_EQ(l->parent->pattern.size() + 2, l->pattern.size());
}

TEST(Robustness, BinaryGarbage) {
  std::string text(4096, '\0');
  std::mt19937 rng(7);
  for (auto& c : text) c = static_cast<char>(rng());
  auto r = load_text(text);
  EXPECT_TRUE(r.error);
}

}  // namespace
}  // namespace wsgate::config
