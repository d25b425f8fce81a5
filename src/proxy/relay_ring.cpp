#include "proxy/relay_ring.hpp"

#include <sys/mman.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wsgate::proxy {

namespace {
// Loop rounds (reap, submit) in one turn before the other handlers of the worker get a go.
constexpr int kMaxRounds = 8;
constexpr unsigned kSqEntries = 512;
constexpr unsigned kCqEntries = 8192;

// Newer than liburing 2.3's headers (Linux 6.12 uapi).
constexpr uint16_t kPbufRingInc = 2;       // IOU_PBUF_RING_INC
constexpr unsigned kCqeBufMore = 1U << 4;  // IORING_CQE_F_BUF_MORE

unsigned sq_flags(const io_uring& r) {
  return __atomic_load_n(r.sq.kflags, __ATOMIC_ACQUIRE);
}
}  // namespace

relay_ring::relay_ring(boost::asio::io_context& io) : io_(io), ready_(io) {}

std::unique_ptr<relay_ring> relay_ring::create(boost::asio::io_context& io, std::string& why) {
  std::unique_ptr<relay_ring> r(new relay_ring(io));
  io_uring_params p{};
  // COOP_TASKRUN: a completion does not interrupt the worker while it runs (no IPI per
  // message); the work runs at its next system call, and TASKRUN_FLAG tells us one is due.
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_SUBMIT_ALL;
  p.cq_entries = kCqEntries;
  int rc = io_uring_queue_init_params(kSqEntries, &r->ring_, &p);
  if (rc < 0) {
    why = std::string("io_uring_setup: ") + std::strerror(-rc);
    return nullptr;
  }
  r->ring_ok_ = true;
  r->msgs_ = std::make_unique<msghdr[]>(kSqEntries);
  r->iovs_ = std::make_unique<iovec[]>(size_t{kSqEntries} * kMaxIovs);
  if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_FAST_POLL) ||
      !(p.features & IORING_FEAT_SUBMIT_STABLE)) {
    why = "io_uring without NODROP/FAST_POLL/SUBMIT_STABLE (kernel too old)";
    return nullptr;
  }
  io_uring_register_ring_fd(&r->ring_);  // optional: saves a file lookup per enter

  r->br_bytes_ = (sizeof(io_uring_buf) * kBuffers + 4095) & ~size_t{4095};
  void* ringmem = ::mmap(nullptr, r->br_bytes_ + size_t{kBuffers} * kBufferSize,
                         PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ringmem == MAP_FAILED) {
    why = std::string("mmap: ") + std::strerror(errno);
    return nullptr;
  }
  r->br_ = static_cast<io_uring_buf_ring*>(ringmem);
  r->buffers_ = static_cast<char*>(ringmem) + r->br_bytes_;
  io_uring_buf_ring_init(r->br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(r->br_);
  reg.ring_entries = kBuffers;
  reg.bgid = kGroup;
  reg.pad = kPbufRingInc;
  rc = io_uring_register_buf_ring(&r->ring_, &reg, 0);
  r->incremental_ = rc == 0;
  if (rc == -EINVAL) {
    reg.pad = 0;
    rc = io_uring_register_buf_ring(&r->ring_, &reg, 0);
  }
  if (rc < 0) {
    why = std::string("provided buffer ring: ") + std::strerror(-rc);
    return nullptr;
  }
  const int mask = io_uring_buf_ring_mask(kBuffers);
  for (unsigned i = 0; i < kBuffers; ++i)
    io_uring_buf_ring_add(r->br_, r->buffer(i), kBufferSize, static_cast<unsigned short>(i), mask,
                          static_cast<int>(i));
  io_uring_buf_ring_advance(r->br_, static_cast<int>(kBuffers));

  io_uring_probe* probe = io_uring_get_probe_ring(&r->ring_);
  const bool ops = probe && io_uring_opcode_supported(probe, IORING_OP_RECV) &&
                   io_uring_opcode_supported(probe, IORING_OP_SEND) &&
                   io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL);
  if (probe) io_uring_free_probe(probe);
  if (!ops) {
    why = "io_uring lacks recv/send/cancel";
    return nullptr;
  }
  boost::system::error_code ec;
  r->ready_.assign(r->ring_.ring_fd, ec);
  if (ec) {
    why = "ring descriptor: " + ec.message();
    return nullptr;
  }
  return r;
}

relay_ring::~relay_ring() {
  if (std::getenv("WSGATE_RELAY_STATS"))
    std::fprintf(stderr, "relay_ring: turns %llu enters %llu starvations %llu stalls %llu\n",
                 static_cast<unsigned long long>(turns_), static_cast<unsigned long long>(enters_),
                 static_cast<unsigned long long>(starvations_),
                 static_cast<unsigned long long>(stalls_));
  *alive_ = false;
  if (ready_.is_open()) ready_.release();  // the ring owns its descriptor
  // Tearing the ring down cancels what is still in flight; no completion is delivered after.
  if (ring_ok_) io_uring_queue_exit(&ring_);
  if (br_) ::munmap(br_, br_bytes_ + size_t{kBuffers} * kBufferSize);
}

io_uring_sqe* relay_ring::sqe(ring_user* u, unsigned tag) {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  if (!s) {
    // The submission queue is full: send what is queued now (completions stay in the CQ).
    io_uring_submit(&ring_);
    ++enters_;
    s = io_uring_get_sqe(&ring_);
  }
  io_uring_sqe_set_data64(s, u ? reinterpret_cast<uint64_t>(u) | tag : 0);
  if (!in_turn_) schedule();
  return s;
}

msghdr* relay_ring::msg_scratch(iovec*& iov) {
  // One per SQE, taken in turn: an SQE not submitted yet is one of the SQ's last kSqEntries, so
  // its header is one of the last kSqEntries taken and still intact.
  const unsigned i = msgs_used_++ % kSqEntries;
  msghdr* m = &msgs_[i];
  *m = msghdr{};
  iov = &iovs_[size_t{i} * kMaxIovs];
  m->msg_iov = iov;
  return m;
}

char* relay_ring::take(unsigned bid, unsigned len, unsigned flags) {
  char* data = buffer(bid) + offset_[bid];
  ++slices_[bid];
  ++slices_out_;
  if (incremental_ && (flags & kCqeBufMore))
    offset_[bid] += len;
  else
    kernel_done_[bid] = true;
  return data;
}

void relay_ring::give(unsigned bid) {
  --slices_out_;
  if (--slices_[bid] == 0 && kernel_done_[bid]) {
    offset_[bid] = 0;
    kernel_done_[bid] = false;
    recycle(bid);
  }
}

void relay_ring::recycle(unsigned bid) {
  io_uring_buf_ring_add(br_, buffer(bid), kBufferSize, static_cast<unsigned short>(bid),
                        io_uring_buf_ring_mask(kBuffers), 0);
  io_uring_buf_ring_advance(br_, 1);
  recycled_ = true;
}

void relay_ring::unhold() {
  if (--users_ == 0 && waiting_) ready_.cancel();
}

void relay_ring::schedule() {
  if (posted_) return;
  posted_ = true;
  boost::asio::post(io_, [this, alive = alive_] {
    if (!*alive) return;
    posted_ = false;
    turn();
  });
}

void relay_ring::wait() {
  if (waiting_) return;
  waiting_ = true;
  ready_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                    [this, alive = alive_](const boost::system::error_code& ec) {
                      if (!*alive) return;
                      waiting_ = false;
                      if (ec == boost::asio::error::operation_aborted) return;
                      turn();
                    });
}

void relay_ring::turn() {
  if (in_turn_) return;
  in_turn_ = true;
  ++turns_;
  now_ = clock::now();
  bool more = false;
  for (int round = 0;; ++round) {
    io_uring_cqe* cqe = nullptr;
    while (__io_uring_peek_cqe(&ring_, &cqe, nullptr) == 0 && cqe) {
      const uint64_t ud = cqe->user_data;
      const int res = cqe->res;
      const unsigned flags = cqe->flags;
      io_uring_cqe_seen(&ring_, cqe);
      if (ud) reinterpret_cast<ring_user*>(ud & ~uint64_t{7})->on_completion(ud & 7, res, flags);
    }
    if (recycled_ && !starved_.empty()) {
      recycled_ = false;
      // on_buffers() only queues receives: the list does not change under the loop.
      for (auto [u, tag] : starved_) u->on_buffers(tag);
      starved_.clear();
    }
    for (auto [u, tag] : flush_) u->on_flush(tag);  // only prepares SQEs
    flush_.clear();
    const bool queued = io_uring_sq_ready(&ring_) > 0;
    const bool kernel_work = (sq_flags(ring_) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
    if (!queued && !kernel_work) break;
    if (round == kMaxRounds) {
      more = true;
      break;
    }
    // Submits this round's sends and runs the completion work the kernel has queued for us
    // (receives into provided buffers), which lands in the CQ for the next round.
    io_uring_submit_and_get_events(&ring_);
    ++enters_;
  }
  for (auto [u, tag] : turn_end_) u->on_turn_end(tag);  // only reads and sets deadlines
  turn_end_.clear();
  in_turn_ = false;
  if (more || io_uring_sq_ready(&ring_) > 0)
    schedule();
  else if (users_ > 0)
    wait();
}

}  // namespace wsgate::proxy
