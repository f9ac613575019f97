// Ctrl-C during asyncio::run, for real (API section 2, issue 15): a child process running
// tests/integration/sigint_child.cpp gets SIGINT from kill(2) while its main task sleeps. The
// main task is cancelled and cleans up, run's shutdown cancels the other task, and only then
// does run throw KeyboardInterrupt; SIGINT's disposition is restored afterwards. A second
// Ctrl-C during the cleanup throws KeyboardInterrupt at once (Python's Runner._on_sigint); a
// SIGINT that was ignored before run stays ignored.
//
// The child is started with posix_spawn (its stdout and stderr are pipes, SIGINT at its default
// disposition and unblocked, whatever this process has), and every wait here is bounded: a
// child that hangs is killed with SIGKILL and the test fails.
//
// Under ThreadSanitizer a Ctrl-C is pressed only once the child waits for its loop's events (its
// thread sleeps in the kernel). TSan holds a signal from another process that arrives while the
// thread runs ordinary code, and runs the handler at the thread's next intercepted libc call; the
// loop went to sleep first (epoll_wait, or io_uring_enter, which TSan does not intercept) in about
// one run in seven here, and the held Ctrl-C never reached the program (seen with g++ 12's
// libtsan; the same runs under ASan all pass). Other builds press at once, so a signal that
// lands while the loop runs callbacks stays tested.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "asyncio_test.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX leaves it undeclared

#ifndef ASYNCIO_SIGINT_CHILD
#error "ASYNCIO_SIGINT_CHILD must name the sigint_child program (tests/CMakeLists.txt)"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using ::testing::ElementsAre;

/// Generous: an ASan build on a busy 2-core machine starts in well under a second.
constexpr auto kBound = 20s;

/// sigint_child with `args`, its output read through pipes. The destructor kills it (SIGKILL)
/// and reaps it if it is still there.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args) {
    int out[2] = {-1, -1};
    int err[2] = {-1, -1};
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    spawn(args, out[1], err[1]);
    ::close(out[1]);
    ::close(err[1]);
    fds_[0] = out[0];
    fds_[1] = err[0];
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    for (const int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }

  [[nodiscard]] bool started() const { return pid_ > 0; }

  /// Reads output until `line` is a whole line of stdout, the output ends, or `bound` passes.
  bool wait_for_line(std::string_view line, Clock::duration bound) {
    const Clock::time_point deadline = Clock::now() + bound;
    while (!has_line(line)) {
      if (!read_some(deadline)) return false;
    }
    return true;
  }

  /// Sends `sig`; under TSan only once the child's thread sleeps (the file's comment says why).
  void send(int sig) const {
    if (asyncio_test::kThreadSanitizer) {
      const auto asleep = [&] { return asyncio_test::thread_state(pid_) == 'S'; };  // in its loop
      ASSERT_TRUE(asyncio_test::wait_until(asleep, kBound)) << "the child never went to sleep";
    }
    ASSERT_EQ(::kill(pid_, sig), 0) << std::strerror(errno);
  }

  /// True while the child has not exited (it may still be running its cleanup).
  [[nodiscard]] bool running() {
    if (status_) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
    return !status_;
  }

  /// Reads all output and reaps the child, within `bound`; its wait status, or nullopt if it
  /// was still there then.
  std::optional<int> wait_exit(Clock::duration bound) {
    const Clock::time_point deadline = Clock::now() + bound;
    while (read_some(deadline)) {
    }
    while (running() && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    return status_;
  }

  /// The whole lines printed on stdout so far.
  [[nodiscard]] std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::size_t at = 0;
    for (std::size_t nl = out_.find('\n'); nl != std::string::npos; nl = out_.find('\n', at)) {
      out.push_back(out_.substr(at, nl - at));
      at = nl + 1;
    }
    return out;
  }

  /// Everything it printed, for failure messages.
  [[nodiscard]] std::string transcript() const {
    return "--- stdout ---\n" + out_ + "--- stderr ---\n" + err_;
  }

 private:
  void spawn(const std::vector<std::string>& args, int out, int err) {
    std::vector<std::string> argv_s{ASYNCIO_SIGINT_CHILD};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err, STDERR_FILENO);
    // SIGINT as an interactive shell gives it: default disposition, not blocked (ctest may run
    // us with SIGINT ignored, as a background job of a non-interactive shell is).
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    const int rc = ::posix_spawn(&pid_, argv[0], &actions, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
    }
  }

  [[nodiscard]] bool has_line(std::string_view line) const {
    const std::vector<std::string> all = lines();
    return std::find(all.begin(), all.end(), line) != all.end();
  }

  /// Waits (until `deadline`) for output on either pipe and appends it; false once both pipes
  /// are closed or the deadline passed.
  bool read_some(Clock::time_point deadline) {
    pollfd p[2] = {{fds_[0], POLLIN, 0}, {fds_[1], POLLIN, 0}};  // a negative fd is skipped
    if (fds_[0] < 0 && fds_[1] < 0) return false;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) return false;
    const int n = ::poll(p, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) return false;
    for (int i = 0; i < 2; ++i) {
      if (p[i].revents == 0) continue;
      char buf[4096];
      const ssize_t got = ::read(fds_[i], buf, sizeof buf);
      if (got > 0) {
        (i == 0 ? out_ : err_).append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds_[i]);
        fds_[i] = -1;
      }
    }
    return true;
  }

  pid_t pid_ = -1;
  int fds_[2] = {-1, -1};  // stdout, stderr (read ends)
  std::string out_;
  std::string err_;
  std::optional<int> status_;
};

/// "exited with 130", "killed by signal 2": a wait status for messages.
std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

TEST(RunnerSigint, CtrlCCancelsTheMainTaskAndRunThrowsKeyboardInterruptAfterCleanup) {
  Child child({});
  ASSERT_TRUE(child.started());
  ASSERT_TRUE(child.wait_for_line("ready", kBound)) << child.transcript();
  child.send(SIGINT);
  const std::optional<int> status = child.wait_exit(kBound);
  ASSERT_TRUE(status) << "still running " << kBound.count() << " s after SIGINT\n"
                      << child.transcript();
  EXPECT_EQ(describe(*status), "exited with 130") << child.transcript();
  // The main task's cleanup runs inside run(); the other task is cancelled by run's shutdown,
  // after the main task ended; KeyboardInterrupt leaves run() only after both.
  EXPECT_THAT(child.lines(), ElementsAre("ready", "cleanup ran", "other task cleaned",
                                         "KeyboardInterrupt", "handler restored"))
      << child.transcript();
}

// Python's Runner._on_sigint: the first Ctrl-C cancels the main task; a second one, while the
// main task is still cleaning up, raises KeyboardInterrupt at once. run's shutdown then cancels
// the cleanup itself (and the other task) before run throws.
TEST(RunnerSigint, SecondCtrlCDuringTheCleanupThrowsKeyboardInterruptAtOnce) {
  Child child({"--slow-cleanup", "60"});
  ASSERT_TRUE(child.started());
  ASSERT_TRUE(child.wait_for_line("ready", kBound)) << child.transcript();
  child.send(SIGINT);
  ASSERT_TRUE(child.wait_for_line("slow cleanup started", kBound)) << child.transcript();
  ASSERT_TRUE(child.running());
  child.send(SIGINT);
  const std::optional<int> status = child.wait_exit(kBound);  // far less than the 60 s cleanup
  ASSERT_TRUE(status) << "the second SIGINT did not end run() within " << kBound.count() << " s\n"
                      << child.transcript();
  EXPECT_EQ(describe(*status), "exited with 130") << child.transcript();
  const std::vector<std::string> lines = child.lines();
  ASSERT_EQ(lines.size(), 6U) << child.transcript();
  EXPECT_THAT(std::vector<std::string>(lines.begin(), lines.begin() + 2),
              ElementsAre("ready", "slow cleanup started"));
  // run's shutdown cancels both tasks together: their lines come in either order.
  EXPECT_THAT(std::vector<std::string>(lines.begin() + 2, lines.begin() + 4),
              ::testing::UnorderedElementsAre("slow cleanup interrupted", "other task cleaned"));
  EXPECT_THAT(std::vector<std::string>(lines.begin() + 4, lines.end()),
              ElementsAre("KeyboardInterrupt", "handler restored"));
}

// run() installs its Ctrl-C handler only over SIGINT's default disposition (Python: only when
// signal.getsignal(SIGINT) is default_int_handler): an ignored SIGINT stays ignored, and the
// program ends on its own. The child sleeps 1 s after "ready", ample time for the SIGINT to
// arrive first.
TEST(RunnerSigint, SigintIgnoredBeforeRunStaysIgnored) {
  Child child({"--ignore-sigint", "--finish-after", "1"});
  ASSERT_TRUE(child.started());
  ASSERT_TRUE(child.wait_for_line("ready", kBound)) << child.transcript();
  child.send(SIGINT);
  ASSERT_TRUE(child.running()) << "it ended before the SIGINT came: nothing was tested\n"
                               << child.transcript();
  const std::optional<int> status = child.wait_exit(kBound);
  ASSERT_TRUE(status) << child.transcript();
  EXPECT_EQ(describe(*status), "exited with 0") << child.transcript();
  EXPECT_THAT(child.lines(),
              ElementsAre("ready", "main returned", "other task cleaned", "handler restored"))
      << child.transcript();
}

}  // namespace
