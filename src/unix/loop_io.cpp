// Readers/writers, thread-safe posts and signals, on either engine.
#include "unix/loop_io.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>

#include <pthread.h>

#include "asyncio/detail/loop_core.hpp"
#include "asyncio/detail/task_state.hpp"
#include "asyncio/exceptions.hpp"
#include "asyncio/transports.hpp"
#include "sys/sys.hpp"

namespace asyncio::detail {
namespace {

/// How many loops may watch one signal at once (each in its own thread, or several in one).
constexpr std::size_t kSignalLoops = 32;

/// For each signal, the write ends of the pipes of the loops that watch it, plus one (0: a free
/// slot). The handler writes the signal's number to every one: each loop that watches a signal
/// sees it (several loops in several threads, each with its own handlers).
std::atomic<int> g_signal_fds[NSIG][kSignalLoops];  // NOLINT: zero-initialised, read by the handler

/// Set by the signal handler, per slot: lets a busy loop notice a signal without reading its
/// pipe.
std::atomic<bool> g_signal_pending[NSIG][kSignalLoops];  // NOLINT: zero-initialised

/// Guards subscribe/unsubscribe and the installing of the handler (never taken by the handler).
std::mutex g_signal_mu;

extern "C" void asyncio_on_signal(int sig) {
  const int saved = errno;
  const auto s = static_cast<std::size_t>(sig);
  for (std::size_t i = 0; i < kSignalLoops; ++i) {
    const int fd = g_signal_fds[s][i].load(std::memory_order_acquire) - 1;
    if (fd < 0) continue;
    g_signal_pending[s][i].store(true, std::memory_order_release);
    const auto byte = static_cast<unsigned char>(sig);
    (void)sys::write_some(fd, &byte, 1);
  }
  errno = saved;
}

/// Adds the pipe `fd` to the watchers of `sig` (installing the handler for the first one);
/// the slot it took. RuntimeError when the signal cannot be caught or every slot is taken.
std::size_t subscribe_signal(int sig, int fd) {
  const auto s = static_cast<std::size_t>(sig);
  std::lock_guard<std::mutex> lock(g_signal_mu);
  std::size_t free_slot = kSignalLoops;
  bool any = false;
  for (std::size_t i = 0; i < kSignalLoops; ++i) {
    const int v = g_signal_fds[s][i].load(std::memory_order_relaxed);
    if (v == fd + 1) return i;  // already watching
    if (v != 0) any = true;
    if (v == 0 && free_slot == kSignalLoops) free_slot = i;
  }
  if (free_slot == kSignalLoops) {
    throw RuntimeError("sig " + std::to_string(sig) + ": already watched by " +
                       std::to_string(kSignalLoops) + " loops");
  }
  if (!any) {
    if (const int err = sys::set_signal_action(sig, asyncio_on_signal, SA_RESTART); err != 0) {
      throw RuntimeError("sig " + std::to_string(sig) + " cannot be caught: " + std::strerror(err));
    }
  }
  g_signal_pending[s][free_slot].store(false, std::memory_order_relaxed);
  g_signal_fds[s][free_slot].store(fd + 1, std::memory_order_release);
  return free_slot;
}

/// Removes slot `slot` of `sig`; the last watcher restores the default disposition.
void unsubscribe_signal(int sig, std::size_t slot) noexcept {
  const auto s = static_cast<std::size_t>(sig);
  std::lock_guard<std::mutex> lock(g_signal_mu);
  g_signal_fds[s][slot].store(0, std::memory_order_release);
  for (std::size_t i = 0; i < kSignalLoops; ++i) {
    if (g_signal_fds[s][i].load(std::memory_order_relaxed) != 0) return;
  }
  (void)sys::set_signal_action(sig, SIG_DFL, 0);
}

// ---- fork() without exec (docs/design/threads.md) -------------------------------------------
// A child fork()ed from a process with loops gets copies of them, none running. Python resets
// the running loop and the signal wake-up fd in the child (events.py, on_fork); here, in the
// forking thread (the child's only one):
//   * no loop runs and no task is current, so the child may asyncio::run() a loop of its own,
//     even when it was forked from inside a task;
//   * the signals that loops watched get their default disposition back and no watchers: the
//     handler would otherwise write to the parent's loops' pipes, which the child shares, and
//     the parent would run its callback for a signal sent to the child (and the child would
//     survive a SIGTERM);
//   * the generation counter moves on, so that the copies of the parent's loops leave the
//     signal table alone (a new loop of the child's may have taken their slots).
// The signal table's lock is held across fork(), so that the child never inherits it locked.

unsigned g_fork_generation = 0;  // read on the loop's thread; written in a child before it runs

extern "C" void asyncio_before_fork() {
  g_signal_mu.lock();
}
extern "C" void asyncio_after_fork_in_parent() {
  g_signal_mu.unlock();
}
extern "C" void asyncio_after_fork_in_child() {
  tls_running_loop = nullptr;
  tls_current_task = nullptr;
  ++g_fork_generation;
  for (std::size_t s = 1; s < NSIG; ++s) {
    bool watched = false;
    for (std::size_t i = 0; i < kSignalLoops; ++i) {
      if (g_signal_fds[s][i].exchange(0, std::memory_order_relaxed) != 0) watched = true;
      g_signal_pending[s][i].store(false, std::memory_order_relaxed);
    }
    if (watched) (void)sys::set_signal_action(static_cast<int>(s), SIG_DFL, 0);
  }
  g_signal_mu.unlock();
}

/// Registers the handlers above, once per process (before the first loop is made).
void register_fork_handlers() {
  static const int registered = ::pthread_atfork(asyncio_before_fork, asyncio_after_fork_in_parent,
                                                 asyncio_after_fork_in_child);
  if (registered != 0)
    throw std::system_error(registered, std::generic_category(), "pthread_atfork");
}

}  // namespace

PostQueue::PostQueue() : wakefd_(sys::eventfd_nonblocking()) {}

PostQueue::~PostQueue() {
  close();
  sys::close(wakefd_);
}

namespace {
/// Reverses a list linked through post_next (the stack is newest first).
HandleState* oldest_first(HandleState* newest) noexcept {
  HandleState* out = nullptr;
  while (newest != nullptr) {
    HandleState* next = newest->post_next;
    newest->post_next = out;
    out = newest;
    newest = next;
  }
  return out;
}
}  // namespace

bool PostQueue::post(HandleState* st) {
  st->add_ref();  // the ready queue's reference (the caller holds one too)
  HandleState* old = head_.load(std::memory_order_relaxed);
  do {
    if (old == closed_mark()) {
      st->release();  // back to the caller's reference: never the last one
      return false;
    }
    st->post_next = old;
  } while (
      !head_.compare_exchange_weak(old, st, std::memory_order_release, std::memory_order_relaxed));
  // Only the post that finds the queue empty wakes the loop: one that finds posts waiting is
  // taken by the same drain() as they are (a drain takes the whole stack at once), and the
  // first of them has woken the loop already.
  if (old == nullptr) {
    has_posted_.store(true, std::memory_order_release);
    sys::eventfd_signal(wakefd_);  // the fd lives as long as this queue
  }
  return true;
}

void PostQueue::drain(ReadyQueue& ready) {
  if (head_.load(std::memory_order_relaxed) == nullptr) return;
  // Cleared before the exchange: a post that comes after it finds the stack empty and sets
  // the flag (and wakes the loop) again.
  has_posted_.store(false, std::memory_order_relaxed);
  HandleState* taken = head_.exchange(nullptr, std::memory_order_acquire);
  if (taken == closed_mark()) {
    head_.store(closed_mark(), std::memory_order_relaxed);
    return;
  }
  for (HandleState* st = oldest_first(taken); st != nullptr;) {
    HandleState* next = std::exchange(st->post_next, nullptr);
    ready.push(st);
    st = next;
  }
}

void PostQueue::close() noexcept {
  HandleState* taken = head_.exchange(closed_mark(), std::memory_order_acquire);
  has_posted_.store(false, std::memory_order_relaxed);
  if (taken == closed_mark()) return;
  for (HandleState* st = oldest_first(taken); st != nullptr;) {
    HandleState* next = std::exchange(st->post_next, nullptr);
    st->discard();
    st = next;
  }
}

namespace {

/// ASYNCIO_BACKEND=epoll|io_uring (automatic when unset or empty; ValueError otherwise).
Backend backend_from_environment() {
  const char* v = std::getenv("ASYNCIO_BACKEND");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "automatic") == 0) return Backend::automatic;
  if (std::strcmp(v, "epoll") == 0) return Backend::epoll;
  if (std::strcmp(v, "io_uring") == 0) return Backend::io_uring;
  throw ValueError(std::string("ASYNCIO_BACKEND must be epoll or io_uring, not '") + v + "'");
}

}  // namespace

/// What Backend::automatic picks when ASYNCIO_BACKEND does not say: decided by measurement
/// (docs/design/io.md, "Which engine automatic picks"; bench/RESULTS.md).
constexpr Backend kPreferred = Backend::io_uring;

LoopIo::LoopIo(Backend backend, bool debug) : fork_generation_(g_fork_generation) {
  register_fork_handlers();
  const bool chosen = backend != Backend::automatic;
  if (!chosen) backend = backend_from_environment();
  const bool explicit_choice = chosen || backend != Backend::automatic;
  if (backend == Backend::automatic) backend = kPreferred;
  if (backend == Backend::io_uring) {
    std::string why;
    engine = make_uring_engine(posts->wake_fd(), why);
    if (!engine && explicit_choice) {
      throw RuntimeError("the io_uring backend is not available: " + why);
    }
    if (!engine && debug) {
      std::fprintf(stderr, "asyncio: io_uring is not available (%s); using epoll\n", why.c_str());
    }
  }
  if (!engine) engine = make_epoll_engine(posts->wake_fd());
  skip_zero_waits_ = engine->backend() == Backend::epoll;
}

LoopIo::~LoopIo() {
  close();
}

void LoopIo::poll(int timeout_ms, ReadyQueue& ready) {
  // A zero time-out (callbacks are ready) may skip the system call: always when nothing is
  // watched or in flight (only the thread-safe queue, an atomic flag, can have anything then),
  // and on epoll also when the previous iteration waited, unless readers or writers are watched.
  // A busy loop then polls every other iteration: I/O that completes while callbacks run is seen
  // one iteration later, and a request/response exchange makes one epoll_wait instead of two
  // (the wait that delivered the request, then none before the response is written). io_uring
  // peeks at its completion ring without a system call, and must submit what was queued, so it
  // always waits.
  if (timeout_ms == 0 && watchers == 0 &&
      (engine->in_flight() == 0 || (waited_last_ && skip_zero_waits_))) {
    waited_last_ = false;
    if (take_signal_flags()) drain_signals(ready);
    posts->drain(ready);
    return;
  }
  events_.clear();
  engine->wait(timeout_ms, events_);
  waited_last_ = true;
  for (const IoEvent& ev : events_) {
    if (ev.fd == sigpipe_[0]) {
      drain_signals(ready);
      continue;
    }
    const auto index = static_cast<std::size_t>(ev.fd);
    if (index >= fds_.size()) continue;
    FdWatch& w = fds_[index];
    if (ev.readable && w.reader) {
      w.reader->add_ref();
      ready.push(w.reader.get());
    }
    if (ev.writable && w.writer) {
      w.writer->add_ref();
      ready.push(w.writer.get());
    }
  }
  posts->drain(ready);
}

bool LoopIo::take_signal_flags() noexcept {
  bool any = false;
  for (const auto& entry : signals_) {
    auto& flag = g_signal_pending[static_cast<std::size_t>(entry.first)][entry.second.slot];
    if (flag.load(std::memory_order_relaxed))
      any |= flag.exchange(false, std::memory_order_acquire);
  }
  return any;
}

void LoopIo::post(HandleState* st) {
  if (!posts->post(st)) throw RuntimeError("Event loop is closed");
}

void LoopIo::drain_signals(ReadyQueue& ready) {
  std::array<unsigned char, 64> buf{};
  for (;;) {
    const long n = sys::read_some(sigpipe_[0], buf.data(), buf.size());
    if (n <= 0) break;
    for (long i = 0; i < n; ++i) {
      auto it = signals_.find(buf[static_cast<std::size_t>(i)]);
      if (it == signals_.end()) continue;
      it->second.handle->add_ref();
      ready.push(it->second.handle.get());
    }
  }
}

void LoopIo::stash(int fd, const char* data, std::size_t n) {
  if (n == 0) return;
  Stash& s = stashes_[fd];
  const sys::FileId id = sys::file_id(fd);
  if (!(s.id == id)) s.data.clear();
  s.id = id;
  s.data.append(data, n);
  // Receives already parked on the fd would otherwise wait for the kernel while these bytes,
  // which come first, wait for them: they receive again, and get the stash.
  engine->kick(fd);
}

std::size_t LoopIo::take_stash(int fd, char* out, std::size_t n) {
  auto it = stashes_.find(fd);
  if (it == stashes_.end()) return 0;
  if (!(it->second.id == sys::file_id(fd))) {
    stashes_.erase(it);  // the fd was closed: what was kept belonged to the old file
    return 0;
  }
  std::string& data = it->second.data;
  const std::size_t k = std::min(n, data.size());
  std::copy_n(data.data(), k, out);
  data.erase(0, k);
  if (data.empty()) stashes_.erase(it);
  return k;
}

void LoopIo::set_fd_handle(int fd, bool write, Ref<HandleState> h) {
  if (fd < 0) throw ValueError("Invalid file descriptor: " + std::to_string(fd));
  const auto index = static_cast<std::size_t>(fd);
  if (index >= fds_.size()) fds_.resize(index + 1);
  FdWatch& w = fds_[index];
  Ref<HandleState>& slot = write ? w.writer : w.reader;
  engine->update(fd, write ? static_cast<bool>(w.reader) : true,
                 write ? true : static_cast<bool>(w.writer));  // throws for a bad fd
  if (slot) {
    slot->cancel();  // replaced, as Python does
  } else {
    ++watchers;
  }
  slot = std::move(h);
}

bool LoopIo::clear_fd_handle(int fd, bool write) {
  const auto index = static_cast<std::size_t>(fd);
  if (fd < 0 || index >= fds_.size()) return false;
  FdWatch& w = fds_[index];
  Ref<HandleState>& slot = write ? w.writer : w.reader;
  if (!slot) return false;
  slot->cancel();
  slot.reset();
  --watchers;
  engine->update(fd, static_cast<bool>(w.reader), static_cast<bool>(w.writer));
  return true;
}

void LoopIo::set_signal_handle(int sig, Ref<HandleState> h) {
  if (sig < 1 || sig >= NSIG) {
    throw ValueError("sig " + std::to_string(sig) + " out of range(1, " + std::to_string(NSIG) +
                     ")");
  }
  if (sigpipe_[0] < 0) {
    sys::pipe_nonblocking(sigpipe_);
    engine->update(sigpipe_[0], true, false);
  }
  auto it = signals_.find(sig);
  if (it == signals_.end()) {
    const std::size_t slot = subscribe_signal(sig, sigpipe_[1]);  // throws if it cannot
    signals_.emplace(sig, SignalWatch{std::move(h), slot});
    return;
  }
  it->second.handle->cancel();  // replaced, as Python does
  it->second.handle = std::move(h);
}

bool LoopIo::clear_signal_handle(int sig) {
  auto it = signals_.find(sig);
  if (it == signals_.end()) return false;
  it->second.handle->cancel();
  // A copy of a loop of the parent's, in a fork()ed child: the child reset the table.
  if (fork_generation_ == g_fork_generation) unsubscribe_signal(sig, it->second.slot);
  signals_.erase(it);
  return true;
}

void LoopIo::claim_fd(int fd, const BaseTransport* t, const char* what) {
  const auto index = static_cast<std::size_t>(fd);
  if (index >= fd_users_.size()) fd_users_.resize(index + 1);
  fd_users_[index] = {t, what};
}

void LoopIo::release_fd(int fd, const BaseTransport* t) noexcept {
  const auto index = static_cast<std::size_t>(fd);
  if (fd >= 0 && index < fd_users_.size() && fd_users_[index].transport == t) {
    fd_users_[index] = {};
  }
}

void LoopIo::check_no_transport(int fd) const {
  const auto index = static_cast<std::size_t>(fd);
  if (fd < 0 || index >= fd_users_.size()) return;
  const FdUser& u = fd_users_[index];
  if (u.transport != nullptr && !u.transport->is_closing()) {
    throw RuntimeError("File descriptor " + std::to_string(fd) + " is used by transport <" +
                       u.what + " fd=" + std::to_string(fd) + ">");
  }
}

char* LoopIo::read_buffer() {
  if (!read_buffer_) read_buffer_ = std::make_unique_for_overwrite<char[]>(kReadBufferSize);
  return read_buffer_.get();
}

void LoopIo::close() noexcept {
  if (closed_) return;
  closed_ = true;
  // Transports and listeners still open let go of their fds (and of what they hold).
  while (ListHook* h = resources.pop_front()) static_cast<IoResource*>(h)->on_loop_close();
  posts->close();
  while (!signals_.empty()) clear_signal_handle(signals_.begin()->first);
  for (FdWatch& w : fds_) {
    for (Ref<HandleState>* slot : {&w.reader, &w.writer}) {
      if (*slot) {
        (*slot)->cancel();
        slot->reset();
      }
    }
  }
  fds_.clear();
  watchers = 0;
  stashes_.clear();
  if (sigpipe_[0] >= 0) {
    try {
      engine->update(sigpipe_[0], false, false);
    } catch (...) {  // NOLINT(bugprone-empty-catch): the pipe is closed next anyway
    }
  }
  sys::close(sigpipe_[0]);
  sys::close(sigpipe_[1]);
  sigpipe_[0] = sigpipe_[1] = -1;
}

}  // namespace asyncio::detail
