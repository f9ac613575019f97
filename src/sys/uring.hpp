// The seam's io_uring calls (liburing's functions that enter the kernel): counted as
// Call::io_uring_enter, and open to fault injection like every other call in src/sys.
// Built only with liburing (ASYNCIO_HAS_LIBURING).
#pragma once

struct io_uring;
struct io_uring_params;
struct io_uring_cqe;
struct __kernel_timespec;

namespace asyncio::sys {

/// io_uring_queue_init_params(): 0 or -errno.
int uring_init(unsigned entries, io_uring* ring, io_uring_params* params) noexcept;
/// io_uring_queue_exit().
void uring_exit(io_uring* ring) noexcept;
/// io_uring_submit(): SQEs submitted, or -errno.
int uring_submit(io_uring* ring) noexcept;
/// io_uring_get_events(): runs deferred completion work so that its CQEs appear. 0 or -errno.
int uring_get_events(io_uring* ring) noexcept;
/// io_uring_submit_and_wait_timeout(): submits and waits for one completion or the time-out
/// (null: none) in one io_uring_enter. 0, or -errno (-ETIME on time-out, -EINTR).
int uring_submit_and_wait(io_uring* ring, io_uring_cqe** cqe, __kernel_timespec* timeout) noexcept;

}  // namespace asyncio::sys
