#include "uring.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

namespace wsgate::bench {
namespace {
constexpr uint16_t kBufGroup = 0;
}

std::string uring::probe() {
  uring r;
  return r.init(8, 8, 4096);
}

uring::~uring() {
  if (ring_up_) io_uring_queue_exit(&ring_);
  if (br_) munmap(br_, br_bytes_);
  if (bufs_) munmap(bufs_, bufs_bytes_);
}

std::string uring::init(unsigned entries, unsigned nbufs, unsigned buf_size, unsigned headroom) {
  io_uring_params p{};
  // One thread owns the ring; completions are produced only when that thread waits, so socket
  // events arriving while it works do not wake it once each.
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  p.cq_entries = entries * 8;
  if (int rc = io_uring_queue_init_params(entries, &ring_, &p); rc < 0) {
    return std::string("io_uring_setup: ") + std::strerror(-rc);
  }
  ring_up_ = true;
  if (!(p.features & IORING_FEAT_EXT_ARG)) return "the kernel's io_uring lacks IORING_FEAT_EXT_ARG";
  nbufs_ = nbufs;
  buf_size_ = buf_size;
  headroom_ = headroom;
  br_bytes_ = sizeof(io_uring_buf) * nbufs;
  void* br = mmap(nullptr, br_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (br == MAP_FAILED) return std::string("mmap: ") + std::strerror(errno);
  br_ = static_cast<io_uring_buf_ring*>(br);
  io_uring_buf_ring_init(br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br_);
  reg.ring_entries = nbufs;
  reg.bgid = kBufGroup;
  if (int rc = io_uring_register_buf_ring(&ring_, &reg, 0); rc < 0) {
    return std::string("io_uring_register_buf_ring: ") + std::strerror(-rc);
  }
  stride_ = buf_size + headroom;
  bufs_bytes_ = stride_ * nbufs;
  void* bufs =
      mmap(nullptr, bufs_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (bufs == MAP_FAILED) return std::string("mmap: ") + std::strerror(errno);
  bufs_ = static_cast<char*>(bufs);
  const int mask = io_uring_buf_ring_mask(nbufs);
  for (unsigned i = 0; i < nbufs; ++i) {
    io_uring_buf_ring_add(br_, buffer(i), buf_size, static_cast<uint16_t>(i), mask,
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br_, static_cast<int>(nbufs));
  return {};
}

void uring::recycle(unsigned id) {
  io_uring_buf_ring_add(br_, buffer(id), buf_size_, static_cast<uint16_t>(id),
                        io_uring_buf_ring_mask(nbufs_), 0);
  io_uring_buf_ring_advance(br_, 1);
}

io_uring_sqe* uring::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  while (!s) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  return s;
}

void uring::send(int fd, const void* p, std::size_t n, uint64_t user_data) {
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, fd, p, n, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, user_data);
}

void uring::recv_multishot(int fd, uint64_t user_data) {
  io_uring_sqe* s = sqe();
  io_uring_prep_recv_multishot(s, fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kBufGroup;
  io_uring_sqe_set_data64(s, user_data);
}

void uring::connect(int fd, const sockaddr* addr, socklen_t len, uint64_t user_data) {
  io_uring_sqe* s = sqe();
  io_uring_prep_connect(s, fd, addr, len);
  io_uring_sqe_set_data64(s, user_data);
}

void uring::accept_multishot(int fd, uint64_t user_data) {
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, fd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, user_data);
}

void uring::cancel(uint64_t target, uint64_t user_data) {
  io_uring_sqe* s = sqe();
  io_uring_prep_cancel64(s, target, 0);
  io_uring_sqe_set_data64(s, user_data);
}

void uring::submit_and_wait(uint64_t timeout_ns) {
  __kernel_timespec ts{static_cast<long long>(timeout_ns / 1'000'000'000ULL),
                       static_cast<long long>(timeout_ns % 1'000'000'000ULL)};
  io_uring_cqe* cqe = nullptr;
  // -ETIME (timeout) and -EINTR are normal ends of a wait.
  io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
}

}  // namespace wsgate::bench
