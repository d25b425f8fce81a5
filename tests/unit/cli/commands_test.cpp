// wsgate -t / -T and wsgate explain, called as functions with their output captured.
#include "cli/commands.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace wsgate::cli {
namespace {

namespace fs = std::filesystem;

class TempConf {
 public:
  explicit TempConf(const std::string& text) {
    dir_ = fs::temp_directory_path() /
           ("wsgate-cli-" + std::to_string(getpid()) + "-" + std::to_string(counter_++));
    fs::create_directories(dir_);
    path_ = (dir_ / "nginx.conf").string();
    std::ofstream(path_) << text;
  }
  ~TempConf() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
  std::string path_;
};

struct output {
  int rc;
  std::string out, err;
};

output run_test(const options& o) {
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  const int rc = test_config(o);
  std::string out = testing::internal::GetCapturedStdout();
  return {rc, out, testing::internal::GetCapturedStderr()};
}

output run_explain(const std::vector<std::string>& args) {
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  const int rc = explain(args);
  std::string out = testing::internal::GetCapturedStdout();
  return {rc, out, testing::internal::GetCapturedStderr()};
}

std::string example(const std::string& name) {
  return std::string(WSGATE_SOURCE_DIR) + "/examples/configs/" + name;
}

TEST(TestCommand, SuccessPrintsNginxLines) {
  TempConf conf(
      "events {}\nhttp { server { listen 127.0.0.1:8080; location / { proxy_pass "
      "http://127.0.0.1:9000; } } }\n");
  options o;
  o.conf_file = conf.path();
  o.test = true;
  auto r = run_test(o);
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.err, "wsgate: the configuration file " + conf.path() +
                       " syntax is ok\nwsgate: configuration file " + conf.path() +
                       " test is successful\n");
  EXPECT_EQ(r.out, "");
}

TEST(TestCommand, FailurePrintsTheErrorThenTestFailed) {
  TempConf conf("events {}\nhttp { server { proxy_pas http://x; } }\n");
  options o;
  o.conf_file = conf.path();
  o.test = true;
  auto r = run_test(o);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("[emerg]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(conf.path() + ":2"), std::string::npos) << r.err;
  EXPECT_TRUE(r.err.ends_with("wsgate: configuration file " + conf.path() + " test failed\n"))
      << r.err;
}

TEST(TestCommand, UnknownVariableFailsAsInNginx) {
  TempConf conf(
      "events {}\nhttp { server { listen 127.0.0.1:8080;\n"
      "location / { proxy_set_header X-A $nosuch; proxy_pass http://127.0.0.1:9000; } } }\n");
  options o;
  o.conf_file = conf.path();
  o.test = true;
  auto r = run_test(o);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("wsgate: [emerg] unknown \"nosuch\" variable in " + conf.path() + ":3"),
            std::string::npos)
      << r.err;
}

TEST(TestCommand, LintWarningsDoNotFailAndQuietHidesThem) {
  options o;
  o.conf_file = example("no-upgrade.conf");
  o.test = true;
  auto r = run_test(o);
  EXPECT_EQ(r.rc, 0);
  const std::string warn = "wsgate: [warn] location /api/v1/ws/ looks like a WebSocket endpoint";
  EXPECT_NE(r.err.find(warn), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no-upgrade.conf:10\n  fix: proxy_http_version 1.1;"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("test is successful"), std::string::npos);

  o.quiet = true;
  auto q = run_test(o);
  EXPECT_EQ(q.rc, 0);
  EXPECT_EQ(q.err, "");
}

TEST(TestCommand, SeedConfigShowsNoticeForTheDeliberateDifference) {
  options o;
  o.conf_file = example("seed-fixed.conf");
  o.test = true;
  auto r = run_test(o);
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.err.find("wsgate: [warn] location /api/v1/ws/ sends \"Connection: upgrade\""),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("wsgate: [notice] wsgate differs from nginx"), std::string::npos) << r.err;
}

TEST(TestCommand, DumpPrintsEveryFile) {
  const std::string text =
      "events {}\nhttp { server { listen 127.0.0.1:8080; location / { return 200; } } }\n";
  TempConf conf(text);
  options o;
  o.conf_file = conf.path();
  o.test = o.dump = true;
  auto r = run_test(o);
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.out, "# configuration file " + conf.path() + ":\n" + text + "\n");
}

TEST(ExplainCommand, JsonForTheSeedHandshake) {
  auto r = run_explain({"-c", example("seed-broken.conf"),
                        "http://localhost:8080/api/v1/ws/simple-voice-chat?language=ar", "--ws",
                        "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["action"], "proxy");
  EXPECT_EQ(j["server"]["names"][0], "localhost");
  EXPECT_EQ(j["location"]["kind"], "prefix");
  EXPECT_EQ(j["location"]["pattern"], "/api/v1/ws/");
  EXPECT_EQ(j["upstream"]["request_line"], "GET /api/v1/ws/simple-voice-chat?language=ar HTTP/1.1");
  EXPECT_EQ(j["upstream"]["host"], "localhost");
  EXPECT_EQ(j["upstream"]["port"], 8000);
  EXPECT_EQ(j["upstream"]["headers"][0], nlohmann::json::array({"Host", "localhost"}));
  EXPECT_EQ(j["websocket"], true);
  EXPECT_EQ(j["timeouts"]["read_ms"], 86400000);
  EXPECT_EQ(j["request"]["headers"][0], nlohmann::json::array({"Host", "localhost:8080"}));
  EXPECT_TRUE(j["candidates"].is_array());
  EXPECT_GE(j["candidates"].size(), 3u);
  bool literal = false;
  for (const auto& w : j["warnings"])
    if (w["id"] == "connection-upgrade-literal") literal = true;
  EXPECT_TRUE(literal);
}

TEST(ExplainCommand, HumanOutputNamesEveryPart) {
  auto r = run_explain({"-c", example("no-upgrade.conf"),
                        "http://localhost:8080/api/v1/ws/simple-voice-chat", "--ws"});
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* part :
       {"server:   localhost", "chosen by exact server_name \"localhost\"", "location /api/v1/ws/",
        "longest prefix", "GET /api/v1/ws/simple-voice-chat HTTP/1.0", "  Connection: close",
        "timeouts: connect 60s, read 86400s, send 60s", "[ws-upgrade-not-forwarded]", "fix:"})
    EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
  // The client's Upgrade header is shown in the request but not sent upstream.
  const size_t upstream = r.out.find("upstream request:");
  ASSERT_NE(upstream, std::string::npos);
  EXPECT_NE(r.out.find("Upgrade: websocket"), std::string::npos);
  EXPECT_EQ(r.out.substr(upstream, r.out.find("timeouts:") - upstream).find("Upgrade"),
            std::string::npos);
}

TEST(ExplainCommand, PathOnlyUsesTheFirstServerAndHeaders) {
  auto r = run_explain({"-c", example("recommended.conf"), "/api/v1/ws/x/status", "--json", "-H",
                        "X-Test: 1", "--remote", "10.1.2.3:5555"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["request"]["headers"][0], nlohmann::json::array({"Host", "localhost"}));
  const auto& h = j["upstream"]["headers"];
  EXPECT_EQ(h[1], nlohmann::json::array({"X-Real-IP", "10.1.2.3"}));
  // Upgrade $http_upgrade is empty for a plain request, so it is not sent at all.
  EXPECT_EQ(h[3], nlohmann::json::array({"X-Forwarded-Proto", "http"}));
  EXPECT_EQ(h[4], nlohmann::json::array({"Connection", "close"}));
  EXPECT_EQ(h[5], nlohmann::json::array({"X-Test", "1"}));
  EXPECT_EQ(h.size(), 6u);
  EXPECT_EQ(j["upstream"]["host"], "voice_backend");
  EXPECT_EQ(j["upstream"]["port"], 0);
}

TEST(ExplainCommand, AbsoluteTargetAndRedirect) {
  TempConf conf(R"(events {}
http {
  server { listen 127.0.0.1:8080; server_name one.example; location / { return 200 one; } }
  server { listen 127.0.0.1:8080; server_name two.example;
           location /api/ { proxy_pass http://127.0.0.1:9000; } }
})");
  auto r = run_explain({"-c", conf.path(), "http://127.0.0.1:8080/", "--target",
                        "http://two.example/api?x=1", "-H", "Host: one.example", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["server"]["names"][0], "two.example");
  EXPECT_EQ(j["action"], "redirect");
  EXPECT_EQ(j["status"], 301);
  EXPECT_EQ(j["location_header"], "http://two.example:8080/api/?x=1");
  EXPECT_TRUE(j["upstream"].is_null());
}

TEST(ExplainCommand, BadInputSaysWhatToDo) {
  auto missing = run_explain({"-c", "/nonexistent/wsgate.conf", "/x"});
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.err.find("/nonexistent/wsgate.conf"), std::string::npos) << missing.err;
  auto bad_url = run_explain({"-c", example("recommended.conf"), "ftp://x/"});
  EXPECT_EQ(bad_url.rc, 1);
  EXPECT_NE(bad_url.err.find("http://host[:port]/path"), std::string::npos) << bad_url.err;
  auto bad_header = run_explain({"-c", example("recommended.conf"), "/x", "-H", "NoColon"});
  EXPECT_EQ(bad_header.rc, 1);
  EXPECT_NE(bad_header.err.find("'Name: value'"), std::string::npos) << bad_header.err;
}

}  // namespace
}  // namespace wsgate::cli
