#include "proxy/ws_frames.hpp"

#include <algorithm>
#include <cstring>

namespace wsgate::proxy {

size_t write_control_frame(char* out, uint8_t opcode, std::string_view payload, uint32_t mask_key) {
  const size_t n = std::min<size_t>(payload.size(), 125);
  auto* o = reinterpret_cast<unsigned char*>(out);
  o[0] = static_cast<unsigned char>(0x80 | (opcode & 0x0F));
  o[1] = static_cast<unsigned char>((mask_key ? 0x80 : 0) | n);
  if (!mask_key) {
    std::memcpy(out + 2, payload.data(), n);
    return 2 + n;
  }
  const unsigned char key[4] = {
      static_cast<unsigned char>(mask_key >> 24), static_cast<unsigned char>(mask_key >> 16),
      static_cast<unsigned char>(mask_key >> 8), static_cast<unsigned char>(mask_key)};
  std::memcpy(out + 2, key, 4);
  for (size_t i = 0; i < n; ++i)
    o[6 + i] = static_cast<unsigned char>(static_cast<unsigned char>(payload[i]) ^ key[i % 4]);
  return 6 + n;
}

size_t frame_tracker::header_size() const {
  const uint8_t len7 = header_[1] & 0x7F;
  const size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  return 2 + ext + ((header_[1] & 0x80) ? 4 : 0);
}

void frame_tracker::frame_header_done() {
  const bool fin = (header_[0] & 0x80) != 0;
  opcode_ = header_[0] & 0x0F;
  masked_ = (header_[1] & 0x80) != 0;
  const uint8_t len7 = header_[1] & 0x7F;
  uint64_t len = len7;
  if (len7 == 126) {
    len = (uint64_t{header_[2]} << 8) | header_[3];
  } else if (len7 == 127) {
    len = 0;
    for (size_t k = 2; k < 10; ++k) len = (len << 8) | header_[k];
    if (len >> 63) broken_ = true;
  }
  const bool data_op = opcode_ <= 2;
  const bool control_op = opcode_ >= 8 && opcode_ <= 10;
  if (!data_op && !control_op) broken_ = true;
  if (control_op && (!fin || len > 125)) broken_ = true;
  header_len_ = 0;
  payload_left_ = len;
  ++frames_;
}

const frame_tracker::piece_list& frame_tracker::feed(const char* data, size_t n) {
  out_.clear();
  if (broken_) {
    if (n) out_.push_back({data, n});
    return out_;
  }
  size_t emit_from = 0;
  // Where the candidate pong being collected starts in `data`; -1: in an earlier call, its
  // first held_len_ bytes are in candidate_ and not passed on yet.
  std::ptrdiff_t frame_start = -1;
  auto release_held = [&] {
    // Only the first frame of a call can have started earlier, so nothing precedes this piece.
    if (held_len_ == 0) return;
    std::memcpy(release_.data(), candidate_.data(), held_len_);
    out_.push_back({release_.data(), held_len_});
    held_len_ = 0;
  };
  size_t i = 0;
  while (i < n) {
    const bool in_header = header_len_ > 0 || payload_left_ == 0;
    if (header_len_ == 0 && payload_left_ == 0 && !collecting_ && pongs_expected_ > 0) {
      collecting_ = true;
      candidate_len_ = 0;
      held_len_ = 0;
      frame_start = static_cast<std::ptrdiff_t>(i);
    }
    if (in_header) {
      header_[header_len_++] = static_cast<uint8_t>(data[i]);
      if (collecting_) candidate_[candidate_len_++] = data[i];
      ++i;
      if (header_len_ < 2 || header_len_ < header_size()) continue;
      frame_header_done();
      if (broken_) break;
      if (collecting_ && !(opcode_ == 0xA && payload_left_ == kKeepaliveToken.size())) {
        collecting_ = false;
        if (frame_start < 0) release_held();
      }
    } else {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(payload_left_, n - i));
      if (collecting_) {
        std::memcpy(candidate_.data() + candidate_len_, data + i, k);
        candidate_len_ = static_cast<uint8_t>(candidate_len_ + k);
      }
      payload_left_ -= k;
      i += k;
    }
    if (header_len_ != 0 || payload_left_ != 0) continue;
    // A frame ended at i.
    if (opcode_ == 0x8) ++closes_;
    if (!collecting_) continue;
    collecting_ = false;
    const size_t hsize = candidate_len_ - kKeepaliveToken.size();
    char payload[kKeepaliveToken.size()];
    for (size_t k = 0; k < sizeof payload; ++k) {
      const char key = masked_ ? candidate_[hsize - 4 + k % 4] : 0;
      payload[k] = static_cast<char>(candidate_[hsize + k] ^ key);
    }
    if (std::string_view(payload, sizeof payload) == kKeepaliveToken) {
      --pongs_expected_;
      ++swallowed_;
      if (frame_start >= 0 && static_cast<size_t>(frame_start) > emit_from)
        out_.push_back({data + emit_from, static_cast<size_t>(frame_start) - emit_from});
      emit_from = i;
      held_len_ = 0;
    } else if (frame_start < 0) {
      release_held();
    }
  }
  if (broken_ && collecting_) {
    collecting_ = false;
    if (frame_start < 0) release_held();
  }
  if (collecting_) {
    // A possible pong continues in the next call: hold its bytes.
    if (frame_start >= 0 && static_cast<size_t>(frame_start) > emit_from)
      out_.push_back({data + emit_from, static_cast<size_t>(frame_start) - emit_from});
    held_len_ = candidate_len_;
  } else if (n > emit_from) {
    out_.push_back({data + emit_from, n - emit_from});
  }
  return out_;
}

}  // namespace wsgate::proxy
