#include "sys/sys.hpp"

#include <csignal>
#include <cstdint>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace asyncio::sys {

int epoll_create() {
  return check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
}

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

int eventfd_nonblocking() {
  return check(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), "eventfd");
}

void eventfd_signal(int fd) noexcept {
  const std::uint64_t one = 1;
  (void)write_some(fd, &one, sizeof one);  // EAGAIN: the counter is already non-zero
}

void eventfd_drain(int fd) noexcept {
  std::uint64_t value = 0;
  (void)read_some(fd, &value, sizeof value);
}

void pipe_nonblocking(int fds[2]) {
  check(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), "pipe2");
}

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

bool is_main_thread() noexcept {
  return ::syscall(SYS_gettid) == ::getpid();
}

int set_signal_action(int sig, void (*handler)(int), int flags) noexcept {
  struct sigaction sa {};
  sa.sa_handler = handler;  // NOLINT(cppcoreguidelines-pro-type-union-access)
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = flags;
  return ::sigaction(sig, &sa, nullptr) == 0 ? 0 : errno;
}

void (*signal_handler_of(int sig) noexcept)(int) {
  struct sigaction old {};
  if (::sigaction(sig, nullptr, &old) != 0) return SIG_DFL;
  return old.sa_handler;  // NOLINT(cppcoreguidelines-pro-type-union-access)
}

void* map_anonymous(std::size_t n) noexcept {
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void unmap(void* p, std::size_t n) noexcept {
  (void)::munmap(p, n);
}

void advise_huge_pages([[maybe_unused]] void* p, [[maybe_unused]] std::size_t n) noexcept {
#ifdef MADV_HUGEPAGE
  (void)::madvise(p, n, MADV_HUGEPAGE);
#endif
}

}  // namespace asyncio::sys
