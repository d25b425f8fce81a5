// Micro-benchmarks of the per-request CPU path: the HTTP request parser, location matching and
// the proxy_pass mapping (route()). Inputs are built once outside the timed loops, so what is
// measured is the library's own work, allocations included.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "config/loader.hpp"
#include "http/request_parser.hpp"
#include "routing/match.hpp"
#include "routing/route.hpp"
#include "routing/variables.hpp"

// Every C++ heap allocation of the process is counted, so each benchmark can report its
// allocations per iteration (the data path's main avoidable cost).
#include "counted_new.hpp"

namespace {

using namespace wsgate;

// Reports the allocations per iteration made inside the timed loop.
struct alloc_counter {
  uint64_t start = counted_new::calls.load();
  void report(benchmark::State& state) const {
    state.counters["allocs"] = benchmark::Counter(
        static_cast<double>(counted_new::calls.load() - start), benchmark::Counter::kAvgIterations);
  }
};

// Setup failures abort the whole run: a benchmark over a config that did not load or a request
// that did not parse would time the error path and report a misleading figure.
[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "wsgate-micro: %s\n", what.c_str());
  std::exit(2);
}

std::shared_ptr<const config::snapshot> load_text(const std::string& text, const char* name) {
  auto r = config::load_text(text, name, ".");
  if (r.error) die(std::string("cannot load ") + name + ": " + r.error->format());
  return r.config;
}

std::shared_ptr<const config::snapshot> load_example(const char* file) {
  config::load_options o;
  o.conf_file = std::string(WSGATE_SOURCE_DIR) + "/examples/configs/" + file;
  auto r = config::load_file(o);
  if (r.error) die("cannot load " + o.conf_file + ": " + r.error->format());
  return r.config;
}

// ---------------------------------------------------------------------------------------------
// (1) HTTP request parsing

// A browser navigation: 12 headers, ~500 bytes.
const std::string kBrowserGet =
    "GET /api/v1/ws/simple-voice-chat/status?language=ar HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: http://localhost:8080/\r\n"
    "Connection: keep-alive\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Cookie: session=5f2b8c1e9a; theme=dark\r\n"
    "\r\n";

// The seed's voice-chat handshake as a browser sends it.
const std::string kHandshake =
    "GET /api/v1/ws/simple-voice-chat?language=ar&voice_type=female HTTP/1.1\r\n"
    "Host: localhost:8080\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://localhost:8080\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n";

std::string pipelined_batch() {
  std::string s;
  for (int i = 0; i < 16; ++i)
    s += "GET /items/" + std::to_string(i) + " HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n";
  return s;
}

std::string big_cookie_request() {
  std::string cookie;
  for (int i = 0; cookie.size() < 4096; ++i)
    cookie +=
        "c" + std::to_string(i) + "=" + std::string(24, static_cast<char>('a' + i % 26)) + "; ";
  cookie.resize(4096);
  return "GET /dashboard HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n"
         "Cookie: " +
         cookie + "\r\n\r\n";
}

// Parses every request in `data` back to back (one for a single request), as a keep-alive
// connection does: reset, parse from the request's first byte, advance by the head's size.
void parse_all(benchmark::State& state, const std::string& data, int requests) {
  http::request_parser p;
  const http::header_limits limits;
  // Check once that the input parses as intended.
  {
    size_t off = 0;
    for (int i = 0; i < requests; ++i) {
      p.reset(limits);
      if (p.parse(std::string_view(data).substr(off)) != http::parse_result::done)
        die(std::string("benchmark request does not parse: ") + p.error_text());
      off += p.head().size;
    }
    if (off != data.size()) die("benchmark input has bytes after its last request");
  }
  const alloc_counter allocs;
  for (auto _ : state) {
    size_t off = 0;
    for (int i = 0; i < requests; ++i) {
      p.reset(limits);
      auto r = p.parse(std::string_view(data).substr(off));
      benchmark::DoNotOptimize(r);
      off += p.head().size;
    }
    benchmark::DoNotOptimize(p.head().headers.data());
  }
  allocs.report(state);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
  state.SetItemsProcessed(state.iterations() * requests);
}

void BM_Parse_BrowserGet(benchmark::State& state) {
  parse_all(state, kBrowserGet, 1);
}
void BM_Parse_WebSocketHandshake(benchmark::State& state) {
  parse_all(state, kHandshake, 1);
}
void BM_Parse_Pipelined16(benchmark::State& state) {
  static const std::string batch = pipelined_batch();
  parse_all(state, batch, 16);
}
void BM_Parse_Cookie4KiB(benchmark::State& state) {
  static const std::string r = big_cookie_request();
  parse_all(state, r, 1);
}
BENCHMARK(BM_Parse_BrowserGet);
BENCHMARK(BM_Parse_WebSocketHandshake);
BENCHMARK(BM_Parse_Pipelined16);
BENCHMARK(BM_Parse_Cookie4KiB);

// ---------------------------------------------------------------------------------------------
// (2) Location matching

// 200 prefix locations (three path depths), 10 exact ones, 20 regex ones (tried in order after
// the prefixes, as nginx does), and "location /" for what matches nothing else.
std::string synthetic_config() {
  std::string s = "events {}\nhttp {\nserver {\nlisten 127.0.0.1:8080;\nserver_name localhost;\n";
  for (int i = 0; i < 200; ++i) {
    switch (i % 3) {
      case 0:
        s += "location /svc" + std::to_string(i) + "/ { return 200; }\n";
        break;
      case 1:
        s += "location /api/v1/svc" + std::to_string(i) + "/ { return 200; }\n";
        break;
      default:
        s += "location /api/v2/tenant/svc" + std::to_string(i) +
             "/resources/items/ { return 200; }\n";
    }
  }
  for (int i = 0; i < 10; ++i) s += "location = /exact" + std::to_string(i) + " { return 204; }\n";
  for (int i = 0; i < 19; ++i)
    s += "location ~ ^/re" + std::to_string(i) + "/(\\d+)/(.*)$ { return 200; }\n";
  s += "location ~* \\.(png|jpe?g|gif|css|js)$ { return 200; }\n";
  s += "location / { return 404; }\n";
  s += "}\n}\n";
  return s;
}

struct match_fixture {
  std::shared_ptr<const config::snapshot> config;
  routing::request_info request;
  const config::location* root = nullptr;
};

const match_fixture& fixture(bool synthetic) {
  auto make = [](std::shared_ptr<const config::snapshot> c) {
    match_fixture f;
    f.config = std::move(c);
    if (!f.config->http || f.config->http->servers.empty()) die("benchmark config has no server");
    f.root = &f.config->http->servers.front()->root_location;
    return f;
  };
  static const match_fixture seed = make(load_example("seed-fixed.conf"));
  static const match_fixture synth = make(load_text(synthetic_config(), "synthetic.conf"));
  return synthetic ? synth : seed;
}

// Times find_location() for one URI; `expect` is the pattern of the location that must answer
// (checked once before timing, so a config change cannot silently time the wrong path).
void match(benchmark::State& state, bool synthetic, const char* uri, const char* expect) {
  const match_fixture& f = fixture(synthetic);
  routing::eval_context ctx;
  ctx.config = f.config.get();
  ctx.request = &f.request;
  ctx.uri = uri;
  {
    auto m = routing::find_location(*f.root, ctx, false);
    if (!m.loc || m.loc->pattern != expect)
      die(std::string("URI ") + uri + " matched " + (m.loc ? m.loc->pattern : "nothing") +
          ", expected " + expect);
  }
  const alloc_counter allocs;
  for (auto _ : state) {
    auto m = routing::find_location(*f.root, ctx, false);
    benchmark::DoNotOptimize(m.loc);
  }
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(match, seed_long_prefix, false, "/api/v1/ws/simple-voice-chat", "/api/v1/ws/");
BENCHMARK_CAPTURE(match, seed_short_prefix, false, "/ws/echo", "/ws/");
BENCHMARK_CAPTURE(match, seed_fall_through, false, "/index.html", "/");
BENCHMARK_CAPTURE(match, synth_exact, true, "/exact7", "/exact7");
BENCHMARK_CAPTURE(match, synth_long_prefix, true, "/api/v2/tenant/svc197/resources/items/42",
                  "/api/v2/tenant/svc197/resources/items/");
BENCHMARK_CAPTURE(match, synth_regex_first, true, "/re0/42/x", "^/re0/(\\d+)/(.*)$");
BENCHMARK_CAPTURE(match, synth_regex_last, true, "/static/logo.PNG", "\\.(png|jpe?g|gif|css|js)$");
BENCHMARK_CAPTURE(match, synth_fall_through, true, "/nothing/here", "/");

// Loading the synthetic config (reload cost; regexes compiled with JIT).
void BM_LoadSyntheticConfig(benchmark::State& state) {
  const std::string text = synthetic_config();
  for (auto _ : state) {
    auto r = config::load_text(text, "synthetic.conf", ".");
    if (r.error) die(r.error->format());
    benchmark::DoNotOptimize(r.config.get());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_LoadSyntheticConfig)->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------------
// (3) proxy_pass mapping: the whole route() decision

routing::request_info seed_handshake(bool diagnostics) {
  routing::request_info r;
  r.target = "/api/v1/ws/simple-voice-chat?language=ar&voice_type=female";
  r.headers = {{"Host", "localhost:8080"},
               {"Upgrade", "websocket"},
               {"Connection", "Upgrade"},
               {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
               {"Sec-WebSocket-Version", "13"},
               {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"},
               {"Origin", "http://localhost:8080"}};
  r.local_addr = "127.0.0.1";
  r.local_port = 8080;
  r.remote_addr = "10.0.0.7";
  r.remote_port = 40000;
  r.diagnostics = diagnostics;
  return r;
}

// proxy_pass with variables: captures of a regex location and $arg_ in the URI part, as the
// recommended config's map for Connection.
const char* kVariablesConfig = R"(events {}
http {
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:8080;
    server_name localhost;
    location ~ ^/api/v1/ws/([a-z-]+)$ {
      proxy_pass http://127.0.0.1:8000/voice/$1?lang=$arg_language;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
    }
  }
}
)";

void route_bench(benchmark::State& state, const char* which, bool diagnostics,
                 const char* expect_uri) {
  std::shared_ptr<const config::snapshot> c = std::string_view(which) == "variables"
                                                  ? load_text(kVariablesConfig, "variables.conf")
                                                  : load_example(which);
  const routing::request_info rq = seed_handshake(diagnostics);
  {
    auto d = routing::route(*c, rq);
    if (d.what != routing::action::proxy || d.upstream.uri != expect_uri)
      die(std::string(which) + ": upstream URI is \"" + d.upstream.uri + "\", expected \"" +
          expect_uri + "\"");
  }
  const alloc_counter allocs;
  for (auto _ : state) {
    auto d = routing::route(*c, rq);
    benchmark::DoNotOptimize(d.upstream.uri.data());
  }
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
}

// The data path's way: one decision per connection, filled again for every request
// (route_into). After the warm-up call a request reuses the decision's strings and vectors: the
// allocs column must read 0 for these rows.
// A plain GET on the seed's configs: "Connection: upgrade" is dropped (no Upgrade header).
routing::request_info plain_get() {
  routing::request_info rq;
  rq.headers = {{"Host", "localhost:8080"},
                {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"},
                {"Accept", "*/*"}};
  rq.local_port = 8080;
  rq.remote_addr = "10.0.0.7";
  rq.diagnostics = false;
  return rq;
}

void route_into_bench(benchmark::State& state, const char* which, bool handshake,
                      const char* target, const char* expect_uri) {
  std::shared_ptr<const config::snapshot> c = std::string_view(which) == "variables"
                                                  ? load_text(kVariablesConfig, "variables.conf")
                                                  : load_example(which);
  routing::request_info rq = handshake ? seed_handshake(false) : plain_get();
  rq.target = target;
  routing::decision d;
  routing::route_into(*c, rq, d);  // warm-up
  if (d.what != routing::action::proxy || d.upstream.uri != expect_uri)
    die(std::string(which) + ": upstream URI is \"" + d.upstream.uri + "\", expected \"" +
        expect_uri + "\"");
  const alloc_counter allocs;
  for (auto _ : state) {
    routing::route_into(*c, rq, d);
    benchmark::DoNotOptimize(d.upstream.uri.data());
  }
  allocs.report(state);
  state.SetItemsProcessed(state.iterations());
}

const char* kSeedUri = "/api/v1/ws/simple-voice-chat?language=ar&voice_type=female";
// seed-fixed.conf: proxy_pass with a URI part (the matched prefix is replaced).
BENCHMARK_CAPTURE(route_bench, uri_part_nodiag, "seed-fixed.conf", false, kSeedUri);
BENCHMARK_CAPTURE(route_bench, uri_part_diag, "seed-fixed.conf", true, kSeedUri);
// seed-broken.conf: proxy_pass without a URI part (the URI passes unchanged).
BENCHMARK_CAPTURE(route_bench, no_uri_part_nodiag, "seed-broken.conf", false, kSeedUri);
BENCHMARK_CAPTURE(route_bench, no_uri_part_diag, "seed-broken.conf", true, kSeedUri);
BENCHMARK_CAPTURE(route_bench, variables_nodiag, "variables", false,
                  "/voice/simple-voice-chat?lang=ar");
BENCHMARK_CAPTURE(route_bench, variables_diag, "variables", true,
                  "/voice/simple-voice-chat?lang=ar");
BENCHMARK_CAPTURE(route_into_bench, reused_uri_part, "seed-fixed.conf", true, kSeedUri, kSeedUri);
BENCHMARK_CAPTURE(route_into_bench, reused_no_uri_part, "seed-broken.conf", true, kSeedUri,
                  kSeedUri);
BENCHMARK_CAPTURE(route_into_bench, reused_variables, "variables", true, kSeedUri,
                  "/voice/simple-voice-chat?lang=ar");
const char* kStatusUri = "/api/v1/ws/status?language=ar";
BENCHMARK_CAPTURE(route_into_bench, plain_get_seed_fixed, "seed-fixed.conf", false, kStatusUri,
                  kStatusUri);
BENCHMARK_CAPTURE(route_into_bench, plain_get_seed_broken, "seed-broken.conf", false, kStatusUri,
                  kStatusUri);

}  // namespace

BENCHMARK_MAIN();
