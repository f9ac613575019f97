#include "sys/sys.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

namespace asyncio::sys {

int epoll_create() { return check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1"); }

void epoll_ctl(int epfd, int op, int fd, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  check(::epoll_ctl(epfd, op, fd, &ev), "epoll_ctl");
}

int epoll_wait(int epfd, epoll_event* events, int max, int timeout_ms) {
  const int n = ::epoll_wait(epfd, events, max, timeout_ms);
  if (n < 0 && errno == EINTR) return 0;
  return check(n, "epoll_wait");
}

int eventfd_nonblocking() { return check(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd"); }

void eventfd_signal(int fd) noexcept {
  const std::uint64_t one = 1;
  (void)write_some(fd, &one, sizeof one);  // EAGAIN: the counter is already non-zero
}

void eventfd_drain(int fd) noexcept {
  std::uint64_t value = 0;
  (void)read_some(fd, &value, sizeof value);
}

void pipe_nonblocking(int fds[2]) { check(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), "pipe2"); }

void close(int fd) noexcept {
  if (fd >= 0) ::close(fd);
}

long read_some(int fd, void* buf, std::size_t n) noexcept {
  for (;;) {
    const long r = ::read(fd, buf, n);
    if (r >= 0 || errno != EINTR) return r;
  }
}

long write_some(int fd, const void* buf, std::size_t n) noexcept {
  for (;;) {
    const long r = ::write(fd, buf, n);
    if (r >= 0 || errno != EINTR) return r;
  }
}

bool is_main_thread() noexcept { return ::syscall(SYS_gettid) == ::getpid(); }

}  // namespace asyncio::sys
