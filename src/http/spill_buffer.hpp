// A byte queue for a body held on the proxy's behalf (a response read ahead of a slow client, a
// request body read before the upstream is contacted): the first `memory` bytes live in one
// block, the rest in an unlinked temporary file up to `file` bytes, and they come out in the
// order they went in. nginx's proxy_buffers + proxy_max_temp_file_size, and
// client_body_buffer_size + its temp file.
//
// room() says how much more fits within both limits; push() always takes what it is given (a
// caller reads at most room() from its peer, so the block grows past `memory` only by what one
// framing step adds, and only when no file is allowed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace wsgate::http {

class spill_buffer {
 public:
  spill_buffer() = default;
  spill_buffer(const spill_buffer&) = delete;
  spill_buffer& operator=(const spill_buffer&) = delete;
  ~spill_buffer() { close_file(); }

  // Empties the queue and sets its limits; the memory block is kept when it is large enough
  // (no allocation per response on a keep-alive connection).
  void reset(size_t memory, uint64_t file);
  // Frees the block and the file once empty (an idle connection holds neither).
  void release();

  size_t room() const;
  // Appends `s`; false when the temporary file could not be created or written (errno set).
  bool push(std::string_view s);

  bool empty() const { return begin_ == end_ && file_read_ == file_write_; }
  uint64_t size() const { return (end_ - begin_) + (file_write_ - file_read_); }
  uint64_t in_memory() const { return end_ - begin_; }
  uint64_t in_file() const { return file_write_ - file_read_; }
  // True once this queue has written to a temporary file (since reset()).
  bool spilled() const { return spilled_; }

  // The bytes at the front, refilled from the file when the block is empty; empty when the
  // queue is empty or the file could not be read (errno set).
  std::string_view front();
  void pop(size_t n);

 private:
  bool ensure_block(size_t need);
  bool open_file();
  void close_file();

  std::unique_ptr<char[]> block_;
  size_t cap_ = 0, begin_ = 0, end_ = 0;
  size_t memory_ = 0;
  uint64_t file_limit_ = 0;
  int fd_ = -1;
  uint64_t file_read_ = 0, file_write_ = 0;
  bool spilled_ = false;
};

}  // namespace wsgate::http
