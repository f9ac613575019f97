// The syscall seam's child-process calls: posix_spawn, pidfds, waitpid (docs/design/threads.md,
// "Child processes").
#include <algorithm>
#include <csignal>
#include <mutex>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/sys.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX declares it nowhere

namespace asyncio::sys {

namespace {

/// posix_spawn's attributes and file actions, destroyed on every path.
class SpawnSetup {
 public:
  SpawnSetup() noexcept {
    attr_ok_ = ::posix_spawnattr_init(&attr_) == 0;
    actions_ok_ = ::posix_spawn_file_actions_init(&actions_) == 0;
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  ~SpawnSetup() {
    if (attr_ok_) ::posix_spawnattr_destroy(&attr_);
    if (actions_ok_) ::posix_spawn_file_actions_destroy(&actions_);
  }
  [[nodiscard]] bool ok() const noexcept { return attr_ok_ && actions_ok_; }
  posix_spawnattr_t attr_{};
  posix_spawn_file_actions_t actions_{};

 private:
  bool attr_ok_ = false;
  bool actions_ok_ = false;
};

/// The child's file actions, in order: its standard fds, the fds it inherits, the rest closed.
int plan_fds(const SpawnPlan& plan, posix_spawn_file_actions_t* fa) {
  for (int target = 0; target < 3; ++target) {
    const int src = plan.stdio[target];
    if (src < 0) continue;
    // dup2(fd, fd) in a file action clears close-on-exec (POSIX 2017; glibc >= 2.29).
    if (const int e = ::posix_spawn_file_actions_adddup2(fa, src, target); e != 0) return e;
  }
  std::vector<int> keep(plan.pass_fds, plan.pass_fds + plan.pass_fds_count);
  std::sort(keep.begin(), keep.end());
  for (const int fd : keep) {
    if (fd < 3) continue;
    if (const int e = ::posix_spawn_file_actions_adddup2(fa, fd, fd); e != 0) return e;
  }
  if (plan.close_fds) {
    // Python's close_fds: everything above 2 but pass_fds. Below the highest fd to keep, each
    // other fd gets its own close (one that is not open is skipped by glibc); above it, one
    // closefrom.
    int next = 3;
    for (const int fd : keep) {
      for (; next < fd; ++next) {
        if (const int e = ::posix_spawn_file_actions_addclose(fa, next); e != 0) return e;
      }
      next = std::max(next, fd + 1);
    }
    if (const int e = ::posix_spawn_file_actions_addclosefrom_np(fa, next); e != 0) return e;
  }
  if (plan.cwd != nullptr) {
    if (const int e = ::posix_spawn_file_actions_addchdir_np(fa, plan.cwd); e != 0) return e;
  }
  return 0;
}

}  // namespace

int spawn(const SpawnPlan& plan) noexcept {
  if (const int e = enter(Call::spawn); e != 0) return -e;
  SpawnSetup s;
  if (!s.ok()) return -ENOMEM;
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (plan.new_session) flags |= POSIX_SPAWN_SETSID;
  sigset_t mask;
  sigemptyset(&mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGXFSZ);
  if (const int e = ::posix_spawnattr_setflags(&s.attr_, flags); e != 0) return -e;
  if (const int e = ::posix_spawnattr_setsigmask(&s.attr_, &mask); e != 0) return -e;
  if (const int e = ::posix_spawnattr_setsigdefault(&s.attr_, &defaults); e != 0) return -e;
  if (const int e = plan_fds(plan, &s.actions_); e != 0) return -e;
  pid_t pid = -1;
  char* const* envp = plan.envp != nullptr ? plan.envp : environ;
  if (const int e = ::posix_spawn(&pid, plan.path, &s.actions_, &s.attr_, plan.argv, envp);
      e != 0) {
    return -e;
  }
  return pid;
}

int executable(const char* path) noexcept {
  struct stat st {};
  if (::stat(path, &st) != 0) return -ENOENT;
  if (S_ISDIR(st.st_mode) || ::access(path, X_OK) != 0) return -EACCES;
  return 0;
}

int pidfd_open(int pid) noexcept {
  if (const int e = enter(Call::pidfd_open); e != 0) return -e;
  const long r = ::syscall(SYS_pidfd_open, pid, 0);
  if (r < 0) return -errno;
  // pidfd_open sets close-on-exec itself (it is the only behaviour it has).
  return static_cast<int>(r);
}

int pidfd_send_signal(int pidfd, int sig) noexcept {
  const long r = ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
  return r < 0 ? -errno : 0;
}

int kill(int pid, int sig) noexcept {
  return ::kill(pid, sig) < 0 ? -errno : 0;
}

int wait_nohang(int pid, int* status) noexcept {
  for (;;) {
    const pid_t r = ::waitpid(pid, status, WNOHANG);
    if (r >= 0) return r;
    if (errno != EINTR) return -errno;
  }
}

int wait_blocking(int pid, int* status) noexcept {
  for (;;) {
    const pid_t r = ::waitpid(pid, status, 0);
    if (r >= 0) return r;
    if (errno != EINTR) return -errno;
  }
}

namespace {
/// Moves `fd` above 2 (close-on-exec), closing the original; -1 with errno on failure.
int above_stdio(int fd) noexcept {
  if (fd < 0 || fd > 2) return fd;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return moved;
}
}  // namespace

void pipe_cloexec(int fds[2]) {
  check(::pipe2(fds, O_CLOEXEC), "pipe2");
  fds[0] = above_stdio(fds[0]);
  fds[1] = above_stdio(fds[1]);
  if (fds[0] < 0 || fds[1] < 0) {
    const int saved = errno;
    close(fds[0]);
    close(fds[1]);
    errno = saved;
    check(-1, "pipe2");
  }
}

int open_devnull() {
  return check(above_stdio(::open("/dev/null", O_RDWR | O_CLOEXEC)), "open /dev/null");
}

int dup_above_stdio(int fd) {
  return check(::fcntl(fd, F_DUPFD_CLOEXEC, 3), "dup");
}

void ignore_sigpipe_once() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    if (signal_handler_of(SIGPIPE) == SIG_DFL) (void)set_signal_action(SIGPIPE, SIG_IGN, 0);
  });
}

}  // namespace asyncio::sys
