// The loop's scheduling core (detail::LoopCore: one iteration, timers, tasks, the clock) and
// the EventLoop on top of it: running, closing, errors, executors
// (Python: base_events.py, BaseEventLoop._run_once and friends).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "asyncio/detail/spin.hpp"
#include "asyncio/events.hpp"
#include "asyncio/executors.hpp"
#include "asyncio/futures.hpp"
#include "asyncio/tasks.hpp"
#include "unix/loop_io.hpp"

namespace asyncio {
namespace {

bool debug_from_environment() {
  const char* v = std::getenv("ASYNCIO_DEBUG");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

/// ASYNCIO_SHUFFLE=N (a decimal seed, 0 included): shuffle mode unless RunOptions::shuffle_seed
/// is set. Unset, empty or not a number: off.
std::optional<std::uint64_t> shuffle_seed_from_environment() {
  const char* v = std::getenv("ASYNCIO_SHUFFLE");
  if (v == nullptr || *v < '0' || *v > '9') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const unsigned long long seed = std::strtoull(v, &end, 10);
  if (errno != 0 || *end != '\0') return std::nullopt;
  return static_cast<std::uint64_t>(seed);
}

/// One step of a task, or a Runnable.
void run_entry(detail::ReadyEntry e) {
  if (e.is_task()) {
    e.task()->run();
  } else {
    e.runnable()->run();
  }
}

int to_timeout_ms(double seconds) {
  if (seconds < 0) return -1;
  const double ms = std::ceil(seconds * 1000.0);
  return ms > static_cast<double>(INT_MAX) ? INT_MAX : static_cast<int>(ms);
}

}  // namespace

namespace detail {

void HandleState::run() {
  Ref<HandleState> queue_ref = Ref<HandleState>::adopt(this);
  if (cancelled()) {
    drop();
  } else {
    invoke();
  }
}

void TimerHandleState::cancel() noexcept {
  HandleState::cancel();
  drop();  // as Python's Handle.cancel(): the callback and its captures die at once
  if (in_heap()) {
    core_->remove_timer(this);
    release();  // the heap's reference
  }
}

void TimerHandleState::on_timer() noexcept {
  core_->ready().push(this);  // the heap's reference becomes the queue's
}

}  // namespace detail

namespace {
detail::LoopCoreOptions core_options(const RunOptions& options) {
  detail::LoopCoreOptions o;
  o.debug = options.debug || debug_from_environment();
  o.virtual_time = options.virtual_time;
  o.shuffle_seed = options.shuffle_seed ? options.shuffle_seed : shuffle_seed_from_environment();
  return o;
}
}  // namespace

detail::LoopCore::LoopCore(EventLoop& owner, std::unique_ptr<LoopIo> io,
                           const LoopCoreOptions& options)
    : owner_(&owner),
      debug_(options.debug),
      virtual_time_(options.virtual_time),
      shuffle_(options.shuffle_seed.has_value()),
      io_(std::move(io)),
      posted_(&io_->posts->has_posted()) {
  ready_.seed_shuffle(options.shuffle_seed.value_or(0));
}

detail::LoopCore::~LoopCore() = default;

EventLoop::EventLoop(RunOptions options)
    : core_(*this,
            std::make_unique<detail::LoopIo>(options.backend,
                                             options.debug || debug_from_environment()),
            core_options(options)),
      options_(options) {
  if (!options_.shuffle_seed) options_.shuffle_seed = shuffle_seed_from_environment();
}

EventLoop::~EventLoop() {
  if (!running_) {
    try {
      close();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
    }
  }
  default_executor_.reset();  // joins the pool's threads while io_ can still take their posts
}

double detail::LoopCore::real_time() noexcept {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double detail::LoopCore::time() const noexcept {
  return virtual_time_ ? virtual_now_ : real_time();
}

void EventLoop::run_forever() {
  core_.check_open();
  if (running_) throw RuntimeError("This event loop is already running");
  if (detail::tls_running_loop != nullptr) {
    throw RuntimeError("Cannot run the event loop while another loop is running");
  }
  struct Running {
    EventLoop* loop;
    explicit Running(EventLoop* l) : loop(l) {
      loop->running_ = true;
      loop->thread_id_.store(std::this_thread::get_id(), std::memory_order_relaxed);
      detail::tls_running_loop = loop;
    }
    Running(const Running&) = delete;
    Running& operator=(const Running&) = delete;
    ~Running() {
      // What was submitted in the last pass (io_uring: a write's send op) goes to the kernel
      // now, not at the next run: Python's write() sends at once, and a peer may be waiting for
      // the bytes while this loop is stopped.
      loop->core_.io().flush();
      loop->core_.clear_stopping();
      loop->running_ = false;
      loop->thread_id_.store(std::thread::id(), std::memory_order_relaxed);
      detail::tls_running_loop = nullptr;
    }
  } running(this);
  for (;;) {
    core_.run_once();
    if (core_.stopping()) break;
  }
}

void detail::LoopCore::poll_io() {
  // How long to block: not at all if something is ready or we are stopping, else until the
  // earliest timer, else until I/O or a thread-safe post arrives.
  const bool busy = !ready_.empty() || stopping_;
  if (!virtual_time_) {
    double timeout = -1;
    if (busy) {
      timeout = 0;
    } else if (!timers_.empty()) {
      timeout = std::max(0.0, timers_.top_when() - time());
    }
    if (timeout != 0 && external_.load(std::memory_order_relaxed) > 0) {
      // Work on other threads is in flight (run_in_executor, wrap_future): its completion
      // often comes within microseconds. Spin for it briefly before blocking in the kernel,
      // which would cost this thread a wake-up (I/O that becomes ready meanwhile waits at most
      // that long).
      const std::atomic<bool>& posted = io_->posts->has_posted();
      if (spin_until([&posted] { return posted.load(std::memory_order_acquire); })) timeout = 0;
    }
    io_->poll(to_timeout_ms(timeout), ready_);
    return;
  }
  // Virtual time: jump to the next timer when nothing else can happen first. With real I/O
  // or thread work in flight, wait for it in real time (up to the timer's delay) and let the
  // clock follow the real time that passed.
  if (busy || timers_.empty()) {
    io_->poll(busy ? 0 : -1, ready_);
    return;
  }
  const double next = timers_.top_when();
  const bool external = io_->has_pending_io() || external_.load(std::memory_order_relaxed) > 0;
  if (!external) {
    io_->poll(0, ready_);
    if (ready_.empty()) virtual_now_ = std::max(virtual_now_, next);
    return;
  }
  const double wait = std::max(0.0, next - virtual_now_);
  const double t0 = real_time();
  io_->poll(to_timeout_ms(wait), ready_);
  const double elapsed = real_time() - t0;
  // Jump to the timer only if the wait really timed out. A wait can also end early with nothing
  // ready (an edge that completed no op, a signal's EINTR): then the I/O is still pending, and
  // the clock only follows the real time that passed.
  if (ready_.empty() && elapsed >= wait) {
    virtual_now_ = std::max(virtual_now_, next);
  } else {
    virtual_now_ = std::min(virtual_now_ + elapsed, std::max(virtual_now_, next));
  }
}

void detail::LoopCore::run_once() {
  poll_io();
  // Timers whose deadline has passed join the ready queue in (when, seq) order. (No timer, no
  // clock read.)
  if (!timers_.empty()) {
    const double end = time() + (virtual_time_ ? 0.0 : 1e-9);
    while (detail::TimerNode* t = timers_.pop_due(end)) t->on_timer();
  }
  // Run what was ready when this pass began; what it schedules waits for the next pass.
  // Shuffle mode first puts those entries in a seeded random order; off, it costs this branch.
  std::size_t n = ready_.size();
  if (shuffle_) [[unlikely]] {
    ready_.shuffle_front(n);
  }
  for (; n > 0; --n) {
    const detail::ReadyEntry e = ready_.pop();
    if (debug_) [[unlikely]] {
      run_ready_debug(e);
      continue;
    }
    try {
      run_entry(e);
    } catch (const KeyboardInterrupt&) {
      throw;
    } catch (...) {
      owner_->call_exception_handler({"Exception in callback", std::current_exception(), {}, {}});
    }
  }
}

void detail::LoopCore::run_ready_debug(ReadyEntry e) {
  std::string what = e.is_task() ? e.task()->describe() : e.runnable()->describe();
  const double t0 = real_time();
  try {
    run_entry(e);
  } catch (const KeyboardInterrupt&) {
    throw;
  } catch (...) {
    owner_->call_exception_handler(
        {"Exception in callback " + what, std::current_exception(), {}, what});
  }
  const double dt = real_time() - t0;
  if (dt >= owner_->slow_callback_duration) {
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3f", dt);
    owner_->call_exception_handler(
        {"Executing " + what + " took " + secs + " seconds", {}, {}, what});
  }
}

namespace detail {

namespace {
bool older(const TaskState* a, const TaskState* b) noexcept {
  return a->id() < b->id();
}
}  // namespace

TaskState* TaskRegistry::task_of(void* root) noexcept {
  return PromiseBase::in_frame(root)->task();
}

std::uint32_t TaskRegistry::add(void* root) {
  std::uint32_t slot = free_;
  if (slot != kNoSlot) {
    free_ = static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(slots_[slot]) >> 1);
    slots_[slot] = root;
  } else {
    if (slots_.size() >= kNoSlot) throw std::length_error("too many pending tasks");
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.push_back(root);
  }
  ++live_;
  return slot;
}

void TaskRegistry::remove(std::uint32_t slot) noexcept {
  // NOLINTNEXTLINE(performance-no-int-to-ptr): a free slot's link, never dereferenced
  slots_[slot] = reinterpret_cast<void*>((std::uintptr_t{free_} << 1) | 1);
  free_ = slot;
  --live_;
}

std::vector<TaskState*> TaskRegistry::list() const {
  std::vector<TaskState*> out;
  out.reserve(live_);
  for (void* s : slots_) {
    if (!is_free(s)) out.push_back(task_of(s));
  }
  std::sort(out.begin(), out.end(), older);
  return out;
}

std::vector<void*> TaskRegistry::take_all() noexcept {
  std::vector<void*> out = std::move(slots_);
  slots_.clear();
  std::erase_if(out, is_free);
  std::sort(out.begin(), out.end(), [](void* a, void* b) { return older(task_of(a), task_of(b)); });
  for (void* root : out) task_of(root)->registry_slot = kNoSlot;
  free_ = kNoSlot;
  live_ = 0;
  return out;
}

}  // namespace detail

void detail::LoopCore::register_task(TaskState* t, void* root) {
  try {
    t->registry_slot = tasks_.add(root);
  } catch (...) {
    t->release();  // the loop's reference: the task never starts
    throw;
  }
  t->wake();
}

void detail::LoopCore::unregister_task(TaskState* t) noexcept {
  if (t->registry_slot != TaskRegistry::kNoSlot) {
    tasks_.remove(std::exchange(t->registry_slot, TaskRegistry::kNoSlot));
    t->release();  // the loop's reference
  }
}

std::vector<TaskRef> detail::tasks_of(EventLoop& loop) {
  std::vector<TaskRef> out;
  const std::vector<TaskState*> pending = core_of(loop).tasks();
  out.reserve(pending.size());
  for (TaskState* t : pending) out.emplace_back(t);
  return out;
}

void detail::LoopCore::drop_pending() noexcept {
  // A queued task step holds nothing: the loop's registry keeps the task (abandon_tasks()).
  while (!ready_.empty()) {
    if (const detail::ReadyEntry e = ready_.pop(); !e.is_task()) e.runnable()->discard();
  }
  for (detail::TimerNode* t : timers_.take_all()) t->on_discard();
}

std::vector<detail::TaskState*> detail::LoopCore::abandon_tasks() noexcept {
  // Destroying one task's frames may wake another (a lock guard released, a future set), so
  // nothing is released here: the caller drops the queue first, then the references.
  const std::vector<void*> roots = tasks_.take_all();
  std::vector<detail::TaskState*> abandoned;
  try {
    abandoned.reserve(roots.size());
  } catch (...) {  // out of memory: release each task as soon as its frames are gone
    for (void* root : roots) {
      detail::TaskState* t = detail::TaskRegistry::task_of(root);
      t->abandon(std::coroutine_handle<>::from_address(root));
      t->release();
    }
    return abandoned;
  }
  for (void* root : roots) {
    detail::TaskState* t = detail::TaskRegistry::task_of(root);
    abandoned.push_back(t);
    t->abandon(std::coroutine_handle<>::from_address(root));
  }
  return abandoned;
}

void EventLoop::close() {
  if (running_) throw RuntimeError("Cannot close a running event loop");
  if (core_.closed() || closing_) return;  // closing_: called again by a destructor run below
  closing_ = true;
  // The kernel may still own buffers in the frames destroyed below (io_uring): get every
  // operation in flight back first.
  core_.io().quiesce();
  // Destructors run here (pending tasks' frames, dropped callbacks' captures) may offer the
  // loop new work: create_task, call_soon, call_later, create_future... It is accepted, and
  // destroyed in a further round before close() returns: a task created now never starts (its
  // frame is destroyed unstarted), a callback never runs. Each round may be offered more, so
  // the rounds go on until one leaves nothing behind.
  // Why not refuse it, as Python's close() does by marking the loop closed first? Here a refusal
  // is an exception thrown in a destructor: std::terminate, unless the destructor catches it.
  // Not only create_task would throw: completing a future that has waiters checks the loop is
  // open, so a guard calling Task::cancel() or Future::set_result() would too (a sibling task
  // parked on a future, cancelled from a guard while close() destroys the guard's frame).
  // Work offered after close() has returned is refused (check_open()).
  do {
    for (detail::TaskState* t : core_.abandon_all()) t->release();
  } while (core_.has_work());
  core_.mark_closed();
  // Async generators still registered (no shutdown_asyncgens()) forget this loop, so that one
  // destroyed later does not touch it.
  while (core_.asyncgens().pop_front() != nullptr) {
  }
  drop_executor_futures();
  core_.io().close();
  // Closing the I/O resources may run destructors that queue work too (a transport closed by
  // a stream handle its owner dropped): drop it the same way.
  while (core_.has_work()) {
    for (detail::TaskState* t : core_.abandon_all()) t->release();
  }
  if (default_executor_) default_executor_->shutdown(false);
}

std::vector<detail::TaskState*> detail::LoopCore::abandon_all() noexcept {
  // Queued entries first (a queued task step would otherwise outlive its task), then the
  // tasks' frames (whose destructors may queue more), then whatever they queued.
  drop_pending();
  std::vector<TaskState*> abandoned = abandon_tasks();
  drop_pending();
  return abandoned;
}

void EventLoop::call_exception_handler(const ExceptionContext& context) noexcept {
  if (!handler_) {
    default_exception_handler(context);
    return;
  }
  try {
    handler_(*this, context);
  } catch (...) {
    ExceptionContext c;
    c.message = "Unhandled error in exception handler";
    c.exception = std::current_exception();
    default_exception_handler(c);
    default_exception_handler(context);
  }
}

void EventLoop::default_exception_handler(const ExceptionContext& context) noexcept {
  try {
    std::string text =
        "asyncio: " + (context.message.empty() ? std::string("Unhandled error") : context.message);
    if (context.task) text += "\n  task: " + context.task.get_name();
    if (context.exception) text += "\n  exception: " + detail::describe(context.exception);
    text += '\n';
    std::fputs(text.c_str(), stderr);
  } catch (...) {  // NOLINT(bugprone-empty-catch): reporting must never throw
  }
}

void EventLoop::add_fd_handle(int fd, bool write, detail::Ref<detail::HandleState> h) {
  core_.check_open();
  core_.io().check_no_transport(fd);
  core_.io().set_fd_handle(fd, write, std::move(h));
}

bool EventLoop::remove_fd_handle(int fd, bool write) {
  if (core_.closed()) return false;
  core_.io().check_no_transport(fd);
  return core_.io().clear_fd_handle(fd, write);
}

void EventLoop::add_signal_handle(int sig, detail::Ref<detail::HandleState> h) {
  core_.check_open();
  core_.io().set_signal_handle(sig, std::move(h));
}

bool EventLoop::remove_signal_handler(int sig) {
  if (core_.closed()) return false;
  return core_.io().clear_signal_handle(sig);
}

void EventLoop::post_threadsafe(detail::HandleState* st) {
  core_.io().post(st);
}

void detail::LoopCore::take_posted() {
  io_->posts->drain(ready_);
}

void EventLoop::check_thread() const {
  const std::thread::id owner = thread_id_.load(std::memory_order_relaxed);
  if (owner != std::thread::id() && owner != std::this_thread::get_id()) {
    throw RuntimeError(
        "Non-thread-safe operation invoked on an event loop other than the current one");
  }
}

bool detail::post_threadsafe(PostQueue& q, HandleState* st) {
  return q.post(st);
}

std::shared_ptr<detail::PostQueue> EventLoop::threadsafe_queue() const {
  return core_.io().posts;
}

std::uint32_t EventLoop::hold_executor_future(detail::FutureStateBase* f) {
  std::uint32_t slot = 0;
  if (!free_executor_slots_.empty()) {
    slot = free_executor_slots_.back();
    free_executor_slots_.pop_back();
  } else {
    free_executor_slots_.reserve(executor_futures_.size() + 1);  // so giving it back can't throw
    slot = static_cast<std::uint32_t>(executor_futures_.size());
    executor_futures_.push_back(nullptr);
  }
  f->add_ref();
  executor_futures_[slot] = f;
  return slot;
}

detail::Ref<detail::FutureStateBase> EventLoop::take_executor_future(std::uint32_t slot) noexcept {
  if (slot >= executor_futures_.size() || executor_futures_[slot] == nullptr) return {};
  free_executor_slots_.push_back(slot);  // capacity was reserved
  return detail::Ref<detail::FutureStateBase>::adopt(
      std::exchange(executor_futures_[slot], nullptr));
}

void EventLoop::drop_executor_futures() noexcept {
  // Released here, on the loop's thread; jobs still running find the queue closed and drop
  // their results (Python drops a result that comes back to a closed loop).
  std::vector<detail::FutureStateBase*> held = std::move(executor_futures_);
  executor_futures_.clear();
  free_executor_slots_.clear();
  for (detail::FutureStateBase* f : held) {
    if (f != nullptr) f->release();
  }
}

void EventLoop::set_default_executor(std::shared_ptr<Executor> executor) {
  default_executor_ = std::move(executor);
}

Executor& EventLoop::default_executor() {
  core_.check_open();
  if (executor_shutdown_called_) throw RuntimeError("Executor shutdown has been called");
  if (!default_executor_) default_executor_ = std::make_shared<ThreadPoolExecutor>();
  return *default_executor_;
}

Coro<void> EventLoop::shutdown_default_executor() {
  executor_shutdown_called_ = true;
  std::shared_ptr<Executor> ex = std::move(default_executor_);
  if (!ex) co_return;
  // Join in a helper thread so that work still posting back to this loop can finish.
  Future<void> joined = create_future<void>();
  core_.hold_external();
  // NOLINTNEXTLINE(cppcoreguidelines-avoid-reference-coroutine-parameters): a thread's lambda
  std::thread joiner([this, ex, fut = joined]() mutable {
    ex->shutdown(true);
    (void)call_soon_threadsafe([this, fut = std::move(fut)]() mutable {
      core_.release_external();
      if (!fut.done()) fut.set_result();
    });
  });
  std::exception_ptr err;
  try {
    co_await joined;
  } catch (...) {
    err = std::current_exception();
  }
  joiner.join();
  if (err) std::rethrow_exception(err);
}

Coro<void> EventLoop::shutdown_asyncgens() {
  // Each finalizer unregisters itself when it closes.
  while (detail::ListHook* h = core_.asyncgens().pop_front()) {
    auto* g = static_cast<detail::AsyncGenFinalizer*>(h);
    std::exception_ptr err;
    try {
      co_await g->finalize();
    } catch (...) {
      err = std::current_exception();
    }
    if (err) {
      call_exception_handler(
          {"an error occurred during closing of asynchronous generator", err, {}, {}});
    }
  }
}

void detail::register_asyncgen(AsyncGenFinalizer* g) noexcept {
  if (EventLoop* loop = tls_running_loop) core_of(*loop).asyncgens().push_back(g);
}

EventLoop& get_running_loop() {
  if (EventLoop* loop = detail::tls_running_loop) return *loop;
  throw RuntimeError("no running event loop");
}

std::unique_ptr<EventLoop> new_event_loop(RunOptions options) {
  return std::make_unique<EventLoop>(options);
}

}  // namespace asyncio
