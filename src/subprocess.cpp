// Child processes (Python: asyncio/subprocess.py, base_subprocess.py, unix_events.py's
// _UnixSubprocessTransport and PidfdChildWatcher / ThreadedChildWatcher).
// docs/design/threads.md, "Child processes".
//
// A ProcessState is the child: its pid, its pidfd (watched by an OwnedOp on the loop's engine,
// readable once the child has exited), its pipes as streams, and the futures of wait(). The loop
// holds it (an IoResource and its own `self_`) until the child is reaped, so the child is reaped
// even if every Process handle is gone. Where the kernel has no pidfds, one thread per child
// blocks in waitpid() for it and posts the status through the loop's thread-safe queue.
//
// As in Python 3.12, wait() returns at once once the child has been reaped; a wait() that began
// before that returns when the child has exited and all its pipes have closed
// (BaseSubprocessTransport._call_connection_lost wakes the exit waiters).
#include "asyncio/subprocess.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <sys/wait.h>

#include "asyncio/composition.hpp"
#include "asyncio/events.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/executors.hpp"
#include "asyncio/futures.hpp"
#include "asyncio/threads.hpp"
#include "streams_detail.hpp"
#include "sys/sys.hpp"
#include "unix/io_engine.hpp"
#include "unix/loop_io.hpp"
#include "unix/owned_op.hpp"

namespace asyncio {
namespace detail {

class ProcessState final : public IoResource {
 public:
  ProcessState(EventLoop& loop, int pid, int pidfd)
      : loop_(&loop),
        pid_(pid),
        io_(&io_of(loop)),
        pidfd_(pidfd),
        exited_(OpKind::poll_in, pidfd, *this, &ProcessState::on_exit_ready, ready_queue_of(loop)) {
  }
  ProcessState(const ProcessState&) = delete;
  ProcessState& operator=(const ProcessState&) = delete;
  ~ProcessState() = default;

  /// Starts watching for the child's exit; from then on the loop holds `self`. (Neither way
  /// of watching reports an exit before this returns: the op's completion and the thread's
  /// post both run from the loop's queue.)
  void watch(const std::shared_ptr<ProcessState>& self) {
    if (pidfd_ >= 0) {
      exited_.start(*io_->engine);
    } else {
      watch_with_thread();
    }
    self_ = self;
  }

  /// watch() failed: nothing will watch the child, so it is killed and reaped here.
  void kill_and_reap_now() noexcept {
    (void)sys::kill(pid_, SIGKILL);
    int status = 0;
    if (sys::wait_blocking(pid_, &status) == pid_) set_status(status);
    close_pidfd();
  }

  /// Joins the loop's resources, after the pipes' transports: when the loop closes, they are
  /// closed before this state (which holds their streams) may go.
  void join_loop() noexcept {
    if (!returncode_ && !linked()) io_->resources.push_back(static_cast<IoResource*>(this));
  }

  /// A pipe of the child's closed (Python: pipe_connection_lost).
  void pipe_lost() {
    --pipes_open_;
    try_finish();
  }

  [[nodiscard]] std::optional<int> returncode() const noexcept { return returncode_; }

  /// A future that wait() awaits (Python: _wait's waiter); null once the child is reaped.
  std::optional<Future<int>> exit_waiter() {
    if (returncode_) return std::nullopt;
    Future<int> f(*loop_);
    exit_waiters_.push_back(f);
    return f;
  }

  /// Python 3.12: nothing once the child has exited (Popen.send_signal); ProcessLookupError
  /// once its pipes have closed too (the transport's _check_proc, after _call_connection_lost).
  void send_signal(int sig) {
    if (finished_) raise_os_error(ESRCH, "send_signal: the process has exited");
    if (returncode_) return;  // reaped: the pid may name another process now
    const int r = pidfd_ >= 0 ? sys::pidfd_send_signal(pidfd_, sig) : sys::kill(pid_, sig);
    if (r < 0 && r != -ESRCH) raise_os_error(-r, "send_signal");
  }

  // -- IoResource ------------------------------------------------------------------------------
  /// The loop closes while the child runs: kill it and reap it (no zombie), let go of the rest.
  void on_loop_close() noexcept override {
    dead_ = true;
    if (!returncode_) {
      if (pidfd_ >= 0) {
        (void)sys::pidfd_send_signal(pidfd_, SIGKILL);
        int status = 0;
        if (sys::wait_blocking(pid_, &status) == pid_) set_status(status);
      } else {
        (void)sys::kill(pid_, SIGKILL);  // the waiting thread reaps it
        core_of(*loop_).release_external();
      }
    }
    if (exited_.parked()) io_->engine->abandon(exited_);
    close_pidfd();
    finished_ = true;  // nothing more will happen to it
    exit_waiters_.clear();
    release_if_idle();
  }
  /// The loop dropped the queued exit op (it is closing).
  void on_discarded() noexcept { release_if_idle(); }

  // The pipes, the loop and what they were made with.
  EventLoop* loop_;
  // The pipes; a handle with no state where the stream is not a pipe.
  StreamWriter stdin_{nullptr};
  StreamReader stdout_{std::shared_ptr<StreamReaderState>()};
  StreamReader stderr_{std::shared_ptr<StreamReaderState>()};
  int pipes_open_ = 0;
  int pid_;

 private:
  friend class OwnedOp<ProcessState>;

  void on_exit_ready(long r) {
    if (dead_) return release_if_idle();
    if (r == -ECANCELED) return;
    int status = 0;
    const int w = sys::wait_nohang(pid_, &status);
    if (w == 0) {  // not reaped yet (should not happen once the pidfd is readable): wait again
      try {
        exited_.start(*io_->engine);
        return;
      } catch (...) {
        (void)sys::wait_blocking(pid_, &status);  // it has exited: this does not block for long
      }
    } else if (w < 0) {
      // Not ours any more (another waitpid(-1), or SIGCHLD ignored): Python reports 255.
      status = 255 << 8;
    }
    close_pidfd();
    exited(status);
  }

  /// No pidfds: a thread waits for this one child (Python: ThreadedChildWatcher) and posts
  /// the status to the loop. It holds only the loop's queue: a status that comes after the
  /// loop closed is dropped (the child is reaped all the same).
  void watch_with_thread() {
    core_of(*loop_).hold_external();  // virtual time waits for the child
    std::shared_ptr<PostQueue> queue = threadsafe_queue_of(*loop_);
    const int pid = pid_;
    ProcessState* self = this;  // alive until the post runs, or the loop closes first
    try {
      std::thread([queue = std::move(queue), pid, self] {
        int status = 0;
        if (sys::wait_blocking(pid, &status) < 0) status = 255 << 8;
        (void)post_callback(*queue, [self, status] { self->exited_by_thread(status); });
      }).detach();
    } catch (...) {
      core_of(*loop_).release_external();
      throw;
    }
  }
  void exited_by_thread(int status) {
    core_of(*loop_).release_external();
    exited(status);
  }

  void set_status(int status) noexcept {
    if (WIFSIGNALED(status)) {
      returncode_ = -WTERMSIG(status);
    } else if (WIFEXITED(status)) {
      returncode_ = WEXITSTATUS(status);
    } else {
      returncode_ = 255;
    }
  }

  /// Python: _process_exited
  void exited(int status) {
    set_status(status);
    if (linked()) IntrusiveList::unlink(static_cast<IoResource*>(this));
    // The loop's reference goes at the end of this call (the caller may be the op's run()).
    const std::shared_ptr<ProcessState> keep = std::move(self_);
    try_finish();
  }

  /// Python: _try_finish + _call_connection_lost: the exit waiters wake once the child has
  /// exited and every pipe has closed.
  void try_finish() {
    if (!returncode_ || pipes_open_ > 0 || finished_) return;
    finished_ = true;
    std::vector<Future<int>> waiters = std::move(exit_waiters_);
    for (Future<int>& f : waiters) {
      if (!f.done()) f.set_result(*returncode_);
    }
  }

  /// After the loop closed: drops the loop's reference once the exit op is not queued (which
  /// may destroy this: nothing after it).
  void release_if_idle() noexcept {
    if (!dead_ || exited_.busy()) return;
    const std::shared_ptr<ProcessState> keep = std::move(self_);
  }

  void close_pidfd() noexcept {
    if (pidfd_ < 0) return;
    io_->engine->forget(pidfd_);
    sys::close(pidfd_);
    pidfd_ = -1;
  }

  LoopIo* io_;
  int pidfd_;
  OwnedOp<ProcessState> exited_;
  std::optional<int> returncode_;
  std::vector<Future<int>> exit_waiters_;
  std::shared_ptr<ProcessState> self_;  // the loop's reference, until the child is reaped
  bool finished_ = false;
  bool dead_ = false;  // the loop closed
};

namespace {

/// ValueError for a string with a NUL byte in it (Python: "embedded null byte").
void check_no_nul(std::string_view s, const char* what) {
  if (s.find('\0') != std::string_view::npos) {
    throw ValueError(std::string(what) + ": embedded null byte");
  }
}

/// The file to run: `name` itself if it has a '/', else the first executable `dir/name` of
/// PATH (the child's if `env` is given: Python's os.get_exec_path(env)). When there is none:
/// PermissionError if a `dir/name` exists that may not be run, else FileNotFoundError (Python's
/// os._execvpe keeps the first error that is not "no such file").
std::string find_program(const std::string& name, const SubprocessOptions& options) {
  if (name.find('/') != std::string::npos) return name;
  std::string path;
  bool have_path = false;
  if (options.env) {
    for (const std::string& e : *options.env) {
      if (e.rfind("PATH=", 0) == 0) {
        path = e.substr(5);
        have_path = true;
      }
    }
  } else if (const char* p = std::getenv("PATH")) {  // NOLINT(concurrency-mt-unsafe)
    path = p;
    have_path = true;
  }
  if (!have_path) path = "/bin:/usr/bin";  // Python's os.defpath
  bool denied = false;
  if (!name.empty()) {
    std::size_t start = 0;
    for (;;) {
      const std::size_t end = path.find(':', start);
      std::string dir = path.substr(start, end == std::string::npos ? end : end - start);
      if (dir.empty()) dir = ".";
      std::string candidate = std::move(dir);
      candidate += '/';
      candidate += name;
      const int r = sys::executable(candidate.c_str());
      if (r == 0) return candidate;
      denied = denied || r == -EACCES;
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  raise_os_error(denied ? EACCES : ENOENT, "cannot run '" + name + "'");
}

/// The fds this process keeps and the child gets, closed on every path.
struct ChildFds {
  sys::Fd ours[3];    // our ends of the pipes (stdin: write end; stdout/stderr: read ends)
  sys::Fd theirs[3];  // the child's ends, closed once it has them
  sys::Fd devnull;
  sys::Fd moved[3];  // a caller's fd 0-2 copied above 2 (so the dup2s cannot clobber it)
  int stdio[3] = {-1, -1, -1};
};

void plan_stdio(ChildFds& fds, const SubprocessOptions& options) {
  const Redirect r[3] = {options.stdin_, options.stdout_, options.stderr_};
  for (int i = 0; i < 3; ++i) {
    switch (r[i].kind()) {
      case Redirect::Kind::inherit:
        break;
      case Redirect::Kind::pipe: {
        int p[2] = {-1, -1};
        sys::pipe_cloexec(p);
        // The child reads its stdin and writes its stdout and stderr.
        fds.ours[i] = sys::Fd(i == 0 ? p[1] : p[0]);
        fds.theirs[i] = sys::Fd(i == 0 ? p[0] : p[1]);
        fds.stdio[i] = fds.theirs[i].get();
        break;
      }
      case Redirect::Kind::devnull:
        if (!fds.devnull) fds.devnull = sys::Fd(sys::open_devnull());
        fds.stdio[i] = fds.devnull.get();
        break;
      case Redirect::Kind::stdout_:
        fds.stdio[i] = 1;  // after fd 1 is set up (the file actions run in order)
        break;
      case Redirect::Kind::fd:
        if (r[i].fd() < 3 && r[i].fd() != i) {
          fds.moved[i] = sys::Fd(sys::dup_above_stdio(r[i].fd()));
          fds.stdio[i] = fds.moved[i].get();
        } else {
          fds.stdio[i] = r[i].fd();
        }
        break;
    }
  }
}

void validate(const std::string& program, const std::vector<std::string>& argv,
              const SubprocessOptions& options) {
  if (options.stdin_.kind() == Redirect::Kind::stdout_ ||
      options.stdout_.kind() == Redirect::Kind::stdout_) {
    throw ValueError("STDOUT can only be used for stderr");
  }
  for (const Redirect& r : {options.stdin_, options.stdout_, options.stderr_}) {
    if (r.kind() == Redirect::Kind::fd && r.fd() < 0) {
      throw ValueError("a redirection to fd " + std::to_string(r.fd()) + " (negative)");
    }
  }
  if (options.limit == 0) throw ValueError("Limit cannot be <= 0");
  for (const int fd : options.pass_fds) {
    if (fd < 0) throw ValueError("pass_fds: negative fd " + std::to_string(fd));
  }
  check_no_nul(program, "program");
  for (const std::string& a : argv) check_no_nul(a, "args");
  check_no_nul(options.cwd, "cwd");
  check_no_nul(options.executable, "executable");
  if (options.env) {
    for (const std::string& e : *options.env) {
      check_no_nul(e, "env");
      if (e.find('=') == std::string::npos || e.front() == '=') {
        throw ValueError("env: an entry must be \"NAME=value\": '" + e + "'");
      }
    }
  }
}

/// argv/envp as the arrays posix_spawn takes (pointers into the strings).
std::vector<char*> c_strings(std::span<const std::string> strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));  // NOLINT
  out.push_back(nullptr);
  return out;
}

/// Starts the child with `fds` set up; its pid. posix_spawn does not block for long: the parent
/// waits only until the child has exec'd.
int start_child(const std::string& program, const std::vector<std::string>& argv,
                const SubprocessOptions& options, ChildFds& fds) {
  const std::string path =
      find_program(options.executable.empty() ? program : std::string(options.executable), options);
  plan_stdio(fds, options);
  std::vector<char*> c_argv = c_strings(argv);
  std::vector<char*> c_env;
  if (options.env) c_env = c_strings(*options.env);
  const std::string cwd(options.cwd);

  sys::SpawnPlan plan;
  plan.path = path.c_str();
  plan.argv = c_argv.data();
  plan.envp = options.env ? c_env.data() : nullptr;
  std::copy(std::begin(fds.stdio), std::end(fds.stdio), std::begin(plan.stdio));
  plan.cwd = cwd.empty() ? nullptr : cwd.c_str();
  plan.new_session = options.start_new_session;
  plan.close_fds = options.close_fds;
  plan.pass_fds = options.pass_fds.data();
  plan.pass_fds_count = options.pass_fds.size();
  const int pid = sys::spawn(plan);
  if (pid < 0) {
    if (-pid == ENOENT && !cwd.empty() && sys::path_id(cwd.c_str()) == sys::FileId{}) {
      raise_os_error(ENOENT, "no such directory (cwd) '" + cwd + "'");
    }
    raise_os_error(-pid, "cannot run '" + path + "'");
  }
  for (sys::Fd& fd : fds.theirs) fd.reset();  // the child has its copies
  return pid;
}

/// The child's pipes as streams, each telling `state` when it closes.
void add_pipes(EventLoop& loop, const std::shared_ptr<ProcessState>& state, ChildFds& fds,
               std::size_t limit) {
  const std::weak_ptr<ProcessState> weak = state;
  auto lost = [weak] {
    if (const std::shared_ptr<ProcessState> s = weak.lock()) s->pipe_lost();
  };
  // A pipe that cannot be set up (no memory) is closed; the child sees its end close.
  if (fds.ours[0]) {
    state->stdin_ = write_pipe_stream(loop, fds.ours[0].release(), lost);
    ++state->pipes_open_;
  }
  if (fds.ours[1]) {
    state->stdout_ = read_pipe_stream(loop, fds.ours[1].release(), limit, lost);
    ++state->pipes_open_;
  }
  if (fds.ours[2]) {
    state->stderr_ = read_pipe_stream(loop, fds.ours[2].release(), limit, lost);
    ++state->pipes_open_;
  }
}

/// Starts the child and wraps it (everything synchronous).
Process spawn_process(EventLoop& loop, const std::string& program,
                      const std::vector<std::string>& argv, const SubprocessOptions& options) {
  validate(program, argv, options);
  ChildFds fds;
  const int pid = start_child(program, argv, options, fds);
  // From here on the child runs: nothing may throw before the state owns it.
  int pidfd = sys::pidfd_open(pid);
  if (pidfd < 0) pidfd = -1;  // ENOSYS (Linux < 5.3), or out of fds: a thread waits instead
  auto state = std::make_shared<ProcessState>(loop, pid, pidfd);
  try {
    state->watch(state);
  } catch (...) {
    state->kill_and_reap_now();  // neither the engine nor a thread can watch it
    throw;
  }
  try {
    add_pipes(loop, state, fds, options.limit);
  } catch (...) {
    state->join_loop();  // the child is watched all the same
    throw;
  }
  state->join_loop();  // after the pipes' transports (see join_loop())
  return Process(std::move(state));
}

// ---- communicate -------------------------------------------------------------------------------

/// Python: Process._feed_stdin
Coro<int> feed_stdin(StreamWriter w, std::string input) {
  try {
    if (!input.empty()) w.write(input);
    co_await w.drain();
    // Python ignores these two here: the child stopped reading its stdin.
  } catch (const BrokenPipeError&) {       // NOLINT(bugprone-empty-catch)
  } catch (const ConnectionResetError&) {  // NOLINT(bugprone-empty-catch)
  }
  w.close();
  co_return 0;
}

/// Python: Process._read_stream
Coro<std::string> read_all(StreamReader r) {
  co_return co_await r.read();
}

Coro<std::string> nothing() {
  co_return std::string();
}

Coro<int> no_input() {
  co_return 0;
}

/// Python: Process.wait
Coro<int> wait_for_exit(std::shared_ptr<ProcessState> s) {
  std::optional<Future<int>> f = s->exit_waiter();
  if (!f) co_return s->returncode().value_or(255);  // reaped already
  co_return co_await std::move(*f);  // NOLINT(bugprone-unchecked-optional-access): checked
}

/// Python: Process.communicate: gather(feed stdin, read stdout, read stderr), then wait().
Coro<std::pair<std::string, std::string>> communicate_with(std::shared_ptr<ProcessState> s,
                                                           std::string input) {
  Coro<int> feed = s->stdin_.state() ? feed_stdin(s->stdin_, std::move(input)) : no_input();
  Coro<std::string> out = s->stdout_.state() ? read_all(s->stdout_) : nothing();
  Coro<std::string> err = s->stderr_.state() ? read_all(s->stderr_) : nothing();
  auto all = co_await gather(std::move(feed), std::move(out), std::move(err));
  std::pair<std::string, std::string> result(std::move(std::get<1>(all)),
                                             std::move(std::get<2>(all)));
  (void)co_await wait_for_exit(s);
  co_return result;
}

[[noreturn]] void throw_empty() {
  throw InvalidStateError("empty Process handle (moved from?)");
}

}  // namespace
}  // namespace detail

// ---- Process -----------------------------------------------------------------------------------

int Process::pid() const noexcept {
  return state_ ? state_->pid_ : -1;
}

std::optional<int> Process::returncode() const noexcept {
  return state_ ? state_->returncode() : std::nullopt;
}

Coro<int> Process::wait() const {
  if (!state_) detail::throw_empty();
  return detail::wait_for_exit(state_);
}

Coro<std::pair<std::string, std::string>> Process::communicate(std::string input) const {
  if (!state_) detail::throw_empty();
  if (!input.empty() && !state_->stdin_.state()) {
    throw ValueError("communicate(input): the child's stdin is not a pipe");
  }
  return detail::communicate_with(state_, std::move(input));
}

void Process::send_signal(int sig) const {
  if (!state_) detail::throw_empty();
  state_->send_signal(sig);
}

void Process::terminate() const {
  send_signal(SIGTERM);
}

void Process::kill() const {
  send_signal(SIGKILL);
}

StreamWriter Process::stdin_() const {
  if (!state_) detail::throw_empty();
  if (!state_->stdin_.state()) throw ValueError("the child's stdin is not a pipe");
  return state_->stdin_;
}

StreamReader Process::stdout_() const {
  if (!state_) detail::throw_empty();
  if (!state_->stdout_.state()) throw ValueError("the child's stdout is not a pipe");
  return state_->stdout_;
}

StreamReader Process::stderr_() const {
  if (!state_) detail::throw_empty();
  if (!state_->stderr_.state()) throw ValueError("the child's stderr is not a pipe");
  return state_->stderr_;
}

bool Process::has_stdin() const noexcept {
  return state_ && state_->stdin_.state();
}
bool Process::has_stdout() const noexcept {
  return state_ && state_->stdout_.state();
}
bool Process::has_stderr() const noexcept {
  return state_ && state_->stderr_.state();
}

// ---- Creation ----------------------------------------------------------------------------------

Coro<Process> create_subprocess_exec(std::string program, std::vector<std::string> args,
                                     SubprocessOptions options) {
  EventLoop& loop = get_running_loop();
  args.insert(args.begin(), program);
  co_return detail::spawn_process(loop, program, args, options);
}

Coro<Process> create_subprocess_shell(std::string cmd, SubprocessOptions options) {
  EventLoop& loop = get_running_loop();
  // Python: args = [shell, "-c", cmd], the shell being `executable` when given.
  std::string shell = options.executable.empty() ? "/bin/sh" : std::string(options.executable);
  options.executable = {};
  std::vector<std::string> argv;
  argv.push_back(shell);
  argv.emplace_back("-c");
  argv.push_back(std::move(cmd));
  co_return detail::spawn_process(loop, shell, argv, options);
}

}  // namespace asyncio
