#pragma once
// The voice-chat message protocol, independent of the transport (documented in README.md).
//
// A session receives text frames (JSON) and binary frames (audio); for each it produces JSON events
// to send back, and possibly a reply to speak. The server sends the events in order, then the
// spoken reply as a WAV in binary frames, then an `audio_end` event.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace voice {

inline constexpr std::string_view supported_languages[] = {"ar", "en"};
inline constexpr std::string_view supported_voice_types[] = {"female", "male"};

bool is_supported_language(std::string_view language);
bool is_supported_voice_type(std::string_view voice_type);

// espeak-ng voice name for a language and voice type: female → "<lang>+f3", male → "<lang>".
std::string espeak_voice(std::string_view language, std::string_view voice_type);

// The deterministic reply to `text`, in `language`.
std::string reply_text(std::string_view language, std::string_view text);

struct session_state {
  std::string id;
  std::string endpoint;  // "simple-voice-chat" or "voice-conversation"
  std::string language = "ar";
  std::string voice_type = "female";
  std::string preset;  // legacy endpoint only
};

struct speech_request {
  std::string text;
  std::string language;
  std::string voice;  // espeak voice name
};

struct outcome {
  std::vector<nlohmann::ordered_json> events;
  std::optional<speech_request> speak;
};

// Longest text the service agrees to speak (characters are bytes of UTF-8 here).
inline constexpr std::size_t max_speech_text = 2000;

// Starts a session from the handshake's query parameters. Unsupported values fall back to the
// defaults and add an `error` event after the `session` event.
outcome open_session(session_state& state, std::string_view endpoint,
                     const std::vector<std::pair<std::string, std::string>>& query);

outcome handle_text(session_state& state, std::string_view payload);
nlohmann::ordered_json handle_binary(const session_state& state, std::size_t bytes);

std::string new_session_id();

// Splits "a=1&b=%20x" into decoded pairs.
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query);

}  // namespace voice
