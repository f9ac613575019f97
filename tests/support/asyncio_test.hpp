// asyncio_test.hpp - small, header-only helpers shared by every test suite.
//
//   run_virtual(coro)         asyncio::run with virtual time (sleep(1h) returns at once)
//   new_virtual_loop()        a fresh, not running loop with virtual time
//   run_briefly(loop)         Python's test_utils.run_briefly: a couple of loop iterations
//   run_on_two_loops(a, b)    runs `a` on one loop, then `b` on another (cross-loop misuse)
//   RecordingHandler          installs itself as a loop's exception handler, records contexts
//   what_of(e), holds<E>(e)   the what() of an exception_ptr; whether it holds an E
//   error_of(coro)            a Coro: what awaiting `coro` threw (null when it returned)
//   thrown<E>(f)              the exception of type E that f() threw, or nullopt
//   thrown_what<E>(f)         its what(), or ""
//   contains(text, part)      whether text contains part
//   cancel_message_of(e)      the message of the CancelledError in an exception_ptr, or nullopt
//   FdGuard, Pipe, SocketPair RAII fds for readiness tests (non-blocking, close-on-exec)
//   LogLines                  a thread-safe list of strings, to check the order things happened
//   wait_until(pred, limit)   real-time polling for work on other threads, always bounded
//   kThreadSanitizer          whether this build runs under TSan
//   thread_state(pid)         the /proc state letter of process pid's main thread ('S': asleep)
//   SetOnDestroy              sets a flag when destroyed (a frame or a callback was destroyed)
//   Tracker                   appends "~name" to a log when destroyed (which frames died, in order)
//   ends_cancelled(task)      awaits a task; true when it ended with CancelledError
//   tasks_of(t...)            the tasks as a vector (no braced list inside a coroutine)
//   settle(tasks)             awaits every task, ignoring how each ended
//   gather_all(tasks)         awaits every task in order; their results
//   now(), nap(d), value_after(d, v), fail_after(d)   loop time and small timed coroutines
//   stream_echo(r, w)         a start_server handler: echoes every byte until EOF, then closes
//   vec(xs...)                a std::vector without a braced list (for use inside coroutines)
//   CO_ASSERT(cond)           ASSERT_TRUE for a coroutine body: records the failure, co_returns
//
// Everything here is deliberately dumb: no hidden loops, no global state.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <exception>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <asyncio.hpp>

namespace asyncio_test {

using namespace std::chrono_literals;

/// Options for a loop whose clock jumps to the next timer when nothing else can happen.
inline asyncio::RunOptions virtual_options(bool debug = false) {
  return asyncio::RunOptions{.debug = debug, .virtual_time = true};
}

/// asyncio::run(main) with virtual time: sleeps and time-outs cost no real time, and
/// loop.time() advances by exactly the slept amounts.
template <class T>
T run_virtual(asyncio::Coro<T> main) {
  return asyncio::run(std::move(main), virtual_options());
}

/// A fresh loop (not running) whose clock only moves when it jumps to the next timer.
inline std::unique_ptr<asyncio::EventLoop> new_virtual_loop() {
  return asyncio::new_event_loop(virtual_options());
}

/// A coroutine that returns at once.
inline asyncio::Coro<void> noop() {
  co_return;
}

/// Python's test_utils.run_briefly(loop): runs `loop` until a trivial task has finished, i.e.
/// two iterations: everything ready now runs in the first, what that schedules in the second.
inline void run_briefly(asyncio::EventLoop& loop) {
  loop.run_until_complete(noop());
}

/// Runs `first` on one loop, then `second` on another; both loops stay alive until the end so
/// that they are distinct objects.
inline void run_on_two_loops(asyncio::Coro<void> first, asyncio::Coro<void> second) {
  auto loop1 = asyncio::new_event_loop();
  loop1->run_until_complete(std::move(first));
  auto loop2 = asyncio::new_event_loop();
  loop2->run_until_complete(std::move(second));
  loop2->close();
  loop1->close();
}

/// Records every context given to a loop's exception handler. Install it in the loop (the
/// constructor taking a loop), or in the running loop (the default constructor, which must be
/// called inside a coroutine). The records live in shared state, so the handler stays valid
/// even if this object dies before the loop does (e.g. leftover tasks reported at the end of
/// asyncio::run, after main has returned). The destructor does not touch the loop.
/// Records hold TaskRefs (keeping those tasks' states alive); clear() drops them.
class RecordingHandler {
 public:
  RecordingHandler() : RecordingHandler(asyncio::get_running_loop()) {}
  explicit RecordingHandler(asyncio::EventLoop& loop) : records_(std::make_shared<Records>()) {
    loop.set_exception_handler(
        [records = records_](asyncio::EventLoop&, const asyncio::ExceptionContext& ctx) {
          std::lock_guard lock(records->mu);
          records->contexts.push_back(ctx);
        });
  }

  /// How many contexts were reported.
  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(records_->mu);
    return records_->contexts.size();
  }
  [[nodiscard]] bool empty() const { return size() == 0; }
  /// A copy of every reported context, in report order.
  [[nodiscard]] std::vector<asyncio::ExceptionContext> contexts() const {
    std::lock_guard lock(records_->mu);
    return records_->contexts;
  }
  /// The i-th reported context (copied).
  [[nodiscard]] asyncio::ExceptionContext at(std::size_t i) const {
    std::lock_guard lock(records_->mu);
    return records_->contexts.at(i);
  }
  /// The messages, in report order.
  [[nodiscard]] std::vector<std::string> messages() const {
    std::lock_guard lock(records_->mu);
    std::vector<std::string> out;
    for (const auto& c : records_->contexts) out.push_back(c.message);
    return out;
  }
  /// True if some message contains `part`.
  [[nodiscard]] bool has_message(const std::string& part) const {
    for (const auto& m : messages()) {
      if (m.find(part) != std::string::npos) return true;
    }
    return false;
  }
  void clear() {
    std::lock_guard lock(records_->mu);
    records_->contexts.clear();
  }

 private:
  struct Records {
    mutable std::mutex mu;
    std::vector<asyncio::ExceptionContext> contexts;
  };
  std::shared_ptr<Records> records_;
};

/// What awaiting `c` threw (null when it returned). Never lets an exception out.
template <class T>
asyncio::Coro<std::exception_ptr> error_of(asyncio::Coro<T> c) {
  std::exception_ptr err;
  try {
    (void)co_await std::move(c);
  } catch (...) {
    err = std::current_exception();
  }
  co_return err;
}

/// The what() of an exception_ptr's std::exception, "" when it holds something else or nothing.
inline std::string what_of(const std::exception_ptr& e) {
  if (!e) return {};
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return {};
  }
}

/// True when `e` holds an exception of type E (or derived from it).
template <class E>
bool holds(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

/// Calls f(); returns a copy of the exception of type E it threw, nullopt if it threw nothing
/// or something else.
template <class E, class F>
std::optional<E> thrown(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const E& e) {
    return e;
  } catch (...) {
    return std::nullopt;
  }
  return std::nullopt;
}

/// The what() of the exception of type E that f() throws; "" if it throws nothing or something
/// else.
template <class E, class F>
std::string thrown_what(F&& f) {
  const std::optional<E> e = thrown<E>(std::forward<F>(f));
  return e ? std::string(e->what()) : std::string();
}

/// Whether `text` contains `part`.
inline bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

/// The message of the CancelledError held by `e` (nullopt when `e` holds something else).
inline std::optional<std::string> cancel_message_of(const std::exception_ptr& e) {
  if (!e) return std::nullopt;
  try {
    std::rethrow_exception(e);
  } catch (const asyncio::CancelledError& c) {
    return c.message();
  } catch (...) {
    return std::nullopt;
  }
}

/// Owns a file descriptor; closes it on destruction. -1 means none.
class FdGuard {
 public:
  FdGuard() noexcept = default;
  explicit FdGuard(int fd) noexcept : fd_(fd) {}
  FdGuard(FdGuard&& o) noexcept : fd_(o.release()) {}
  FdGuard& operator=(FdGuard o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~FdGuard() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  /// Gives the fd up without closing it.
  int release() noexcept { return std::exchange(fd_, -1); }
  /// Closes the fd now (and optionally adopts another).
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

/// A non-blocking, close-on-exec pipe: write to `w`, read from `r`.
struct Pipe {
  FdGuard r, w;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
      throw std::system_error(errno, std::generic_category(), "pipe2");
    }
    r.reset(fds[0]);
    w.reset(fds[1]);
  }
};

/// A connected, non-blocking, close-on-exec AF_UNIX stream socket pair.
struct SocketPair {
  FdGuard a, b;
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
      throw std::system_error(errno, std::generic_category(), "socketpair");
    }
    a.reset(fds[0]);
    b.reset(fds[1]);
  }
};

/// Writes all of `data` to a non-blocking fd (which must have room); the bytes written.
inline std::size_t write_str(int fd, const std::string& data) {
  ssize_t n = ::write(fd, data.data(), data.size());
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

/// Reads whatever is available (up to `max` bytes) from a non-blocking fd; "" when none.
inline std::string read_some(int fd, std::size_t max = 4096) {
  std::string buf(max, '\0');
  ssize_t n = ::read(fd, buf.data(), buf.size());
  buf.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
  return buf;
}

/// A thread-safe, ordered list of strings: push what happened, compare with what should have.
///   LogLines log; ... log.add("a"); ... EXPECT_EQ(log.lines(), (std::vector<std::string>{"a"}));
class LogLines {
 public:
  void add(std::string line) {
    std::lock_guard lock(mu_);
    lines_.push_back(std::move(line));
  }
  [[nodiscard]] std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }
  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(mu_);
    return lines_.size();
  }
  /// All lines joined by `sep` ("a b c"): compact in EXPECT_EQ messages.
  [[nodiscard]] std::string joined(const std::string& sep = " ") const {
    std::lock_guard lock(mu_);
    std::string out;
    for (std::size_t i = 0; i < lines_.size(); ++i) out += (i ? sep : "") + lines_[i];
    return out;
  }
  void clear() {
    std::lock_guard lock(mu_);
    lines_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

/// Polls `pred` (on this thread, every millisecond) until it holds or `limit` of real time has
/// passed; returns its last value. Only for work happening on other threads: never use it where
/// virtual time would do.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = 5s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
#else
inline constexpr bool kThreadSanitizer = false;
#endif

/// The state letter of process `pid`'s main thread in /proc ('S': asleep, 'R': running), or
/// '?'. Under TSan a test that signals a loop first waits for 'S': TSan holds a signal that
/// lands while the thread runs ordinary code until the thread's next intercepted libc call,
/// and a loop asleep in io_uring_enter (not intercepted) would not make one until it wakes.
inline char thread_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::stringstream text;
  text << in.rdbuf();
  const std::string stat = text.str();
  const std::size_t paren = stat.rfind(')');  // the name, in parentheses, may hold anything
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

/// Sets *flag when destroyed: shows that a coroutine frame (or a callback) was destroyed.
class SetOnDestroy {
 public:
  explicit SetOnDestroy(bool* flag) : flag_(flag) {}
  SetOnDestroy(SetOnDestroy&& o) noexcept : flag_(std::exchange(o.flag_, nullptr)) {}
  SetOnDestroy(const SetOnDestroy&) = delete;
  SetOnDestroy& operator=(const SetOnDestroy&) = delete;
  SetOnDestroy& operator=(SetOnDestroy&&) = delete;
  ~SetOnDestroy() {
    if (flag_ != nullptr) *flag_ = true;
  }

 private:
  bool* flag_;
};

/// Appends "~name" to a log when destroyed: shows which coroutine frames' locals died, in order.
/// The log is a plain vector (single-threaded tests) or a LogLines.
class Tracker {
 public:
  Tracker(std::vector<std::string>* log, std::string name) : vec_(log), name_(std::move(name)) {}
  Tracker(LogLines* log, std::string name) : lines_(log), name_(std::move(name)) {}
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;
  ~Tracker() {
    if (lines_ != nullptr) {
      lines_->add("~" + name_);
    } else {
      vec_->push_back("~" + name_);
    }
  }

 private:
  std::vector<std::string>* vec_ = nullptr;
  LogLines* lines_ = nullptr;
  std::string name_;
};

/// Awaits `t`; true when it ended with CancelledError.
template <class T>
asyncio::Coro<bool> ends_cancelled(asyncio::Task<T> t) {
  bool cancelled = false;
  try {
    co_await t;
  } catch (const asyncio::CancelledError&) {
    cancelled = true;
  }
  co_return cancelled;
}

/// The tasks as a vector. (Braced lists built inside a coroutine trip g++ 12's coroutine
/// lowering - "array used as initializer" - so tests build them here.)
template <class T, class... More>
std::vector<asyncio::Task<T>> tasks_of(asyncio::Task<T> first, More... more) {
  std::vector<asyncio::Task<T>> out{std::move(first), std::move(more)...};
  return out;
}

/// Awaits every task, ignoring how each ended (gather(..., return_exceptions=True)).
template <class T>
asyncio::Coro<void> settle(std::vector<asyncio::Task<T>> tasks) {
  for (auto& t : tasks) {
    try {
      co_await t;
    } catch (...) {  // NOLINT(bugprone-empty-catch): the caller looks at the tasks
    }
  }
}

/// Awaits every task in order; their results (gather(...) when none fails).
template <class T>
asyncio::Coro<std::vector<T>> gather_all(std::vector<asyncio::Task<T>> tasks) {
  std::vector<T> out;
  for (auto& t : tasks) out.push_back(co_await t);
  co_return out;
}

inline asyncio::Coro<void> gather_all(std::vector<asyncio::Task<void>> tasks) {
  for (auto& t : tasks) co_await t;
}

/// The running loop's time (asyncio.get_running_loop().time()).
inline double now() {
  return asyncio::get_running_loop().time();
}

/// Sleeps `delay` seconds.
inline asyncio::Coro<void> nap(double delay) {
  co_await asyncio::sleep(delay);
}

/// A start_server() handler: echoes every byte until EOF, then closes its writer.
inline asyncio::Coro<void> stream_echo(asyncio::StreamReader r, asyncio::StreamWriter w) {
  for (;;) {
    std::string data = co_await r.read(1 << 16);
    if (data.empty()) break;
    w.write(data);
    co_await w.drain();
  }
  w.close();
}

/// Returns `value` after `delay` seconds.
inline asyncio::Coro<std::string> value_after(double delay, std::string value) {
  co_await asyncio::sleep(delay);
  co_return value;
}

/// Throws std::runtime_error("err") after `delay` seconds.
inline asyncio::Coro<void> fail_after(double delay) {
  co_await asyncio::sleep(delay);
  throw std::runtime_error("err");
}

/// std::vector{xs...} without an initializer_list (g++ 12 rejects initializer_list temporaries
/// in a coroutine's co_await expression: "array used as initializer").
template <class T, class... More>
std::vector<T> vec(T first, More... more) {
  std::vector<T> v;
  v.push_back(std::move(first));
  (v.push_back(std::move(more)), ...);
  return v;
}

}  // namespace asyncio_test

/// ASSERT_TRUE for the body of a Coro<void> (GoogleTest's ASSERT_* `return`, which a coroutine
/// cannot): records the failure and co_returns.
#define CO_ASSERT(...)                                    \
  do {                                                    \
    if (!(__VA_ARGS__)) {                                 \
      ADD_FAILURE() << "CO_ASSERT failed: " #__VA_ARGS__; \
      co_return;                                          \
    }                                                     \
  } while (0)
