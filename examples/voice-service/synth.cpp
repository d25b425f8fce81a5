#include "synth.hpp"

#include <espeak-ng/speak_lib.h>

#include <cstring>

namespace voice {
namespace {

// espeak-ng hands audio to a process-wide callback; the pointer to the buffer being filled travels
// in the event's user_data.
int collect_samples(short* wav, int count, espeak_EVENT* events) {
  if (wav == nullptr || count <= 0 || events == nullptr) {
    return 0;
  }
  auto* out = static_cast<std::vector<std::int16_t>*>(events->user_data);
  if (out != nullptr) {
    out->insert(out->end(), wav, wav + count);
  }
  return 0;
}

void put_u16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
}

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 0; shift < 32; shift += 8) {
    out.push_back(static_cast<std::uint8_t>((v >> shift) & 0xff));
  }
}

}  // namespace

std::vector<std::uint8_t> encode_wav(const std::vector<std::int16_t>& samples, int sample_rate) {
  const auto data_bytes = static_cast<std::uint32_t>(samples.size() * 2);
  std::vector<std::uint8_t> out;
  out.reserve(44 + data_bytes);
  out.insert(out.end(), {'R', 'I', 'F', 'F'});
  put_u32(out, 36 + data_bytes);
  out.insert(out.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  put_u32(out, 16);                                           // fmt chunk size
  put_u16(out, 1);                                            // PCM
  put_u16(out, 1);                                            // mono
  put_u32(out, static_cast<std::uint32_t>(sample_rate));      // sample rate
  put_u32(out, static_cast<std::uint32_t>(sample_rate) * 2);  // byte rate
  put_u16(out, 2);                                            // block align
  put_u16(out, 16);                                           // bits per sample
  out.insert(out.end(), {'d', 'a', 't', 'a'});
  put_u32(out, data_bytes);
  for (const std::int16_t s : samples) {
    put_u16(out, static_cast<std::uint16_t>(s));
  }
  return out;
}

speech_synthesizer::speech_synthesizer() {
  // DONT_EXIT: espeak-ng would otherwise exit() the whole service when its data is missing.
  const int rate =
      espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, nullptr, espeakINITIALIZE_DONT_EXIT);
  if (rate <= 0) {
    init_error_ = "espeak-ng failed to initialise (is espeak-ng-data installed?)";
    return;
  }
  const char* data_path = nullptr;
  const char* info = espeak_Info(&data_path);
  version_ = info != nullptr ? info : "";
  espeak_SetSynthCallback(collect_samples);
  sample_rate_ = rate;
}

speech_synthesizer::~speech_synthesizer() {
  if (available()) {
    espeak_Terminate();
  }
}

synthesis speech_synthesizer::synthesize(std::string_view text, const std::string& voice) {
  synthesis result;
  result.sample_rate = sample_rate_;
  if (!available()) {
    result.error = init_error_;
    return result;
  }
  if (espeak_SetVoiceByName(voice.c_str()) != EE_OK) {
    result.error = "espeak-ng has no voice '" + voice + "'";
    return result;
  }
  std::vector<std::int16_t> samples;
  const std::string text_z(text);  // espeak wants a terminated string
  const espeak_ERROR rc = espeak_Synth(text_z.c_str(), text_z.size() + 1, 0, POS_CHARACTER, 0,
                                       espeakCHARS_UTF8, nullptr, &samples);
  if (rc != EE_OK) {
    result.error =
        "espeak-ng synthesis failed (error " + std::to_string(static_cast<int>(rc)) + ")";
    return result;
  }
  result.samples = samples.size();
  result.wav = encode_wav(samples, sample_rate_);
  return result;
}

}  // namespace voice
