// Readers/writers, thread-safe posts and signals for the epoll loop.
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
#include <utility>

#include "sys/sys.hpp"

namespace asyncio::detail {
namespace {

/// For each signal, the write end of the pipe of the loop that handles it, plus one (0: none).
std::atomic<int> g_signal_fd[NSIG];  // NOLINT: zero-initialised, touched by the signal handler

/// Set by the signal handler: lets a busy loop notice a signal without polling its pipe.
std::atomic<bool> g_signal_pending[NSIG];  // NOLINT: zero-initialised

void set_signal_fd(int sig, int fd) noexcept {
  g_signal_fd[static_cast<std::size_t>(sig)].store(fd + 1);
}

extern "C" void asyncio_on_signal(int sig) {
  const int saved = errno;
  const int fd = g_signal_fd[static_cast<std::size_t>(sig)].load(std::memory_order_relaxed) - 1;
  if (fd >= 0) {
    g_signal_pending[static_cast<std::size_t>(sig)].store(true, std::memory_order_release);
    const auto byte = static_cast<unsigned char>(sig);
    (void)sys::write_some(fd, &byte, 1);
  }
  errno = saved;
}

}  // namespace

PostQueue::PostQueue() : wakefd_(sys::eventfd_nonblocking()) {}

PostQueue::~PostQueue() {
  close();
  sys::close(wakefd_);
}

bool PostQueue::post(HandleState* st) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    posted_.push_back(st);
    st->add_ref();  // the ready queue's reference
    has_posted_.store(true, std::memory_order_release);
  }
  sys::eventfd_signal(wakefd_);  // the fd lives as long as this queue
  return true;
}

void PostQueue::drain(ReadyQueue& ready) {
  if (!has_posted_.load(std::memory_order_acquire)) return;
  std::vector<HandleState*> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(posted_);
    has_posted_.store(false, std::memory_order_relaxed);
  }
  for (HandleState* st : batch) ready.push(st);
}

void PostQueue::close() noexcept {
  std::vector<HandleState*> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    batch.swap(posted_);
    has_posted_.store(false, std::memory_order_relaxed);
  }
  for (HandleState* st : batch) st->discard();
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

LoopIo::LoopIo(Backend backend, bool debug) {
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
}

LoopIo::~LoopIo() {
  close();
}

void LoopIo::poll(int timeout_ms, ReadyQueue& ready) {
  if (timeout_ms == 0 && watchers == 0 && engine->in_flight() == 0) {
    if (take_signal_flags()) drain_signals(ready);
    posts->drain(ready);
    return;
  }
  events_.clear();
  engine->wait(timeout_ms, events_);
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
    auto& flag = g_signal_pending[static_cast<std::size_t>(entry.first)];
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
      it->second->add_ref();
      ready.push(it->second.get());
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
  set_signal_fd(sig, sigpipe_[1]);
  if (const int err = sys::set_signal_action(sig, asyncio_on_signal, SA_RESTART); err != 0) {
    if (signals_.find(sig) == signals_.end()) set_signal_fd(sig, -1);
    throw RuntimeError("sig " + std::to_string(sig) + " cannot be caught: " + std::strerror(err));
  }
  Ref<HandleState>& slot = signals_[sig];
  if (slot) slot->cancel();
  slot = std::move(h);
}

bool LoopIo::clear_signal_handle(int sig) {
  auto it = signals_.find(sig);
  if (it == signals_.end()) return false;
  it->second->cancel();
  signals_.erase(it);
  (void)sys::set_signal_action(sig, SIG_DFL, 0);
  set_signal_fd(sig, -1);
  return true;
}

void LoopIo::close() noexcept {
  if (closed_) return;
  closed_ = true;
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
