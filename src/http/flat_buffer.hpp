// A connection's read buffer: one contiguous block that grows up to a cap, consumed from the
// front and compacted before a read; release() gives the memory back while a connection idles.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace wsgate::http {

class flat_buffer {
 public:
  std::string_view data() const { return {block_.get() + begin_, end_ - begin_}; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  size_t capacity() const { return cap_; }

  // Room for at least `min` (and up to `want`) more bytes at the end; returns the writable area.
  // Compacts first, grows the block when needed. Returns an empty area when `min` cannot fit
  // under `limit`.
  std::pair<char*, size_t> prepare(size_t want, size_t limit) {
    if (begin_ == end_) begin_ = end_ = 0;
    if (cap_ - end_ < want && begin_ > 0) {
      std::memmove(block_.get(), block_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (cap_ - end_ < want) {
      size_t next = end_ + want;
      if (next > limit) next = limit;
      if (next > cap_) {
        auto fresh = std::make_unique_for_overwrite<char[]>(next);
        if (end_) std::memcpy(fresh.get(), block_.get(), end_);
        block_ = std::move(fresh);
        cap_ = next;
      }
    }
    return {block_.get() + end_, cap_ - end_};
  }
  void commit(size_t n) { end_ += n; }
  void consume(size_t n) {
    begin_ += n;
    if (begin_ >= end_) begin_ = end_ = 0;
  }
  void append(std::string_view s, size_t limit) {
    auto [p, n] = prepare(s.size(), limit < s.size() + size() ? s.size() + size() : limit);
    (void)n;
    std::memcpy(p, s.data(), s.size());
    commit(s.size());
  }
  // Frees the block when empty (an idle keep-alive or tunnel connection holds no buffer).
  void release() {
    if (begin_ == end_) {
      block_.reset();
      cap_ = begin_ = end_ = 0;
    }
  }

 private:
  std::unique_ptr<char[]> block_;
  size_t cap_ = 0, begin_ = 0, end_ = 0;
};

}  // namespace wsgate::http
