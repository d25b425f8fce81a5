#pragma once
// Speech synthesis with espeak-ng, producing a complete WAV file (RIFF, 16-bit PCM, mono).
//
// espeak-ng keeps global state and is not thread-safe: one `speech_synthesizer` exists per process
// and every call to it must come from one thread (voice-service runs it on a dedicated thread).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace voice {

struct synthesis {
  std::vector<std::uint8_t> wav;  // a whole WAV file: 44-byte header, then samples
  std::size_t samples = 0;
  int sample_rate = 0;
  std::string error;  // empty on success
};

class speech_synthesizer {
 public:
  // Initialises espeak-ng; `available()` is false (with `init_error()`) when its data is missing.
  speech_synthesizer();
  ~speech_synthesizer();
  speech_synthesizer(const speech_synthesizer&) = delete;
  speech_synthesizer& operator=(const speech_synthesizer&) = delete;

  [[nodiscard]] bool available() const { return sample_rate_ > 0; }
  [[nodiscard]] int sample_rate() const { return sample_rate_; }
  [[nodiscard]] const std::string& version() const { return version_; }
  [[nodiscard]] const std::string& init_error() const { return init_error_; }

  // Speaks UTF-8 `text` with the espeak voice name `voice` (e.g. "ar+f3", "en"). Blocking.
  synthesis synthesize(std::string_view text, const std::string& voice);

 private:
  int sample_rate_ = 0;
  std::string version_;
  std::string init_error_;
};

// Builds a WAV header for `samples` 16-bit mono samples followed by the samples themselves.
std::vector<std::uint8_t> encode_wav(const std::vector<std::int16_t>& samples, int sample_rate);

}  // namespace voice
