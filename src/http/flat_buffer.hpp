// A connection's read buffer: one contiguous block that grows up to a cap, consumed from the
// front and compacted before a read; release() gives the memory back while a connection idles.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

namespace wsgate::http {

// Blocks released by idle connections, kept per thread for the next request's read buffer: a
// keep-alive connection gives its block back between requests (an idle connection holds none)
// and takes one again without a heap allocation. Bounded, so idle memory stays small.
class block_cache {
 public:
  // Enough for the blocks of the connections a busy worker has in flight (each request's read
  // buffers come back between requests), about 512 KiB of 4 KiB blocks at most.
  static constexpr size_t kMaxBlocks = 128;
  // This thread's cache; null once the thread's exit destroyed it.
  static block_cache* local() {
    thread_local block_cache cache;
    return gone() ? nullptr : &cache;
  }
  ~block_cache() { gone() = true; }
  // A cached block of `min` to `max` bytes (its size in `cap`), or null.
  std::unique_ptr<char[]> take(size_t min, size_t max, size_t& cap) {
    for (size_t i = count_; i-- > 0;)
      if (slots_[i].second >= min && slots_[i].second <= max) {
        auto b = std::move(slots_[i].first);
        cap = slots_[i].second;
        slots_[i] = std::move(slots_[--count_]);
        return b;
      }
    return nullptr;
  }
  void give(std::unique_ptr<char[]> b, size_t cap) {
    if (count_ < kMaxBlocks) slots_[count_++] = {std::move(b), cap};
  }

 private:
  static bool& gone() {
    thread_local bool flag = false;  // trivially destructible: readable after the cache's end
    return flag;
  }
  std::pair<std::unique_ptr<char[]>, size_t> slots_[kMaxBlocks];
  size_t count_ = 0;
};

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
        size_t cached_cap = 0;
        // An empty buffer takes a cached block (any between the size wanted and the limit).
        block_cache* cache = end_ == 0 ? block_cache::local() : nullptr;
        if (cache) {
          if (auto b = cache->take(next, limit, cached_cap)) {
            give_back();
            block_ = std::move(b);
            cap_ = cached_cap;
            return {block_.get(), cap_};
          }
        }
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
      give_back();
      begin_ = end_ = 0;
    }
  }
  flat_buffer() = default;
  flat_buffer(flat_buffer&& o) noexcept { *this = std::move(o); }
  flat_buffer& operator=(flat_buffer&& o) noexcept {
    if (this != &o) {
      give_back();
      block_ = std::move(o.block_);
      cap_ = std::exchange(o.cap_, 0);
      begin_ = std::exchange(o.begin_, 0);
      end_ = std::exchange(o.end_, 0);
    }
    return *this;
  }
  ~flat_buffer() { give_back(); }

 private:
  void give_back() {
    if (block_)
      if (block_cache* cache = block_cache::local()) cache->give(std::move(block_), cap_);
    block_.reset();
    cap_ = 0;
  }

  std::unique_ptr<char[]> block_;
  size_t cap_ = 0, begin_ = 0, end_ = 0;
};

}  // namespace wsgate::http
