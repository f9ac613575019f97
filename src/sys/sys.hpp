// The only place the library makes raw system calls (the rest of src/ calls these wrappers):
// thin wrappers that map failures to std::system_error carrying errno (one seam for error
// mapping and, later, fault injection).
#pragma once

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include "asyncio/exceptions.hpp"

struct epoll_event;

namespace asyncio::sys {

/// Throws the OSError that matches errno (asyncio::raise_os_error) when rc < 0; returns rc
/// otherwise.
inline int check(int rc, const char* what) {
  if (rc < 0) asyncio::raise_os_error(errno, what);
  return rc;
}

int epoll_create();
void epoll_ctl(int epfd, int op, int fd, std::uint32_t events);
/// Waits; EINTR is reported as 0 events.
int epoll_wait(int epfd, epoll_event* events, int max, int timeout_ms);
int eventfd_nonblocking();
/// Adds one to an eventfd (async-signal-safe, never throws).
void eventfd_signal(int fd) noexcept;
/// Empties an eventfd (never throws).
void eventfd_drain(int fd) noexcept;
/// A non-blocking, close-on-exec pipe.
void pipe_nonblocking(int fds[2]);
void close(int fd) noexcept;
/// read() that retries EINTR; returns -1 with errno on failure.
long read_some(int fd, void* buf, std::size_t n) noexcept;
/// write() that retries EINTR; async-signal-safe.
long write_some(int fd, const void* buf, std::size_t n) noexcept;
bool is_main_thread() noexcept;
/// sigaction(2): installs `handler` (SIG_DFL, SIG_IGN or a function) for `sig` with `flags`
/// and an empty mask. Returns 0, or the errno (the caller decides what a failure means).
int set_signal_action(int sig, void (*handler)(int), int flags) noexcept;
/// The handler currently installed for `sig` (SIG_DFL on failure).
void (*signal_handler_of(int sig) noexcept)(int);
/// Anonymous private read-write memory of `n` bytes, or null.
void* map_anonymous(std::size_t n) noexcept;
void unmap(void* p, std::size_t n) noexcept;
/// madvise(MADV_HUGEPAGE) where the kernel has it; a failure changes nothing.
void advise_huge_pages(void* p, std::size_t n) noexcept;

}  // namespace asyncio::sys
