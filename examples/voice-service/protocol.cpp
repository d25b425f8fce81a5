#include "protocol.hpp"

#include <algorithm>
#include <chrono>
#include <random>

namespace voice {
namespace {

using json = nlohmann::ordered_json;

std::string joined(const auto& list) {
  std::string out;
  for (const auto& item : list) {
    if (!out.empty()) {
      out += ", ";
    }
    out += item;
  }
  return out;
}

json error_event(std::string message) {
  return json{{"type", "error"}, {"message", std::move(message)}};
}

std::int64_t unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Copies the client's optional correlation id into a response.
json with_id(json event, const json& request) {
  if (request.is_object() && request.contains("id")) {
    event["id"] = request["id"];
  }
  return event;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::string url_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%' && i + 2 < in.size() && hex_value(in[i + 1]) >= 0 &&
               hex_value(in[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2]));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

}  // namespace

bool is_supported_language(std::string_view language) {
  return std::ranges::find(supported_languages, language) != std::end(supported_languages);
}

bool is_supported_voice_type(std::string_view voice_type) {
  return std::ranges::find(supported_voice_types, voice_type) != std::end(supported_voice_types);
}

std::string espeak_voice(std::string_view language, std::string_view voice_type) {
  std::string voice(language);
  if (voice_type == "female") {
    voice += "+f3";
  }
  return voice;
}

std::string reply_text(std::string_view language, std::string_view text) {
  if (language == "ar") {
    return "لقد قلت: " + std::string(text);
  }
  return "You said: " + std::string(text);
}

std::string new_session_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  static constexpr char digits[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 16; ++i) {
    id += digits[rng() % 16];
  }
  return id;
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (part.empty()) {
      continue;
    }
    const auto eq = part.find('=');
    if (eq == std::string_view::npos) {
      out.emplace_back(url_decode(part), "");
    } else {
      out.emplace_back(url_decode(part.substr(0, eq)), url_decode(part.substr(eq + 1)));
    }
  }
  return out;
}

outcome open_session(session_state& state, std::string_view endpoint,
                     const std::vector<std::pair<std::string, std::string>>& query) {
  outcome result;
  state.id = new_session_id();
  state.endpoint = endpoint;
  std::vector<json> problems;
  for (const auto& [name, value] : query) {
    if (name == "language") {
      if (is_supported_language(value)) {
        state.language = value;
      } else {
        problems.push_back(error_event("unsupported language '" + value +
                                       "'; supported: " + joined(supported_languages) +
                                       "; using '" + state.language + "'"));
      }
    } else if (name == "voice_type") {
      if (is_supported_voice_type(value)) {
        state.voice_type = value;
      } else {
        problems.push_back(error_event("unsupported voice_type '" + value +
                                       "'; supported: " + joined(supported_voice_types) +
                                       "; using '" + state.voice_type + "'"));
      }
    } else if (name == "preset") {
      state.preset = value;
    }
  }
  json session{{"type", "session"},
               {"session_id", state.id},
               {"endpoint", state.endpoint},
               {"language", state.language},
               {"voice_type", state.voice_type},
               {"voice", espeak_voice(state.language, state.voice_type)}};
  if (!state.preset.empty()) {
    session["preset"] = state.preset;
  }
  result.events.push_back(std::move(session));
  for (auto& p : problems) {
    result.events.push_back(std::move(p));
  }
  return result;
}

outcome handle_text(session_state& state, std::string_view payload) {
  outcome result;
  json message = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded()) {
    result.events.push_back(error_event(
        R"(invalid JSON; send e.g. {"type":"ping"} or {"type":"text","text":"hello"})"));
    return result;
  }
  if (!message.is_object() || !message.contains("type") || !message["type"].is_string()) {
    result.events.push_back(error_event(
        R"(a message must be a JSON object with a string "type" (ping, text, config))"));
    return result;
  }
  const std::string type = message["type"].get<std::string>();
  if (type == "ping") {
    result.events.push_back(with_id(
        json{{"type", "pong"}, {"session_id", state.id}, {"timestamp", unix_ms()}}, message));
    return result;
  }
  if (type == "config") {
    outcome changes;
    std::vector<std::pair<std::string, std::string>> params;
    for (const char* key : {"language", "voice_type"}) {
      if (message.contains(key) && message[key].is_string()) {
        params.emplace_back(key, message[key].get<std::string>());
      }
    }
    for (const auto& [name, value] : params) {
      const bool ok =
          name == "language" ? is_supported_language(value) : is_supported_voice_type(value);
      if (!ok) {
        result.events.push_back(with_id(
            error_event(
                "unsupported " + name + " '" + value + "'; supported: " +
                (name == "language" ? joined(supported_languages) : joined(supported_voice_types))),
            message));
        return result;
      }
    }
    for (const auto& [name, value] : params) {
      (name == "language" ? state.language : state.voice_type) = value;
    }
    result.events.push_back(with_id(json{{"type", "config"},
                                         {"language", state.language},
                                         {"voice_type", state.voice_type},
                                         {"voice", espeak_voice(state.language, state.voice_type)}},
                                    message));
    return result;
  }
  if (type == "text") {
    if (!message.contains("text") || !message["text"].is_string()) {
      result.events.push_back(
          with_id(error_event(R"(a text message needs a string "text" field)"), message));
      return result;
    }
    const std::string text = message["text"].get<std::string>();
    std::string language = state.language;
    if (message.contains("language")) {
      const auto& lang = message["language"];
      if (!lang.is_string() || !is_supported_language(lang.get<std::string>())) {
        result.events.push_back(with_id(error_event("unsupported language " + lang.dump() +
                                                    "; supported: " + joined(supported_languages)),
                                        message));
        return result;
      }
      language = lang.get<std::string>();
    }
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
      result.events.push_back(with_id(error_event("text is empty; nothing to say"), message));
      return result;
    }
    if (text.size() > max_speech_text) {
      result.events.push_back(
          with_id(error_event("text too long to speak (" + std::to_string(text.size()) +
                              " bytes; at most " + std::to_string(max_speech_text) + ")"),
                  message));
      return result;
    }
    const std::string reply = reply_text(language, text);
    const std::string voice = espeak_voice(language, state.voice_type);
    result.events.push_back(with_id(json{{"type", "reply"},
                                         {"text", reply},
                                         {"language", language},
                                         {"voice", voice},
                                         {"audio_format", "wav"}},
                                    message));
    result.speak = speech_request{reply, language, voice};
    return result;
  }
  result.events.push_back(with_id(
      error_event("unknown message type '" + type + "'; known: ping, text, config"), message));
  return result;
}

json handle_binary(const session_state& state, std::size_t bytes) {
  return json{{"type", "audio_ack"}, {"bytes", bytes}, {"session_id", state.id}};
}

}  // namespace voice
