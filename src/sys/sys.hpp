// The only place the library makes raw system calls (the rest of src/ calls these wrappers):
// thin wrappers that map failures to std::system_error carrying errno, count the calls, and let
// tests inject faults (make the Nth call of a given syscall fail with an errno, or come back
// short). The io_uring engine asks the same seam before it submits an operation, so a fault
// planned for `recv` hits a receive whichever engine runs it.
#pragma once

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include "asyncio/exceptions.hpp"

struct epoll_event;
struct iovec;
struct mmsghdr;
struct msghdr;
struct sockaddr;

namespace asyncio::sys {

/// Throws the OSError that matches errno (asyncio::raise_os_error) when rc < 0; returns rc
/// otherwise.
inline int check(int rc, const char* what) {
  if (rc < 0) asyncio::raise_os_error(errno, what);
  return rc;
}

// ---- Counting and fault injection -------------------------------------------------------------

/// The calls the seam counts and can make fail.
enum class Call : std::uint8_t {
  recv,
  send,
  sendmsg,
  read,
  write,
  accept,
  connect,
  socket,
  epoll_wait,
  epoll_ctl,
  io_uring_enter,
  fstat,
  io_uring_setup,
  spawn,
  pidfd_open,
  recvfrom,
  sendto,
  recvmmsg,
  sendmmsg,
  count_  // not a call
};
/// "recv", "send"... (for messages).
const char* call_name(Call c) noexcept;

/// Calls made on this thread since it started (or since reset_call_counts()).
std::uint64_t call_count(Call c) noexcept;
void reset_call_counts() noexcept;

/// A planned fault: the `nth` call of `call` from now (1: the next one) on this thread fails
/// with errno `error`; or, when `error` is 0, transfers at most `short_to` bytes (a partial
/// read or write; 0 on a receive looks like end of file).
struct Fault {
  Call call;
  int nth = 1;
  int error = 0;
  long short_to = -1;
};
/// Plans `f` (several may be planned, for different calls or the same one).
void inject_fault(const Fault& f) noexcept;
/// Forgets every planned fault.
void clear_faults() noexcept;

namespace detail_fault {
extern constinit thread_local std::uint64_t counts[static_cast<int>(Call::count_)];
extern constinit thread_local int planned;  // faults planned on this thread
/// Set when an injected EAGAIN was returned (the fd may well be ready: see take_injected_eagain).
extern constinit thread_local bool injected_eagain;
/// Counts a call of `c`; with faults planned, returns the errno to fail with (0: none) and may
/// lower `*len` (a short transfer).
int take(Call c, std::size_t* len) noexcept;
}  // namespace detail_fault

/// Counts a call of `c` and applies a planned fault: returns the errno it must fail with (0: go
/// ahead), and lowers `*len` for a short transfer. One thread-local increment when no fault is
/// planned.
inline int enter(Call c, std::size_t* len = nullptr) noexcept {
  ++detail_fault::counts[static_cast<int>(c)];
  if (detail_fault::planned == 0) [[likely]]
    return 0;
  return detail_fault::take(c, len);
}

/// True once after a planned EAGAIN was returned: the fd may be ready after all, so an
/// edge-triggered engine must ask the kernel for its readiness again.
inline bool take_injected_eagain() noexcept {
  const bool was = detail_fault::injected_eagain;
  detail_fault::injected_eagain = false;
  return was;
}

/// A planned fault for an operation that is not made through a syscall of its own (an io_uring
/// submission): like enter(), without counting a call.
inline int fault_for(Call c, std::size_t* len = nullptr) noexcept {
  if (detail_fault::planned == 0) [[likely]]
    return 0;
  return detail_fault::take(c, len);
}

// ---- Socket and pipe I/O: non-blocking, never SIGPIPE; -errno on failure, never throw ---------

/// recv(MSG_DONTWAIT); bytes read or -errno (EINTR retried).
long recv(int fd, void* buf, std::size_t n) noexcept;
/// send(MSG_DONTWAIT | MSG_NOSIGNAL); bytes sent or -errno.
long send(int fd, const void* buf, std::size_t n) noexcept;
/// sendmsg(MSG_DONTWAIT | MSG_NOSIGNAL) of several buffers; bytes sent or -errno.
long sendmsg(int fd, const msghdr* msg) noexcept;
/// recvfrom(MSG_DONTWAIT): one datagram (truncated to `n`), its sender in `addr`/`*len` (in:
/// capacity, out: size; both may be null); bytes or -errno (EINTR retried).
long recvfrom(int fd, void* buf, std::size_t n, sockaddr* addr, unsigned* len) noexcept;
/// sendto(MSG_DONTWAIT | MSG_NOSIGNAL) of one datagram (`addr` null: a connected socket's
/// peer); bytes or -errno.
long sendto(int fd, const void* buf, std::size_t n, const sockaddr* addr, unsigned len) noexcept;
/// recvmmsg(MSG_DONTWAIT): up to `n` datagrams into `msgs` (each one's size in msg_len, its
/// flags and sender in msg_hdr); how many, or -errno (EINTR retried). A planned fault fails the
/// whole call.
long recvmmsg(int fd, mmsghdr* msgs, unsigned n) noexcept;
/// sendmmsg(MSG_DONTWAIT | MSG_NOSIGNAL): the first datagrams of `msgs` that the socket takes;
/// how many were sent, or -errno when the first one failed (EINTR retried).
long sendmmsg(int fd, mmsghdr* msgs, unsigned n) noexcept;
/// read() on a non-blocking fd; bytes or -errno.
long read(int fd, void* buf, std::size_t n) noexcept;
/// write() on a non-blocking fd; bytes or -errno. A pipe whose reader is gone raises SIGPIPE
/// unless it is ignored: the library ignores it once it makes a pipe to a child
/// (ignore_sigpipe_once()).
long write(int fd, const void* buf, std::size_t n) noexcept;
/// accept4(SOCK_NONBLOCK | SOCK_CLOEXEC); the new fd or -errno. `addr`/`len` may be null.
int accept(int fd, sockaddr* addr, unsigned* len) noexcept;
/// connect(); 0, or -errno (-EINPROGRESS on a non-blocking socket that is connecting).
int connect(int fd, const sockaddr* addr, unsigned len) noexcept;
/// getsockopt(SO_ERROR): the pending error of a socket (0: none), or -errno.
int socket_error(int fd) noexcept;
/// socket(SOCK_NONBLOCK | SOCK_CLOEXEC); the fd or -errno.
int socket(int family, int type, int protocol) noexcept;
/// bind(); 0 or -errno.
int bind(int fd, const sockaddr* addr, unsigned len) noexcept;
/// listen(); 0 or -errno.
int listen(int fd, int backlog) noexcept;
/// shutdown(); 0 or -errno.
int shutdown(int fd, int how) noexcept;
/// setsockopt() of an int option; 0 or -errno.
int set_option(int fd, int level, int name, int value) noexcept;
/// getsockopt() of an int option; the value, or -errno.
int get_option(int fd, int level, int name) noexcept;
/// getsockname() / getpeername(): fills `addr` (`*len` in: capacity, out: size); 0 or -errno.
int local_address(int fd, sockaddr* addr, unsigned* len) noexcept;
int peer_address(int fd, sockaddr* addr, unsigned* len) noexcept;
/// Sets O_NONBLOCK (a no-op if set); 0 or -errno.
int set_nonblocking(int fd) noexcept;
/// The identity of the file an fd refers to now (device and inode), or {0, 0} when the fd is
/// not open: tells a reused fd number from the file it used to name.
struct FileId {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  friend bool operator==(const FileId&, const FileId&) = default;
};
FileId file_id(int fd) noexcept;
/// The identity of the file at `path` ({0, 0} when there is none), and whether it is a socket.
FileId path_id(const char* path, bool* is_socket = nullptr) noexcept;
/// The type bits of the file `fd` refers to (st_mode & S_IFMT: S_IFIFO, S_IFSOCK...), or -errno.
int file_type(int fd) noexcept;
/// unlink(); 0 or -errno.
int unlink(const char* path) noexcept;

/// An owned file descriptor (closed by the destructor). Move-only.
class Fd {
 public:
  Fd() noexcept = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  [[nodiscard]] int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// ---- The loop's own fds ------------------------------------------------------------------------

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
/// Sets SIGPIPE to SIG_IGN if it is at SIG_DFL (once per process; a handler or SIG_IGN the
/// program installed is left alone), so that writing to a pipe whose reader exited gives EPIPE
/// rather than killing the process. Python ignores SIGPIPE at start-up for the same reason.
void ignore_sigpipe_once() noexcept;

// ---- Child processes ---------------------------------------------------------------------------

/// What spawn() starts: an executable path (with a '/': no PATH search here), argv and envp
/// (null-terminated; envp null: this process's environment), and the child's set-up.
struct SpawnPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  /// The fd to make the child's fd 0, 1, 2 (-1: inherit). May equal its target (the fd is
  /// then inherited even if it is close-on-exec).
  int stdio[3] = {-1, -1, -1};
  const char* cwd = nullptr;  // null: this process's
  bool new_session = false;   // setsid() in the child
  bool close_fds = true;      // close every fd above 2 but pass_fds
  const int* pass_fds = nullptr;
  std::size_t pass_fds_count = 0;
};
/// posix_spawn (vfork + exec: no fork of this process's memory, nothing of ours runs in the
/// child). The child gets an empty signal mask and SIGPIPE/SIGXFSZ at their defaults (Python's
/// restore_signals). Returns the pid, or -errno (the exec's own error, e.g. -ENOENT, -EACCES:
/// the failed child is already reaped).
int spawn(const SpawnPlan& plan) noexcept;
/// Whether this process may execute `path` (PATH search): 0 when it may, -ENOENT when there is
/// no such file, -EACCES when there is one it may not execute (a directory, no x bit).
int executable(const char* path) noexcept;
/// pidfd_open(pid): an fd (close-on-exec) that becomes readable when the process exits, or
/// -errno (-ENOSYS before Linux 5.3).
int pidfd_open(int pid) noexcept;
/// Sends `sig` to the process of `pidfd` (never to a recycled pid); 0 or -errno.
int pidfd_send_signal(int pidfd, int sig) noexcept;
/// kill(pid, sig); 0 or -errno.
int kill(int pid, int sig) noexcept;
/// waitpid(pid, WNOHANG): the pid when it was reaped (its status in `*status`), 0 while it
/// runs, or -errno (-ECHILD: not our child, or reaped by someone else).
int wait_nohang(int pid, int* status) noexcept;
/// waitpid(pid, 0), EINTR retried: the pid or -errno.
int wait_blocking(int pid, int* status) noexcept;
/// pipe2(O_CLOEXEC), both ends blocking, neither among fds 0-2 (so that the child's dup2s onto
/// 0-2 cannot clobber one another); throws OSError.
void pipe_cloexec(int fds[2]);
/// Opens /dev/null read-write, close-on-exec, above fd 2; throws OSError.
int open_devnull();
/// A close-on-exec copy of `fd` above fd 2; throws OSError.
int dup_above_stdio(int fd);
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
