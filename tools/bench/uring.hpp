// A thin io_uring wrapper for the load generator and the echo upstream: one ring per thread
// (single issuer, task work deferred to the wait, so a burst of socket events costs one wake-up),
// a provided-buffer ring for multishot receives, and one io_uring_enter per loop turn that both
// submits everything queued and waits.
#pragma once

#include <liburing.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace wsgate::bench {

class uring {
 public:
  // Empty when this kernel lets the process set up a ring like the ones the tools use, else why
  // not.
  static std::string probe();

  uring() = default;
  uring(const uring&) = delete;
  uring& operator=(const uring&) = delete;
  ~uring();

  // Sets the ring up with `nbufs` (a power of two) receive buffers of `buf_size` bytes, each with
  // `headroom` writable bytes in front of it. Returns an empty string on success, otherwise why
  // io_uring cannot be used here (the caller falls back to epoll).
  std::string init(unsigned entries, unsigned nbufs, unsigned buf_size, unsigned headroom = 0);
  bool ready() const { return ring_up_ && bufs_ != nullptr; }

  // The next free submission entry, submitting the queued ones first when the queue is full.
  io_uring_sqe* sqe();
  void send(int fd, const void* p, std::size_t n, uint64_t user_data);
  void recv_multishot(int fd, uint64_t user_data);  // into the provided buffers
  void connect(int fd, const sockaddr* addr, socklen_t len, uint64_t user_data);
  void accept_multishot(int fd, uint64_t user_data);
  void cancel(uint64_t target, uint64_t user_data);

  // Submits what is queued and waits for at least one completion or `timeout_ns`.
  void submit_and_wait(uint64_t timeout_ns);

  // Calls f(user_data, res, flags) for every completion available, then marks them seen.
  template <class F>
  unsigned drain(F&& f) {
    unsigned head = 0, n = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      f(cqe->user_data, cqe->res, cqe->flags);
      ++n;
    }
    io_uring_cq_advance(&ring_, n);
    return n;
  }

  // The data of a completion that carries IORING_CQE_F_BUFFER, and giving that buffer back.
  static unsigned buffer_id(uint32_t cqe_flags) { return cqe_flags >> IORING_CQE_BUFFER_SHIFT; }
  char* buffer(unsigned id) const {
    return bufs_ + static_cast<std::size_t>(id) * stride_ + headroom_;
  }
  unsigned headroom() const { return headroom_; }
  void recycle(unsigned id);

 private:
  io_uring ring_{};
  bool ring_up_ = false;
  io_uring_buf_ring* br_ = nullptr;
  std::size_t br_bytes_ = 0;
  char* bufs_ = nullptr;
  std::size_t bufs_bytes_ = 0;
  std::size_t stride_ = 0;
  unsigned nbufs_ = 0, buf_size_ = 0, headroom_ = 0;
};

}  // namespace wsgate::bench
