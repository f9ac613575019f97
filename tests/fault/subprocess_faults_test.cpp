// Fault and stress tests of child processes (asyncio/subprocess.hpp), run on BOTH I/O engines
// (every TEST_P runs once with Backend::epoll and once with Backend::io_uring).
//
// What they pin down (Python 3.12's asyncio subprocess is the reference):
//   - a program that cannot be started (no such program, no such cwd, not executable, a
//     directory, spawn failing with EAGAIN/EMFILE through the syscall fault seam) raises the
//     matching OSError at creation and leaves nothing behind: no child, no fd;
//   - communicate() moves 10 MB each way (stdin echoed to stdout while stderr gets 10 MB of its
//     own) without deadlocking or losing a byte;
//   - a child killed by a signal has returncode -N (SIGKILL -9, SIGTERM -15, SIGSEGV -11...);
//   - cancelling wait() or communicate() leaves the child running and reapable: after kill() and
//     a fresh wait() it is gone (no zombie); a child whose every handle was dropped is still
//     reaped by the running loop;
//   - where pidfd_open fails (ENOSYS, EMFILE: injected) a thread waits for the child instead,
//     and everything above still holds, the loop closing included;
//   - the loop closing (asyncio::run returning) while children run kills and reaps them;
//   - several loops on several threads spawn children at once (MultiLoopSubprocess: picked up
//     by the ThreadSanitizer stage's regex "Engines/MultiLoop" in scripts/test);
//   - a child writing to a pipe whose reader we closed gets SIGPIPE (or EPIPE if it ignores
//     SIGPIPE) instead of hanging; this process never dies of SIGPIPE writing to an exited
//     child's stdin;
//   - 200 children at once are all reaped and every fd is given back.
//
// "Gone" below means reaped: waitid(P_PID, pid, WNOHANG | WNOWAIT) fails with ECHILD (the same
// answer as waitpid(pid, WNOHANG), but asking never reaps anything itself, so the checks cannot
// hide a zombie or steal a child from the loop) and kill(pid, 0) fails with ESRCH.
// Every test runs under a time-out (kBound seconds) and real time appears only around real
// child processes, with generous bounds.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asyncio.hpp>

#include "asyncio_test.hpp"
#include "engine_test.hpp"
#include "net_test.hpp"
#include "sys/sys.hpp"

namespace {

using asyncio_test::holds;
using asyncio_test::io_uring_refused;
using asyncio_test::open_fds;
using asyncio_test::param_name;
using asyncio_test::TempDir;
using asyncio_test::what_of;

using namespace std::chrono_literals;
using asyncio::Backend;
using asyncio::Coro;
using asyncio::DEVNULL;
using asyncio::PIPE;
using asyncio::Process;
using asyncio::RunOptions;
using asyncio::SubprocessOptions;
using asyncio::Task;
using asyncio::sys::Call;

/// The bound of every test's coroutine, in seconds.
constexpr double kBound = 60.0;
/// 10 MiB: the size of each stream in the big communicate() tests.
constexpr std::size_t kBig = 10U * 1024U * 1024U;

// ---- Helpers (plain functions: nothing here runs inside a coroutine's co_await) -----------------

/// True when this process has no child at all, running or zombie (nothing is reaped by asking).
bool no_children() {
  siginfo_t info{};
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == -1 && errno == ECHILD;
}

/// True when `pid` is not (or no longer) a child of ours: reaped, no zombie left.
bool reaped(int pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == -1 &&
         errno == ECHILD;
}

/// True when the process `pid` no longer exists at all: reaped and kill(pid, 0) says ESRCH.
bool gone(int pid) {
  if (!reaped(pid)) return false;
  return ::kill(pid, 0) == -1 && errno == ESRCH;
}

/// True when the process `pid` exists (running or a zombie).
bool exists(int pid) {
  return ::kill(pid, 0) == 0;
}

/// Polls (real time, on this thread) until `pid` is gone; false after `limit`.
bool wait_gone(int pid, std::chrono::milliseconds limit = 10s) {
  return asyncio_test::wait_until([pid] { return gone(pid); }, limit);
}

/// The errno of the OSError held by `e` (-1 when it holds something else).
int errno_of(const std::exception_ptr& e) {
  if (!e) return -1;
  try {
    std::rethrow_exception(e);
  } catch (const asyncio::OSError& ex) {
    return ex.errno_value();
  } catch (...) {
    return -1;
  }
}

/// `n` bytes that do not repeat in any short period (the stdin of the echo tests).
std::string random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(gen() & 0xFFU);
  return s;
}

/// Index of the first byte where a and b differ (their common length if one is a prefix).
std::size_t first_difference(const std::string& a, const std::string& b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return i;
  }
  return n;
}

/// Whether `s` is byte k = k % 251 for every k (the stderr pattern of the Python child).
bool is_mod251_pattern(const std::string& s) {
  for (std::size_t k = 0; k < s.size(); ++k) {
    if (static_cast<unsigned char>(s[k]) != k % 251) return false;
  }
  return true;
}

/// Python: echoes stdin to stdout while writing 10 MiB (byte k = k % 251) to stderr, 64 KiB of
/// stderr per 64 KiB of stdin read, the rest after stdin's end; partial writes are handled.
const char* const kEchoAndPatternScript = R"PY(
import os
N = 10 * 1024 * 1024
err = (bytes(range(251)) * (N // 251 + 1))[:N]
sent = 0
def put_err(n):
    global sent
    while n > 0 and sent < N:
        k = os.write(2, err[sent:sent + min(n, N - sent)])
        sent += k
        n -= k
while True:
    b = os.read(0, 65536)
    if not b:
        break
    v = memoryview(b)
    while v:
        v = v[os.write(1, v):]
    put_err(65536)
put_err(N)
)PY";

/// sh: `cat` echoes stdin to stdout while a background pipeline writes 10 MiB of 'e' to stderr.
const char* const kShellEchoAndPattern =
    "head -c 10485760 /dev/zero | tr '\\000' 'e' >&2 & cat; wait";

/// Options with these redirections (the rest default).
SubprocessOptions stdio(asyncio::Redirect in = {}, asyncio::Redirect out = {},
                        asyncio::Redirect err = {}) {
  SubprocessOptions o;
  o.stdin_ = in;
  o.stdout_ = out;
  o.stderr_ = err;
  return o;
}

// ---- Coroutine helpers --------------------------------------------------------------------------

/// python3 -c code
Coro<Process> python(std::string code, SubprocessOptions options = {}) {
  std::vector<std::string> args;
  args.emplace_back("-c");
  args.push_back(std::move(code));
  std::string program = "python3";
  co_return co_await asyncio::create_subprocess_exec(std::move(program), std::move(args), options);
}

/// /bin/sh -c script
Coro<Process> shell(std::string script, SubprocessOptions options = {}) {
  co_return co_await asyncio::create_subprocess_shell(std::move(script), options);
}

/// `program` with no arguments.
Coro<Process> exec0(std::string program, SubprocessOptions options = {}) {
  std::vector<std::string> args;
  co_return co_await asyncio::create_subprocess_exec(std::move(program), std::move(args), options);
}

/// Makes the next pidfd_open on this thread fail with `error` (so a thread waits for the child
/// instead of the engine watching a pidfd), then starts `sh -c script`; checks that the
/// pidfd_open was made (and so failed).
Coro<Process> shell_thread_watched(std::string script, SubprocessOptions options = {},
                                   int error = ENOSYS) {
  const std::uint64_t calls = asyncio::sys::call_count(Call::pidfd_open);
  asyncio::sys::Fault fault{.call = Call::pidfd_open, .error = error};
  asyncio::sys::inject_fault(fault);
  Process p = co_await asyncio::create_subprocess_shell(std::move(script), options);
  EXPECT_EQ(asyncio::sys::call_count(Call::pidfd_open), calls + 1);
  co_return p;
}

/// The exception that creating `program` (no arguments) threw, or null.
Coro<std::exception_ptr> creation_error(std::string program, SubprocessOptions options = {}) {
  std::exception_ptr e;
  try {
    Process p = co_await exec0(std::move(program), options);
    ADD_FAILURE() << "the child started (pid " << p.pid() << ")";
    p.kill();
    (void)co_await p.wait();
  } catch (...) {
    e = std::current_exception();
  }
  co_return e;
}

/// Polls (real time, from the running loop) until `pid` is gone; false after `limit` seconds.
Coro<bool> loop_until_gone(int pid, double limit = 5.0) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit);
  while (!gone(pid)) {
    if (std::chrono::steady_clock::now() >= deadline) co_return false;
    co_await asyncio::sleep(0.01);
  }
  co_return true;
}

/// A close-on-exec pipe whose write end (for a child's stdout) blocks, as a child expects (a
/// non-blocking one, asyncio_test::Pipe's, makes the child see EAGAIN once the pipe is full);
/// the read end, ours, does not block.
struct ChildPipe {
  asyncio_test::FdGuard r, w;
  ChildPipe() {
    int fds[2] = {-1, -1};
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category());
    r.reset(fds[0]);
    w.reset(fds[1]);
    (void)::fcntl(r.get(), F_SETFL, O_NONBLOCK);
  }
};

/// Whether awaiting `c` ran into asyncio::TimeoutError.
Coro<bool> times_out(Coro<int> c, double timeout) {
  try {
    (void)co_await asyncio::wait_for(std::move(c), timeout);
  } catch (const asyncio::TimeoutError&) {
    co_return true;
  }
  co_return false;
}

Coro<int> wait_of(Process p) {
  co_return co_await p.wait();
}

Coro<int> communicate_status(Process p, std::string input) {
  (void)co_await p.communicate(std::move(input));
  co_return *p.returncode();
}

// ---- The fixture --------------------------------------------------------------------------------

class SubprocessFaults : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::io_uring) {
      if (auto why = io_uring_refused()) GTEST_SKIP() << "io_uring is not available: " << *why;
    }
    asyncio::sys::clear_faults();
  }
  void TearDown() override { asyncio::sys::clear_faults(); }

  /// asyncio::run(main) on the engine under test, bounded by kBound seconds; checks that the
  /// whole run leaked no fd.
  template <class T>
  T run(Coro<T> main) {
    const std::size_t fds = open_fds();
    if constexpr (std::is_void_v<T>) {
      asyncio::run(asyncio_test::bounded_on_engine(std::move(main), GetParam(), kBound),
                   RunOptions{.backend = GetParam()});
      EXPECT_EQ(open_fds(), fds) << "an fd leaked across the run";
    } else {
      T r = asyncio::run(asyncio_test::bounded_on_engine(std::move(main), GetParam(), kBound),
                         RunOptions{.backend = GetParam()});
      EXPECT_EQ(open_fds(), fds) << "an fd leaked across the run";
      return r;
    }
  }

  /// asyncio::run(main) on the engine under test, bounded, without the fd check (for a caller
  /// that checks later: see LoopClosingKillsAndReapsThreadWatchedChild).
  template <class T>
  T run_unchecked(Coro<T> main) {
    return asyncio::run(asyncio_test::bounded_on_engine(std::move(main), GetParam(), kBound),
                        RunOptions{.backend = GetParam()});
  }

  /// run() for tests whose children a thread waits for: that thread holds the loop's
  /// thread-safe queue (and so its eventfd) until it has posted the exit status and finished,
  /// which may be a moment after run() returned; the fd count must be back within 10 s.
  template <class T>
  T run_thread_watched(Coro<T> main) {
    const std::size_t fds = open_fds();
    if constexpr (std::is_void_v<T>) {
      run_unchecked(std::move(main));
      expect_fds_back(fds);
    } else {
      T r = run_unchecked(std::move(main));
      expect_fds_back(fds);
      return r;
    }
  }

  static void expect_fds_back(std::size_t fds) {
    EXPECT_TRUE(asyncio_test::wait_until([fds] { return open_fds() == fds; }, 10s))
        << open_fds() << " fds open, " << fds << " before the run";
  }

  /// Children of earlier tests that a thread reaps may take a moment: none may be left.
  static void expect_no_children_soon() {
    EXPECT_TRUE(asyncio_test::wait_until(no_children, 10s)) << "a child of an earlier test lives";
  }
};

// ---- 1. Creation failures leave nothing behind --------------------------------------------------

/// Creating `program` fails with OSError subclass E and errno `err`; no child and no fd appear.
template <class E>
Coro<void> expect_creation_fails(std::string program, SubprocessOptions options, int err) {
  const std::size_t fds = open_fds();
  std::exception_ptr e = co_await creation_error(program, options);
  EXPECT_TRUE(holds<E>(e)) << program << ": " << what_of(e);
  EXPECT_EQ(errno_of(e), err) << program << ": " << what_of(e);
  EXPECT_EQ(open_fds(), fds) << program << ": an fd leaked";
  EXPECT_TRUE(no_children()) << program << ": a child was left behind";
}

TEST_P(SubprocessFaults, MissingProgramByNameIsFileNotFoundAndLeavesNothing) {
  expect_no_children_soon();
  run([]() -> Coro<void> {
    SubprocessOptions o = stdio(PIPE, PIPE, PIPE);
    co_await expect_creation_fails<asyncio::FileNotFoundError>("asyncio-no-such-program-4711", o,
                                                               ENOENT);
    // With an env whose PATH has no such program either.
    std::vector<std::string> env;
    env.emplace_back("PATH=/nonexistent-asyncio-dir:/usr/bin:/bin");
    SubprocessOptions with_env = stdio({}, PIPE);
    with_env.env = env;
    co_await expect_creation_fails<asyncio::FileNotFoundError>("asyncio-no-such-program-4711",
                                                               with_env, ENOENT);
  }());
  EXPECT_TRUE(no_children());
}

TEST_P(SubprocessFaults, MissingProgramByPathIsFileNotFoundAndLeavesNothing) {
  expect_no_children_soon();
  run([]() -> Coro<void> {
    SubprocessOptions o = stdio(PIPE, PIPE, asyncio::STDOUT);
    co_await expect_creation_fails<asyncio::FileNotFoundError>("/nonexistent-asyncio-dir/program",
                                                               o, ENOENT);
    co_await expect_creation_fails<asyncio::FileNotFoundError>("./asyncio-no-such-program-4711", o,
                                                               ENOENT);
    // A shell that does not exist.
    const std::size_t fds = open_fds();
    std::exception_ptr e;
    try {
      SubprocessOptions with_shell = stdio({}, PIPE);
      with_shell.executable = "/nonexistent-asyncio/sh";
      (void)co_await asyncio::create_subprocess_shell("echo hi", with_shell);
    } catch (...) {
      e = std::current_exception();
    }
    EXPECT_TRUE(holds<asyncio::FileNotFoundError>(e)) << what_of(e);
    EXPECT_EQ(open_fds(), fds);
    EXPECT_TRUE(no_children());
  }());
  EXPECT_TRUE(no_children());
}

TEST_P(SubprocessFaults, MissingCwdIsFileNotFoundAndLeavesNothing) {
  expect_no_children_soon();
  run([]() -> Coro<void> {
    SubprocessOptions o = stdio(PIPE, PIPE, PIPE);
    o.cwd = "/nonexistent-asyncio-dir/sub";
    const std::size_t fds = open_fds();
    std::exception_ptr e = co_await creation_error("true", o);
    EXPECT_TRUE(holds<asyncio::FileNotFoundError>(e)) << what_of(e);
    EXPECT_EQ(errno_of(e), ENOENT);
    EXPECT_NE(what_of(e).find("/nonexistent-asyncio-dir/sub"), std::string::npos) << what_of(e);
    EXPECT_EQ(open_fds(), fds);
    EXPECT_TRUE(no_children());
  }());
  EXPECT_TRUE(no_children());
}

TEST_P(SubprocessFaults, NonExecutableFileAndDirectoryArePermissionErrors) {
  expect_no_children_soon();
  TempDir dir;
  const std::string script = dir.file("not-executable.sh");
  {
    asyncio_test::FdGuard f(::open(script.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_TRUE(f);
    ASSERT_GT(asyncio_test::write_str(f.get(), "#!/bin/sh\nexit 0\n"), 0U);
  }
  const std::string subdir = dir.file("a-directory");
  ASSERT_EQ(::mkdir(subdir.c_str(), 0755), 0);
  run([](std::string script, std::string subdir) -> Coro<void> {
    SubprocessOptions o = stdio(PIPE, PIPE, DEVNULL);
    co_await expect_creation_fails<asyncio::PermissionError>(script, o, EACCES);
    co_await expect_creation_fails<asyncio::PermissionError>(subdir, o, EACCES);
  }(script, subdir));
  ::rmdir(subdir.c_str());
  EXPECT_TRUE(no_children());
}

// A program name (no '/') whose only match in PATH is not executable: PermissionError, as in
// Python 3.12 (execvpe keeps the first error that is not ENOENT/ENOTDIR) and the shell
// ("Permission denied"), not FileNotFoundError.
TEST_P(SubprocessFaults, NonExecutableProgramFoundInPathIsPermissionError) {
  expect_no_children_soon();
  TempDir dir;
  const std::string script = dir.file("asyncio-not-executable");
  {
    asyncio_test::FdGuard f(::open(script.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_TRUE(f);
    ASSERT_GT(asyncio_test::write_str(f.get(), "#!/bin/sh\nexit 0\n"), 0U);
  }
  run([](std::string dirpath) -> Coro<void> {
    std::vector<std::string> env;
    env.push_back("PATH=/nonexistent-asyncio-dir:" + dirpath);
    SubprocessOptions o = stdio(PIPE, PIPE);
    o.env = env;
    co_await expect_creation_fails<asyncio::PermissionError>("asyncio-not-executable", o, EACCES);
  }(script.substr(0, script.rfind('/'))));
  EXPECT_TRUE(no_children());
}

/// spawn() failing through the fault seam with `err`: an OSError with that errno (no subclass
/// for EAGAIN/EMFILE), no child, no fd (the pipes made for the child are closed); the next
/// spawn works.
Coro<void> spawn_fault_case(int err) {
  const std::size_t fds = open_fds();
  const std::uint64_t calls = asyncio::sys::call_count(Call::spawn);
  asyncio::sys::Fault fault{.call = Call::spawn, .error = err};
  asyncio::sys::inject_fault(fault);
  SubprocessOptions o = stdio(PIPE, PIPE, PIPE);
  std::exception_ptr e = co_await creation_error("true", o);
  EXPECT_EQ(asyncio::sys::call_count(Call::spawn), calls + 1);
  EXPECT_TRUE(holds<asyncio::OSError>(e)) << what_of(e);
  EXPECT_FALSE(holds<asyncio::FileNotFoundError>(e)) << what_of(e);
  EXPECT_FALSE(holds<asyncio::PermissionError>(e)) << what_of(e);
  EXPECT_EQ(errno_of(e), err) << what_of(e);
  EXPECT_EQ(open_fds(), fds) << "an fd leaked after spawn failed with " << err;
  EXPECT_TRUE(no_children());
  // The fault is spent: the next child starts and runs.
  Process p = co_await exec0("true", o);
  std::pair<std::string, std::string> r = co_await p.communicate();
  EXPECT_EQ(r.first, "");
  EXPECT_EQ(p.returncode(), 0);
  EXPECT_TRUE(reaped(p.pid()));
}

TEST_P(SubprocessFaults, SpawnFailingWithEagainIsOSErrorAndLeavesNothing) {
  expect_no_children_soon();
  run(spawn_fault_case(EAGAIN));
  EXPECT_TRUE(no_children());
}

TEST_P(SubprocessFaults, SpawnFailingWithEmfileIsOSErrorAndLeavesNothing) {
  expect_no_children_soon();
  run(spawn_fault_case(EMFILE));
  EXPECT_TRUE(no_children());
}

TEST_P(SubprocessFaults, SpawnFailingWithEnomemAndEaccesThroughTheSeam) {
  expect_no_children_soon();
  run([]() -> Coro<void> {
    co_await spawn_fault_case(ENOMEM);
    // EACCES from the seam maps to PermissionError, like a real one.
    const std::size_t fds = open_fds();
    asyncio::sys::Fault fault{.call = Call::spawn, .error = EACCES};
    asyncio::sys::inject_fault(fault);
    SubprocessOptions o = stdio({}, PIPE);
    std::exception_ptr e = co_await creation_error("true", o);
    EXPECT_TRUE(holds<asyncio::PermissionError>(e)) << what_of(e);
    EXPECT_EQ(open_fds(), fds);
  }());
  EXPECT_TRUE(no_children());
}

// ---- 2. communicate() with 10 MB each way -------------------------------------------------------

TEST_P(SubprocessFaults, CommunicateTenMegabytesEachWayPython) {
  const std::string input = random_bytes(kBig, 15);
  run([](const std::string* input) -> Coro<void> {
    SubprocessOptions o = stdio(PIPE, PIPE, PIPE);
    Process p = co_await python(kEchoAndPatternScript, o);
    std::pair<std::string, std::string> r = co_await p.communicate(*input);
    EXPECT_EQ(p.returncode(), 0) << "stderr starts: " << r.second.substr(0, 200);
    EXPECT_EQ(r.first.size(), input->size());
    EXPECT_TRUE(r.first == *input)
        << "stdout differs at byte " << first_difference(r.first, *input);
    EXPECT_EQ(r.second.size(), kBig);
    EXPECT_TRUE(is_mod251_pattern(r.second)) << "stderr is not the pattern";
    EXPECT_TRUE(reaped(p.pid()));
  }(&input));
}

TEST_P(SubprocessFaults, CommunicateTenMegabytesEachWayShell) {
  const std::string input = random_bytes(kBig, 16);
  run([](const std::string* input) -> Coro<void> {
    SubprocessOptions o = stdio(PIPE, PIPE, PIPE);
    Process p = co_await shell(kShellEchoAndPattern, o);
    std::pair<std::string, std::string> r = co_await p.communicate(*input);
    EXPECT_EQ(p.returncode(), 0);
    EXPECT_EQ(r.first.size(), input->size());
    EXPECT_TRUE(r.first == *input)
        << "stdout differs at byte " << first_difference(r.first, *input);
    EXPECT_EQ(r.second.size(), kBig);
    EXPECT_EQ(r.second.find_first_not_of('e'), std::string::npos) << "stderr is not all 'e'";
    EXPECT_TRUE(reaped(p.pid()));
  }(&input));
}

// Two such children at once, on one loop: neither starves the other.
TEST_P(SubprocessFaults, TwoBigCommunicatesAtOnce) {
  const std::string a = random_bytes(kBig / 2, 17);
  const std::string b = random_bytes(kBig / 2, 18);
  run([](const std::string* a, const std::string* b) -> Coro<void> {
    SubprocessOptions o = stdio(PIPE, PIPE, PIPE);
    Process pa = co_await shell("cat", o);
    Process pb = co_await python(kEchoAndPatternScript, o);
    Task<std::pair<std::string, std::string>> ta = asyncio::create_task(pa.communicate(*a));
    Task<std::pair<std::string, std::string>> tb = asyncio::create_task(pb.communicate(*b));
    std::pair<std::string, std::string> ra = co_await ta;
    std::pair<std::string, std::string> rb = co_await tb;
    EXPECT_TRUE(ra.first == *a) << "differs at " << first_difference(ra.first, *a);
    EXPECT_EQ(ra.second, "");
    EXPECT_TRUE(rb.first == *b) << "differs at " << first_difference(rb.first, *b);
    EXPECT_EQ(rb.second.size(), kBig);
    EXPECT_TRUE(is_mod251_pattern(rb.second));
    EXPECT_EQ(pa.returncode(), 0);
    EXPECT_EQ(pb.returncode(), 0);
  }(&a, &b));
}

// ---- 3. Killed by a signal: returncode -N -------------------------------------------------------

TEST_P(SubprocessFaults, KilledBySigkillIsMinusNine) {
  run([]() -> Coro<void> {
    std::vector<std::string> args;
    args.emplace_back("30");
    std::string program = "sleep";
    Process q = co_await asyncio::create_subprocess_exec(std::move(program), std::move(args));
    EXPECT_FALSE(q.returncode());
    q.kill();
    EXPECT_EQ(co_await q.wait(), -SIGKILL);
    EXPECT_EQ(q.returncode(), -9);
    EXPECT_TRUE(gone(q.pid()));
    // Once reaped (and no pipe open), a signal is a ProcessLookupError, as in Python 3.12: it
    // never reaches the pid, which may be another process's by now.
    EXPECT_THROW(q.kill(), asyncio::ProcessLookupError);
    EXPECT_THROW(q.terminate(), asyncio::ProcessLookupError);
    EXPECT_THROW(q.send_signal(SIGUSR1), asyncio::ProcessLookupError);
    EXPECT_EQ(q.returncode(), -9);
    EXPECT_EQ(co_await q.wait(), -9);
  }());
}

TEST_P(SubprocessFaults, TerminatedBySigtermIsMinusFifteen) {
  run([]() -> Coro<void> {
    Process p = co_await shell("exec sleep 30");
    p.terminate();
    EXPECT_EQ(co_await p.wait(), -SIGTERM);
    EXPECT_EQ(p.returncode(), -15);
    EXPECT_TRUE(gone(p.pid()));
  }());
}

TEST_P(SubprocessFaults, ChildKillingItselfWithSigsegvIsMinusEleven) {
  TempDir dir;  // its cwd, in case a core file is written all the same
  const std::string cwd = dir.file("");
  run([](std::string cwd) -> Coro<void> {
    SubprocessOptions o = stdio({}, PIPE);
    o.cwd = cwd;
    Process p = co_await shell("ulimit -c 0; echo before; kill -SEGV $$; echo after", o);
    std::pair<std::string, std::string> r = co_await p.communicate();
    EXPECT_EQ(r.first, "before\n");
    EXPECT_EQ(p.returncode(), -SIGSEGV);
    EXPECT_EQ(p.returncode(), -11);
    EXPECT_TRUE(gone(p.pid()));
  }(cwd.substr(0, cwd.size() - 1)));
}

TEST_P(SubprocessFaults, OtherSignalsAndExitCodes) {
  run([]() -> Coro<void> {
    Process usr1 = co_await shell("exec sleep 30");
    usr1.send_signal(SIGUSR1);
    EXPECT_EQ(co_await usr1.wait(), -SIGUSR1);
    SubprocessOptions at_root = stdio();  // never a core file here
    at_root.cwd = "/";
    Process abrt = co_await shell("ulimit -c 0; kill -ABRT $$", at_root);
    EXPECT_EQ(co_await abrt.wait(), -SIGABRT);
    Process seven = co_await shell("exit 7");
    EXPECT_EQ(co_await seven.wait(), 7);
    Process max = co_await shell("exit 255");
    EXPECT_EQ(co_await max.wait(), 255);
    // A shell killed by a signal exits 128 + N itself when its child was killed: not negative.
    Process inner = co_await shell("sh -c 'kill -KILL $$'; exit $?");
    EXPECT_EQ(co_await inner.wait(), 128 + SIGKILL);
  }());
}

// ---- 4. Cancellation leaves no zombie; dropped handles are reaped -------------------------------

TEST_P(SubprocessFaults, CancelledWaitLeavesChildRunningThenReapable) {
  run([]() -> Coro<void> {
    Process p = co_await shell("exec sleep 5");
    EXPECT_TRUE(co_await times_out(p.wait(), 0.1));
    EXPECT_FALSE(p.returncode());
    EXPECT_TRUE(exists(p.pid())) << "cancelling wait() must not stop the child";
    EXPECT_FALSE(reaped(p.pid()));
    // A second cancelled wait, then the real one.
    EXPECT_TRUE(co_await times_out(wait_of(p), 0.05));
    p.kill();
    EXPECT_EQ(co_await p.wait(), -9);
    EXPECT_TRUE(reaped(p.pid())) << "a zombie is left";
    EXPECT_TRUE(gone(p.pid()));
  }());
}

TEST_P(SubprocessFaults, CancelledCommunicateLeavesChildRunningThenReapable) {
  run([]() -> Coro<void> {
    SubprocessOptions o = stdio(PIPE, PIPE, PIPE);
    // It reads no stdin, prints a line and sleeps: 1 MB of input cannot all go in.
    Process p = co_await shell("echo partial; exec sleep 5", o);
    std::string input(1U << 20U, 'i');
    EXPECT_TRUE(co_await times_out(communicate_status(p, input), 0.3));
    EXPECT_FALSE(p.returncode());
    EXPECT_TRUE(exists(p.pid()));
    p.kill();
    EXPECT_EQ(co_await p.wait(), -9);
    EXPECT_TRUE(reaped(p.pid())) << "a zombie is left";
    EXPECT_TRUE(gone(p.pid()));

    // Cancelled while only reading (no stdin pipe), then killed: the same.
    SubprocessOptions out_only = stdio({}, PIPE);
    Process q = co_await shell("echo partial; exec sleep 5", out_only);
    EXPECT_TRUE(co_await times_out(communicate_status(q, ""), 0.3));
    q.kill();
    EXPECT_EQ(co_await q.wait(), -9);
    EXPECT_TRUE(gone(q.pid()));

    // The loop goes on: a new child communicates normally.
    Process r = co_await shell("cat", o);
    std::pair<std::string, std::string> out = co_await r.communicate("again");
    EXPECT_EQ(out.first, "again");
    EXPECT_EQ(r.returncode(), 0);
  }());
}

TEST_P(SubprocessFaults, CancelledWaitForTaskThenChildExitsByItself) {
  run([]() -> Coro<void> {
    Process p = co_await shell("exec sleep 0.3");
    Task<int> t = asyncio::create_task(p.wait());
    co_await asyncio::sleep(0.05);
    t.cancel();
    EXPECT_TRUE(co_await asyncio_test::ends_cancelled(std::move(t)));
    // Nobody waits now; it still exits and is reaped; a fresh wait() sees its status.
    EXPECT_EQ(co_await p.wait(), 0);
    EXPECT_TRUE(gone(p.pid()));
  }());
}

TEST_P(SubprocessFaults, ChildWithEveryHandleDroppedIsReapedByTheLoop) {
  run([]() -> Coro<void> {
    int pid = -1;
    {
      Process p = co_await exec0("true");
      pid = p.pid();
    }
    EXPECT_TRUE(co_await loop_until_gone(pid)) << "the dropped child " << pid << " was not reaped";
    // With pipes nobody reads, a little output.
    {
      SubprocessOptions o = stdio(PIPE, PIPE, PIPE);
      Process p = co_await shell("echo out; echo err >&2", o);
      pid = p.pid();
    }
    EXPECT_TRUE(co_await loop_until_gone(pid)) << "the dropped child " << pid << " was not reaped";
    // One that is still running when dropped.
    {
      Process p = co_await shell("exec sleep 0.2");
      pid = p.pid();
    }
    EXPECT_TRUE(exists(pid));
    EXPECT_TRUE(co_await loop_until_gone(pid)) << "the dropped child " << pid << " was not reaped";
  }());
}

// ---- 5. The thread watcher (no pidfd) -----------------------------------------------------------

TEST_P(SubprocessFaults, ThreadWatcherExitCodes) {
  run_thread_watched([]() -> Coro<void> {
    const std::size_t fds = open_fds();
    Process p = co_await shell_thread_watched("exit 3");
    EXPECT_EQ(open_fds(), fds) << "no pidfd (and no pipe) for this child";
    EXPECT_EQ(co_await p.wait(), 3);
    Process t = co_await shell_thread_watched("true");
    EXPECT_EQ(co_await t.wait(), 0);
    SubprocessOptions none;
    Process f = co_await shell_thread_watched("false", none, EMFILE);  // out of fds: the same
    EXPECT_EQ(co_await f.wait(), 1);
    EXPECT_TRUE(gone(p.pid()));
    EXPECT_TRUE(gone(t.pid()));
    EXPECT_TRUE(gone(f.pid()));
  }());
}

TEST_P(SubprocessFaults, PidfdWatchedChildHoldsOneFd) {
  // The contrast for ThreadWatcherExitCodes: a child watched through a pidfd holds one fd.
  run([]() -> Coro<void> {
    const std::size_t fds = open_fds();
    Process p = co_await shell("exec sleep 5");
    EXPECT_EQ(open_fds(), fds + 1);
    p.kill();
    EXPECT_EQ(co_await p.wait(), -9);
    EXPECT_EQ(open_fds(), fds);
  }());
}

TEST_P(SubprocessFaults, ThreadWatcherKillTerminateAndSignals) {
  run_thread_watched([]() -> Coro<void> {
    Process k = co_await shell_thread_watched("exec sleep 30");
    k.kill();
    EXPECT_EQ(co_await k.wait(), -9);
    Process t = co_await shell_thread_watched("exec sleep 30");
    t.terminate();
    EXPECT_EQ(co_await t.wait(), -15);
    SubprocessOptions at_root = stdio();
    at_root.cwd = "/";
    Process s = co_await shell_thread_watched("ulimit -c 0; kill -SEGV $$", at_root);
    EXPECT_EQ(co_await s.wait(), -11);
    // After the reap, a signal is a ProcessLookupError (never a kill() of a pid that may be
    // reused).
    EXPECT_THROW(k.kill(), asyncio::ProcessLookupError);
    EXPECT_THROW(t.terminate(), asyncio::ProcessLookupError);
    EXPECT_EQ(k.returncode(), -9);
    EXPECT_TRUE(gone(k.pid()));
    EXPECT_TRUE(gone(t.pid()));
    EXPECT_TRUE(gone(s.pid()));
  }());
}

TEST_P(SubprocessFaults, ThreadWatcherCommunicate) {
  const std::string input = random_bytes(2U << 20U, 19);
  run_thread_watched([](const std::string* input) -> Coro<void> {
    SubprocessOptions o = stdio(PIPE, PIPE, PIPE);
    Process p = co_await shell_thread_watched("cat; echo done >&2; exit 4", o);
    std::pair<std::string, std::string> r = co_await p.communicate(*input);
    EXPECT_TRUE(r.first == *input) << "differs at " << first_difference(r.first, *input);
    EXPECT_EQ(r.second, "done\n");
    EXPECT_EQ(p.returncode(), 4);
    // The 10 MB echo too.
    Process big = co_await shell_thread_watched(kShellEchoAndPattern, o);
    const std::string more = random_bytes(kBig, 20);
    r = co_await big.communicate(more);
    EXPECT_TRUE(r.first == more) << "differs at " << first_difference(r.first, more);
    EXPECT_EQ(r.second.size(), kBig);
    EXPECT_EQ(big.returncode(), 0);
  }(&input));
}

TEST_P(SubprocessFaults, ThreadWatcherCancelledWaitAndCommunicate) {
  run_thread_watched([]() -> Coro<void> {
    Process p = co_await shell_thread_watched("exec sleep 5");
    EXPECT_TRUE(co_await times_out(p.wait(), 0.1));
    EXPECT_FALSE(p.returncode());
    EXPECT_TRUE(exists(p.pid()));
    p.kill();
    EXPECT_EQ(co_await p.wait(), -9);
    EXPECT_TRUE(reaped(p.pid()));

    SubprocessOptions o = stdio(PIPE, PIPE);
    Process q = co_await shell_thread_watched("echo partial; exec sleep 5", o);
    std::string input(1U << 20U, 'i');
    EXPECT_TRUE(co_await times_out(communicate_status(q, input), 0.3));
    EXPECT_TRUE(exists(q.pid()));
    q.kill();
    EXPECT_EQ(co_await q.wait(), -9);
    EXPECT_TRUE(gone(q.pid()));
  }());
}

TEST_P(SubprocessFaults, ThreadWatcherDroppedHandleIsReaped) {
  run_thread_watched([]() -> Coro<void> {
    int pid = -1;
    {
      Process p = co_await shell_thread_watched("true");
      pid = p.pid();
    }
    EXPECT_TRUE(co_await loop_until_gone(pid)) << "the dropped child " << pid << " was not reaped";
  }());
}

TEST_P(SubprocessFaults, ThreadWatcherManyChildrenAtOnce) {
  run_thread_watched([]() -> Coro<void> {
    std::vector<Process> ps;
    SubprocessOptions o = stdio({}, PIPE);
    for (int i = 0; i < 30; ++i) ps.push_back(co_await shell_thread_watched("echo $$", o));
    std::vector<Task<std::pair<std::string, std::string>>> tasks;
    for (Process& p : ps) tasks.push_back(asyncio::create_task(p.communicate()));
    for (std::size_t i = 0; i < ps.size(); ++i) {
      std::pair<std::string, std::string> r = co_await tasks[i];
      EXPECT_EQ(r.first, std::to_string(ps[i].pid()) + "\n");
      EXPECT_EQ(ps[i].returncode(), 0);
    }
    for (Process& p : ps) EXPECT_TRUE(reaped(p.pid()));
  }());
}

TEST_P(SubprocessFaults, LoopClosingKillsAndReapsThreadWatchedChild) {
  const std::size_t fds = open_fds();
  const std::vector<int> pids = run_unchecked([]() -> Coro<std::vector<int>> {
    std::vector<int> out;
    // (No stdin pipe: see LoopClosingWithChildStdinPipeOpenLeaksItsTransport.)
    SubprocessOptions o = stdio({}, PIPE, PIPE);
    Process a = co_await shell_thread_watched("exec sleep 30", o);
    Process b = co_await shell_thread_watched("exec sleep 30");
    out.push_back(a.pid());
    out.push_back(b.pid());
    // A third whose wait() is pending when the loop closes.
    Process c = co_await shell_thread_watched("exec sleep 30");
    out.push_back(c.pid());
    Task<int> waiting = asyncio::create_task(c.wait());
    co_await asyncio::sleep(0.05);
    EXPECT_FALSE(waiting.done());
    co_return out;  // the task is cancelled and the children killed as the loop closes
  }());
  // The waiting threads reap them (asynchronously): bounded real-time wait.
  for (int pid : pids) EXPECT_TRUE(wait_gone(pid)) << pid << " was left running or a zombie";
  // Each waiting thread holds the closed loop's thread-safe queue (and so its eventfd) until it
  // has reaped its child and exits: the fd count is back shortly after, not at once.
  expect_fds_back(fds);
}

// ---- 6. The loop closing with children running --------------------------------------------------

TEST_P(SubprocessFaults, LoopClosingKillsAndReapsRunningChild) {
  const int pid = run([]() -> Coro<int> {
    Process p = co_await shell("exec sleep 30");
    co_await asyncio::sleep(0.01);
    EXPECT_TRUE(exists(p.pid()));
    co_return p.pid();  // main returns without waiting
  }());
  // The pidfd watcher reaps it while the loop closes: gone at once.
  EXPECT_TRUE(gone(pid)) << pid << " was left running or a zombie";
  EXPECT_TRUE(wait_gone(pid));
}

TEST_P(SubprocessFaults, LoopClosingKillsChildrenWithPipesAndPendingWaits) {
  const std::vector<int> pids = run([]() -> Coro<std::vector<int>> {
    std::vector<int> out;
    // No stdin pipe left open at the close: see LoopClosingWithChildStdinPipeOpenLeaksItsTransport.
    SubprocessOptions o = stdio({}, PIPE, PIPE);
    for (int i = 0; i < 5; ++i) {
      Process p = co_await shell("exec sleep 30", o);
      out.push_back(p.pid());
    }
    // One in the middle of communicate() (its input written and its stdin closed), one in the
    // middle of wait(), when the loop closes.
    SubprocessOptions io = stdio(PIPE, PIPE, PIPE);
    Process c = co_await shell("cat; exec sleep 30", io);
    out.push_back(c.pid());
    Task<std::pair<std::string, std::string>> talking = asyncio::create_task(c.communicate("hi"));
    Process w = co_await shell("exec sleep 30");
    out.push_back(w.pid());
    Task<int> waiting = asyncio::create_task(w.wait());
    co_await asyncio::sleep(0.1);
    EXPECT_FALSE(talking.done());
    EXPECT_FALSE(waiting.done());
    EXPECT_TRUE(c.stdin_().is_closing());
    co_return out;
  }());
  for (int pid : pids) EXPECT_TRUE(gone(pid)) << pid << " was left running or a zombie";
}

// The loop closing while a child runs with its stdin pipe still open and no Process handle
// left: the child is killed and reaped, and nothing leaks (LeakSanitizer). Found by this test:
// the process state, dropped while the loop closed its resources, closed its stdin transport,
// which queued its connection_lost on a ready queue that was never run or dropped again.
// (A handle kept past run(): ProcessHandleOutlivingItsLoop.)
TEST_P(SubprocessFaults, LoopClosingWithChildStdinPipeOpenLeaksNothing) {
  const int pid = run([]() -> Coro<int> {
    SubprocessOptions o = stdio(PIPE);
    Process p = co_await shell("exec sleep 30", o);
    co_return p.pid();
  }());
  EXPECT_TRUE(gone(pid));
}

TEST_P(SubprocessFaults, ProcessHandleOutlivingItsLoop) {
  // The handle survives asyncio::run: the child was killed and reaped as the loop closed, the
  // handle says so, and dropping it afterwards touches no dead loop.
  std::optional<Process> kept = run([]() -> Coro<std::optional<Process>> {
    SubprocessOptions o = stdio(PIPE, PIPE, PIPE);
    Process p = co_await shell("exec sleep 30", o);
    co_return p;
  }());
  ASSERT_TRUE(kept);
  EXPECT_TRUE(gone(kept->pid()));
  EXPECT_EQ(kept->returncode(), -SIGKILL);
  EXPECT_THROW(kept->kill(), asyncio::ProcessLookupError);  // reaped with its loop
  kept.reset();
}

// ---- 8. Broken pipes ----------------------------------------------------------------------------

/// This process ignores SIGPIPE, as the library makes it do once it has a pipe to write to
/// (run alone, a test may come before that). An ignored signal stays ignored across exec, so
/// these tests show that the child gets SIGPIPE back at its default.
void ignore_sigpipe_here() {
  struct sigaction sa {};
  if (::sigaction(SIGPIPE, nullptr, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    (void)::sigaction(SIGPIPE, &sa, nullptr);
  }
}

TEST_P(SubprocessFaults, ChildWritingToClosedReaderDiesOfSigpipe) {
  ignore_sigpipe_here();
  run([]() -> Coro<void> {
    // The reader is closed before the child starts.
    {
      ChildPipe pipe;
      pipe.r.reset();
      SubprocessOptions o = stdio({}, pipe.w.get(), DEVNULL);
      Process p = co_await shell("while :; do echo xxxxxxxxxxxxxxxx; done", o);
      pipe.w.reset();
      EXPECT_EQ(co_await p.wait(), -SIGPIPE);
    }
    // The reader reads some, then closes while the child writes.
    {
      ChildPipe pipe;
      SubprocessOptions o = stdio({}, pipe.w.get(), DEVNULL);
      Process p = co_await shell("while :; do echo xxxxxxxxxxxxxxxx; done", o);
      pipe.w.reset();
      pollfd pfd{pipe.r.get(), POLLIN, 0};
      EXPECT_EQ(::poll(&pfd, 1, 10000), 1);
      EXPECT_FALSE(asyncio_test::read_some(pipe.r.get()).empty()) << "the child wrote nothing";
      co_await asyncio::sleep(0.02);
      EXPECT_FALSE(p.returncode());
      pipe.r.reset();
      EXPECT_EQ(co_await p.wait(), -SIGPIPE);
      EXPECT_TRUE(gone(p.pid()));
    }
  }());
}

TEST_P(SubprocessFaults, ChildIgnoringSigpipeGetsEpipe) {
  ignore_sigpipe_here();
  run([]() -> Coro<void> {
    ChildPipe pipe;
    pipe.r.reset();
    SubprocessOptions o = stdio({}, pipe.w.get(), DEVNULL);
    Process p = co_await shell("trap '' PIPE; while echo x; do :; done; exit 3", o);
    pipe.w.reset();
    EXPECT_EQ(co_await p.wait(), 3);
    // Python ignores SIGPIPE itself: BrokenPipeError (EPIPE) in the child.
    ChildPipe pipe2;
    pipe2.r.reset();
    SubprocessOptions po = stdio({}, pipe2.w.get());
    Process py = co_await python(
        "import os\n"
        "try:\n"
        "    while True: os.write(1, b'x' * 65536)\n"
        "except BrokenPipeError:\n"
        "    os._exit(5)\n",
        po);
    pipe2.w.reset();
    EXPECT_EQ(co_await py.wait(), 5);
  }());
}

/// Writes `n` bytes to `w` and drains; "" when that worked, else the error's class.
Coro<std::string> write_and_drain(asyncio::StreamWriter w, std::size_t n) {
  try {
    std::string data(n, 'w');
    w.write(data);
    co_await w.drain();
  } catch (const asyncio::BrokenPipeError&) {
    co_return "BrokenPipeError";
  } catch (const asyncio::ConnectionResetError&) {
    co_return "ConnectionResetError";
  } catch (const std::exception& e) {
    co_return std::string("unexpected: ") + e.what();
  }
  co_return "";
}

TEST_P(SubprocessFaults, WritingToExitedChildsStdinNeverKillsUs) {
  run([]() -> Coro<void> {
    SubprocessOptions o = stdio(PIPE);
    Process p = co_await exec0("true", o);
    // wait() returns: the stdin pipe closes by itself once the child's end is gone.
    EXPECT_EQ(co_await asyncio::wait_for(p.wait(), 20.0), 0);
    asyncio::StreamWriter w = p.stdin_();
    for (int i = 0; i < 3; ++i) {
      const std::string outcome = co_await write_and_drain(w, 4U << 20U);
      EXPECT_TRUE(outcome.empty() || outcome == "BrokenPipeError" ||
                  outcome == "ConnectionResetError")
          << outcome;
    }
    w.close();
    // Still alive: the write did not raise SIGPIPE in this process.
    EXPECT_TRUE(exists(::getpid()));

    // A child that exits at once, fed 10 MB by communicate(): no error (Python ignores
    // BrokenPipeError and ConnectionResetError there).
    Process q = co_await exec0("true", o);
    std::string input(kBig, 'q');
    std::pair<std::string, std::string> r = co_await q.communicate(input);
    EXPECT_EQ(r.first, "");
    EXPECT_EQ(q.returncode(), 0);

    // One that reads only the first 100 bytes.
    SubprocessOptions io = stdio(PIPE, PIPE);
    Process h = co_await shell("head -c 100", io);
    const std::string big = random_bytes(kBig, 21);
    r = co_await h.communicate(big);
    EXPECT_EQ(r.first, big.substr(0, 100));
    EXPECT_EQ(h.returncode(), 0);
  }());
}

TEST_P(SubprocessFaults, WritingToStdinOfKilledChildNeverKillsUs) {
  run([]() -> Coro<void> {
    SubprocessOptions o = stdio(PIPE, DEVNULL);
    Process p = co_await shell("exec cat", o);
    asyncio::StreamWriter w = p.stdin_();
    EXPECT_EQ(co_await write_and_drain(w, 4096), "");
    p.kill();
    EXPECT_EQ(co_await asyncio::wait_for(p.wait(), 20.0), -9);
    const std::string outcome = co_await write_and_drain(w, 4U << 20U);
    EXPECT_TRUE(outcome.empty() || outcome == "BrokenPipeError" ||
                outcome == "ConnectionResetError")
        << outcome;
    EXPECT_TRUE(exists(::getpid()));
  }());
}

// ---- 9. Many children at once -------------------------------------------------------------------

TEST_P(SubprocessFaults, TwoHundredChildrenAtOnceAllReaped) {
  expect_no_children_soon();
  run([]() -> Coro<void> {
    const std::size_t fds = open_fds();
    std::vector<Process> ps;
    ps.reserve(200);
    for (int i = 0; i < 200; ++i) ps.push_back(co_await exec0("true"));
    std::vector<Task<int>> waits;
    for (Process& p : ps) waits.push_back(asyncio::create_task(p.wait()));
    std::vector<int> codes = co_await asyncio_test::gather_all(std::move(waits));
    EXPECT_EQ(codes.size(), 200U);
    EXPECT_EQ(std::count(codes.begin(), codes.end(), 0), 200);
    for (Process& p : ps) EXPECT_TRUE(gone(p.pid())) << p.pid();
    ps.clear();
    EXPECT_EQ(open_fds(), fds);
    EXPECT_TRUE(no_children());
  }());
  EXPECT_TRUE(no_children());
}

TEST_P(SubprocessFaults, TwoHundredChildrenWithPipesAtOnce) {
  expect_no_children_soon();
  run([]() -> Coro<void> {
    const std::size_t fds = open_fds();
    std::vector<Process> ps;
    SubprocessOptions o = stdio(PIPE, PIPE, asyncio::STDOUT);
    for (int i = 0; i < 200; ++i) ps.push_back(co_await shell("echo $$; cat", o));
    std::vector<Task<std::pair<std::string, std::string>>> talks;
    for (std::size_t i = 0; i < ps.size(); ++i) {
      talks.push_back(asyncio::create_task(ps[i].communicate("in" + std::to_string(i))));
    }
    for (std::size_t i = 0; i < ps.size(); ++i) {
      std::pair<std::string, std::string> r = co_await talks[i];
      EXPECT_EQ(r.first, std::to_string(ps[i].pid()) + "\nin" + std::to_string(i));
      EXPECT_EQ(ps[i].returncode(), 0);
    }
    for (Process& p : ps) EXPECT_TRUE(gone(p.pid())) << p.pid();
    talks.clear();
    ps.clear();
    EXPECT_EQ(open_fds(), fds);
  }());
  EXPECT_TRUE(no_children());
}

INSTANTIATE_TEST_SUITE_P(Engines, SubprocessFaults,
                         ::testing::Values(Backend::epoll, Backend::io_uring), param_name);

// ---- 7. Several loops at once (the TSan stage runs "Engines/MultiLoop*") ------------------------

/// The engine that is not `b`.
Backend other_engine(Backend b) {
  return b == Backend::epoll ? Backend::io_uring : Backend::epoll;
}

/// Starts 10 `sh -c 'echo $$'` (every other one thread-watched when `thread_watched`), then
/// communicates with all at once; how many printed their own pid and exited 0.
Coro<int> ten_children(bool thread_watched) {
  std::vector<Process> ps;
  SubprocessOptions o = stdio({}, PIPE);
  for (int i = 0; i < 10; ++i) {
    if (thread_watched && i % 2 == 1) {
      ps.push_back(co_await shell_thread_watched("echo $$", o));
    } else {
      ps.push_back(co_await shell("echo $$", o));
    }
  }
  std::vector<Task<std::pair<std::string, std::string>>> talks;
  for (Process& p : ps) talks.push_back(asyncio::create_task(p.communicate()));
  int ok = 0;
  for (std::size_t i = 0; i < ps.size(); ++i) {
    std::pair<std::string, std::string> r = co_await talks[i];
    if (r.first == std::to_string(ps[i].pid()) + "\n" && ps[i].returncode() == 0 &&
        reaped(ps[i].pid())) {
      ++ok;
    }
  }
  co_return ok;
}

Coro<int> bounded(Coro<int> c) {
  co_return co_await asyncio::wait_for(std::move(c), kBound);
}

class MultiLoopSubprocess : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    uring_ok_ = !io_uring_refused();
    if (GetParam() == Backend::io_uring && !uring_ok_) {
      GTEST_SKIP() << "io_uring is not available: " << *io_uring_refused();
    }
  }

  /// Runs ten_children on `loops` threads at once, each with its own loop (engines alternate,
  /// starting with the parameter's); checks every result and that no fd leaked.
  void run_loops(int loops, bool thread_watched) {
    const std::size_t fds = open_fds();
    std::vector<int> oks(static_cast<std::size_t>(loops), -1);
    std::vector<std::string> errors(static_cast<std::size_t>(loops));
    std::vector<Backend> engines;
    for (int i = 0; i < loops; ++i) {
      Backend b = i % 2 == 0 ? GetParam() : other_engine(GetParam());
      if (b == Backend::io_uring && !uring_ok_) b = Backend::epoll;
      engines.push_back(b);
    }
    {
      std::vector<std::thread> threads;
      for (int i = 0; i < loops; ++i) {
        const auto slot = static_cast<std::size_t>(i);
        threads.emplace_back([&oks, &errors, &engines, slot, thread_watched] {
          try {
            oks[slot] = asyncio::run(bounded(ten_children(thread_watched)),
                                     RunOptions{.backend = engines[slot]});
          } catch (const std::exception& e) {
            errors[slot] = e.what();
          }
          asyncio::sys::clear_faults();
        });
      }
      for (std::thread& t : threads) t.join();
    }
    for (std::size_t i = 0; i < oks.size(); ++i) {
      EXPECT_EQ(errors[i], "") << "loop " << i << " (" << asyncio_test::engine_name(engines[i])
                               << ")";
      EXPECT_EQ(oks[i], 10) << "loop " << i << " (" << asyncio_test::engine_name(engines[i]) << ")";
    }
    // (A thread that waited for a child may hold its loop's eventfd a moment longer.)
    EXPECT_TRUE(asyncio_test::wait_until([fds] { return open_fds() == fds; }, 10s))
        << "an fd leaked: " << open_fds() << " open, " << fds << " before";
  }

  bool uring_ok_ = false;
};

TEST_P(MultiLoopSubprocess, FourLoopsTenChildrenEach) {
  run_loops(4, false);
}

TEST_P(MultiLoopSubprocess, FourLoopsTenChildrenEachSomeThreadWatched) {
  run_loops(4, true);
}

TEST_P(MultiLoopSubprocess, FourLoopsRepeatedly) {
  for (int round = 0; round < 5; ++round) run_loops(4, round % 2 == 1);
}

INSTANTIATE_TEST_SUITE_P(Engines, MultiLoopSubprocess,
                         ::testing::Values(Backend::epoll, Backend::io_uring), param_name);

}  // namespace
