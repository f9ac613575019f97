#include "sys/sys.hpp"

#include <array>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <mutex>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace asyncio::sys {

// ---- Counting and fault injection -------------------------------------------------------------

namespace detail_fault {
constinit thread_local std::uint64_t counts[static_cast<int>(Call::count_)] = {};
constinit thread_local int planned = 0;
constinit thread_local bool injected_eagain = false;
namespace {
constexpr std::size_t kMaxFaults = 32;
struct Planned {
  Fault fault;
  bool active = false;
};
thread_local std::array<Planned, kMaxFaults> faults{};
}  // namespace

int take(Call c, std::size_t* len) noexcept {
  int error = 0;
  for (Planned& p : faults) {
    if (!p.active || p.fault.call != c) continue;
    if (--p.fault.nth > 0) continue;
    p.active = false;
    --planned;
    if (p.fault.error != 0) {
      error = p.fault.error;
      if (error == EAGAIN) injected_eagain = true;
    } else if (len != nullptr && p.fault.short_to >= 0 &&
               *len > static_cast<std::size_t>(p.fault.short_to)) {
      *len = static_cast<std::size_t>(p.fault.short_to);
    }
  }
  return error;
}
}  // namespace detail_fault

const char* call_name(Call c) noexcept {
  static constexpr std::array<const char*, static_cast<int>(Call::count_)> names = {
      "recv",           "send",    "sendmsg",        "read",       "write",
      "accept",         "connect", "socket",         "epoll_wait", "epoll_ctl",
      "io_uring_enter", "fstat",   "io_uring_setup", "spawn",      "pidfd_open",
      "recvfrom",       "sendto",  "recvmmsg",       "sendmmsg"};
  const auto i = static_cast<std::size_t>(c);
  return i < names.size() ? names[i] : "?";
}

std::uint64_t call_count(Call c) noexcept {
  return detail_fault::counts[static_cast<int>(c)];
}

void reset_call_counts() noexcept {
  for (std::uint64_t& n : detail_fault::counts) n = 0;
}

void inject_fault(const Fault& f) noexcept {
  for (detail_fault::Planned& p : detail_fault::faults) {
    if (p.active) continue;
    p.fault = f;
    if (p.fault.nth < 1) p.fault.nth = 1;
    p.active = true;
    ++detail_fault::planned;
    return;
  }
}

void clear_faults() noexcept {
  for (detail_fault::Planned& p : detail_fault::faults) p.active = false;
  detail_fault::planned = 0;
}

// ---- Socket and pipe I/O ------------------------------------------------------------------------

namespace {
/// Retries EINTR; turns -1/errno into -errno.
template <class F>
long retry(F f) noexcept {
  for (;;) {
    const long r = f();
    if (r >= 0) return r;
    if (errno != EINTR) return -errno;
  }
}
}  // namespace

long recv(int fd, void* buf, std::size_t n) noexcept {
  if (const int e = enter(Call::recv, &n); e != 0 && e != EINTR) return -e;  // EINTR: retried
  return retry([&] { return ::recv(fd, buf, n, MSG_DONTWAIT); });
}

long send(int fd, const void* buf, std::size_t n) noexcept {
  if (const int e = enter(Call::send, &n); e != 0 && e != EINTR) return -e;  // EINTR: retried
  return retry([&] { return ::send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL); });
}

long sendmsg(int fd, const msghdr* msg) noexcept {
  std::size_t total = 0;
  for (std::size_t i = 0; i < msg->msg_iovlen; ++i) total += msg->msg_iov[i].iov_len;
  const std::size_t wanted = total;
  if (const int e = enter(Call::sendmsg, &total); e != 0 && e != EINTR) return -e;
  if (total < wanted) {
    // A planned short write: send only the first `total` bytes.
    msghdr shorter = *msg;
    std::array<iovec, 64> iov{};
    std::size_t left = total;
    std::size_t k = 0;
    for (std::size_t i = 0; i < msg->msg_iovlen && left > 0 && k < iov.size(); ++i, ++k) {
      iov[k] = msg->msg_iov[i];
      if (iov[k].iov_len > left) iov[k].iov_len = left;
      left -= iov[k].iov_len;
    }
    shorter.msg_iov = iov.data();
    shorter.msg_iovlen = k;
    return retry([&] { return ::sendmsg(fd, &shorter, MSG_DONTWAIT | MSG_NOSIGNAL); });
  }
  return retry([&] { return ::sendmsg(fd, msg, MSG_DONTWAIT | MSG_NOSIGNAL); });
}

long recvfrom(int fd, void* buf, std::size_t n, sockaddr* addr, unsigned* len) noexcept {
  if (const int e = enter(Call::recvfrom); e != 0 && e != EINTR) return -e;
  return retry([&] {
    socklen_t l = len != nullptr ? *len : 0;
    const long r = ::recvfrom(fd, buf, n, MSG_DONTWAIT, addr, len != nullptr ? &l : nullptr);
    if (r >= 0 && len != nullptr) *len = l;
    return r;
  });
}

long sendto(int fd, const void* buf, std::size_t n, const sockaddr* addr, unsigned len) noexcept {
  if (const int e = enter(Call::sendto); e != 0 && e != EINTR) return -e;
  return retry([&] { return ::sendto(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL, addr, len); });
}

long recvmmsg(int fd, mmsghdr* msgs, unsigned n) noexcept {
  if (const int e = enter(Call::recvmmsg); e != 0 && e != EINTR) return -e;
  return retry([&] { return static_cast<long>(::recvmmsg(fd, msgs, n, MSG_DONTWAIT, nullptr)); });
}

long sendmmsg(int fd, mmsghdr* msgs, unsigned n) noexcept {
  if (const int e = enter(Call::sendmmsg); e != 0 && e != EINTR) return -e;
  return retry(
      [&] { return static_cast<long>(::sendmmsg(fd, msgs, n, MSG_DONTWAIT | MSG_NOSIGNAL)); });
}

long read(int fd, void* buf, std::size_t n) noexcept {
  if (const int e = enter(Call::read, &n); e != 0 && e != EINTR) return -e;  // EINTR: retried
  return retry([&] { return ::read(fd, buf, n); });
}

long write(int fd, const void* buf, std::size_t n) noexcept {
  if (const int e = enter(Call::write, &n); e != 0 && e != EINTR) return -e;  // EINTR: retried
  return retry([&] { return ::write(fd, buf, n); });
}

int accept(int fd, sockaddr* addr, unsigned* len) noexcept {
  if (const int e = enter(Call::accept); e != 0 && e != EINTR) return -e;
  return static_cast<int>(
      retry([&] { return ::accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC); }));
}

int connect(int fd, const sockaddr* addr, unsigned len) noexcept {
  // A planned EINTR makes the call anyway (as a retried one would be made).
  if (const int e = enter(Call::connect); e != 0 && e != EINTR) return -e;
  // A real EINTR: the connection goes on asynchronously, as with EINPROGRESS.
  const int r = ::connect(fd, addr, len);
  if (r == 0) return 0;
  return errno == EINTR ? -EINPROGRESS : -errno;
}

int socket_error(int fd) noexcept {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
  return err;
}

int socket(int family, int type, int protocol) noexcept {
  if (const int e = enter(Call::socket); e != 0) return -e;
  const int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  return fd >= 0 ? fd : -errno;
}

int bind(int fd, const sockaddr* addr, unsigned len) noexcept {
  return ::bind(fd, addr, len) == 0 ? 0 : -errno;
}

int listen(int fd, int backlog) noexcept {
  return ::listen(fd, backlog) == 0 ? 0 : -errno;
}

int shutdown(int fd, int how) noexcept {
  return ::shutdown(fd, how) == 0 ? 0 : -errno;
}

int set_option(int fd, int level, int name, int value) noexcept {
  return ::setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0 : -errno;
}

int get_option(int fd, int level, int name) noexcept {
  int value = 0;
  socklen_t len = sizeof value;
  return ::getsockopt(fd, level, name, &value, &len) == 0 ? value : -errno;
}

int local_address(int fd, sockaddr* addr, unsigned* len) noexcept {
  return ::getsockname(fd, addr, len) == 0 ? 0 : -errno;
}

int peer_address(int fd, sockaddr* addr, unsigned* len) noexcept {
  return ::getpeername(fd, addr, len) == 0 ? 0 : -errno;
}

int set_nonblocking(int fd) noexcept {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return -errno;
  if ((flags & O_NONBLOCK) != 0) return 0;
  return ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 ? 0 : -errno;
}

FileId path_id(const char* path, bool* is_socket) noexcept {
  struct stat sb {};
  if (::stat(path, &sb) != 0) return {};
  if (is_socket != nullptr) *is_socket = S_ISSOCK(sb.st_mode);
  return {static_cast<std::uint64_t>(sb.st_dev), static_cast<std::uint64_t>(sb.st_ino)};
}

int unlink(const char* path) noexcept {
  return ::unlink(path) == 0 ? 0 : -errno;
}

int file_type(int fd) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return -errno;
  return static_cast<int>(st.st_mode & S_IFMT);
}

FileId file_id(int fd) noexcept {
  ++detail_fault::counts[static_cast<int>(Call::fstat)];
  struct stat st {};
  if (::fstat(fd, &st) != 0) return {};
  return {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
}

void Fd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

// ---- The loop's own fds ------------------------------------------------------------------------

int epoll_create() {
  return check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1");
}

void epoll_ctl(int epfd, int op, int fd, std::uint32_t events) {
  if (const int e = enter(Call::epoll_ctl); e != 0) raise_os_error(e, "epoll_ctl");
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  check(::epoll_ctl(epfd, op, fd, &ev), "epoll_ctl");
}

int epoll_wait(int epfd, epoll_event* events, int max, int timeout_ms) {
  if (const int e = enter(Call::epoll_wait); e != 0) {
    if (e == EINTR) return 0;
    raise_os_error(e, "epoll_wait");
  }
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
