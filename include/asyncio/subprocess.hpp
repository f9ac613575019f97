// asyncio/subprocess.hpp - child processes (Python: asyncio/subprocess.py):
// create_subprocess_exec, create_subprocess_shell and Process.
//
//   std::vector<std::string> args{"-c", "print('hi')"};
//   asyncio::Process p = co_await asyncio::create_subprocess_exec(
//       "python3", args, {.stdout_ = asyncio::PIPE});
//   auto [out, err] = co_await p.communicate();
//
// The child is started with posix_spawn (vfork + exec: nothing of this process runs in the
// child), and its exit is seen through a pidfd watched by the loop's I/O engine (a thread
// blocked in waitpid() for that one child where the kernel has no pidfds): no SIGCHLD handler,
// so children that other code started are never reaped here. Its pipes are stream transports
// under StreamReader/StreamWriter. docs/design/threads.md, "Child processes".
//
// g++ 12 note: build the argument vector in a statement of its own. g++ 12 rejects a braced
// list of strings inside a co_await expression ("array used as initializer"), and destroys
// aggregate temporaries there twice, which is why SubprocessOptions only holds views (it is
// trivially copyable; what it points to must live until the co_await ends).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "asyncio/coroutines.hpp"
#include "asyncio/streams.hpp"

namespace asyncio {

namespace detail {
class ProcessState;
}  // namespace detail

/// Where a child's standard stream goes: inherited (the default), a new pipe, /dev/null,
/// stdout (for stderr), or a file descriptor of the caller's (kept open: the child gets a
/// copy). Python: subprocess.PIPE, DEVNULL, STDOUT, None or an fd
class Redirect {
 public:
  enum class Kind : unsigned char { inherit, pipe, devnull, stdout_, fd };
  /// Inherit this process's stream. Python: None
  constexpr Redirect() noexcept = default;
  /// The caller's open file descriptor `fd` (>= 0). Python: stdout=fd
  // NOLINTNEXTLINE(google-explicit-constructor): `.stdout_ = fd`, as Python's stdout=fd
  constexpr Redirect(int fd) noexcept : kind_(Kind::fd), fd_(fd) {}
  constexpr explicit Redirect(Kind kind) noexcept : kind_(kind) {}
  [[nodiscard]] constexpr Kind kind() const noexcept { return kind_; }
  [[nodiscard]] constexpr int fd() const noexcept { return fd_; }

 private:
  Kind kind_ = Kind::inherit;
  int fd_ = -1;
};

/// A new pipe between this process and the child. Python: asyncio.subprocess.PIPE
inline constexpr Redirect PIPE{Redirect::Kind::pipe};
/// /dev/null. Python: asyncio.subprocess.DEVNULL
inline constexpr Redirect DEVNULL{Redirect::Kind::devnull};
/// stderr only: the same place as stdout. Python: asyncio.subprocess.STDOUT
inline constexpr Redirect STDOUT{Redirect::Kind::stdout_};

/// How a child process starts. Python: the keyword arguments of create_subprocess_exec
/// (stdin, stdout, stderr, limit, cwd, env, start_new_session, close_fds, pass_fds, executable).
/// Views only (see the g++ 12 note above): what they refer to must live until the call's
/// co_await ends.
struct SubprocessOptions {
  // Every member has an initializer, so that g++ -Wextra does not warn about the ones a
  // designated initializer leaves out (-Wmissing-field-initializers).
  Redirect stdin_ = {};
  Redirect stdout_ = {};
  Redirect stderr_ = {};
  /// The buffer limit of the stdout/stderr readers. Python: limit
  std::size_t limit = kDefaultStreamLimit;
  /// The child's working directory (empty: this process's). Python: cwd
  std::string_view cwd = {};
  /// The child's whole environment, as "NAME=value" entries (unset: this process's). Its PATH,
  /// if any, is where a program name without a '/' is searched. Python: env
  std::optional<std::span<const std::string>> env = std::nullopt;
  /// Run the child in a new session (setsid). Python: start_new_session
  bool start_new_session = false;
  /// Close every fd above 2 in the child but pass_fds. Python: close_fds (default True)
  bool close_fds = true;
  /// File descriptors the child inherits (even close-on-exec ones). Python: pass_fds
  std::span<const int> pass_fds = {};
  /// The file to execute instead of `program` (which stays argv[0]); for a shell command, the
  /// shell (default /bin/sh). Python: executable
  std::string_view executable = {};
};
static_assert(std::is_trivially_copyable_v<SubprocessOptions>,
              "g++ 12 destroys aggregate temporaries in co_await expressions twice");

/// A child process started by create_subprocess_exec/_shell. A handle: copies share the child.
/// Dropping every handle does not stop the child; the loop still reaps it when it exits, and
/// kills (SIGKILL) and reaps any child still running when the loop closes, so none is left a
/// zombie. Python: asyncio.subprocess.Process
class Process {
 public:
  explicit Process(std::shared_ptr<detail::ProcessState> state) noexcept
      : state_(std::move(state)) {}

  /// The child's process id. Python: pid
  [[nodiscard]] int pid() const noexcept;
  /// The exit status once the child has exited: its exit code, or -N when signal N killed it;
  /// empty while it runs. Python: returncode
  [[nodiscard]] std::optional<int> returncode() const noexcept;
  /// Waits until the child has exited and its pipes are closed; the return code. Cancelling
  /// the wait leaves the child running (the loop still reaps it). With stdout/stderr pipes
  /// nobody reads, a child that writes a lot blocks and this waits for ever: use
  /// communicate(). Python: wait()
  Coro<int> wait() const;
  /// Writes `input` to stdin (if it is a pipe) and closes it, reads stdout and stderr (those
  /// that are pipes) to their end, then waits for the exit. {stdout, stderr} ("" for a stream
  /// that is not a pipe). A child that stops reading its stdin does not make this fail (Python
  /// ignores BrokenPipeError and ConnectionResetError here). ValueError: input given without a
  /// stdin pipe. Python: communicate(input=None)
  Coro<std::pair<std::string, std::string>> communicate(std::string input = {}) const;
  /// Sends signal `sig` (through the pidfd: never to a recycled pid). Once the child has been
  /// reaped: nothing while one of its pipes is still open, then ProcessLookupError (as Python
  /// 3.12). Python: send_signal(sig)
  void send_signal(int sig) const;
  /// SIGTERM. Python: terminate()
  void terminate() const;
  /// SIGKILL. Python: kill()
  void kill() const;
  /// The child's stdin, stdout and stderr pipes; ValueError for one that is not a pipe.
  /// Python: stdin, stdout, stderr
  [[nodiscard]] StreamWriter stdin_() const;
  [[nodiscard]] StreamReader stdout_() const;
  [[nodiscard]] StreamReader stderr_() const;
  /// Whether each is a pipe. Python: `proc.stdin is not None`...
  [[nodiscard]] bool has_stdin() const noexcept;
  [[nodiscard]] bool has_stdout() const noexcept;
  [[nodiscard]] bool has_stderr() const noexcept;

  [[nodiscard]] const std::shared_ptr<detail::ProcessState>& state() const noexcept {
    return state_;
  }

 private:
  std::shared_ptr<detail::ProcessState> state_;
};

/// Starts `program` with arguments `args` (argv is program, args...). A program name without
/// a '/' is searched in PATH (the child's, when options.env is given). FileNotFoundError when
/// there is no such program (or no such cwd), PermissionError when it may not be run, ValueError
/// for options that make no sense (STDOUT for stdin or stdout, a negative fd). Nothing is left
/// behind when it fails: no child, no fd. Python: asyncio.create_subprocess_exec(program, *args)
Coro<Process> create_subprocess_exec(std::string program, std::vector<std::string> args = {},
                                     SubprocessOptions options = {});
/// Runs `cmd` with the shell: /bin/sh -c cmd (options.executable: another shell).
/// Python: asyncio.create_subprocess_shell(cmd)
Coro<Process> create_subprocess_shell(std::string cmd, SubprocessOptions options = {});

}  // namespace asyncio
