#include "http/spill_buffer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "http/flat_buffer.hpp"

namespace wsgate::http {

void spill_buffer::reset(size_t memory, uint64_t file) {
  begin_ = end_ = 0;
  memory_ = std::max<size_t>(memory, 1);
  file_limit_ = file;
  file_read_ = file_write_ = 0;
  spilled_ = false;
  if (fd_ >= 0 && ::ftruncate(fd_, 0) != 0) close_file();
}

void spill_buffer::release() {
  if (!empty()) return;
  // The block waits in the thread's cache for the next response, not in this idle connection.
  if (block_)
    if (block_cache* cache = block_cache::local()) cache->give(std::move(block_), cap_);
  block_.reset();
  cap_ = begin_ = end_ = 0;
  close_file();
}

size_t spill_buffer::room() const {
  const size_t mem_used = end_ - begin_;
  const size_t mem_room = in_file() == 0 && mem_used < memory_ ? memory_ - mem_used : 0;
  const uint64_t file_room = in_file() < file_limit_ ? file_limit_ - in_file() : 0;
  const uint64_t total = mem_room + file_room;
  return total > SIZE_MAX ? SIZE_MAX : static_cast<size_t>(total);
}

bool spill_buffer::ensure_block(size_t need) {
  if (begin_ == end_) begin_ = end_ = 0;
  if (cap_ - end_ >= need) return true;
  if (begin_ > 0) {
    std::memmove(block_.get(), block_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    if (cap_ - end_ >= need) return true;
  }
  const size_t next = std::max(memory_, end_ + need);
  if (end_ == 0) {
    size_t cached_cap = 0;
    block_cache* cache = block_cache::local();
    if (auto b = cache ? cache->take(next, next * 2, cached_cap) : nullptr) {
      if (block_) cache->give(std::move(block_), cap_);
      block_ = std::move(b);
      cap_ = cached_cap;
      return true;
    }
  }
  auto fresh = std::make_unique_for_overwrite<char[]>(next);
  if (end_) std::memcpy(fresh.get(), block_.get(), end_);
  block_ = std::move(fresh);
  cap_ = next;
  return true;
}

bool spill_buffer::open_file() {
  if (fd_ >= 0) return true;
  const char* dir = std::getenv("TMPDIR");
  if (!dir || !*dir) dir = "/tmp";
  fd_ = ::open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd_ < 0) {  // file systems without O_TMPFILE: create, then unlink at once
    std::string path = std::string(dir) + "/wsgate-XXXXXX";
    fd_ = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd_ < 0) return false;
    ::unlink(path.c_str());
  }
  return true;
}

void spill_buffer::close_file() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  file_read_ = file_write_ = 0;
}

bool spill_buffer::push(std::string_view s) {
  while (!s.empty()) {
    // Memory while nothing waits in the file (order is kept: the file drains into the block).
    if (in_file() == 0) {
      const size_t used = end_ - begin_;
      size_t n = used < memory_ ? std::min(s.size(), memory_ - used) : 0;
      if (file_limit_ == 0) n = s.size();  // no file allowed: the block takes the overshoot
      if (n > 0) {
        ensure_block(n);
        std::memcpy(block_.get() + end_, s.data(), n);
        end_ += n;
        s.remove_prefix(n);
        continue;
      }
    }
    if (!open_file()) return false;
    const ssize_t w = ::pwrite(fd_, s.data(), s.size(), static_cast<off_t>(file_write_));
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    spilled_ = true;
    file_write_ += static_cast<uint64_t>(w);
    s.remove_prefix(static_cast<size_t>(w));
  }
  return true;
}

std::string_view spill_buffer::front() {
  if (begin_ == end_ && in_file() > 0) {
    begin_ = end_ = 0;
    ensure_block(memory_);
    const size_t want = static_cast<size_t>(std::min<uint64_t>(cap_, in_file()));
    ssize_t r;
    do {
      r = ::pread(fd_, block_.get(), want, static_cast<off_t>(file_read_));
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
      if (r == 0) errno = EIO;  // the file is shorter than what was written to it
      return {};
    }
    file_read_ += static_cast<uint64_t>(r);
    end_ = static_cast<size_t>(r);
    if (file_read_ == file_write_) {
      // Drained: the next spill starts at the beginning of the file again.
      file_read_ = file_write_ = 0;
      if (::ftruncate(fd_, 0) != 0) close_file();
    }
  }
  return {block_.get() + begin_, end_ - begin_};
}

void spill_buffer::pop(size_t n) {
  begin_ += std::min(n, end_ - begin_);
  if (begin_ == end_) begin_ = end_ = 0;
}

}  // namespace wsgate::http
