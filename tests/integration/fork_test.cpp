// fork() without exec from a process whose loop runs, on both engines (Python's test_unix_events
// TestFork): the child has no running loop and may run one of its own, with child processes of
// its own; the signals the parent's loop watches get their default disposition back in the
// child, so a signal sent to the child neither reaches the parent's callback nor is swallowed.
// (docs/design/threads.md, "fork() without exec")
//
// Each child ends with _exit(): its exit status is what the parent checks (0: every check in
// the child held; otherwise the number of the check that failed).
#include <csignal>
#include <exception>
#include <string>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"
#include "engine_test.hpp"

namespace {

using asyncio::Backend;
using asyncio::Coro;

constexpr double kBound = 30.0;  // seconds: no test here comes near it

class Fork : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      if (auto why = asyncio_test::io_uring_refused()) GTEST_SKIP() << *why;
    }
  }
  void run(Coro<void> body) {
    asyncio::run(asyncio_test::bounded_on_engine(std::move(body), GetParam(), kBound),
                 asyncio::RunOptions{.backend = GetParam()});
  }
};

/// The child's exit status once it has exited, polling without blocking the loop (10 s at
/// most); -1 if it did not exit in time (it is killed then).
Coro<int> wait_child(pid_t pid) {
  int status = 0;
  for (int i = 0; i < 1000; ++i) {
    if (::waitpid(pid, &status, WNOHANG) == pid) co_return status;
    co_await asyncio::sleep(0.01);
  }
  ::kill(pid, SIGKILL);
  (void)::waitpid(pid, &status, 0);
  co_return -1;
}

/// Waits (10 s at most) until the child has written its one byte to the pipe `fd`.
Coro<bool> child_ready(int fd) {
  for (int i = 0; i < 1000; ++i) {
    char c = 0;
    if (::read(fd, &c, 1) == 1) co_return true;
    co_await asyncio::sleep(0.01);
  }
  co_return false;
}

/// A pipe whose read end does not block.
struct ReadyPipe {
  asyncio_test::FdGuard r, w;
  ReadyPipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) std::terminate();
    r.reset(fds[0]);
    w.reset(fds[1]);
  }
};

// test_fork_signal_handling as Python writes it: the child handles SIGTERM itself.
extern "C" void exit_seven(int /*sig*/) {
  ::_exit(7);
}

/// Forks a child that waits (10 s at most) for SIGTERM, with a handler of its own that exits
/// with 7 when `own_handler`; sends it SIGTERM; its wait status.
Coro<int> sigterm_a_forked_child(bool own_handler) {
  ReadyPipe ready;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(10);  // a child that survived SIGTERM would end here, with SIGALRM
    if (own_handler) (void)::signal(SIGTERM, exit_seven);
    if (::write(ready.w.get(), "r", 1) != 1) ::_exit(9);
    for (;;) ::pause();
  }
  if (pid < 0) {
    ADD_FAILURE() << "fork failed";
    co_return -1;
  }
  EXPECT_TRUE(co_await child_ready(ready.r.get()));
  EXPECT_EQ(::kill(pid, SIGTERM), 0);
  co_return co_await wait_child(pid);
}

// test_fork_signal_handling, the strict form: the parent's loop watches SIGTERM; the child,
// which sets nothing up, is killed by a SIGTERM sent to it (the default disposition again), and
// the parent's callback does not run. The parent's loop still gets its own SIGTERM.
Coro<void> child_dies_of_sigterm() {
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  int parent_handled = 0;
  loop.add_signal_handler(SIGTERM, [&parent_handled] { ++parent_handled; });
  const int status = co_await sigterm_a_forked_child(false);
  EXPECT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGTERM) << status;
  co_await asyncio::sleep(0.05);  // a wrongly forwarded signal would have arrived by now
  EXPECT_EQ(parent_handled, 0);
  CO_ASSERT(::kill(::getpid(), SIGTERM) == 0);
  for (int i = 0; i < 1000 && parent_handled == 0; ++i) co_await asyncio::sleep(0.01);
  EXPECT_EQ(parent_handled, 1);
  EXPECT_TRUE(loop.remove_signal_handler(SIGTERM));
}

TEST_P(Fork, ASignalSentToAForkedChildIsNotTheParentLoops) {
  run(child_dies_of_sigterm());
}

Coro<void> child_handles_sigterm() {
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  int parent_handled = 0;
  loop.add_signal_handler(SIGTERM, [&parent_handled] { ++parent_handled; });
  const int status = co_await sigterm_a_forked_child(true);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 7) << status;
  // The parent's loop goes on, its handler not called.
  Coro<int> answer = []() -> Coro<int> {
    co_await asyncio::sleep(0.1);
    co_return 42;
  }();
  EXPECT_EQ(co_await asyncio::create_task(std::move(answer)), 42);
  EXPECT_EQ(parent_handled, 0);
  EXPECT_TRUE(loop.remove_signal_handler(SIGTERM));
}

TEST_P(Fork, AForkedChildHandlesItsSignalsItselfAndTheParentLoopGoesOn) {
  run(child_handles_sigterm());
}

// test_fork_asyncio_run, forked from inside a running task (Python's test forks outside one):
// the child has no running loop, and asyncio::run() works there.
Coro<int> child_main() {
  co_await asyncio::sleep(0.01);
  co_return 42;
}

int in_forked_child_run(Backend backend) {
  try {
    (void)asyncio::get_running_loop();
    return 1;  // the parent's loop is not the child's
  } catch (const asyncio::RuntimeError&) {
  }
  try {
    if (asyncio::run(child_main(), asyncio::RunOptions{.backend = backend}) != 42) return 2;
  } catch (...) {
    return 3;
  }
  return 0;
}

/// Forks from the running task; the child runs `body` and exits with what it returns, which
/// must be 0.
Coro<void> expect_forked_child_succeeds(int (*body)(Backend), Backend backend) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body(backend));
  CO_ASSERT(pid > 0);
  const int status = co_await wait_child(pid);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the check that failed in the child";
}

Coro<void> fork_then_run(Backend backend) {
  co_await expect_forked_child_succeeds(in_forked_child_run, backend);
  // The parent's loop is untouched.
  EXPECT_EQ(co_await child_main(), 42);
}

TEST_P(Fork, AChildForkedFromATaskRunsALoopOfItsOwn) {
  run(fork_then_run(GetParam()));
}

// test_fork_asyncio_subprocess: the forked child starts a child process of its own and waits
// for it through its own loop.
Coro<int> run_true() {
  asyncio::Process p = co_await asyncio::create_subprocess_exec("true");
  co_return co_await p.wait();
}

int in_forked_child_spawn(Backend backend) {
  try {
    return asyncio::run(run_true(), asyncio::RunOptions{.backend = backend}) == 0 ? 0 : 1;
  } catch (...) {
    return 2;
  }
}

TEST_P(Fork, AForkedChildRunsAChildProcessThroughItsOwnLoop) {
  run(expect_forked_child_succeeds(in_forked_child_spawn, GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Engines, Fork, ::testing::Values(Backend::epoll, Backend::io_uring),
                         asyncio_test::param_name);

}  // namespace
