// relay_ring: one io_uring per worker thread for the tunnels' byte relay. Receives are multishot
// into a ring of provided buffers (a tunnel owns no buffer while idle: the kernel picks one when
// data arrives), sends are queued as SQEs and submitted together once per loop turn, so a busy
// worker makes far fewer system calls per message than recv/send/epoll. The ring's descriptor is
// waited on by the worker's Asio io_context, so the rest of the worker is unchanged.
//
// Users (tunnels) get completions back through ring_user with a small tag (0-7) packed into the
// SQE's user_data; a user must stay alive until every operation it submitted has completed.
#pragma once

#include <liburing.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wsgate::proxy {

class relay_ring;

class ring_user {
 public:
  // One completion of an operation submitted with `tag`.
  virtual void on_completion(unsigned tag, int res, unsigned flags) = 0;
  // The receive `tag` ended for want of buffers (ENOBUFS), and buffers came back: arm it again.
  virtual void on_buffers(unsigned tag) = 0;
  // The turn that submitted an operation registered with check_at_turn_end() is over.
  virtual void on_turn_end(unsigned tag) = 0;
  // Registered with flush_before_submit(): the ring submits next; queue what is ready now.
  virtual void on_flush(unsigned tag) = 0;

 protected:
  ~ring_user() = default;
};

class relay_ring {
 public:
  using clock = std::chrono::steady_clock;
  // Incremental consumption (kernel 6.12+): receives fill a buffer one after the other, so 64 B
  // messages share a buffer and large ones get large reads. Without it each receive takes a
  // whole buffer.
  static constexpr unsigned kBufferSize = 128 * 1024;
  static constexpr unsigned kBuffers = 64;  // power of two (a buffer ring's size)
  static constexpr unsigned kGroup = 0;

  // Null, with the reason in `why`, when this kernel or sandbox lacks what the relay needs
  // (io_uring itself, provided-buffer rings, multishot receive).
  static std::unique_ptr<relay_ring> create(boost::asio::io_context& io, std::string& why);
  relay_ring(const relay_ring&) = delete;
  relay_ring& operator=(const relay_ring&) = delete;
  ~relay_ring();

  // An SQE whose completion goes to u->on_completion(tag); `u` null: the completion is ignored.
  // Submitted at the end of the current turn (a turn is scheduled if none runs).
  io_uring_sqe* sqe(ring_user* u, unsigned tag);
  // The bytes of a receive completion that picked buffer `bid` (its CQE flags in `flags`);
  // the caller owns them until give(bid).
  char* take(unsigned bid, unsigned len, unsigned flags);
  void give(unsigned bid);
  // ENOBUFS: call u->on_buffers(tag) once buffers have come back.
  void wait_for_buffers(ring_user* u, unsigned tag) {
    starved_.emplace_back(u, tag);
    ++starvations_;
  }
  void check_at_turn_end(ring_user* u, unsigned tag) { turn_end_.emplace_back(u, tag); }
  // u->on_flush(tag) just before the next submit, once the completions reaped with it are all
  // handled: what they delivered for one destination goes out as one send.
  void flush_before_submit(ring_user* u, unsigned tag) {
    flush_.emplace_back(u, tag);
    if (!in_turn_) schedule();
  }
  // A sendmsg header with `iovs` iovecs for the SQE just taken with sqe(). Valid until that SQE
  // is submitted: the kernel copies both then (IORING_FEAT_SUBMIT_STABLE).
  static constexpr unsigned kMaxIovs = 4;
  msghdr* msg_scratch(iovec*& iov);
  // The time the current turn started: one clock read per turn, not per message.
  clock::time_point now() const { return in_turn_ ? now_ : clock::now(); }

  // Tunnels using the ring. With none, the ring stops waiting on its descriptor, so that an
  // event loop with nothing else to do returns (a worker that finished its QUIT exits).
  void hold() { ++users_; }
  void unhold();

  // Counters for tests and benchmarks.
  uint64_t turns() const { return turns_; }
  uint64_t enters() const { return enters_; }
  uint64_t starvations() const { return starvations_; }
  // A send the peer could not take at once: its rest was copied out of the ring's buffer.
  void count_stall() { ++stalls_; }
  uint64_t stalls() const { return stalls_; }
  // Sends submitted, and the received chunks they carried (more chunks than sends: batching).
  void count_send(unsigned chunks) {
    ++sends_;
    chunks_sent_ += chunks;
  }
  uint64_t sends() const { return sends_; }
  uint64_t chunks_sent() const { return chunks_sent_; }
  // Received slices handed out and not given back yet (zero once every tunnel is gone).
  uint64_t slices_out() const { return slices_out_; }

 private:
  explicit relay_ring(boost::asio::io_context& io);
  char* buffer(unsigned bid) { return buffers_ + size_t{bid} * kBufferSize; }
  void recycle(unsigned bid);
  void turn();
  void schedule();
  void wait();

  boost::asio::io_context& io_;
  io_uring ring_{};
  bool ring_ok_ = false;
  boost::asio::posix::stream_descriptor ready_;  // the ring's fd, readable when CQEs wait
  io_uring_buf_ring* br_ = nullptr;
  char* buffers_ = nullptr;
  size_t br_bytes_ = 0;
  clock::time_point now_ = clock::now();
  std::vector<std::pair<ring_user*, unsigned>> starved_;
  std::vector<std::pair<ring_user*, unsigned>> turn_end_;
  std::vector<std::pair<ring_user*, unsigned>> flush_;
  // msg_scratch()'s memory: kSqEntries headers with kMaxIovs iovecs each, used in turn.
  std::unique_ptr<msghdr[]> msgs_;
  std::unique_ptr<iovec[]> iovs_;
  unsigned msgs_used_ = 0;
  bool in_turn_ = false;
  bool posted_ = false;
  bool waiting_ = false;
  bool recycled_ = false;
  bool incremental_ = false;
  // Per buffer: where the next receive's bytes start, the slices handed out and not given back,
  // and whether the kernel finished with it (its last CQE came without IORING_CQE_F_BUF_MORE).
  uint32_t offset_[kBuffers] = {};
  uint16_t slices_[kBuffers] = {};
  bool kernel_done_[kBuffers] = {};
  int users_ = 0;
  uint64_t turns_ = 0;
  uint64_t enters_ = 0;
  uint64_t starvations_ = 0;
  uint64_t stalls_ = 0;
  uint64_t sends_ = 0;
  uint64_t chunks_sent_ = 0;
  uint64_t slices_out_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace wsgate::proxy
