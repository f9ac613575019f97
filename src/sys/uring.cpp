#ifdef ASYNCIO_HAS_LIBURING
#include "sys/uring.hpp"

#include <liburing.h>

#include "sys/sys.hpp"

namespace asyncio::sys {

int uring_init(unsigned entries, io_uring* ring, io_uring_params* params) noexcept {
  if (const int e = enter(Call::io_uring_setup); e != 0) return -e;
  return io_uring_queue_init_params(entries, ring, params);
}

void uring_exit(io_uring* ring) noexcept {
  io_uring_queue_exit(ring);
}

int uring_submit(io_uring* ring) noexcept {
  if (const int e = enter(Call::io_uring_enter); e != 0) return -e;
  return io_uring_submit(ring);
}

int uring_get_events(io_uring* ring) noexcept {
  if (const int e = enter(Call::io_uring_enter); e != 0) return -e;
  return io_uring_get_events(ring);
}

int uring_submit_and_wait(io_uring* ring, io_uring_cqe** cqe, __kernel_timespec* timeout) noexcept {
  if (const int e = enter(Call::io_uring_enter); e != 0) return -e;
  const int r = io_uring_submit_and_wait_timeout(ring, cqe, 1, timeout, nullptr);
  return r < 0 ? r : 0;
}

}  // namespace asyncio::sys
#endif
